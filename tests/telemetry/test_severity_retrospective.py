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
