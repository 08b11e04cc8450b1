#!/usr/bin/env python3
"""The two commands: ``python3 dev.py serve`` and ``python3 dev.py test``.

Each creates (or refreshes) the project's own virtual environment in ``.venv``
from pyproject.toml and constraints.txt, so a fresh machine needs only Python 3.11+.

  python3 dev.py serve [incident-plugin serve options]   start the server (SQLite, local host)
  python3 dev.py test  [pytest options]                  run the whole test suite (the webapp's tests under
                                                         node and the launcher's under go too, when no pytest
                                                         options are given)
  python3 dev.py postgres                                install (when missing) and start a local PostgreSQL
                                                         with the role the tests use; ``test`` does it too
  python3 dev.py chromium                                install (when missing) the headless Chromium and its
                                                         driver the browser tests use; ``test`` does it too
  python3 dev.py run   COMMAND ...                       run any command inside the environment
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("INCIDENT_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed"


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    """Create the environment and install the project when missing or out of date."""
    if sys.version_info < (3, 11):
        sys.exit("incident-response needs Python 3.11 or newer")
    fingerprint = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    if not (BIN / "python").exists():
        print(f"creating virtual environment in {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(fingerprint)


# The role and database the tests and the bench use when INCIDENT_TEST_POSTGRES_URL is not set.
PG_ROLE = "incident"
PG_URL = f"postgresql+psycopg://{PG_ROLE}:{PG_ROLE}@127.0.0.1:5432/postgres"


def _pg_ready() -> bool:
    pg_isready = shutil.which("pg_isready")
    return bool(pg_isready) and subprocess.run(
        [pg_isready, "-q", "-h", "127.0.0.1", "-p", "5432"], check=False).returncode == 0


def ensure_postgres() -> None:
    """Install PostgreSQL from the system's packages when missing, start its cluster, and
    create the ``incident`` role (password login, CREATEDB) that the tests connect as.

    Needs root and Debian's tools (apt-get, pg_ctlcluster); elsewhere it says what to do.
    """
    if "INCIDENT_TEST_POSTGRES_URL" in os.environ:
        return
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not shutil.which("pg_ctlcluster"):
        if not (root and shutil.which("apt-get")):
            print("PostgreSQL is not installed; install it (Debian: apt-get install -y postgresql) "
                  "or set INCIDENT_TEST_POSTGRES_URL", file=sys.stderr)
            return
        print("installing PostgreSQL (apt-get install -y postgresql)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql"], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    if not root:
        if not _pg_ready():
            print("PostgreSQL is not running on 127.0.0.1:5432; start it (pg_ctlcluster VERSION main start)",
                  file=sys.stderr)
        return
    if not _pg_ready():
        for version in sorted(os.listdir("/etc/postgresql"), reverse=True):
            print(f"starting PostgreSQL {version}", file=sys.stderr)
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
            break
        for _ in range(30):
            if _pg_ready():
                break
            time.sleep(1)
        else:
            sys.exit("PostgreSQL did not start on 127.0.0.1:5432 (see /var/log/postgresql/)")
    # Peer authentication as the postgres system user; idempotent. pg_checkpoint (PostgreSQL
    # 15 and later) lets the bench settle a bulk-loaded database before it measures;
    # pg_signal_backend lets a test's DROP DATABASE ... WITH (FORCE) end an autovacuum
    # worker that happens to be in its database (it belongs to no role the test is in).
    sql = (f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{PG_ROLE}') THEN "
           f"CREATE ROLE {PG_ROLE} LOGIN CREATEDB PASSWORD '{PG_ROLE}'; END IF; "
           f"GRANT pg_signal_backend TO {PG_ROLE}; "
           f"IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'pg_checkpoint') THEN "
           f"GRANT pg_checkpoint TO {PG_ROLE}; END IF; END$$;")
    subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                   check=True, cwd="/")


# The browser and driver the browser tests (tests/browser) drive: Debian's packages, never a download.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def ensure_chromium() -> None:
    """Install Debian's ``chromium`` and ``chromium-driver`` when either is missing.

    Needs root and apt-get; elsewhere it says what to install (the browser tests then
    skip, or fail where INCIDENT_REQUIRE_BROWSER is set).
    """
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (root and shutil.which("apt-get")):
        print(f"Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}); install it (Debian: apt-get install -y "
              "chromium chromium-driver) to run the browser tests", file=sys.stderr)
        return
    print("installing Chromium (apt-get install -y chromium chromium-driver)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def run_webapp_tests() -> None:
    """The webapp stub's tests, under Node's built-in runner (no npm packages needed)."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            sys.exit("node is needed for the webapp tests (node --test webapp_stub/test/)")
        print("node not found: skipping the webapp tests (node --test webapp_stub/test/)", file=sys.stderr)
        return
    subprocess.run([node, "--test", str(ROOT / "webapp_stub" / "test")], check=True, cwd=ROOT)


def run_launcher_tests() -> None:
    """The Go launcher's own tests (server/), when Go is installed; required where Mattermost's tests are."""
    go = shutil.which("go")
    if go is None:
        if os.environ.get("INCIDENT_REQUIRE_MATTERMOST") in {"1", "true", "yes"}:
            sys.exit("go is needed for the launcher's tests (cd server && go test ./...)")
        print("go not found: skipping the launcher's tests (cd server && go test ./...)", file=sys.stderr)
        return
    subprocess.run([go, "test", "./..."], check=True, cwd=ROOT / "server")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "run", "postgres", "chromium"}:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "postgres":
        ensure_postgres()
        return 0
    if argv[0] == "chromium":
        ensure_chromium()
        return 0
    if argv[0] == "run" and len(argv) == 1:
        print("usage: python3 dev.py run COMMAND [ARGS...]", file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = [str(BIN / "incident-plugin"), "serve", *rest]
    elif command == "test":
        ensure_postgres()
        ensure_chromium()
        if not rest:
            run_webapp_tests()
            run_launcher_tests()
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    else:
        args = [str(BIN / rest[0]) if (BIN / rest[0]).exists() else rest[0], *rest[1:]]
    os.chdir(ROOT)
    os.execv(args[0], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
