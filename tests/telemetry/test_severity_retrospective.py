"""Severity and retrospective changes send positions and that they happened: never a level's name nor any text."""
from __future__ import annotations

import json
from typing import Any

from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.telemetry.dataplane import wait_until

# The admins' level names are content: long, capitalised words that cannot occur in an id or an action.
LEVELS = ["CANARYCritical", "CANARYMäjor", "CANARYMinor"]


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.json
    return response.json


def _leaks(data: bytes, canary: str) -> bool:
    text = data.decode("utf-8")
    return canary in text or json.dumps(canary)[1:-1] in text


def _sent(dataplane: Any, before: int, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(dataplane.delivered()) >= before + count)
    return [message["properties"] for message in dataplane.delivered()[before:]]


def test_severity_changes_send_ranks_counted_from_one_and_never_the_level_names(tclient, dataplane):
    _ok(tclient.put("/api/v0/settings", headers=as_user(ADMIN), json={"SeverityLevels": ",".join(LEVELS)}))
    before = len(dataplane.delivered())
    user = as_user(ALICE)
    incident = _ok(tclient.post("/api/v0/incidents", headers=user, json={
        "name": "db", "team_id": TEAM, "commander_user_id": ALICE, "severity": LEVELS[2]}), 201)
    base = f"/api/v0/incidents/{incident['id']}"
    _ok(tclient.patch(base, headers=user, json={"severity": LEVELS[0]}))
    _ok(tclient.patch(base, headers=user, json={"severity": LEVELS[0]}))  # no-op: no event
    assert tclient.patch(base, headers=user, json={"severity": "CANARYUnknown"}).status_code == 400  # no event
    _ok(tclient.patch(base, headers=user, json={"severity": ""}))
    sent = _sent(dataplane, before, 3)
    assert [(p["Action"], p["SeverityRank"], p.get("PreviousSeverityRank")) for p in sent] == [
        ("create", 3, None), ("change_severity", 1, 3), ("change_severity", -1, 1)]
    data = dataplane.all_bytes()
    for canary in (*LEVELS, "CANARYUnknown", "CANARY"):
        assert not _leaks(data, canary), canary


def test_retrospective_writes_and_publications_send_that_they_happened_and_nothing_of_the_text(tclient, dataplane):
    user = as_user(ALICE)
    template, text = "CANARYTemplate über alles", "CANARYRetrospective 漢字 " * 50
    before = len(dataplane.delivered())
    playbook = _ok(tclient.post("/api/v0/playbooks", headers=user, json={
        "title": "p", "team_id": TEAM, "retrospective_template": template}), 201)
    incident = _ok(tclient.post("/api/v0/incidents", headers=user, json={
        "name": "db", "team_id": TEAM, "commander_user_id": ALICE, "playbook_id": playbook["id"]}), 201)
    base = f"/api/v0/incidents/{incident['id']}"
    assert tclient.put(f"{base}/retrospective", headers=user, json={"text": text}).status_code == 409  # no event
    _ok(tclient.put(f"{base}/end", headers=user))
    assert tclient.post(f"{base}/retrospective/publish", headers=user).status_code == 409  # the template: no event
    _ok(tclient.put(f"{base}/retrospective", headers=user, json={"text": text}))
    _ok(tclient.put(f"{base}/retrospective", headers=user, json={"text": text}))  # no-op: no event
    _ok(tclient.post(f"{base}/retrospective/publish", headers=user))
    sent = _sent(dataplane, before, 5)[2:]  # after the playbook's and the incident's creation
    assert [p["Action"] for p in sent] == ["end", "update_retrospective", "publish_retrospective"]
    metadata = set(sent[0]) - {"Action"}
    assert all(set(p) - {"Action"} == metadata for p in sent)  # nothing beyond the incident's metadata
    data = dataplane.all_bytes()
    for canary in (template, text, "CANARY", str(len(text))):
        assert not _leaks(data, canary), canary
