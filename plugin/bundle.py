"""The distributable bundle: ``dist/<id>-<version>.tar.gz`` in the layout Mattermost expects.

Everything sits under one top folder named after the plugin id:

- ``plugin.json`` and every path it names: the Go launcher for each target
  (``server/dist/plugin-<os>-<arch>``, the ``server.executables``), the webapp bundle;
- the Python server's source (``plugin/``), ``pyproject.toml``, ``constraints.txt``,
  ``README.md`` and ``server/launch.sh`` (to run the unpacked bundle outside Mattermost);
- ``python/wheels/``: wheels of the pinned runtime dependencies (and pip) for each
  target's platform and each supported CPython, and ``python/requirements.txt``
  naming what to install from them, so the launcher builds its virtual environment
  with no network (a Mattermost server often has none).

Building needs Go (the launcher is cross-compiled with CGO off) and PyPI (the
wheels are fetched by ``pip download`` and cached per dependency set).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.settings import MANIFEST_PATH, load_manifest

SUPPORT_FILES = ("pyproject.toml", "constraints.txt", "README.md", "server/launch.sh")
PACKAGE = "plugin"
# The built backstage page the server serves at /backstage/ (plugin.backstage.DIST).
PAGE_DIR = "webapp_stub/dist/backstage"
WHEELS = "python/wheels"
REQUIREMENTS = "python/requirements.txt"
# The CPython versions the bundled wheels serve: the Python 3 of current Debian,
# Ubuntu LTS and RHEL releases (or an added package on them).
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
# The largest bundle Mattermost accepts by default (FileSettings.MaxFileSize).
MAX_BUNDLE_BYTES = 100 * 1024 * 1024
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


@dataclass(frozen=True)
class Target:
    """A platform the bundle runs on: Go's names for it and pip's platform tags."""

    goos: str
    goarch: str
    pip_platforms: tuple[str, ...]

    @property
    def name(self) -> str:
        """Mattermost's key in server.executables, e.g. linux-amd64."""
        return f"{self.goos}-{self.goarch}"

    @property
    def executable(self) -> str:
        """Where the launcher for this target sits in the bundle."""
        return f"server/dist/plugin-{self.name}"


def _manylinux(arch: str) -> tuple[str, ...]:
    return tuple(f"{tag}_{arch}" for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014"))


TARGETS = {
    "linux-amd64": Target("linux", "amd64", _manylinux("x86_64")),
    "linux-arm64": Target("linux", "arm64", _manylinux("aarch64")),
}
DEFAULT_TARGETS = ("linux-amd64",)


class BundleError(RuntimeError):
    """The bundle cannot be built; the message names what is missing."""


def manifest_paths(manifest: dict[str, Any]) -> list[str]:
    """Every file path the manifest names, relative to the plugin folder."""
    paths = list(manifest.get("server", {}).get("executables", {}).values())
    if manifest.get("server", {}).get("executable"):
        paths.append(manifest["server"]["executable"])
    if manifest.get("webapp", {}).get("bundle_path"):
        paths.append(manifest["webapp"]["bundle_path"])
    if manifest.get("icon_path"):
        paths.append(manifest["icon_path"])
    return list(dict.fromkeys(paths))


def executable_paths(manifest: dict[str, Any]) -> set[str]:
    """The server executables (written with the executable bit set)."""
    server = manifest.get("server", {})
    return set(server.get("executables", {}).values()) | ({server["executable"]} if server.get("executable") else set())


def bundle_files(root: Path, manifest: dict[str, Any]) -> list[str]:
    """The relative paths from the source tree that go into the bundle, sorted; BundleError if one is missing."""
    files = {"plugin.json", *manifest_paths(manifest), *SUPPORT_FILES}
    package = root / PACKAGE
    for path in package.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not _SKIP_PARTS & set(relative.parts) and path.suffix not in _SKIP_SUFFIXES:
            files.add(relative.as_posix())
    files.update(path.relative_to(root).as_posix() for path in (root / PAGE_DIR).rglob("*") if path.is_file())
    missing = sorted(name for name in files if not (root / name).is_file())
    if missing:
        raise BundleError(f"Cannot build the bundle from {root}: missing {', '.join(missing)}. Run the command "
                          "from a checkout of the project (e.g. python3 dev.py run incident-plugin bundle).")
    return sorted(files)


def manifest_for(manifest: dict[str, Any], targets: tuple[Target, ...]) -> dict[str, Any]:
    """The manifest with server.executables naming exactly the launchers built for targets."""
    result = {**manifest, "server": {**manifest.get("server", {})}}
    result["server"]["executables"] = {target.name: target.executable for target in targets}
    result["server"].pop("executable", None)
    return result


def build_launchers(root: Path, targets: tuple[Target, ...]) -> None:
    """Cross-compile the Go launcher in server/ for each target into server/dist/."""
    go = shutil.which("go")
    if not go:
        raise BundleError("Go is needed to build the plugin's launcher (server/): install Go 1.24 or newer.")
    for target in targets:
        env = {**os.environ, "CGO_ENABLED": "0", "GOOS": target.goos, "GOARCH": target.goarch, "GOWORK": "off"}
        result = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(root / target.executable),
                                 "."], cwd=root / "server", env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise BundleError(f"Building the launcher for {target.name} failed:\n{result.stderr.strip()}")


def runtime_requirements(root: Path) -> list[str]:
    """The runtime dependencies pyproject.toml declares (not the test or bench extras)."""
    with open(root / "pyproject.toml", "rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def wheel_cache(root: Path, targets: tuple[Target, ...]) -> Path:
    """The cache folder of one dependency set: pyproject's requirements, constraints.txt and the targets."""
    digest = hashlib.sha256()
    digest.update("\n".join(runtime_requirements(root)).encode())
    digest.update((root / "constraints.txt").read_bytes())
    digest.update(" ".join(sorted(target.name for target in targets) + list(PYTHON_VERSIONS)).encode())
    base = Path(os.environ.get("INCIDENT_WHEEL_CACHE") or Path.home() / ".cache" / "incident-response" / "wheels")
    return base / digest.hexdigest()[:16]


def gather_wheels(root: Path, targets: tuple[Target, ...]) -> Path:
    """Download the wheels of the pinned runtime dependencies (and pip) for every target and Python; return their folder."""
    cache = wheel_cache(root, targets)
    if (cache / ".complete").exists():
        return cache
    partial = cache.with_name(cache.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    requirements = [*runtime_requirements(root), "pip"]
    for target in targets:
        for version in PYTHON_VERSIONS:
            abi = "cp" + version.replace(".", "")
            platforms = [arg for platform in target.pip_platforms for arg in ("--platform", platform)]
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                       "--only-binary=:all:", *platforms, "--python-version", version, "--implementation", "cp",
                       "--abi", abi, "--abi", "abi3", "--abi", "none", "-c", str(root / "constraints.txt"),
                       "-d", str(partial), *requirements]
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise BundleError(f"Downloading the wheels for {target.name}, Python {version} failed:\n"
                                  f"{result.stderr.strip()[-2000:]}")
    (partial / ".complete").write_text("")
    shutil.rmtree(cache, ignore_errors=True)
    partial.rename(cache)
    return cache


def write_bundle(output: str | Path = "dist", root: Path | None = None,
                 targets: tuple[str, ...] = DEFAULT_TARGETS) -> Path:
    """Build the launchers, gather the wheels and write ``<output>/<id>-<version>.tar.gz``; return its path."""
    root = root or MANIFEST_PATH.parent
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise BundleError(f"Unknown target {', '.join(unknown) or '(none given)'}: choose from "
                          f"{', '.join(TARGETS)}.")
    chosen = tuple(TARGETS[name] for name in dict.fromkeys(targets))
    manifest = manifest_for(load_manifest(root / "plugin.json"), chosen)
    build_launchers(root, chosen)
    files = {name: root / name for name in bundle_files(root, manifest)}
    wheels = gather_wheels(root, chosen)
    for wheel in sorted(wheels.glob("*.whl")):
        files[f"{WHEELS}/{wheel.name}"] = wheel
    plugin_id, version = manifest["id"], manifest["version"]
    generated = {
        "plugin.json": (_json(manifest)),
        REQUIREMENTS: ("\n".join(runtime_requirements(root)) + "\n").encode(),
    }
    executables = executable_paths(manifest) | {"server/launch.sh"}
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{plugin_id}-{version}.tar.gz"
    # SOURCE_DATE_EPOCH makes the bundle byte-for-byte reproducible when a build pins it.
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    names = sorted(set(files) | set(generated))
    directories = sorted({parent.as_posix() for name in names for parent in Path(name).parents
                          if parent != Path(".")})
    temporary = target.with_suffix(".tmp")
    with tarfile.open(temporary, "w:gz") as tar:
        tar.addfile(_info(plugin_id, tarfile.DIRTYPE, 0o755, mtime))
        for directory in directories:
            tar.addfile(_info(f"{plugin_id}/{directory}", tarfile.DIRTYPE, 0o755, mtime))
        for name in names:
            data = generated[name] if name in generated else files[name].read_bytes()
            info = _info(f"{plugin_id}/{name}", tarfile.REGTYPE, 0o755 if name in executables else 0o644, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    size = temporary.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        temporary.unlink()
        raise BundleError(f"The bundle would be {size / 2**20:.1f} MiB, over the {MAX_BUNDLE_BYTES // 2**20} MiB "
                          "Mattermost accepts by default: build it for fewer targets.")
    os.replace(temporary, target)
    return target


def _json(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
