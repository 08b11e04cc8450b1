"""Small request helpers shared by the API tests."""
from __future__ import annotations

from typing import Any

from tests.conftest import ALICE, TEAM, as_user

TWO_STAGES = [
    {"title": "Triage", "items": [{"title": "Page the on-call"}, {"title": "Open a status page"}]},
    {"title": "Resolve", "items": [{"title": "Roll back", "command": "/deploy rollback"}]},
]


def start(client: Any, user: str = ALICE, **body: Any) -> dict[str, Any]:
    """Create an incident through the API and return it (asserting 201)."""
    payload = {"name": "db is down", "team_id": TEAM, "commander_user_id": user, **body}
    response = client.post("/api/v0/incidents", json=payload, headers=as_user(user))
    assert response.status_code == 201, response.json
    return response.json
