"""Bringing people into an incident: POST /api/v0/incidents/{id}/members."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.app import create_app
from plugin.events import IncidentEvent, PlaybookEvent, TaskEvent, TelemetryEvent
from tests.api.helpers import start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, as_user, uid
from tests.threads import run_in_threads


def add(client: Any, incident: dict[str, Any], user: str, *user_ids: str) -> Any:
    return client.post(f"/api/v0/incidents/{incident['id']}/members", json={"user_ids": list(user_ids)},
                       headers=as_user(user))


def test_a_channel_member_adds_people_who_may_then_edit_and_command(client, components):
    incident = start(client)
    response = add(client, incident, ALICE, BOB, CAROL, BOB)
    assert response.status_code == 200
    assert response.json == {"added": [BOB, CAROL], "already_members": []}
    assert components.host.is_channel_member(incident["channel_id"], BOB)
    assert components.host.posts(incident["channel_id"])[-1] == f"@{ALICE} added @{BOB}, @{CAROL} to the incident."
    (entry,) = client.get(f"/api/v0/incidents/{incident['id']}/timeline?event_type=members_added",
                          headers=as_user(ALICE)).json
    assert (entry["summary"], entry["details"]) == (f"@{ALICE} added @{BOB}, @{CAROL} to the incident.",
                                                    {"user_ids": [BOB, CAROL]})
    assert client.post(f"/api/v0/incidents/{incident['id']}/commander", json={"commander_id": BOB},
                       headers=as_user(ALICE)).status_code == 200
    assert client.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(CAROL)).status_code == 200


def test_adding_members_again_changes_nothing_and_posts_nothing(client, components):
    incident = start(client)
    add(client, incident, ALICE, BOB)
    posts = components.host.posts(incident["channel_id"])
    response = add(client, incident, ALICE, BOB, ALICE)
    assert response.json == {"added": [], "already_members": [BOB, ALICE]}
    assert components.host.posts(incident["channel_id"]) == posts
    assert len(client.get(f"/api/v0/incidents/{incident['id']}/timeline?event_type=members_added",
                          headers=as_user(ALICE)).json) == 1


def test_someone_outside_the_channel_may_not_add_people(client, components):
    incident = start(client)
    response = add(client, incident, BOB, BOB)
    assert response.status_code == 403
    assert not components.host.is_channel_member(incident["channel_id"], BOB)


def test_a_system_admin_may_add_people_to_any_incident(client, components):
    incident = start(client)
    assert add(client, incident, ADMIN, CAROL).json["added"] == [CAROL]


@pytest.mark.parametrize("body", [{}, {"user_ids": []}, {"user_ids": ["bob"]}, {"user_ids": BOB},
                                  {"user_ids": [uid(str(n)) for n in range(51)]}, {"user_ids": [BOB], "x": 1}],
                         ids=["missing", "empty", "malformed id", "not a list", "too many", "unknown field"])
def test_a_bad_members_body_is_a_400_that_adds_nobody(client, components, body):
    incident = start(client)
    response = client.post(f"/api/v0/incidents/{incident['id']}/members", json=body, headers=as_user(ALICE))
    assert response.status_code == 400
    assert "user_ids" in response.json["error"] or "x" in response.json["error"]
    assert not components.host.is_channel_member(incident["channel_id"], BOB)


class Recording:
    """Telemetry that keeps what it was asked to record."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def row(self, event: TelemetryEvent) -> None:
        name = {IncidentEvent: "incident", TaskEvent: "tasks", PlaybookEvent: "playbook"}[type(event)]
        self.events.append((name, event.action, getattr(event, "properties", {})))


def test_adding_members_records_one_event_with_the_count_only(settings):
    telemetry = Recording()
    app = create_app(settings, telemetry=telemetry, migrate_db=False)
    try:
        client = app.test_client()
        incident = start(client)
        add(client, incident, ALICE, BOB, CAROL)
        add(client, incident, ALICE, BOB)
        assert telemetry.events[-1] == ("incident", "add_members", {"NumMembersAdded": 2})
        assert [event[1] for event in telemetry.events] == ["create", "add_members"]
    finally:
        app.extensions["incident"].db.dispose()


def test_a_method_an_endpoint_does_not_have_is_a_405_with_allow(client):
    response = client.delete("/api/v0/incidents", headers=as_user(ALICE))
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.json["details"]["allowed"] == sorted(response.headers["Allow"].split(", "))


def test_people_adding_the_same_person_at_once_all_get_an_answer_and_one_membership(app, client, components):
    incident = start(client)
    for round_ in range(4):  # each round a new person, added by six requests at once
        newcomer = uid(f"racer{round_}")
        statuses: list[int] = []

        def add_newcomer(_number: int) -> None:
            statuses.append(add(app.test_client(), incident, ALICE, newcomer).status_code)

        run_in_threads(add_newcomer, 6, 60, "adds")
        assert statuses == [200] * 6, statuses
        assert components.host.is_channel_member(incident["channel_id"], newcomer)


def test_people_adding_the_same_person_at_once_see_one_added_one_post_and_one_entry(app, client, components):
    incident = start(client)
    path = f"/api/v0/incidents/{incident['id']}/timeline?event_type=members_added"
    for round_ in range(4):  # each round a new person, added by six requests at once
        newcomer = uid(f"rival{round_}")
        posts_before = len(components.host.posts(incident["channel_id"]))
        answers: list[dict[str, Any]] = []

        def add_newcomer(_number: int) -> None:
            answers.append(add(app.test_client(), incident, ALICE, newcomer).json)

        run_in_threads(add_newcomer, 6, 60, "adds")
        assert sorted(answers, key=lambda a: a["added"]) == (
            [{"added": [], "already_members": [newcomer]}] * 5 + [{"added": [newcomer], "already_members": []}])
        posts = components.host.posts(incident["channel_id"])[posts_before:]
        assert [post for post in posts if "to the incident" in post] == [f"@{ALICE} added @{newcomer} to the incident."]
        assert len(client.get(path, headers=as_user(ALICE)).json) == round_ + 1
