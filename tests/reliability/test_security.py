"""Refused requests: each gets the right status in the one error shape and changes nothing."""
from __future__ import annotations

import io
import json

import pytest

from plugin.api import SECRET_HEADER, USER_HEADER
from plugin.model import IncidentFilter
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ALICE, BOB, OTHER_TEAM, TEAM, as_user

SECRET = "s3cret-of-the-chat-host-0123456789"

# Every write route, as (method, path under the incident, JSON body).
WRITES = [
    ("PUT", "/end", None),
    ("PUT", "/restart", None),
    ("POST", "/commander", {"commander_id": BOB}),
    ("PATCH", "", {"active_stage": 1}),
    ("POST", "/checklists/0/items", {"title": "sneaky task"}),
    ("PUT", "/checklists/0/items/0", {"title": "renamed"}),
    ("DELETE", "/checklists/0/items/0", None),
    ("PUT", "/checklists/0/reorder", {"item_num": 0, "new_location": 1}),
    ("PUT", "/checklists/0/items/0/state", {"new_state": "closed"}),
    ("PUT", "/checklists/0/items/0/assignee", {"assignee_id": BOB}),
]
WRITE_IDS = [f"{method} {path or '/'}" for method, path, _ in WRITES]


def snapshot(components) -> list:
    """Everything stored about incidents and posts, to compare before and after."""
    with components.db.unit_of_work(write=False) as uow:
        _, incidents = uow.incidents.list(IncidentFilter(per_page=200))
    return [(i, components.host.posts(i.channel_id)) for i in incidents]


def assert_error(response, status: int) -> None:
    """The status, in the one error shape."""
    assert response.status_code == status, response.json
    assert set(response.json) == {"error", "details"} and response.json["error"]


def send(client, method: str, path: str, body, headers: dict[str, str]):
    """One request with an optional JSON body."""
    return client.open(path, method=method, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_write_without_user_header_is_refused_with_401_and_changes_nothing(client, components, method, path, body):
    incident = start(client, checklists=TWO_STAGES)
    before = snapshot(components)
    assert_error(send(client, method, f"/api/v0/incidents/{incident['id']}{path}", body, {}), 401)
    assert snapshot(components) == before


def test_create_without_user_header_is_refused_with_401_and_creates_nothing(client, components):
    response = client.post("/api/v0/incidents", json={"name": "x", "team_id": TEAM, "commander_user_id": ALICE})
    assert_error(response, 401)
    assert snapshot(components) == []


@pytest.mark.parametrize("secret_header", [{}, {SECRET_HEADER: "wrong"}], ids=["no-secret", "wrong-secret"])
def test_forged_user_header_without_the_host_secret_is_refused_with_401(client, components, secret_header):
    incident = start(client, checklists=TWO_STAGES)
    live = components.settings
    live.replace(live.current.replace(HostSecret=SECRET))
    before = snapshot(components)
    headers = {**as_user(ALICE), **secret_header}
    assert_error(client.get(f"/api/v0/incidents/{incident['id']}", headers=headers), 401)
    assert_error(client.put(f"/api/v0/incidents/{incident['id']}/end", headers=headers), 401)
    assert_error(client.post("/api/v0/incidents", headers=headers,
                             json={"name": "x", "team_id": TEAM, "commander_user_id": ALICE}), 401)
    assert snapshot(components) == before
    allowed = client.get(f"/api/v0/incidents/{incident['id']}", headers={**as_user(ALICE), SECRET_HEADER: SECRET})
    assert allowed.status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_write_by_a_user_outside_the_channel_is_refused_with_403_and_changes_nothing(client, components, method,
                                                                                      path, body):
    incident = start(client, checklists=TWO_STAGES)
    before = snapshot(components)
    assert_error(send(client, method, f"/api/v0/incidents/{incident['id']}{path}", body, as_user(BOB)), 403)
    assert snapshot(components) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=WRITE_IDS)
def test_write_to_another_teams_private_incident_by_a_non_member_is_refused(client, components, method, path, body):
    incident = start(client, team_id=OTHER_TEAM, checklists=TWO_STAGES)
    before = snapshot(components)
    assert_error(send(client, method, f"/api/v0/incidents/{incident['id']}{path}", body, as_user(BOB)), 403)
    assert_error(client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(BOB)), 403)
    listed = client.get(f"/api/v0/incidents?team_id={OTHER_TEAM}", headers=as_user(BOB))
    assert listed.status_code == 200 and listed.json["items"] == []
    assert snapshot(components) == before


def test_body_over_max_body_bytes_is_refused_with_413_and_creates_nothing(client, components):
    live = components.settings
    live.replace(live.current.replace(MaxBodyBytes=2048))
    body = {"name": "big", "team_id": TEAM, "commander_user_id": ALICE, "description": "x" * 4000}
    response = client.post("/api/v0/incidents", json=body, headers=as_user(ALICE))
    assert_error(response, 413)
    assert response.json["details"]["max_body_bytes"] == 2048
    assert snapshot(components) == []


def chunked_create(client, size: int):
    """A create whose valid JSON body, padded to ``size`` bytes, comes chunked: no Content-Length.

    As a WSGI server that decodes chunked bodies hands it on: the stream, marked as
    ended by the server (``wsgi.input_terminated``).
    """
    body = json.dumps({"name": "padded", "team_id": TEAM, "commander_user_id": ALICE}).encode()
    body += b" " * (size - len(body))
    return client.post("/api/v0/incidents", input_stream=io.BytesIO(body),
                       headers={**as_user(ALICE), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_chunked_body_over_max_body_bytes_set_at_run_time_is_refused_with_413_and_creates_nothing(client, components):
    live = components.settings
    live.replace(live.current.replace(MaxBodyBytes=2048))
    for size in (2049, 10_000):
        response = chunked_create(client, size)
        assert_error(response, 413)
        assert response.json["details"]["max_body_bytes"] == 2048
    assert snapshot(components) == []


def test_chunked_body_of_exactly_max_body_bytes_is_accepted_whole(client, components):
    live = components.settings
    live.replace(live.current.replace(MaxBodyBytes=2048))
    response = chunked_create(client, 2048)
    assert response.status_code == 201 and response.json["name"] == "padded"


def test_oversize_task_on_an_existing_incident_is_refused_with_413_and_changes_nothing(client, components):
    incident = start(client, checklists=TWO_STAGES)
    live = components.settings
    live.replace(live.current.replace(MaxBodyBytes=1024))
    before = snapshot(components)
    response = client.post(f"/api/v0/incidents/{incident['id']}/checklists/0/items", headers=as_user(ALICE),
                           json={"title": "t", "description": "y" * 2000})
    assert_error(response, 413)
    assert snapshot(components) == before


def test_malformed_user_header_is_refused_with_401(client, components):
    response = client.post("/api/v0/incidents", headers={USER_HEADER: "Robert'); DROP TABLE incidents;--"},
                           json={"name": "x", "team_id": TEAM, "commander_user_id": ALICE})
    assert_error(response, 401)
    assert snapshot(components) == []
