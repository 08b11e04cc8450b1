#!/usr/bin/env python3
"""The two commands: ``python3 dev.py serve`` and ``python3 dev.py test``.

Each creates (or refreshes) the project's own virtual environment in ``.venv``
from pyproject.toml and constraints.txt, so a fresh machine needs only Python 3.11+.

  python3 dev.py serve [incident-plugin serve options]   start the server (SQLite, local host)
  python3 dev.py test  [pytest options]                  run the whole test suite (webapp tests under
                                                         node too, when no pytest options are given)
  python3 dev.py run   COMMAND ...                       run any command inside the environment
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
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


def run_webapp_tests() -> None:
    """The webapp stub's tests, under Node's built-in runner (no npm packages needed)."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            sys.exit("node is needed for the webapp tests (node --test webapp_stub/test/)")
        print("node not found: skipping the webapp tests (node --test webapp_stub/test/)", file=sys.stderr)
        return
    subprocess.run([node, "--test", str(ROOT / "webapp_stub" / "test")], check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "run"}:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_venv()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = [str(BIN / "incident-plugin"), "serve", *rest]
    elif command == "test":
        if not rest:
            run_webapp_tests()
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    else:
        args = [str(BIN / rest[0]) if (BIN / rest[0]).exists() else rest[0], *rest[1:]]
    os.chdir(ROOT)
    os.execv(args[0], args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
