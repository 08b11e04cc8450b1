"""Logs at INFO and above: one access line per request, and no text people typed."""
from __future__ import annotations

import logging
import re

from tests.conftest import ALICE, BOB, TEAM, as_user

CANARY = "canary7f3q"
ACCESS_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*) (\d{3}) (\d+\.\d)ms user=([a-z0-9]{26}|-)$")


def lifecycle(client) -> list[tuple[str, str, int, str]]:
    """A whole incident's life with canary text everywhere; returns (method, path, status, user) per request."""
    sent: list[tuple[str, str, int, str]] = []

    def call(method: str, path: str, user: str | None = ALICE, body=None, query: str = "") -> dict:
        headers = as_user(user) if user else {}
        response = client.open(path + query, method=method, json=body, headers=headers)
        sent.append((method, path, response.status_code, user or "-"))
        return response.json

    stages = [{"title": f"{CANARY} stage {n}", "items": [
        {"title": f"{CANARY} task", "description": f"{CANARY} secret steps", "command": f"/echo {CANARY}"}]}
        for n in range(2)]
    incident = call("POST", "/api/v0/incidents", body={
        "name": f"{CANARY} name", "description": f"{CANARY} description", "team_id": TEAM,
        "commander_user_id": ALICE, "checklists": stages})
    base = f"/api/v0/incidents/{incident['id']}"
    call("GET", base)
    call("GET", "/api/v0/incidents", query=f"?team_id={TEAM}&search_term={CANARY}")
    call("POST", f"{base}/checklists/0/items", body={"title": f"{CANARY} added", "description": CANARY})
    call("PUT", f"{base}/checklists/0/items/1", body={"title": f"{CANARY} renamed"})
    call("PUT", f"{base}/checklists/0/items/0/state", body={"new_state": "closed"})
    call("PUT", f"{base}/checklists/0/items/0/assignee", body={"assignee_id": ALICE})
    call("PUT", f"{base}/checklists/0/reorder", body={"item_num": 0, "new_location": 1})
    call("PATCH", base, body={"active_stage": 1})
    call("PUT", f"{base}/end")
    call("PUT", f"{base}/restart")
    call("DELETE", f"{base}/checklists/0/items/0")
    # Refused requests carrying canary text must not leak it either.
    call("POST", "/api/v0/incidents", body={"name": CANARY * 20, "team_id": TEAM, "commander_user_id": ALICE})
    call("POST", f"{base}/checklists/0/items", body={"title": CANARY, f"{CANARY}_field": CANARY})
    call("PUT", f"{base}/end", user=BOB)
    call("GET", base, user=None)
    return sent


def test_incident_lifecycle_logs_no_names_descriptions_or_task_text(client, caplog):
    caplog.set_level(logging.INFO)
    lifecycle(client)
    assert caplog.records, "the requests should have been logged"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "extra", ""))
        assert CANARY not in text, f"{record.name}: {text}"


def test_each_request_gets_one_access_line_with_method_path_status_duration_and_user(client, caplog):
    caplog.set_level(logging.INFO, logger="plugin.access")
    sent = lifecycle(client)
    lines = [record.getMessage() for record in caplog.records if record.name == "plugin.access"]
    assert len(lines) == len(sent)
    for line, (method, path, status, user) in zip(lines, sent):
        match = ACCESS_LINE.match(line)
        assert match, line
        assert match.group(1, 2, 3, 5) == (method, path, str(status), user)
    assert {status for _, _, status, _ in sent} >= {200, 201, 400, 401, 403}


def test_access_line_records_the_user_even_when_the_request_is_refused(client, caplog):
    caplog.set_level(logging.INFO, logger="plugin.access")
    client.get("/api/v0/incidents/" + "a" * 26, headers=as_user(BOB))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "plugin.access"]
    assert line.startswith(f"GET /api/v0/incidents/{'a' * 26} 404 ") and line.endswith(f"user={BOB}")
