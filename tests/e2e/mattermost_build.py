#!/usr/bin/env python3
"""Build a real Mattermost server (Team Edition) from the Go module proxy, once per machine.

The repository holds no Mattermost code, only this recipe: a wrapper Go module that
requires the pinned server module (and its ``replace`` lines) and builds its
``cmd/mattermost`` package with CGO off and no build tags. The binary and the
runtime folders it needs (``i18n``, ``templates``, ``fonts``) land in a cache
outside the repository, keyed by the version:

  ~/.cache/incident-response/mattermost/<version>/bin/mattermost

``INCIDENT_MATTERMOST_CACHE`` moves the cache. A ``READY`` file marks a finished
build; a lock file makes concurrent callers wait for one build instead of racing.

  python3 tests/e2e/mattermost_build.py          build if needed, print the binary's path
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

# The server module has only pseudo-versions (its release tags cannot name a /v8
# module in a subfolder); this one is of the 11.4 release cycle (model.CurrentVersion
# "11.4.0"), and the public module is the one released alongside it.
SERVER_MODULE = "github.com/mattermost/mattermost/server/v8"
SERVER_VERSION = "v8.0.0-20260113162330-9e1d4c2072c0"
PUBLIC_MODULE = "github.com/mattermost/mattermost/server/public"
PUBLIC_VERSION = "v0.1.22-0.20260113165922-8e4cadbc88ee"
RELEASE = "11.4.0"
RUNTIME_FOLDERS = ("i18n", "templates", "fonts")


class BuildUnavailable(RuntimeError):
    """Go is missing or the build failed; the message says which and how to see why."""


def cache_dir() -> Path:
    """Where this version's build lives."""
    base = os.environ.get("INCIDENT_MATTERMOST_CACHE") or Path.home() / ".cache" / "incident-response" / "mattermost"
    return Path(base) / SERVER_VERSION


def binary_path() -> Path:
    """The built server binary."""
    return cache_dir() / "bin" / "mattermost"


def _say(message: str) -> None:
    print(f"[mattermost build] {message}", file=sys.stderr, flush=True)


def _go() -> str:
    go = shutil.which("go")
    if not go:
        raise BuildUnavailable("Go is not installed (no `go` on PATH); the real Mattermost server cannot be built.")
    return go


def _run(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    with open(log, "ab") as handle:
        handle.write(f"\n$ {' '.join(args)}\n".encode())
        handle.flush()
        process = subprocess.run(args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise BuildUnavailable(f"`{' '.join(args)}` failed (exit {process.returncode}); full log in {log}:\n{tail}")


def _module(go: str, module: str, version: str, cwd: Path, env: dict[str, str]) -> dict:
    output = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], cwd=cwd, env=env,
                            capture_output=True, text=True)
    info = json.loads(output.stdout or "{}") if output.stdout.strip().startswith("{") else {}
    if output.returncode != 0 or info.get("Error"):
        raise BuildUnavailable(f"the Go module proxy did not serve {module}@{version}: "
                               f"{info.get('Error') or output.stderr.strip()}")
    return info


def _directives(go_mod: str) -> list[str]:
    """The replace and exclude lines of a go.mod, in one-line form."""
    lines, block = [], None
    for raw in go_mod.splitlines():
        line = raw.split("//")[0].strip()
        if block:
            if line == ")":
                block = None
            elif line:
                lines.append(f"{block} {line}")
        elif line in ("replace (", "exclude ("):
            block = line.split()[0]
        elif line.startswith(("replace ", "exclude ")):
            lines.append(line)
    return lines


def build(force: bool = False) -> Path:
    """Build the pinned server unless the cache has it; return the binary's path."""
    target = cache_dir()
    ready = target / "READY"
    if ready.exists() and binary_path().exists() and not force:
        return binary_path()
    go = _go()
    target.mkdir(parents=True, exist_ok=True)
    with open(target / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists() and binary_path().exists() and not force:
            return binary_path()
        started = time.monotonic()
        work = target / "module"
        work.mkdir(exist_ok=True)
        log = target / "build.log"
        log.write_text("")
        env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"}
        _say(f"building Mattermost {RELEASE} ({SERVER_MODULE}@{SERVER_VERSION}) into {target}; "
             f"the first build downloads the modules and compiles for several minutes (log: {log})")
        server = _module(go, SERVER_MODULE, SERVER_VERSION, target, env)
        _module(go, PUBLIC_MODULE, PUBLIC_VERSION, target, env)
        directives = _directives(Path(server["GoMod"]).read_text())
        go_version = next(line.split()[1] for line in Path(server["GoMod"]).read_text().splitlines()
                          if line.startswith("go "))
        (work / "go.mod").write_text("\n".join([
            "module incidentresponse.test/mattermostbuild", "", f"go {go_version}", "",
            f"require {SERVER_MODULE} {SERVER_VERSION}", f"require {PUBLIC_MODULE} {PUBLIC_VERSION}", "",
            *directives, ""]))
        # The server's own checksums, so only its dependencies' sums are fetched anew.
        shutil.copy(Path(server["Dir"]) / "go.sum", work / "go.sum")
        (work / "tools.go").write_text(f'//go:build tools\n\npackage tools\n\nimport _ "{SERVER_MODULE}/cmd/mattermost"\n')
        _say("compiling (about 3 minutes with a warm Go cache, much longer on a fresh machine)")
        (target / "bin").mkdir(exist_ok=True)
        _run([go, "build", "-trimpath", "-o", str(binary_path()), f"{SERVER_MODULE}/cmd/mattermost"], work, env, log)
        for folder in RUNTIME_FOLDERS:
            shutil.rmtree(target / folder, ignore_errors=True)
            shutil.copytree(Path(server["Dir"]) / folder, target / folder)
            for path in (target / folder).rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
        ready.write_text(f"{SERVER_MODULE}@{SERVER_VERSION}\n")
        _say(f"built {binary_path()} in {time.monotonic() - started:.0f} s")
        return binary_path()


def main() -> int:
    """Build if needed and print the binary's path."""
    try:
        print(build(force="--force" in sys.argv))
    except BuildUnavailable as exc:
        print(f"mattermost build: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
