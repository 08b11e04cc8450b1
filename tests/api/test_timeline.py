"""The timeline API end to end over Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from plugin.store.tables import timeline_events
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, TEAM, as_user, uid


def url(incident: dict, suffix: str = "") -> str:
    return f"/api/v0/incidents/{incident['id']}/timeline{suffix}"


def rows(components) -> list:
    """Every timeline row, deleted ones too, in the order written."""
    with components.db.read_engine.connect() as connection:
        return connection.execute(sa.select(timeline_events).order_by(timeline_events.c.seq)).all()


def entries(client, incident: dict, user: str = ALICE, query: str = "") -> list[dict]:
    response = client.get(url(incident) + query, headers=as_user(user))
    assert response.status_code == 200, response.json
    return response.json


def test_every_change_through_the_api_writes_its_entry_and_the_timeline_lists_them_oldest_first(
        client, components):
    incident = start(client, checklists=TWO_STAGES)
    base, user = f"/api/v0/incidents/{incident['id']}", as_user(ALICE)
    components.host.add_channel_member(incident["channel_id"], BOB)
    assert client.patch(base, headers=user, json={"active_stage": 1}).status_code == 200
    item = f"{base}/checklists/0/items/1"
    assert client.put(f"{item}/state", headers=user, json={"new_state": "closed"}).status_code == 200
    task = f"{base}/checklists/1/items/0"
    assert client.put(f"{task}/assignee", headers=user, json={"assignee_id": BOB}).status_code == 200
    assert client.post(f"{base}/commander", headers=user, json={"commander_id": BOB}).status_code == 200
    assert client.put(f"{base}/end", headers=user).status_code == 200
    assert client.put(f"{base}/restart", headers=user).status_code == 200

    listed = entries(client, incident)
    assert [(e["event_type"], e["summary"]) for e in listed] == [
        ("incident_created", f'@{ALICE} started the incident "db is down" as its commander.'),
        ("stage_changed", f'@{ALICE} changed the stage from "Triage" to "Resolve".'),
        ("task_state_changed", f'@{ALICE} closed the task "Open a status page" in stage "Triage".'),
        ("task_assigned", f'@{ALICE} assigned the task "Roll back" to @{BOB}.'),
        ("commander_changed", f"@{ALICE} changed the commander from @{ALICE} to @{BOB}."),
        ("incident_ended", f"@{ALICE} ended the incident."),
        ("incident_restarted", f"@{ALICE} restarted the incident."),
    ]
    assert all(e["incident_id"] == incident["id"] and e["creator_user_id"] == ALICE and not e["deleted"]
               for e in listed)
    assert listed[0]["event_at"] == incident["create_at"] and listed[4]["subject_user_id"] == BOB
    assert listed[3]["details"]["assignee_id"] == BOB
    assert [e["event_type"] for e in entries(client, incident, query="?event_type=incident_ended"
                                             "&event_type=incident_created")] == ["incident_created",
                                                                                   "incident_ended"]


def test_a_no_op_or_refused_change_writes_no_entry(client, components):
    incident = start(client, checklists=TWO_STAGES)
    base, user = f"/api/v0/incidents/{incident['id']}", as_user(ALICE)
    assert client.patch(base, headers=user, json={"active_stage": 0}).status_code == 200  # no-op
    assert client.put(f"{base}/restart", headers=user).status_code == 409
    assert client.patch(base, headers=as_user(BOB), json={"active_stage": 1}).status_code == 403
    assert [row.event_type for row in rows(components)] == ["incident_created"]


def test_a_change_whose_commit_fails_writes_neither_the_change_nor_its_entry(client, components, monkeypatch):
    incident = start(client, checklists=TWO_STAGES)

    def outbox_fails(_self, _connection) -> None:
        raise RuntimeError("the last write of the commit fails")

    monkeypatch.setattr("plugin.store.outbox.SqlOutboxRepository.flush", outbox_fails)
    with pytest.raises(RuntimeError):
        components.service.set_active_stage(ALICE, incident["id"], 1)
    monkeypatch.undo()
    assert components.service.get_incident(ALICE, incident["id"]).active_stage == 0
    assert [row.event_type for row in rows(components)] == ["incident_created"]


def test_a_note_is_201_with_the_entry_and_listed_by_when_it_happened(client, components):
    incident = start(client)
    response = client.post(url(incident), headers=as_user(ALICE), json={
        "summary": "  first alert fired  ", "details": {"alert": "disk", "level": 3},
        "event_at": incident["create_at"] - 60_000, "post_id": uid("post")})
    assert response.status_code == 201, response.json
    note = response.json
    assert (note["event_type"], note["summary"], note["details"], note["post_id"]) == (
        "note", "first alert fired", {"alert": "disk", "level": 3}, uid("post"))
    assert note["create_at"] >= incident["create_at"] and note["creator_user_id"] == ALICE
    assert [e["id"] for e in entries(client, incident)][0] == note["id"]
    assert [e["summary"] for e in entries(client, incident, query="?event_type=note")] == ["first alert fired"]


def test_delete_hides_the_entry_and_keeps_the_row_with_who_and_when(client, components):
    incident = start(client)
    components.host.add_channel_member(incident["channel_id"], BOB)
    note = client.post(url(incident), headers=as_user(ALICE), json={"summary": "wrong incident"}).json
    response = client.delete(url(incident, f"/{note['id']}"), headers=as_user(BOB))
    assert response.status_code == 204 and response.data == b""
    assert [e["event_type"] for e in entries(client, incident)] == ["incident_created"]
    kept = next(row for row in rows(components) if row.id == note["id"])
    assert (kept.deleted, kept.deleted_by, kept.summary) == (True, BOB, "wrong incident") and kept.deleted_at > 0
    again = client.delete(url(incident, f"/{note['id']}"), headers=as_user(ALICE))
    assert again.status_code == 404 and "deleted already" in again.json["error"]


def test_an_entry_of_the_change_itself_can_be_deleted(client):
    incident = start(client)
    created = entries(client, incident)[0]
    assert client.delete(url(incident, f"/{created['id']}"), headers=as_user(ALICE)).status_code == 204
    assert entries(client, incident) == []


def test_deleting_an_unknown_entry_or_one_of_another_incident_is_404_and_changes_nothing(client, components):
    first, second = start(client), start(client)
    note = client.post(url(first), headers=as_user(ALICE), json={"summary": "only the first"}).json
    for incident, entry_id in ((second, note["id"]), (first, uid("nothing"))):
        response = client.delete(url(incident, f"/{entry_id}"), headers=as_user(ALICE))
        assert response.status_code == 404 and "has no timeline entry" in response.json["error"]
    assert not any(row.deleted for row in rows(components))


def test_the_timeline_has_the_visibility_of_its_incident(client, components):
    private, public = start(client), start(client, public=True)
    assert client.get(url(private), headers=as_user(BOB)).status_code == 403
    assert [e["event_type"] for e in entries(client, public, user=BOB)] == ["incident_created"]
    assert [e["event_type"] for e in entries(client, private, user=ADMIN)] == ["incident_created"]
    assert client.get(url({"id": uid("nothing")}), headers=as_user(ALICE)).status_code == 404


def test_only_channel_members_and_admins_add_or_delete_entries(client, components):
    incident = start(client, public=True)
    refused = client.post(url(incident), headers=as_user(CAROL), json={"summary": "drive-by"})
    assert refused.status_code == 403 and "join the channel" in refused.json["error"]
    assert client.post(url(incident), headers=as_user(ADMIN), json={"summary": "admin note"}).status_code == 201
    created = entries(client, incident)[0]
    assert client.delete(url(incident, f"/{created['id']}"), headers=as_user(CAROL)).status_code == 403
    assert [row.deleted for row in rows(components)] == [False, False]


@pytest.mark.parametrize("body, names", [
    ({}, "summary"),
    ({"summary": "   "}, "summary"),
    ({"summary": "x" * 1025}, "summary"),
    ({"summary": "two\nlines"}, "one line"),
    ({"summary": "nul\u0000"}, "NUL"),
    ({"summary": "ok", "details": ["a"]}, "details: Must be a JSON object"),
    ({"summary": "ok", "details": "text"}, "details: Must be a JSON object"),
    ({"summary": "ok", "details": {"big": "x" * 9000}}, "too large"),
    ({"summary": "ok", "details": {"nested": {"a": 1}}}, "flat object"),
    ({"summary": "ok", "details": {"none": None}}, "flat object"),
    ({"summary": "ok", "event_at": 4_000_000_000_000}, "in the future"),
    ({"summary": "ok", "event_at": -1}, "event_at"),
    ({"summary": "ok", "event_at": "yesterday"}, "event_at"),
    ({"summary": "ok", "post_id": "nope"}, "post_id"),
    ({"summary": "ok", "event_type": "incident_ended"}, "event_type"),
    ({"summary": "ok", "id": uid("mine")}, "id"),
])
def test_a_bad_note_is_a_400_saying_what_to_fix_and_writes_nothing(client, components, body, names):
    incident = start(client)
    response = client.post(url(incident), headers=as_user(ALICE), json=body)
    assert response.status_code == 400, response.json
    assert names in response.json["error"]
    assert len(rows(components)) == 1


@pytest.mark.parametrize("query", ["?event_type=bogus", "?since=0", "?event_type=note%00"])
def test_a_bad_timeline_query_is_400_naming_the_parameter(client, query):
    incident = start(client)
    response = client.get(url(incident) + query, headers=as_user(ALICE))
    assert response.status_code == 400 and ("event_type" in response.json["error"] or "since" in response.json["error"])


def test_the_openapi_document_declares_the_timeline_routes_and_schemas(client):
    document = client.get("/api/v0/openapi.json").json
    paths = document["paths"]
    timeline = paths["/api/v0/incidents/{incident_id}/timeline"]
    assert {"get", "post"} <= set(timeline) and "delete" in paths["/api/v0/incidents/{incident_id}/timeline/{event_id}"]
    assert set(timeline["post"]["responses"]) >= {"201", "400", "403", "404"}
    schemas = document["components"]["schemas"]
    assert {"summary", "details", "event_at", "post_id"} == set(schemas["NewNote"]["properties"])
    assert "TimelineEntry" in schemas


def test_text_in_a_timeline_never_mixes_into_another_teams_list(client):
    incident = start(client)
    client.post(url(incident), headers=as_user(ALICE), json={"summary": "note"})
    other = client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE)).json
    assert other["total_count"] == 1


def test_starting_an_incident_writes_its_entry_with_one_statement_and_reads_no_timeline(client, components):
    db, seen = components.db, []
    # A listener on the engines (on PostgreSQL the writing engine shares the reading one's).
    for engine in ([db.read_engine, db.write_engine] if db.dialect == "sqlite" else [db.read_engine]):
        sa.event.listen(engine, "before_cursor_execute", lambda _c, _cursor, statement, *_: seen.append(statement))
    start(client)
    touching = [statement for statement in seen if "timeline_events" in statement]
    assert len(touching) == 1 and touching[0].lstrip().startswith("INSERT INTO timeline_events"), touching


def test_a_note_whose_details_hold_nan_is_a_400_not_a_database_error(client, components):
    incident = start(client)
    response = client.post(url(incident), headers={**as_user(ALICE), "Content-Type": "application/json"},
                           data='{"summary": "ok", "details": {"ratio": NaN}}')
    assert response.status_code == 400 and "finite number" in response.json["error"]
    assert len(rows(components)) == 1


def test_a_status_update_shows_on_the_timeline_with_its_first_line(client, components):
    incident = start(client)
    base, user = f"/api/v0/incidents/{incident['id']}", as_user(ALICE)
    posted = client.post(f"{base}/status-updates", headers=user, json={"message": "rolled back\nerrors dropping"})
    assert posted.status_code == 201, posted.json
    listed = entries(client, incident, query="?event_type=status_updated")
    assert [(e["event_type"], e["summary"], e["details"]) for e in listed] == [
        ("status_updated", f"@{ALICE} posted a status update: rolled back", {"status_update_id": posted.json["id"]})]
