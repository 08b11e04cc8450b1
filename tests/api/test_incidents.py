"""The incident API end to end over Flask's test client, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from plugin.store.tables import incidents

from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, OTHER_TEAM, TEAM, as_user, uid


def test_create_returns_201_with_location_and_server_set_fields(client):
    response = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "  db is down  ", "team_id": TEAM, "commander_user_id": ALICE, "checklists": TWO_STAGES})
    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"].endswith(f"/api/v0/incidents/{body['id']}")
    assert body["name"] == "db is down"
    assert body["is_active"] is True and body["end_at"] == 0 and body["public"] is False
    assert len(body["id"]) == 26 and len(body["channel_id"]) == 26
    assert [c["title"] for c in body["checklists"]] == ["Triage", "Resolve"]
    assert body["active_stage"] == 0 and body["active_stage_title"] == "Triage"
    assert body["checklists"][1]["items"][0]["command"] == "/deploy rollback"
    assert body["checklists"][0]["items"][0]["state"] == "open"


def test_create_without_checklists_gets_one_empty_stage(client):
    incident = start(client)
    assert [(c["title"], c["items"]) for c in incident["checklists"]] == [("Checklist", [])]
    assert incident["active_stage"] == 0


def test_create_with_empty_checklists_has_no_active_stage(client):
    incident = start(client, checklists=[])
    assert incident["checklists"] == [] and incident["active_stage"] == -1
    assert incident["active_stage_title"] == ""


def test_create_makes_a_channel_with_creator_and_commander_and_posts_started_by(client, components):
    incident = start(client, commander_user_id=BOB)
    host = components.host
    assert host.is_channel_member(incident["channel_id"], ALICE)
    assert host.is_channel_member(incident["channel_id"], BOB)
    assert host.channel(incident["channel_id"])["type"] == "P"
    assert host.posts(incident["channel_id"]) == [
        f"This incident was started by @{ALICE}; the commander is @{BOB}."]


def test_public_incident_gets_an_open_channel(client, components):
    incident = start(client, public=True)
    assert components.host.channel(incident["channel_id"])["type"] == "O"


def test_a_hundred_incidents_with_the_same_name_get_distinct_channels(client, components):
    channels = {start(client, name="db down")["channel_id"] for _ in range(100)}
    assert len(channels) == 100
    names = {components.host.channel(c)["name"] for c in channels}
    assert len(names) == 100 and "db-down" in names


def test_get_by_id_and_by_channel(client):
    incident = start(client)
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json == incident
    by_channel = client.get(f"/api/v0/incidents/channel/{incident['channel_id']}", headers=as_user(ALICE))
    assert by_channel.status_code == 200 and by_channel.json["id"] == incident["id"]


def test_lifecycle_stage_end_restart_and_posts(client, components):
    incident = start(client, checklists=TWO_STAGES)
    path = f"/api/v0/incidents/{incident['id']}"
    moved = client.patch(path, json={"active_stage": 1}, headers=as_user(ALICE))
    assert moved.status_code == 200 and moved.json["active_stage_title"] == "Resolve"
    ended = client.put(f"{path}/end", headers=as_user(ALICE)).json
    assert ended["is_active"] is False and ended["end_at"] >= ended["create_at"]
    restarted = client.put(f"{path}/restart", headers=as_user(ALICE)).json
    assert restarted["is_active"] is True and restarted["end_at"] == 0
    assert components.host.posts(incident["channel_id"])[1:] == [
        f"@{ALICE} changed the active stage from **Triage** to **Resolve**.",
        f"This incident was ended by @{ALICE}.",
        f"This incident was restarted by @{ALICE}.",
    ]


def test_ending_an_ended_incident_is_a_409_that_changes_nothing(client):
    incident = start(client)
    path = f"/api/v0/incidents/{incident['id']}"
    first = client.put(f"{path}/end", headers=as_user(ALICE)).json
    again = client.put(f"{path}/end", headers=as_user(ALICE))
    assert again.status_code == 409
    assert again.json == {"error": "This incident has already ended: only an active incident can be ended.", "details": {}}
    assert client.get(path, headers=as_user(ALICE)).json["end_at"] == first["end_at"]


def test_restarting_an_active_incident_is_a_409(client):
    incident = start(client)
    response = client.put(f"/api/v0/incidents/{incident['id']}/restart", headers=as_user(ALICE))
    assert response.status_code == 409 and "already active" in response.json["error"]


def test_change_commander_to_a_channel_member(client, components):
    incident = start(client)
    components.host.add_channel_member(incident["channel_id"], BOB)
    response = client.post(f"/api/v0/incidents/{incident['id']}/commander", json={"commander_id": BOB},
                           headers=as_user(ALICE))
    assert response.status_code == 200 and response.json["commander_user_id"] == BOB
    assert components.host.posts(incident["channel_id"])[-1] == (
        f"@{ALICE} changed the incident commander from @{ALICE} to @{BOB}.")


def test_no_lock_is_held_while_the_chat_host_decides_who_may_make_a_change(client, components, monkeypatch):
    incident = start(client, checklists=TWO_STAGES)
    asked = components.host.is_channel_member
    others: list[threading.Thread] = []

    def write_elsewhere() -> None:
        with components.db.write_engine.begin() as connection:
            connection.execute(sa.update(incidents).where(incidents.c.id == incident["id"])
                               .values(description="written while the host was asked",
                                       version=incidents.c.version + 1))

    def answer_after_another_writer(channel_id: str, user_id: str) -> bool:
        if not others:
            # Another writer of the same row must get through while the host answers.
            others.append(threading.Thread(target=write_elsewhere))
            others[0].start()
            others[0].join(timeout=10)
            assert not others[0].is_alive(), "the change held a lock while the chat host was asked"
        return asked(channel_id, user_id)

    monkeypatch.setattr(components.host, "is_channel_member", answer_after_another_writer)
    moved = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": 1}, headers=as_user(ALICE))
    assert moved.status_code == 200 and moved.json["active_stage"] == 1
    # That write moved the version on: the change was made again on a fresh read and lost nothing.
    assert moved.json["description"] == "written while the host was asked"
    refused = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": 0}, headers=as_user(CAROL))
    assert refused.status_code == 403
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json["active_stage"] == 1


def test_new_commander_must_be_in_the_channel(client):
    incident = start(client)
    response = client.post(f"/api/v0/incidents/{incident['id']}/commander", json={"commander_id": CAROL},
                           headers=as_user(ALICE))
    assert response.status_code == 409 and "member of the incident channel" in response.json["error"]
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json[
        "commander_user_id"] == ALICE


@pytest.mark.parametrize("change", ["commander", "stage"])
def test_changing_to_the_same_value_is_a_no_op_without_a_post(client, components, change):
    incident = start(client)
    if change == "commander":
        response = client.post(f"/api/v0/incidents/{incident['id']}/commander", json={"commander_id": ALICE},
                               headers=as_user(ALICE))
    else:
        response = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": 0},
                                headers=as_user(ALICE))
    assert response.status_code == 200 and response.json == incident
    assert len(components.host.posts(incident["channel_id"])) == 1


@pytest.mark.parametrize("stage", [2, 10**12])
def test_an_active_stage_past_the_incidents_last_is_a_400_naming_the_numbers(client, stage):
    incident = start(client, checklists=TWO_STAGES)
    response = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": stage},
                            headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json["error"] == f"active_stage {stage} does not exist: use a stage number from 0 to 1."


def test_a_negative_stage_is_a_400_for_its_shape(client):
    incident = start(client, checklists=TWO_STAGES)
    response = client.patch(f"/api/v0/incidents/{incident['id']}", json={"active_stage": -1},
                            headers=as_user(ALICE))
    assert response.status_code == 400 and "active_stage" in response.json["error"]


def test_task_add_edit_move_state_assign_remove(client):
    incident = start(client, checklists=TWO_STAGES)
    base = f"/api/v0/incidents/{incident['id']}/checklists/0"
    added = client.post(f"{base}/items", json={"title": "Tell support", "description": "via #support"},
                        headers=as_user(ALICE))
    assert added.status_code == 200
    assert [i["title"] for i in added.json["checklists"][0]["items"]] == [
        "Page the on-call", "Open a status page", "Tell support"]
    edited = client.put(f"{base}/items/2", json={"title": "Tell customer support"}, headers=as_user(ALICE)).json
    assert edited["checklists"][0]["items"][2]["title"] == "Tell customer support"
    assert edited["checklists"][0]["items"][2]["description"] == "via #support"
    moved = client.put(f"{base}/reorder", json={"item_num": 2, "new_location": 0}, headers=as_user(ALICE)).json
    assert [i["title"] for i in moved["checklists"][0]["items"]][0] == "Tell customer support"
    closed = client.put(f"{base}/items/0/state", json={"new_state": "closed"}, headers=as_user(ALICE)).json
    item = closed["checklists"][0]["items"][0]
    assert item["state"] == "closed" and item["state_modified"] > 0
    assigned = client.put(f"{base}/items/0/assignee", json={"assignee_id": BOB}, headers=as_user(ALICE)).json
    assert assigned["checklists"][0]["items"][0]["assignee_id"] == BOB
    unassigned = client.put(f"{base}/items/0/assignee", json={"assignee_id": ""}, headers=as_user(ALICE)).json
    assert unassigned["checklists"][0]["items"][0]["assignee_id"] == ""
    removed = client.delete(f"{base}/items/0", headers=as_user(ALICE)).json
    assert [i["title"] for i in removed["checklists"][0]["items"]] == ["Page the on-call", "Open a status page"]


@pytest.mark.parametrize("method, suffix, body", [
    ("put", "/checklists/0/items/7/state", {"new_state": "closed"}),
    ("put", "/checklists/9/items/0/state", {"new_state": "closed"}),
    ("delete", "/checklists/0/items/2", None),
    ("put", "/checklists/0/items/5", {"title": "x"}),
    ("put", "/checklists/0/items/0/assignee", {"assignee_id": ""}),
])
def test_task_indexes_out_of_range_are_404_and_change_nothing(client, method, suffix, body):
    incident = start(client, checklists=[{"title": "Only", "items": [{"title": "a"}, {"title": "b"}]}])
    if suffix.endswith("assignee"):
        suffix = suffix.replace("/items/0", "/items/99")
    path = f"/api/v0/incidents/{incident['id']}{suffix}"
    response = getattr(client, method)(path, json=body, headers=as_user(ALICE))
    assert response.status_code == 404 and "does not exist" in response.json["error"]
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json == incident


@pytest.mark.parametrize("body, field", [({"item_num": 0, "new_location": 2}, "new_location"),
                                         ({"item_num": 2, "new_location": 0}, "item_num")])
def test_reorder_from_or_past_the_stages_last_task_is_a_400_naming_the_field(client, body, field):
    incident = start(client, checklists=TWO_STAGES)
    response = client.put(f"/api/v0/incidents/{incident['id']}/checklists/0/reorder", json=body,
                          headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json["error"] == f"{field} 2 is out of range: stage 0 has 2 task(s), so use 0 to 1."
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json == incident


# ----- who may do what --------------------------------------------------------------------
def test_requests_without_the_user_header_are_401(client):
    response = client.get("/api/v0/incidents", query_string={"team_id": TEAM})
    assert response.status_code == 401 and "Mattermost-User-ID" in response.json["error"]


def test_a_malformed_user_header_is_401(client):
    response = client.get("/api/v0/incidents", query_string={"team_id": TEAM},
                          headers={"Mattermost-User-ID": "not-an-id"})
    assert response.status_code == 401


def test_non_members_may_not_view_a_private_incident(client):
    incident = start(client)
    response = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(CAROL))
    assert response.status_code == 403
    by_channel = client.get(f"/api/v0/incidents/channel/{incident['channel_id']}", headers=as_user(CAROL))
    assert by_channel.status_code == 404


def test_team_members_may_view_but_not_edit_a_public_incident(client):
    incident = start(client, public=True)
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(CAROL)).status_code == 200
    response = client.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(CAROL))
    assert response.status_code == 403 and "join the channel" in response.json["error"]
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json["is_active"] is True


def test_system_admins_may_view_and_edit_any_incident(client):
    incident = start(client)
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ADMIN)).status_code == 200
    assert client.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ADMIN)).json["is_active"] is False


def test_host_secret_is_required_when_configured(settings):
    from plugin.app import create_app

    app = create_app(settings.replace(HostSecret="s3cret"), migrate_db=False)
    client = app.test_client()
    headers = {**as_user(ALICE)}
    assert client.get("/api/v0/incidents", query_string={"team_id": TEAM}, headers=headers).status_code == 401
    wrong = client.get("/api/v0/incidents", query_string={"team_id": TEAM},
                       headers={**headers, "X-Host-Secret": "nope"})
    assert wrong.status_code == 401
    right = client.get("/api/v0/incidents", query_string={"team_id": TEAM},
                       headers={**headers, "X-Host-Secret": "s3cret"})
    assert right.status_code == 200
    app.extensions["incident"].db.dispose()


# ----- listing ----------------------------------------------------------------------------
def test_list_filters_sorts_and_pages(client, ticking_clock):
    first = start(client, name="alpha")
    second = start(client, name="beta")
    third = start(client, name="gamma", commander_user_id=ALICE)
    client.put(f"/api/v0/incidents/{second['id']}/end", headers=as_user(ALICE))
    start(client, name="elsewhere", team_id=OTHER_TEAM)

    def names(**query):
        response = client.get("/api/v0/incidents", query_string={"team_id": TEAM, **query},
                              headers=as_user(ALICE))
        assert response.status_code == 200, response.json
        return [i["name"] for i in response.json["items"]], response.json

    assert names()[0] == ["gamma", "beta", "alpha"]
    assert names(status="active")[0] == ["gamma", "alpha"]
    assert names(status="ended")[0] == ["beta"]
    assert names(sort="name", direction="asc")[0] == ["alpha", "beta", "gamma"]
    assert names(search_term="AMM")[0] == ["gamma"]
    assert names(search_term="%")[0] == []
    page, body = names(per_page=2, page=1)
    assert page == ["alpha"] and body["total_count"] == 3 and body["page_count"] == 2 and not body["has_more"]
    assert names(per_page=2)[1]["has_more"] is True
    assert names(commander_user_id=BOB)[0] == []
    assert {first["id"], third["id"]} <= {i["id"] for i in names(status="active")[1]["items"]}


def test_list_shows_only_incidents_the_caller_may_view(client):
    start(client, name="private one")
    start(client, name="public one", public=True)
    bob_own = start(client, user=BOB, name="bob's")
    response = client.get("/api/v0/incidents", query_string={"team_id": TEAM}, headers=as_user(BOB))
    assert sorted(i["name"] for i in response.json["items"]) == ["bob's", "public one"]
    members = client.get("/api/v0/incidents", query_string={"team_id": TEAM, "member_id": BOB},
                         headers=as_user(ADMIN))
    assert [i["id"] for i in members.json["items"]] == [bob_own["id"]]


def test_a_listed_incident_is_as_a_fetch_shows_it_and_a_change_shows_at_once(client):
    ids = [start(client, name=f"listed {n}", checklists=TWO_STAGES)["id"] for n in range(3)]
    query = {"team_id": TEAM, "sort": "name", "direction": "asc"}
    listed = client.get("/api/v0/incidents", query_string=query, headers=as_user(ALICE))
    fetched = [client.get(f"/api/v0/incidents/{i}", headers=as_user(ALICE)).json for i in ids]
    assert listed.status_code == 200 and listed.json["items"] == fetched
    assert listed.headers["Content-Type"] == "application/json"
    moved = client.patch(f"/api/v0/incidents/{ids[1]}", json={"active_stage": 1}, headers=as_user(ALICE))
    assert moved.status_code == 200
    after = client.get("/api/v0/incidents", query_string=query, headers=as_user(ALICE)).json
    assert [i["active_stage"] for i in after["items"]] == [0, 1, 0]
    assert after["items"][1] == moved.json
    assert {key: after[key] for key in ("total_count", "page_count", "has_more")} == {
        "total_count": 3, "page_count": 1, "has_more": False}


def test_listing_without_team_is_for_admins_only(client):
    start(client)
    start(client, team_id=OTHER_TEAM)
    response = client.get("/api/v0/incidents", headers=as_user(ALICE))
    assert response.status_code == 403 and "give team_id" in response.json["error"]
    assert client.get("/api/v0/incidents", headers=as_user(ADMIN)).json["total_count"] == 2


def test_openapi_document_lists_every_route(client):
    spec = client.get("/api/v0/openapi.json").json
    assert spec["openapi"].startswith("3.")
    paths = spec["paths"]
    assert "/api/v0/incidents/{incident_id}/checklists/{checklist}/items/{item}/state" in paths
    assert set(paths["/api/v0/incidents"]) >= {"get", "post"}
    assert "CreateIncident" in spec["components"]["schemas"]


def test_healthz_needs_no_auth(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_unknown_incident_is_404(client):
    response = client.get(f"/api/v0/incidents/{uid('missing')}", headers=as_user(ALICE))
    assert response.status_code == 404 and response.json["error"].startswith("Incident")
