"""Removal in a real Mattermost ends access to an incident at once, although the server caches memberships."""
from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import PLUGIN_ID, World

pytestmark = pytest.mark.slow

# Mattermost runs its leave hooks just after the removal has returned; allow them this long.
SETTLE_SECONDS = 2.0


def start(world: World, team_id: str, name: str, *, public: bool) -> dict:
    response = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/incidents", json={
        "name": name, "team_id": team_id, "commander_user_id": world.alice_id, "public": public})
    assert response.status_code == 201, response.text
    return response.json()


def seen_by_bob(world: World, incident: dict, team_id: str) -> tuple[int, bool]:
    """Bob's answer for the incident, and whether his list of the team's incidents has it."""
    viewed = world.bob.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").status_code
    listed = world.bob.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": team_id})
    assert listed.status_code == 200, listed.text
    return viewed, incident["id"] in [item["id"] for item in listed.json()["items"]]


def refused_soon(world: World, incident: dict, team_id: str) -> list[tuple[int, bool]]:
    """Bob's answers from the removal until he is refused, for SETTLE_SECONDS at most."""
    answers = [seen_by_bob(world, incident, team_id)]
    deadline = time.monotonic() + SETTLE_SECONDS
    while answers[-1] != (403, False) and time.monotonic() < deadline:
        time.sleep(0.05)
        answers.append(seen_by_bob(world, incident, team_id))
    return answers


def test_someone_removed_from_a_private_incidents_channel_is_refused_it_at_once(world: World):
    incident = start(world, world.team_id, "Leaked credentials", public=False)
    channel_id = incident["channel_id"]
    world.alice.ok("POST", f"/channels/{channel_id}/members", json={"user_id": world.bob_id})
    # Each of the server's workers answers (and caches) several times while bob is a member.
    for _ in range(8):
        assert seen_by_bob(world, incident, world.team_id) == (200, True)

    world.alice.ok("DELETE", f"/channels/{channel_id}/members/{world.bob_id}")

    answers = refused_soon(world, incident, world.team_id)
    assert answers[-1] == (403, False), answers
    for _ in range(8):
        assert seen_by_bob(world, incident, world.team_id) == (403, False)
    report = world.bob.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}/report.md")
    assert report.status_code == 403
    assert world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").status_code == 200


def test_someone_removed_from_a_team_is_refused_its_public_incident_at_once(world: World):
    team = world.admin.ok("POST", "/teams", json={"name": "security", "display_name": "Security", "type": "O"})
    for user_id in (world.alice_id, world.bob_id):
        world.admin.ok("POST", f"/teams/{team['id']}/members", json={"team_id": team["id"], "user_id": user_id})
    incident = start(world, team["id"], "Phishing wave", public=True)
    for _ in range(8):
        assert seen_by_bob(world, incident, team["id"]) == (200, True)

    world.admin.ok("DELETE", f"/teams/{team['id']}/members/{world.bob_id}")

    answers = refused_soon(world, incident, team["id"])
    assert answers[-1] == (403, False), answers
    for _ in range(8):
        assert seen_by_bob(world, incident, team["id"]) == (403, False)
