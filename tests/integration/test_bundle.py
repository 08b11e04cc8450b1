"""``incident-plugin bundle``: the archive unpacks into a plugin whose launcher starts the server."""
from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
from pathlib import Path

import pytest

import plugin
from plugin import cli
from plugin.bundle import BundleError, bundle_files, manifest_paths, write_bundle
from plugin.settings import MANIFEST_PATH, load_manifest

MANIFEST = load_manifest()
PLUGIN_ID = MANIFEST["id"]


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    archive = write_bundle(out)
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def test_bundle_is_named_after_the_id_and_the_version(tmp_path):
    archive = write_bundle(tmp_path)
    assert archive == tmp_path / f"{PLUGIN_ID}-{plugin.__version__}.tar.gz"


def test_every_entry_sits_under_one_top_folder_named_after_the_id(tmp_path):
    with tarfile.open(write_bundle(tmp_path)) as tar:
        names = tar.getnames()
    assert names and all(name == PLUGIN_ID or name.startswith(PLUGIN_ID + "/") for name in names)


def test_unpacked_bundle_holds_the_manifest_and_every_path_it_names(unpacked):
    folder = unpacked / PLUGIN_ID
    manifest = json.loads((folder / "plugin.json").read_text())
    assert manifest == MANIFEST
    for path in manifest_paths(manifest):
        assert (folder / path).is_file(), path
    for path in manifest["server"]["executables"].values():
        assert os.access(folder / path, os.X_OK), f"{path} is not executable"


def test_unpacked_bundle_holds_what_the_launcher_needs(unpacked):
    folder = unpacked / PLUGIN_ID
    for name in ("pyproject.toml", "constraints.txt", "README.md", "plugin/__init__.py", "plugin/cli.py",
                 "plugin/store/migrations/versions/0003_settings_and_playbooks.py"):
        assert (folder / name).is_file(), name
    assert not list(folder.rglob("__pycache__"))


def test_bundle_refuses_to_build_when_a_named_path_is_missing(tmp_path):
    shutil.copy(MANIFEST_PATH, tmp_path / "plugin.json")
    with pytest.raises(BundleError, match="server/launch.sh"):
        bundle_files(tmp_path, load_manifest(tmp_path / "plugin.json"))


def test_bundle_command_prints_the_archive_path(tmp_path, capsys):
    assert cli.main(["bundle", "--output", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"{PLUGIN_ID}-{plugin.__version__}.tar.gz")


def test_unpacked_launcher_starts_the_bundled_server_on_loopback(unpacked, tmp_path):
    folder = unpacked / PLUGIN_ID
    launcher = folder / MANIFEST["server"]["executables"]["linux-amd64"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")},
           "INCIDENT_VENV": sys.prefix, "INCIDENT_NO_INSTALL": "1", "INCIDENT_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen([str(launcher), "--host", "127.0.0.1", "--port", "0", "--workers", "1"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
    try:
        port = None
        while port is None:
            line = lines.get(timeout=60)
            match = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            port = int(match.group(1)) if match else None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
            assert response.status == 200 and json.load(response) == {"status": "ok"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v0/openapi.json", timeout=10) as response:
            assert "/api/v0/playbooks" in json.load(response)["paths"]
        assert (tmp_path / "incidents.db").is_file()
    finally:
        process.terminate()
        process.wait(timeout=30)
