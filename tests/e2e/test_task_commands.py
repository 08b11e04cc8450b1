"""A task's slash command runs in a real Mattermost as the person who asks, in the incident's channel.

The launcher offers the incident server one call into the plugin API,
``POST {INCIDENT_LAUNCHER_URL}/commands/execute``, because Mattermost's REST API
would run the command as the server's bot. These tests call it as the server
does (its address and secret read from the server's environment), and through
the server's own route for running a task's command.
"""
from __future__ import annotations

import time

import httpx
import pytest

from tests.e2e.conftest import PLUGIN_ID, World
from tests.e2e.test_mattermost import server_processes

pytestmark = pytest.mark.slow

SHRUG = "/shrug it works"
SAID = "it works"
# How long a post may take to show after the command was run, and how long to watch for one that must not come.
POST_WAIT_SECONDS = 5.0
QUIET_SECONDS = 1.5


def start(world: World, name: str, checklists: list[dict] | None = None) -> dict:
    """A private incident alice commands; only she is in its channel."""
    body = {"name": name, "team_id": world.team_id, "commander_user_id": world.alice_id, "public": False}
    if checklists is not None:
        body["checklists"] = checklists
    response = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/incidents", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def launcher(world: World) -> tuple[str, str]:
    """The launcher's address and the host secret, as the running incident server was given them."""
    found = {(env.get("INCIDENT_LAUNCHER_URL", ""), env.get("INCIDENT_HOST_SECRET", ""))
             for env in server_processes(world.server.home).values()}
    assert len(found) == 1, found
    ((url, secret),) = found
    assert url and secret
    return url, secret


def execute(url: str, secret: str | None, body: dict) -> httpx.Response:
    headers = {} if secret is None else {"X-Host-Secret": secret}
    return httpx.post(f"{url}/commands/execute", json=body, headers=headers, timeout=30)


def said_by(world: World, channel_id: str, user_id: str) -> list[str]:
    """The messages user_id posted in the channel that carry what the command said (read as admin)."""
    posts = world.admin.ok("GET", f"/channels/{channel_id}/posts")["posts"].values()
    return [post["message"] for post in posts if post["user_id"] == user_id and SAID in post["message"]]


def wait_for_post(world: World, channel_id: str, user_id: str) -> list[str]:
    deadline = time.monotonic() + POST_WAIT_SECONDS
    messages = said_by(world, channel_id, user_id)
    while not messages and time.monotonic() < deadline:
        time.sleep(0.2)
        messages = said_by(world, channel_id, user_id)
    return messages


def stays_quiet(world: World, channel_id: str, user_id: str) -> bool:
    """Whether user_id posts nothing the command would say for QUIET_SECONDS."""
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        if said_by(world, channel_id, user_id):
            return False
        time.sleep(0.2)
    return True


def test_the_launcher_listens_on_loopback_and_the_server_knows_where(world: World):
    url, _secret = launcher(world)
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/commands/execute", timeout=10).status_code == 405


def test_the_launcher_runs_a_command_as_the_user_in_the_channel(world: World):
    incident = start(world, "Cache stampede")
    channel_id = incident["channel_id"]
    url, secret = launcher(world)

    response = execute(url, secret, {"user_id": world.alice_id, "team_id": world.team_id,
                                     "channel_id": channel_id, "command": SHRUG})

    assert response.status_code == 200, response.text
    assert response.json()["response_type"] == "in_channel" and SAID in response.json()["text"]
    assert len(wait_for_post(world, channel_id, world.alice_id)) == 1


def test_the_launcher_runs_nothing_without_the_secret_or_for_someone_outside_the_channel(world: World):
    incident = start(world, "Queue backlog")
    channel_id = incident["channel_id"]
    url, secret = launcher(world)
    as_alice = {"user_id": world.alice_id, "team_id": world.team_id, "channel_id": channel_id, "command": SHRUG}

    assert execute(url, None, as_alice).status_code == 401
    assert execute(url, secret + "0", as_alice).status_code == 401
    refused = execute(url, secret, {**as_alice, "user_id": world.bob_id})
    assert refused.status_code == 422, refused.text
    assert "permission" in refused.json()["error"]
    unknown = execute(url, secret, {**as_alice, "command": "/no-such-command"})
    assert unknown.status_code == 422 and "no-such-command" in unknown.json()["error"], unknown.text

    assert stays_quiet(world, channel_id, world.alice_id) and not said_by(world, channel_id, world.bob_id)


def test_a_tasks_command_runs_as_the_user_in_the_incident_channel(world: World):
    incident = start(world, "Bad deploy", [{"title": "Triage", "items": [{"title": "Say it", "command": SHRUG}]}])
    channel_id = incident["channel_id"]
    run = f"/api/v0/incidents/{incident['id']}/checklists/0/items/0/run"

    response = world.alice.plugin(PLUGIN_ID, "POST", run)

    assert response.status_code == 200, response.text
    assert response.json()["checklists"][0]["items"][0]["command_last_run"] > 0
    assert len(wait_for_post(world, channel_id, world.alice_id)) == 1

    refused = world.bob.plugin(PLUGIN_ID, "POST", run)
    assert refused.status_code == 403, refused.text
    assert stays_quiet(world, channel_id, world.bob_id)
    assert len(said_by(world, channel_id, world.alice_id)) == 1
