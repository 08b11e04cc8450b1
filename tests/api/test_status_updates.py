"""Status updates, broadcast channels and reminders through the HTTP API, on both databases."""
from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from plugin.store.tables import incident_reminders, status_updates
from tests.api.helpers import start
from tests.conftest import ADMIN, ALICE, BOB, TEAM, as_user, uid
from tests.fakes.clock import Clock


@pytest.fixture
def clock(components) -> Clock:
    clock = Clock(1_800_000_000_000)
    components.service.clock = clock
    return clock


def update(client: Any, incident: dict[str, Any], message: str = "rolled back", user: str = ALICE,
           **body: Any) -> Any:
    return client.post(f"/api/v0/incidents/{incident['id']}/status-updates",
                       json={"message": message, **body}, headers=as_user(user))


def channel(components: Any, name: str, *members: str) -> str:
    return components.host.create_channel(TEAM, name, name, public=True, member_ids=members)


def rows(components: Any, table: sa.Table) -> list[Any]:
    with components.db.read_engine.connect() as connection:
        return connection.execute(sa.select(table)).all()


def test_a_status_update_answers_201_and_is_posted_here_and_in_the_broadcast_channels(client, components, clock):
    incident = start(client)
    stakeholders = channel(components, "stakeholders", ALICE)
    patched = client.patch(f"/api/v0/incidents/{incident['id']}", json={"broadcast_channel_ids": [stakeholders]},
                           headers=as_user(ALICE))
    assert patched.status_code == 200 and patched.json["broadcast_channel_ids"] == [stakeholders]

    response = update(client, incident, "  rolled back; errors dropping ", reminder_seconds=1800)

    assert response.status_code == 201
    assert response.json == {"id": response.json["id"], "incident_id": incident["id"], "user_id": ALICE,
                             "message": "rolled back; errors dropping", "create_at": clock.now}
    host = components.host
    assert host.posts(incident["channel_id"])[-1] == f"Status update from @{ALICE}:\n\nrolled back; errors dropping"
    assert host.posts(stakeholders) == [f"Status update on **db is down** (~db-is-down) from @{ALICE}:\n\n"
                                        "rolled back; errors dropping"]
    assert [row.message for row in rows(components, status_updates)] == ["rolled back; errors dropping"]
    assert [(row.incident_id, row.due_at) for row in rows(components, incident_reminders)] == [
        (incident["id"], clock.now + 1_800_000)]
    fetched = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json
    assert fetched["reminder_seconds"] == 1800


def test_status_updates_are_listed_newest_first_and_paged_like_incidents(client, components, clock):
    incident = start(client)
    for number in range(3):
        clock.advance(1)
        assert update(client, incident, f"update {number}").status_code == 201
    page = client.get(f"/api/v0/incidents/{incident['id']}/status-updates?per_page=2", headers=as_user(ALICE)).json
    assert (page["total_count"], page["page_count"], page["has_more"]) == (3, 2, True)
    assert [item["message"] for item in page["items"]] == ["update 2", "update 1"]
    last = client.get(f"/api/v0/incidents/{incident['id']}/status-updates?page=1&per_page=2",
                      headers=as_user(ALICE)).json
    assert [item["message"] for item in last["items"]] == ["update 0"] and not last["has_more"]


def test_someone_who_may_not_see_the_incident_may_not_list_or_post_its_updates(client, components):
    incident = start(client)
    assert client.get(f"/api/v0/incidents/{incident['id']}/status-updates", headers=as_user(BOB)).status_code == 403
    assert update(client, incident, user=BOB).status_code == 403
    assert rows(components, status_updates) == []


def test_an_ended_incident_answers_409_with_the_reason_and_keeps_nothing(client, components):
    incident = start(client)
    client.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ALICE))
    posts = components.host.posts(incident["channel_id"])
    response = update(client, incident)
    assert response.status_code == 409
    assert "has ended" in response.json["error"] and "Restart it first" in response.json["error"]
    assert components.host.posts(incident["channel_id"]) == posts and rows(components, status_updates) == []


@pytest.mark.parametrize("body, field", [
    ({"message": ""}, "message"),
    ({"message": "   "}, "message"),
    ({"message": "x" * 4001}, "message"),
    ({"message": "ok", "reminder_seconds": 5}, "reminder_seconds"),
    ({"message": "ok", "reminder_seconds": -1}, "reminder_seconds"),
    ({"message": "ok", "reminder_seconds": "30m"}, "reminder_seconds"),
    ({"message": "ok", "reminder_seconds": 10 ** 20}, "reminder_seconds"),
    ({"message": "ok", "text": "typo"}, "text"),
])
def test_a_bad_status_update_is_a_400_naming_the_field_and_changes_nothing(client, components, body, field):
    incident = start(client)
    response = client.post(f"/api/v0/incidents/{incident['id']}/status-updates", json=body, headers=as_user(ALICE))
    assert response.status_code == 400 and field in str(response.json["details"])
    assert rows(components, status_updates) == [] and rows(components, incident_reminders) == []


def test_a_broadcast_channel_that_does_not_exist_or_the_person_cannot_post_in_is_refused(client, components):
    incident = start(client)
    bobs = channel(components, "bobs", BOB)
    missing = uid("missingchannel")
    response = client.patch(f"/api/v0/incidents/{incident['id']}", json={"broadcast_channel_ids": [bobs, missing]},
                            headers=as_user(ALICE))
    assert response.status_code == 403 and response.json["details"] == {"broadcast_channel_ids": [bobs, missing]}
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json[
        "broadcast_channel_ids"] == []
    components.host.add_channel_member(incident["channel_id"], ADMIN)
    assert client.patch(f"/api/v0/incidents/{incident['id']}", json={"broadcast_channel_ids": [bobs]},
                        headers=as_user(ADMIN)).status_code == 200


def test_patch_takes_one_change_at_a_time(client):
    incident = start(client, checklists=[{"title": "a"}, {"title": "b"}])
    both = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": 1, "broadcast_channel_ids": []},
                        headers=as_user(ALICE))
    assert both.status_code == 400 and "exactly one of active_stage, broadcast_channel_ids or severity" in str(both.json)
    assert client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": 1},
                        headers=as_user(ALICE)).json["active_stage"] == 1


def test_a_due_reminder_posts_once_mentioning_the_commander_and_a_snooze_moves_it(client, components, clock):
    incident = start(client)
    response = client.post(f"/api/v0/incidents/{incident['id']}/reminder", json={"seconds": 600},
                           headers=as_user(ALICE))
    assert response.status_code == 200 and response.json["reminder_seconds"] == 600
    service, host = components.service, components.host
    clock.advance(600)
    assert service.send_due_reminders() == 1 and service.send_due_reminders() == 0
    assert host.posts(incident["channel_id"])[-1].startswith(f"@{ALICE}, please post a status update on **db is down**")
    clock.advance(300)
    client.post(f"/api/v0/incidents/{incident['id']}/reminder", json={"seconds": 3600}, headers=as_user(ALICE))
    clock.advance(600)
    assert service.send_due_reminders() == 0
    client.post(f"/api/v0/incidents/{incident['id']}/reminder", json={"seconds": 0}, headers=as_user(ALICE))
    clock.advance(7200)
    assert service.send_due_reminders() == 0
    reminders = [post for post in host.posts(incident["channel_id"]) if "please post a status update" in post]
    assert len(reminders) == 1


def test_a_playbook_sets_the_broadcast_channels_and_reminder_of_incidents_started_from_it(client, components, clock):
    stakeholders = channel(components, "stakeholders", ALICE)
    playbook = client.post("/api/v0/playbooks", json={"title": "db", "team_id": TEAM, "reminder_seconds": 900,
                                                      "broadcast_channel_ids": [stakeholders]},
                           headers=as_user(ALICE))
    assert playbook.status_code == 201, playbook.json
    assert (playbook.json["reminder_seconds"], playbook.json["broadcast_channel_ids"]) == (900, [stakeholders])
    incident = start(client, playbook_id=playbook.json["id"])
    assert (incident["reminder_seconds"], incident["broadcast_channel_ids"]) == (900, [stakeholders])
    clock.advance(900)
    assert components.service.send_due_reminders() == 1
    assert update(client, incident).status_code == 201
    assert components.host.posts(stakeholders)[-1].endswith("rolled back")


def test_a_playbook_broadcast_channel_the_person_cannot_post_in_is_refused(client, components):
    bobs = channel(components, "bobs", BOB)
    response = client.post("/api/v0/playbooks", json={"title": "db", "team_id": TEAM, "broadcast_channel_ids": [bobs]},
                           headers=as_user(ALICE))
    assert response.status_code == 403 and response.json["details"] == {"broadcast_channel_ids": [bobs]}
