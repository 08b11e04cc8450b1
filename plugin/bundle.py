"""The distributable bundle: ``dist/<id>-<version>.tar.gz`` in the layout Mattermost expects.

Everything sits under one top folder named after the plugin id: ``plugin.json``,
every path the manifest names (server executables, webapp bundle, icon), and what
the launcher needs to run the Python server: the ``plugin/`` package source,
``pyproject.toml``, ``constraints.txt`` and ``README.md`` (which pyproject.toml
names, so pip needs it to install the folder).
"""
from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from plugin.settings import MANIFEST_PATH, load_manifest

SUPPORT_FILES = ("pyproject.toml", "constraints.txt", "README.md")
PACKAGE = "plugin"
_SKIP_PARTS = {"__pycache__"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


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
    """The relative paths that go into the bundle, sorted; BundleError if one is missing."""
    files = {"plugin.json", *manifest_paths(manifest), *SUPPORT_FILES}
    package = root / PACKAGE
    for path in package.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and not _SKIP_PARTS & set(relative.parts) and path.suffix not in _SKIP_SUFFIXES:
            files.add(relative.as_posix())
    missing = sorted(name for name in files if not (root / name).is_file())
    if missing:
        raise BundleError(f"Cannot build the bundle from {root}: missing {', '.join(missing)}. Run the command "
                          "from a checkout of the project (e.g. python3 dev.py run incident-plugin bundle).")
    return sorted(files)


def write_bundle(output: str | Path = "dist", root: Path | None = None) -> Path:
    """Write ``<output>/<id>-<version>.tar.gz`` and return its path."""
    root = root or MANIFEST_PATH.parent
    manifest = load_manifest(root / "plugin.json")
    plugin_id, version = manifest["id"], manifest["version"]
    files = bundle_files(root, manifest)
    executables = executable_paths(manifest)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    target = output / f"{plugin_id}-{version}.tar.gz"
    # SOURCE_DATE_EPOCH makes the bundle byte-for-byte reproducible when a build pins it.
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    directories = sorted({parent.as_posix() for name in files for parent in Path(name).parents
                          if parent != Path(".")})
    temporary = target.with_suffix(".tmp")
    with tarfile.open(temporary, "w:gz") as tar:
        tar.addfile(_info(plugin_id, tarfile.DIRTYPE, 0o755, mtime))
        for directory in directories:
            tar.addfile(_info(f"{plugin_id}/{directory}", tarfile.DIRTYPE, 0o755, mtime))
        for name in files:
            data = (root / name).read_bytes()
            info = _info(f"{plugin_id}/{name}", tarfile.REGTYPE, 0o755 if name in executables else 0o644, mtime)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    os.replace(temporary, target)
    return target


def _info(name: str, kind: bytes, mode: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
