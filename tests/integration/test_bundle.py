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
from plugin.bundle import MAX_BUNDLE_BYTES, WHEELS, BundleError, bundle_files, manifest_paths, write_bundle
from plugin.settings import MANIFEST_PATH, load_manifest

MANIFEST = load_manifest()
PLUGIN_ID = MANIFEST["id"]
REQUIRE_GO = os.environ.get("INCIDENT_REQUIRE_MATTERMOST", "") in {"1", "true", "yes"}

if shutil.which("go") is None:
    if REQUIRE_GO:
        raise RuntimeError("Go is needed to build the bundle's launcher (INCIDENT_REQUIRE_MATTERMOST is set)")
    pytest.skip("Go is not installed: the bundle's launcher cannot be built", allow_module_level=True)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def unpacked(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def test_bundle_is_named_after_the_id_and_the_version(archive):
    assert archive.name == f"{PLUGIN_ID}-{plugin.__version__}.tar.gz"


def test_bundle_fits_mattermosts_default_upload_limit(archive):
    assert archive.stat().st_size < MAX_BUNDLE_BYTES


def test_every_entry_sits_under_one_top_folder_named_after_the_id(archive):
    with tarfile.open(archive) as tar:
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
                 "plugin/store/migrations/versions/0003_settings_and_playbooks.py", "python/requirements.txt"):
        assert (folder / name).is_file(), name
    assert not list(folder.rglob("__pycache__"))


def test_unpacked_bundle_holds_the_built_backstage_page_the_server_serves(unpacked):
    page = unpacked / PLUGIN_ID / "webapp_stub" / "dist" / "backstage"
    assert (page / "index.html").is_file()
    assert {path.suffix for path in (page / "assets").iterdir()} >= {".js", ".css"}


def test_launcher_is_a_static_linux_amd64_executable(unpacked):
    data = (unpacked / PLUGIN_ID / MANIFEST["server"]["executables"]["linux-amd64"]).read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2  # 64-bit ELF
    assert int.from_bytes(data[18:20], "little") == 62  # EM_X86_64
    assert b"/lib64/ld-linux" not in data[:4096]  # no dynamic loader: runs on any Linux


@pytest.mark.parametrize("abi", ["cp311", "cp312", "cp313"])
def test_bundled_wheels_cover_each_supported_python(unpacked, abi):
    wheels = [path.name for path in (unpacked / PLUGIN_ID / WHEELS).glob("*.whl")]
    for package in ("psycopg_binary", "sqlalchemy", "markupsafe"):
        assert any(name.startswith(f"{package}-") and f"-{abi}-" in name and "x86_64" in name
                   for name in wheels), (package, abi)
    assert any(name.startswith("pip-") for name in wheels)


@pytest.mark.slow
def test_bundled_wheels_install_offline_into_a_fresh_environment(unpacked, tmp_path):
    folder = unpacked / PLUGIN_ID
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    pip = next((folder / WHEELS).glob("pip-*.whl"))
    subprocess.run([str(venv / "bin" / "python"), str(pip / "pip"), "install", "--no-index", "--quiet",
                    "--find-links", str(folder / WHEELS), "-r", str(folder / "python" / "requirements.txt")],
                   check=True, timeout=300, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import plugin.app, gunicorn, psycopg; print('ok')"],
                           cwd=folder, env={"PYTHONPATH": str(folder)}, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "ok", probe.stderr


def test_bundle_refuses_to_build_when_a_named_path_is_missing(tmp_path):
    shutil.copy(MANIFEST_PATH, tmp_path / "plugin.json")
    with pytest.raises(BundleError, match="server/dist/plugin-linux-amd64"):
        bundle_files(tmp_path, load_manifest(tmp_path / "plugin.json"))


def test_bundle_refuses_an_unknown_target(tmp_path):
    with pytest.raises(BundleError, match="Unknown target plan9-386"):
        write_bundle(tmp_path, targets=("plan9-386",))


def test_bundle_command_prints_the_archive_path(tmp_path, capsys):
    assert cli.main(["bundle", "--output", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / f"{PLUGIN_ID}-{plugin.__version__}.tar.gz")


def test_unpacked_launch_script_starts_the_bundled_server_on_loopback(unpacked, tmp_path):
    folder = unpacked / PLUGIN_ID
    launcher = folder / "server" / "launch.sh"
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


def test_manifest_of_a_bundle_names_one_launcher_per_target_and_nothing_else():
    from plugin.bundle import TARGETS, manifest_for

    manifest = {**MANIFEST, "server": {"executable": "old", "executables": {"darwin-arm64": "old"}}}
    result = manifest_for(manifest, (TARGETS["linux-amd64"], TARGETS["linux-arm64"]))
    assert result["server"] == {"executables": {"linux-amd64": "server/dist/plugin-linux-amd64",
                                                "linux-arm64": "server/dist/plugin-linux-arm64"}}
    assert result["settings_schema"] == MANIFEST["settings_schema"]
