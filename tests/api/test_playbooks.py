"""The playbook API and incidents started from playbooks, on SQLite and PostgreSQL."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.events import PlaybookEvent, TelemetryEvent
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, OTHER_TEAM, TEAM, as_user, uid


def make_playbook(client: Any, user: str = ALICE, **body: Any) -> dict[str, Any]:
    """Create a playbook through the API and return it (asserting 201)."""
    payload = {"title": "Database outage", "team_id": TEAM, "checklists": TWO_STAGES, **body}
    response = client.post("/api/v0/playbooks", json=payload, headers=as_user(user))
    assert response.status_code == 201, response.json
    return response.json


class RecordingTelemetry:
    """A fake of the telemetry port that remembers playbook events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, int, int]] = []

    def row(self, event: TelemetryEvent) -> None:
        if isinstance(event, PlaybookEvent):
            playbook = event.playbook
            self.events.append((event.action, playbook.id, event.user_id, playbook.num_stages, playbook.num_tasks))


def test_create_playbook_returns_201_with_location_and_makes_the_creator_a_member(client):
    response = client.post("/api/v0/playbooks", headers=as_user(ALICE), json={
        "title": "  Database outage ", "team_id": TEAM, "checklists": TWO_STAGES, "member_ids": [BOB, BOB]})
    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"].endswith(f"/api/v0/playbooks/{body['id']}")
    assert body["title"] == "Database outage"
    assert body["member_ids"] == [ALICE, BOB]
    assert body["num_stages"] == 2 and body["num_tasks"] == 3
    assert body["checklists"][1]["items"][0]["command"] == "/deploy rollback"
    assert body["create_public_incident"] is False
    assert client.get(f"/api/v0/playbooks/{body['id']}", headers=as_user(BOB)).json == body


@pytest.mark.parametrize("case, body", [
    ("no title", {"team_id": TEAM}),
    ("blank title", {"title": "   ", "team_id": TEAM}),
    ("no team", {"title": "x"}),
    ("malformed member id", {"title": "x", "team_id": TEAM, "member_ids": ["bob"]}),
    ("unknown field", {"title": "x", "team_id": TEAM, "owner": ALICE}),
    ("stage without title", {"title": "x", "team_id": TEAM, "checklists": [{"items": []}]}),
    ("public flag not a boolean", {"title": "x", "team_id": TEAM, "create_public_incident": "maybe"}),
])
def test_create_playbook_with_bad_body_is_400_and_stores_nothing(client, case, body):
    response = client.post("/api/v0/playbooks", json=body, headers=as_user(ALICE))
    assert response.status_code == 400, case
    assert set(response.json) == {"error", "details"}
    listed = client.get(f"/api/v0/playbooks?team_id={TEAM}", headers=as_user(ADMIN)).json
    assert listed["total_count"] == 0


def test_get_playbook_is_404_for_non_members_and_200_for_system_admins(client):
    playbook = make_playbook(client)
    assert client.get(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(CAROL)).status_code == 404
    assert client.get(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ADMIN)).status_code == 200


def test_get_playbook_with_malformed_id_is_400_and_unknown_id_is_404(client):
    assert client.get("/api/v0/playbooks/nope", headers=as_user(ALICE)).status_code == 400
    assert client.get(f"/api/v0/playbooks/{uid('missing')}", headers=as_user(ALICE)).status_code == 404


def test_playbook_requests_without_user_header_are_401(client):
    assert client.get(f"/api/v0/playbooks?team_id={TEAM}").status_code == 401


def test_list_requires_team_id(client):
    response = client.get("/api/v0/playbooks", headers=as_user(ALICE))
    assert response.status_code == 400 and "team_id" in response.json["error"]


def test_list_shows_members_only_their_playbooks_and_admins_all_of_the_team(client):
    mine = make_playbook(client, title="Mine")
    make_playbook(client, user=BOB, title="Bob's")
    make_playbook(client, user=ALICE, title="Elsewhere", team_id=OTHER_TEAM)
    alice = client.get(f"/api/v0/playbooks?team_id={TEAM}", headers=as_user(ALICE)).json
    assert [p["id"] for p in alice["items"]] == [mine["id"]] and alice["total_count"] == 1
    admin = client.get(f"/api/v0/playbooks?team_id={TEAM}", headers=as_user(ADMIN)).json
    assert sorted(p["title"] for p in admin["items"]) == ["Bob's", "Mine"]


@pytest.mark.parametrize("sort, direction, expected", [
    ("title", "asc", ["A", "B", "C"]),
    ("title", "desc", ["C", "B", "A"]),
    ("stages", "asc", ["B", "C", "A"]),
    ("tasks", "desc", ["C", "A", "B"]),
])
def test_list_sorts_by_title_stages_or_tasks(client, sort, direction, expected):
    stage = lambda n_items: {"title": "s", "items": [{"title": "t"}] * n_items}  # noqa: E731
    make_playbook(client, title="A", checklists=[stage(1), stage(1), stage(1)])
    make_playbook(client, title="B", checklists=[])
    make_playbook(client, title="C", checklists=[stage(5), stage(0)])
    page = client.get(f"/api/v0/playbooks?team_id={TEAM}&sort={sort}&direction={direction}",
                      headers=as_user(ALICE)).json
    assert [p["title"] for p in page["items"]] == expected


def test_list_pages_report_total_page_count_and_has_more(client):
    for n in range(5):
        make_playbook(client, title=f"P{n}")
    first = client.get(f"/api/v0/playbooks?team_id={TEAM}&per_page=2", headers=as_user(ALICE)).json
    last = client.get(f"/api/v0/playbooks?team_id={TEAM}&per_page=2&page=2", headers=as_user(ALICE)).json
    assert (first["total_count"], first["page_count"], first["has_more"]) == (5, 3, True)
    assert [p["title"] for p in first["items"]] == ["P0", "P1"]
    assert [p["title"] for p in last["items"]] == ["P4"] and last["has_more"] is False


@pytest.mark.parametrize("query", ["sort=owner", "direction=up", "per_page=0", "page=-1"])
def test_list_with_bad_query_is_400(client, query):
    assert client.get(f"/api/v0/playbooks?team_id={TEAM}&{query}", headers=as_user(ALICE)).status_code == 400


def test_update_replaces_the_playbook_and_keeps_the_editor_a_member(client):
    playbook = make_playbook(client, member_ids=[BOB])
    response = client.put(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(BOB), json={
        "title": "Renamed", "create_public_incident": True, "member_ids": [CAROL],
        "checklists": [{"title": "Only", "items": [{"title": "One"}]}]})
    assert response.status_code == 200
    body = response.json
    assert body["title"] == "Renamed" and body["create_public_incident"] is True
    assert body["member_ids"] == [BOB, CAROL] and body["num_tasks"] == 1
    assert body["team_id"] == TEAM and body["update_at"] >= playbook["update_at"]
    assert client.get(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE)).status_code == 404


def test_update_keeps_the_fields_left_out(client):
    playbook = make_playbook(client, description="runbook", member_ids=[BOB], create_public_incident=True)
    body = client.put(f"/api/v0/playbooks/{playbook['id']}", json={"title": "Renamed"}, headers=as_user(ALICE)).json
    assert body == {**playbook, "title": "Renamed", "update_at": body["update_at"]}


def test_update_with_empty_checklists_removes_every_stage(client):
    playbook = make_playbook(client)
    body = client.put(f"/api/v0/playbooks/{playbook['id']}", json={"title": "x", "checklists": []},
                      headers=as_user(ALICE)).json
    assert body["checklists"] == [] and body["num_stages"] == 0


def test_update_by_non_member_is_404_and_changes_nothing(client):
    playbook = make_playbook(client)
    response = client.put(f"/api/v0/playbooks/{playbook['id']}", json={"title": "Mine now"}, headers=as_user(CAROL))
    assert response.status_code == 404
    assert client.get(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE)).json == playbook


def test_update_cannot_move_a_playbook_to_another_team(client):
    playbook = make_playbook(client)
    response = client.put(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE),
                          json={"title": "x", "team_id": OTHER_TEAM})
    assert response.status_code == 400 and "team_id" in response.json["error"]


def test_delete_removes_the_playbook_for_members_only(client):
    playbook = make_playbook(client)
    path = f"/api/v0/playbooks/{playbook['id']}"
    assert client.delete(path, headers=as_user(CAROL)).status_code == 404
    response = client.delete(path, headers=as_user(ALICE))
    assert response.status_code == 204 and response.data == b""
    assert client.get(path, headers=as_user(ADMIN)).status_code == 404
    assert client.delete(path, headers=as_user(ALICE)).status_code == 404


def test_playbook_mutations_record_one_telemetry_event_each_with_counts(settings):
    from plugin.app import create_app

    telemetry = RecordingTelemetry()
    app = create_app(settings, telemetry=telemetry, migrate_db=False)
    client = app.test_client()
    try:
        playbook = make_playbook(client)
        client.put(f"/api/v0/playbooks/{playbook['id']}", json={"title": "x"}, headers=as_user(ALICE))
        client.put(f"/api/v0/playbooks/{playbook['id']}", json={"title": "x"}, headers=as_user(CAROL))
        client.delete(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE))
    finally:
        app.extensions["incident"].db.dispose()
    assert telemetry.events == [("create", playbook["id"], ALICE, 2, 3), ("update", playbook["id"], ALICE, 2, 3),
                                ("delete", playbook["id"], ALICE, 2, 3)]


# ----- incidents from playbooks -------------------------------------------------------------
def test_incident_started_from_a_playbook_gets_fresh_copies_of_its_stages_and_tasks(client):
    playbook = make_playbook(client)
    incident = start(client, playbook_id=playbook["id"])
    assert incident["playbook_id"] == playbook["id"]
    assert [c["title"] for c in incident["checklists"]] == ["Triage", "Resolve"]
    assert [i["title"] for i in incident["checklists"][0]["items"]] == ["Page the on-call", "Open a status page"]
    assert incident["checklists"][1]["items"][0]["command"] == "/deploy rollback"
    assert all(i["state"] == "open" for c in incident["checklists"] for i in c["items"])
    template_ids = {c["id"] for c in playbook["checklists"]} | {
        i["id"] for c in playbook["checklists"] for i in c["items"]}
    copied_ids = {c["id"] for c in incident["checklists"]} | {
        i["id"] for c in incident["checklists"] for i in c["items"]}
    assert template_ids.isdisjoint(copied_ids)
    assert incident["active_stage"] == 0 and incident["active_stage_title"] == "Triage"


def test_changing_an_incident_leaves_its_playbook_untouched(client):
    playbook = make_playbook(client)
    incident = start(client, playbook_id=playbook["id"])
    client.put(f"/api/v0/incidents/{incident['id']}/checklists/0/items/0/state", json={"new_state": "closed"},
               headers=as_user(ALICE))
    client.delete(f"/api/v0/incidents/{incident['id']}/checklists/1/items/0", headers=as_user(ALICE))
    assert client.get(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE)).json == playbook


@pytest.mark.parametrize("create_public, public, expected", [
    (True, None, True), (False, None, False), (True, False, False), (False, True, True)])
def test_incident_visibility_defaults_to_the_playbooks_create_public_incident(
        client, components, create_public, public, expected):
    playbook = make_playbook(client, create_public_incident=create_public)
    body = {"playbook_id": playbook["id"]} if public is None else {"playbook_id": playbook["id"], "public": public}
    incident = start(client, **body)
    assert incident["public"] is expected
    assert components.host.channel(incident["channel_id"])["type"] == ("O" if expected else "P")


def test_incident_with_both_playbook_and_checklists_is_400_and_creates_nothing(client):
    playbook = make_playbook(client)
    response = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE, "playbook_id": playbook["id"],
        "checklists": TWO_STAGES})
    assert response.status_code == 400 and "not both" in response.json["error"]
    assert client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ADMIN)).json["total_count"] == 0


@pytest.mark.parametrize("case, status", [("unknown playbook", 404), ("not a member", 404), ("other team", 409)])
def test_incident_from_a_playbook_the_user_may_not_use_is_refused_and_creates_nothing(client, case, status):
    playbook_id = uid("missing")
    user, team = ALICE, TEAM
    if case == "not a member":
        playbook_id, user = make_playbook(client)["id"], CAROL
    if case == "other team":
        playbook_id, team = make_playbook(client)["id"], OTHER_TEAM
    response = client.post("/api/v0/incidents", headers=as_user(user), json={
        "name": "x", "team_id": team, "commander_user_id": user, "playbook_id": playbook_id})
    assert response.status_code == status and response.json["details"]["playbook_id"] == playbook_id
    assert client.get("/api/v0/incidents", headers=as_user(ADMIN)).json["total_count"] == 0


def test_system_admin_may_start_an_incident_from_any_playbook(client):
    playbook = make_playbook(client)
    incident = start(client, user=ADMIN, playbook_id=playbook["id"])
    assert incident["playbook_id"] == playbook["id"]


def test_incident_keeps_its_stages_when_its_playbook_is_deleted(client):
    playbook = make_playbook(client)
    incident = start(client, playbook_id=playbook["id"])
    client.delete(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE))
    again = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json
    assert again["checklists"] == incident["checklists"] and again["playbook_id"] == playbook["id"]


def test_playbook_routes_are_in_the_openapi_document(client):
    paths = client.get("/api/v0/openapi.json").json["paths"]
    assert {"/api/v0/playbooks", "/api/v0/playbooks/{playbook_id}", "/api/v0/settings"} <= set(paths)


@pytest.mark.parametrize("change", ["update", "delete"])
def test_a_playbook_change_by_an_admin_asks_the_chat_host_before_its_transaction(client, components, monkeypatch,
                                                                                 change):
    playbook = make_playbook(client)
    open_writes: list[int] = []
    asked_inside: list[str] = []
    factory, is_admin = components.playbooks.uow_factory, components.host.is_system_admin

    class Tracked:
        def __init__(self, *args, **kwargs):
            self.uow = factory(*args, **kwargs)
            self.writes = kwargs.get("write", True)

        def __enter__(self):
            open_writes.append(1) if self.writes else None
            return self.uow.__enter__()

        def __exit__(self, *exc):
            open_writes.pop() if self.writes else None
            return self.uow.__exit__(*exc)

    def asking(user_id):
        if open_writes:
            asked_inside.append(user_id)
        return is_admin(user_id)

    monkeypatch.setattr(components.playbooks, "uow_factory", Tracked)
    monkeypatch.setattr(components.host, "is_system_admin", asking)
    if change == "update":
        response = client.put(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ADMIN), json={"title": "y"})
    else:
        response = client.delete(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ADMIN))
    assert response.status_code in (200, 204)
    assert asked_inside == []
