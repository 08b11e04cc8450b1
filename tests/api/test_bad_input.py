"""Every kind of bad input is a 4xx in the one error shape and changes nothing."""
from __future__ import annotations

import gzip
import json

import pytest

from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, TEAM, as_user, uid

JSON = "application/json"

CASES = [
    # (id, method, path suffix ('' = collection, '/x' = under the incident), body or raw, status)
    ("malformed json", "post", None, ("{name: ", JSON), 400),
    ("json array body", "post", None, ([1, 2], None), 400),
    ("not json at all", "post", None, ("name=x", "application/x-www-form-urlencoded"), 415),
    ("json without its content type", "post", None, ("{\"name\": \"x\"}", "text/plain"), 415),
    ("wrong type for name", "post", None, ({"name": 5, "team_id": TEAM, "commander_user_id": ALICE}, None), 400),
    ("wrong type for public", "post", None,
     ({"name": "x", "team_id": TEAM, "commander_user_id": ALICE, "public": "maybe"}, None), 400),
    ("empty name", "post", None, ({"name": "   ", "team_id": TEAM, "commander_user_id": ALICE}, None), 400),
    ("name too long", "post", None, ({"name": "x" * 65, "team_id": TEAM, "commander_user_id": ALICE}, None), 400),
    ("unknown field", "post", None,
     ({"name": "x", "team_id": TEAM, "commander_user_id": ALICE, "severity": 1}, None), 400),
    ("server-set field", "post", None,
     ({"name": "x", "team_id": TEAM, "commander_user_id": ALICE, "channel_id": uid("c")}, None), 400),
    ("malformed team id", "post", None, ({"name": "x", "team_id": "TEAM", "commander_user_id": ALICE}, None), 400),
    ("checklists not a list", "post", None,
     ({"name": "x", "team_id": TEAM, "commander_user_id": ALICE, "checklists": {"title": "a"}}, None), 400),
    ("item without title", "post", None,
     ({"name": "x", "team_id": TEAM, "commander_user_id": ALICE, "checklists": [{"title": "a", "items": [{}]}]},
      None), 400),
    ("stage as string", "patch", "", ({"active_stage": "1"}, None), 400),
    ("stage out of range", "patch", "", ({"active_stage": 7}, None), 400),
    ("negative stage", "patch", "", ({"active_stage": -1}, None), 400),
    ("stage as float", "patch", "", ({"active_stage": 1.5}, None), 400),
    ("unknown state", "put", "/checklists/0/items/0/state", ({"new_state": "done"}, None), 400),
    ("checklist out of range", "put", "/checklists/5/items/0/state", ({"new_state": "closed"}, None), 404),
    ("item out of range", "delete", "/checklists/0/items/99", (None, None), 404),
    ("negative item in path", "delete", "/checklists/0/items/-1", (None, None), 400),
    ("negative stage in path", "put", "/checklists/-1/items/0", ({"title": "x"}, None), 400),
    ("huge index in path", "delete", "/checklists/0/items/99999999999999999999999", (None, None), 404),
    ("reorder out of range", "put", "/checklists/0/reorder", ({"item_num": 0, "new_location": 9}, None), 400),
    ("reorder a task past the last", "put", "/checklists/0/reorder", ({"item_num": 9, "new_location": 0}, None), 400),
    ("reorder negative", "put", "/checklists/0/reorder", ({"item_num": -1, "new_location": 0}, None), 400),
    ("empty edit", "put", "/checklists/0/items/0", ({}, None), 400),
    ("malformed assignee", "put", "/checklists/0/items/0/assignee", ({"assignee_id": "bob"}, None), 400),
    ("malformed commander", "post", "/commander", ({"commander_id": "bob"}, None), 400),
    ("missing commander", "post", "/commander", ({}, None), 400),
    ("deeply nested json", "post", None, ("[" * 100_000 + "]" * 100_000, JSON), 400),
    ("nul in name", "post", None, ({"name": "db\x00down", "team_id": TEAM, "commander_user_id": ALICE}, None), 400),
    ("lone surrogate in name", "post", None,
     ('{"name": "\\ud800", "team_id": "%s", "commander_user_id": "%s"}' % (TEAM, ALICE), JSON), 400),
    ("id with trailing newline", "post", None,
     ({"name": "x", "team_id": TEAM + "\n", "commander_user_id": ALICE}, None), 400),
    ("assignee of a newline", "put", "/checklists/0/items/0/assignee", ({"assignee_id": "\n"}, None), 400),
    ("nul in task title", "post", "/checklists/0/items", ({"title": "a\x00"}, None), 400),
    ("oversize body", "post", None, ('{"name": "' + "x" * 300_000 + '"}', JSON), 413),
]


def _snapshot(client, components, incident):
    listing = client.get("/api/v0/incidents", query_string={"team_id": TEAM, "per_page": 200},
                         headers=as_user(ALICE)).json
    return listing, components.host.posts(incident["channel_id"])


@pytest.mark.parametrize("method, suffix, payload, status", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_request_is_a_clear_4xx_and_changes_nothing(client, components, method, suffix, payload, status):
    incident = start(client, checklists=TWO_STAGES)
    before = _snapshot(client, components, incident)
    path = "/api/v0/incidents" if suffix is None else f"/api/v0/incidents/{incident['id']}{suffix}"
    body, content_type = payload
    kwargs = {"headers": as_user(ALICE)}
    if isinstance(body, str):
        kwargs.update(data=body, content_type=content_type)
    elif body is not None:
        kwargs["json"] = body
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.json
    assert set(response.json) == {"error", "details"}
    assert isinstance(response.json["error"], str) and len(response.json["error"]) > 10
    assert _snapshot(client, components, incident) == before


@pytest.mark.parametrize("query", [
    {"sort": "urgency"}, {"severity": "x" * 33}, {"direction": "up"}, {"status": "open"}, {"page": "-1"}, {"page": "x"},
    {"per_page": "0"}, {"per_page": "201"}, {"team_id": "nope"}, {"member_id": "x"}, {"bogus": "1"},
    {"search_term": "x" * 65}, {"search_term": "a\x00b"},
])
def test_bad_list_queries_are_400_naming_the_parameter(client, query):
    response = client.get("/api/v0/incidents", query_string={"team_id": TEAM, **query}, headers=as_user(ALICE))
    assert response.status_code == 400
    assert next(iter(query)) in response.json["error"]


@pytest.mark.parametrize("path", ["/api/v0/incidents/NOT-AN-ID", "/api/v0/incidents/channel/short",
                                  "/api/v0/incidents/" + "a" * 27])
def test_malformed_ids_in_paths_are_400(client, path):
    response = client.get(path, headers=as_user(ALICE))
    assert response.status_code == 400 and "26 characters" in response.json["error"]


def test_unknown_method_is_405_in_the_error_shape(client):
    response = client.delete("/api/v0/incidents", headers=as_user(ALICE))
    assert response.status_code == 405 and set(response.json) == {"error", "details"}


NUMBERED_ROUTES = [
    # (method, path under the incident with {c} for the stage and {i} for the task, body)
    ("post", "/checklists/{c}/items", {"title": "x"}),
    ("put", "/checklists/{c}/items/{i}", {"title": "x"}),
    ("delete", "/checklists/{c}/items/{i}", None),
    ("put", "/checklists/{c}/reorder", {"item_num": 0, "new_location": 1}),
    ("put", "/checklists/{c}/items/{i}/state", {"new_state": "closed"}),
    ("put", "/checklists/{c}/items/{i}/assignee", {"assignee_id": ""}),
    ("post", "/checklists/{c}/items/{i}/run", None),
]
NOT_NUMBERS = ["-1", "-0", "1.5", "1e3", "0x1", "%20", "one", "\u0663", "\uff11", "1" * 101]


NUMBERED_PARTS = [(part, *route) for route in NUMBERED_ROUTES for part in ("stage", "task")
                  if part == "stage" or "{i}" in route[1]]


@pytest.mark.parametrize("part, method, route, body", NUMBERED_PARTS,
                         ids=[f"{part} in {m} {r}" for part, m, r, _ in NUMBERED_PARTS])
def test_a_path_number_that_is_not_a_whole_number_from_0_is_a_400_naming_the_part(client, part, method, route, body):
    incident = start(client, checklists=TWO_STAGES)
    for bad in NOT_NUMBERS:
        path = route.format(c=bad if part == "stage" else "0", i=bad if part == "task" else "0")
        response = getattr(client, method)(f"/api/v0/incidents/{incident['id']}{path}", json=body,
                                           headers=as_user(ALICE))
        assert response.status_code == 400, (bad, response.json)
        assert response.json["error"].endswith(
            f" is not a {part} number: an incident's {part}s are numbered from 0 "
            "(0, 1, 2, ... as GET /api/v0/incidents/{id} lists them)."), response.json
        assert list(response.json["details"]) == [part]
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json == incident


@pytest.mark.parametrize("method, route, body", NUMBERED_ROUTES, ids=[f"{m} {r}" for m, r, _ in NUMBERED_ROUTES])
def test_a_path_number_past_the_last_stage_or_task_is_a_404_saying_how_many_there_are(client, method, route, body):
    incident = start(client, checklists=TWO_STAGES)
    base = f"/api/v0/incidents/{incident['id']}"
    stage = getattr(client, method)(base + route.format(c="2", i="0"), json=body, headers=as_user(ALICE))
    assert stage.status_code == 404
    assert stage.json == {"error": "Stage 2 does not exist: this incident has 2 stage(s), numbered from 0.",
                          "details": {"checklist": 2, "checklist_count": 2}}
    if "{i}" in route:
        task = getattr(client, method)(base + route.format(c="0", i="007"), json=body, headers=as_user(ALICE))
        assert task.status_code == 404
        assert task.json["error"] == 'Task 7 does not exist in stage "Triage": it has 2 task(s), numbered from 0.'
    assert client.get(base, headers=as_user(ALICE)).json == incident


def test_a_negative_number_in_a_path_is_never_a_404_that_blames_the_endpoint(client):
    incident = start(client, checklists=TWO_STAGES)
    path = f"/api/v0/incidents/{incident['id']}/checklists/-1/items/0"
    patched = client.patch(path, json={"title": "x"}, headers=as_user(ALICE))
    assert patched.status_code == 405 and patched.json["details"] == {"allowed": ["DELETE", "OPTIONS", "PUT"]}
    edited = client.put(path, json={"title": "x"}, headers=as_user(ALICE))
    assert edited.status_code == 400 and edited.json["details"] == {"stage": "-1"}


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-gzip", "GZIP", "gzip, identity"])
def test_a_compressed_body_is_a_415_asking_for_it_uncompressed_and_changes_nothing(client, components, encoding):
    incident = start(client, checklists=TWO_STAGES)
    before = _snapshot(client, components, incident)
    body = gzip.compress(json.dumps({"name": "x", "team_id": TEAM, "commander_user_id": ALICE}).encode())
    for method, path in (("post", "/api/v0/incidents"), ("patch", f"/api/v0/incidents/{incident['id']}")):
        response = getattr(client, method)(path, data=body, content_type=JSON,
                                           headers={**as_user(ALICE), "Content-Encoding": encoding})
        assert response.status_code == 415, response.json
        assert response.json == {
            "error": f"The body must be sent uncompressed (Content-Encoding: identity, or no Content-Encoding); "
                     f"this request said Content-Encoding: {encoding}.",
            "details": {"content_encoding": encoding}}
    assert _snapshot(client, components, incident) == before


def test_a_body_said_to_be_sent_as_it_is_is_read(client):
    response = client.post("/api/v0/incidents", json={"name": "plain", "team_id": TEAM, "commander_user_id": ALICE},
                           headers={**as_user(ALICE), "Content-Encoding": "identity"})
    assert response.status_code == 201 and response.json["name"] == "plain"


def test_an_oversize_or_mislabelled_body_gets_a_message_saying_what_to_send(client, components):
    limit = components.settings.current.max_body_bytes
    huge = client.post("/api/v0/incidents", data='{"name": "' + "x" * limit + '"}', content_type=JSON,
                       headers=as_user(ALICE))
    assert huge.status_code == 413
    assert huge.json == {"error": "The request body is too large; send less than the MaxBodyBytes setting allows.",
                         "details": {"max_body_bytes": limit}}
    for content_type in ("text/plain", "application/xml", "application/json-seq", "multipart/form-data; boundary=x"):
        mislabelled = client.post("/api/v0/incidents", data="{}", content_type=content_type, headers=as_user(ALICE))
        assert mislabelled.status_code == 415
        assert mislabelled.json["error"].startswith("The body must be JSON, sent with the header Content-Type: "
                                                    "application/json (this request said ")


def test_the_openapi_document_gives_path_numbers_from_0_and_states_the_status_rules(client):
    document = client.get("/api/v0/openapi.json").json
    operation = document["paths"]["/api/v0/incidents/{incident_id}/checklists/{checklist}/items/{item}"]["put"]
    parameters = {p["name"]: p["schema"] for p in document["paths"][
        "/api/v0/incidents/{incident_id}/checklists/{checklist}/items/{item}"].get("parameters", [])
        + operation.get("parameters", []) if p["in"] == "path"}
    assert parameters["checklist"]["type"] == parameters["item"]["type"] == "integer"
    assert parameters["checklist"]["minimum"] == parameters["item"]["minimum"] == 0
    rules = document["info"]["description"]
    assert "numbered from 0" in rules and "409 is only for" in rules and "Content-Encoding" in rules


def test_a_number_in_the_body_too_long_to_read_is_a_400_not_a_server_error(client, components):
    incident = start(client, checklists=TWO_STAGES)
    before = _snapshot(client, components, incident)
    response = client.patch(f"/api/v0/incidents/{incident['id']}", data='{"active_stage": 1' + "0" * 5000 + "}",
                            content_type=JSON, headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json["error"] == "The body is not valid JSON: a number in it has too many digits to read."
    assert _snapshot(client, components, incident) == before


@pytest.mark.parametrize("method, suffix, raw, field", [
    ("post", None, '{"name": "a", "name": "b", "team_id": "%s", "commander_user_id": "%s"}' % (TEAM, ALICE), "name"),
    ("patch", "", '{"active_stage": 1, "active_stage": 0}', "active_stage"),
    ("post", "/timeline", '{"summary": "s", "details": {"who": "a", "who": "b"}}', "who"),
])
def test_a_body_giving_a_field_twice_is_a_400_naming_it_and_changes_nothing(client, components, method, suffix,
                                                                            raw, field):
    # Which of the two a reader takes differs between parsers: a proxy may check one, the server use the other.
    incident = start(client, checklists=TWO_STAGES)
    before = _snapshot(client, components, incident)
    path = "/api/v0/incidents" if suffix is None else f"/api/v0/incidents/{incident['id']}{suffix}"
    response = getattr(client, method)(path, data=raw, content_type=JSON, headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json == {"error": f'The body gives the field "{field}" more than once: give each field once.',
                             "details": {"field": field}}
    assert _snapshot(client, components, incident) == before


@pytest.mark.parametrize("path, query, name", [
    ("/api/v0/incidents", {"team_id": [TEAM, uid("other")]}, "team_id"),
    ("/api/v0/incidents", {"team_id": TEAM, "page": ["0", "1"]}, "page"),
    ("/api/v0/incidents", {"team_id": TEAM, "status": ["active", "ended"]}, "status"),
    ("/api/v0/stats", {"team_id": TEAM, "from": ["0", "1"]}, "from"),
])
def test_a_query_parameter_given_twice_is_a_400_naming_it(client, path, query, name):
    start(client)
    response = client.get(path, query_string=query, headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json["error"] == f"Invalid request: {name}: Given 2 times: give it once."


def test_a_list_query_parameter_may_be_repeated(client):
    incident = start(client)
    response = client.get(f"/api/v0/incidents/{incident['id']}/timeline",
                          query_string={"event_type": ["incident_created", "note"]}, headers=as_user(ALICE))
    assert response.status_code == 200 and [e["event_type"] for e in response.json] == ["incident_created"]


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "UTF-32"])
def test_a_body_in_another_charset_than_utf_8_is_a_415_asking_for_utf_8(client, charset):
    body = json.dumps({"name": "x", "team_id": TEAM, "commander_user_id": ALICE}).encode(charset.lower())
    response = client.post("/api/v0/incidents", data=body, content_type=f"application/json; charset={charset}",
                           headers=as_user(ALICE))
    assert response.status_code == 415
    assert response.json == {"error": f"The body must be JSON in UTF-8; this request said charset={charset}.",
                             "details": {"charset": charset}}


def test_a_body_saying_it_is_utf_8_is_read(client):
    response = client.post("/api/v0/incidents", data=json.dumps({"name": "caf\u00e9", "team_id": TEAM,
                                                                 "commander_user_id": ALICE}),
                           content_type="application/json; charset=UTF-8", headers=as_user(ALICE))
    assert response.status_code == 201 and response.json["name"] == "caf\u00e9"


@pytest.mark.parametrize("written", ["+1", "1_0", " 1", "1 ", "\u0661", "0x1", "1.0", ""])
@pytest.mark.parametrize("path, query, name", [
    ("/api/v0/incidents", {"team_id": TEAM}, "page"),
    ("/api/v0/incidents", {"team_id": TEAM}, "per_page"),
    ("/api/v0/playbooks", {"team_id": TEAM}, "page"),
    ("/api/v0/stats", {"team_id": TEAM}, "from"),
    ("/api/v0/stats", {"team_id": TEAM}, "to"),
    ("/api/v0/webhooks", {}, "per_page"),
    ("/api/v0/egress", {}, "days"),
    ("/api/v0/telemetry", {}, "limit"),
])
def test_a_query_number_not_written_in_the_digits_0_to_9_is_a_400_naming_it(client, path, query, name, written):
    # Path numbers are read this way too: one rule, and no "+1" or "1_0" read as a number.
    response = client.get(path, query_string={**query, name: written}, headers=as_user(ADMIN))
    assert response.status_code == 400, response.json
    assert response.json["details"] == {
        "query": {name: ["Must be a whole number from 0, written with the digits 0-9 only."]}}


@pytest.mark.parametrize("path, query", [
    ("/api/v0/incidents", {"team_id": TEAM, "page": "007", "per_page": "10"}),
    ("/api/v0/stats", {"team_id": TEAM, "from": "1600000000000", "to": "1700000000000"}),
    ("/api/v0/egress", {"days": "7"}),
    ("/api/v0/telemetry", {"limit": "0"}),
])
def test_query_numbers_in_the_digits_0_to_9_are_read(client, path, query):
    assert client.get(path, query_string=query, headers=as_user(ADMIN)).status_code == 200
