"""A real Mattermost server with the plugin bundle uploaded and enabled, shared by the e2e tests.

The server is built once per machine (tests/e2e/mattermost_build.py), runs on its
own PostgreSQL database and folders, and is configured by MM_* variables. Without
Go, or when the build fails, the tests skip, unless ``INCIDENT_REQUIRE_MATTERMOST=1``
(CI), where that is a failure.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugin.bundle import write_bundle
from plugin.settings import load_manifest
from tests.conftest import new_postgres_database
from tests.e2e import mattermost_build
from tests.e2e.mattermost import PLUGIN_READY, Client, MattermostServer, create_user, wait_for_plugin_state
from tests.telemetry.dataplane import DataPlane

REQUIRE = os.environ.get("INCIDENT_REQUIRE_MATTERMOST", "") in {"1", "true", "yes"}
PLUGIN_ID = load_manifest()["id"]
DEFAULT_WRITE_KEY = "e2e-write-key"


def write_key(plane: DataPlane) -> str:
    """The write key the data plane accepts: its own when it makes one, else a fixed one."""
    return getattr(plane, "write_key", DEFAULT_WRITE_KEY)


def _unavailable(message: str) -> None:
    if REQUIRE:
        pytest.fail(message + " (INCIDENT_REQUIRE_MATTERMOST is set)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mattermost_binary() -> Path:
    try:
        return mattermost_build.build()
    except mattermost_build.BuildUnavailable as exc:
        _unavailable(f"No real Mattermost server: {exc}")
        raise


@pytest.fixture(scope="session")
def bundle(mattermost_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None:
        _unavailable("Go is not installed: the plugin's launcher cannot be built")
    return write_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def dataplane() -> Iterator[DataPlane]:
    plane = DataPlane().start()
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def mattermost(mattermost_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MattermostServer]:
    with new_postgres_database("incident_e2e_mm") as url:
        # Mattermost's driver takes a plain postgres:// URL.
        dsn = url.replace("postgresql+psycopg://", "postgres://") + "?sslmode=disable"
        server = MattermostServer(mattermost_binary, dsn, tmp_path_factory.mktemp("mattermost"))
        try:
            server.start()
            yield server
        finally:
            server.stop()


@dataclass
class World:
    """The people, team and channel of the scenario, each with their own session."""

    server: MattermostServer
    admin: Client
    alice: Client
    bob: Client
    carol: Client  # in the team, not in the channel
    alice_id: str
    bob_id: str
    carol_id: str
    team_id: str
    channel_id: str


@pytest.fixture(scope="session")
def world(bundle: Path, mattermost: MattermostServer, dataplane: DataPlane) -> Iterator[World]:
    _admin_id, admin_token = create_user(None, mattermost.url, "sysadmin")
    admin = Client(mattermost.url, admin_token)
    people = {name: create_user(admin, mattermost.url, name) for name in ("alice", "bob", "carol")}
    team = admin.ok("POST", "/teams", json={"name": "ops", "display_name": "Ops", "type": "O"})
    channel = admin.ok("POST", "/channels", json={"team_id": team["id"], "name": "war-room",
                                                   "display_name": "War room", "type": "O"})
    for name, (user_id, _token) in people.items():
        admin.ok("POST", f"/teams/{team['id']}/members", json={"team_id": team["id"], "user_id": user_id})
        if name != "carol":
            admin.ok("POST", f"/channels/{channel['id']}/members", json={"user_id": user_id})
    # The plugin's settings, as an admin would type them in the System Console.
    admin.ok("PUT", "/config/patch", json={"PluginSettings": {"Plugins": {PLUGIN_ID: {
        "rudderwritekey": write_key(dataplane), "rudderdataplaneurl": dataplane.url, "enabletelemetry": True}}}})
    with open(bundle, "rb") as handle:
        upload = admin.api("POST", "/plugins", files={"plugin": (bundle.name, handle, "application/gzip")},
                           data={"force": "true"})
    assert upload.status_code == 201, upload.text
    admin.ok("POST", f"/plugins/{PLUGIN_ID}/enable")
    wait_for_plugin_state(admin, PLUGIN_ID, PLUGIN_READY)
    world = World(mattermost, admin, *(Client(mattermost.url, token) for _id, token in people.values()),
                  *(user_id for user_id, _token in people.values()), team["id"], channel["id"])
    yield world
    for client in (admin, world.alice, world.bob, world.carol):
        client.close()
