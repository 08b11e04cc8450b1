"""Drive every incident mutation through the API, returning the events each should send."""
from __future__ import annotations

from typing import Any

from tests.conftest import ALICE, BOB, TEAM, as_user


def _ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.json
    return response.json


def drive_every_mutation(client: Any, components: Any, *, name: str = "db is down", description: str = "",
                         stages: list[str] | None = None, tasks: list[str] | None = None,
                         new_title: str = "renamed", public: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """Run a full incident lifecycle (with no-ops and refusals in between); return its id and expected events."""
    stages = stages or ["Triage", "Resolve"]
    tasks = tasks or ["Page the on-call", "Open a status page"]
    checklists = [{"title": stage, "items": [{"title": task, "description": task} for task in tasks]}
                  for stage in stages]
    user = as_user(ALICE)
    incident = _ok(client.post("/api/v0/incidents", headers=user, json={
        "name": name, "description": description, "team_id": TEAM, "commander_user_id": ALICE,
        "public": public, "checklists": checklists}), 201)
    base = f"/api/v0/incidents/{incident['id']}"
    item = f"{base}/checklists/0/items"
    _ok(client.patch(base, headers=user, json={"active_stage": 1}))
    _ok(client.patch(base, headers=user, json={"active_stage": 1}))  # no-op: no event
    _ok(client.post(item, headers=user, json={"title": tasks[0] + " again", "description": description}))
    _ok(client.put(f"{item}/0", headers=user, json={"title": f"{new_title} (renamed)"}))
    _ok(client.put(f"{base}/checklists/0/reorder", headers=user, json={"item_num": 0, "new_location": 2}))
    _ok(client.put(f"{item}/1/state", headers=user, json={"new_state": "in_progress"}))
    _ok(client.put(f"{item}/1/state", headers=user, json={"new_state": "in_progress"}))  # no-op
    _ok(client.put(f"{item}/1/assignee", headers=user, json={"assignee_id": BOB}))
    _ok(client.delete(f"{item}/2", headers=user))
    components.host.add_channel_member(incident["channel_id"], BOB)
    _ok(client.post(f"{base}/commander", headers=user, json={"commander_id": BOB}))
    _ok(client.post(f"{base}/commander", headers=user, json={"commander_id": BOB}))  # no-op
    _ok(client.put(f"{base}/end", headers=user))
    assert client.put(f"{base}/end", headers=user).status_code == 409  # refused: no event
    _ok(client.put(f"{base}/restart", headers=user))
    return incident["id"], [
        ("incident", "create"), ("incident", "change_stage"), ("tasks", "add_task"), ("tasks", "rename_task"),
        ("tasks", "move_task"), ("tasks", "modify_task_state"), ("tasks", "set_assignee_for_task"),
        ("tasks", "remove_task"), ("incident", "change_commander"), ("incident", "end"),
        ("incident", "restart"),
    ]


def drive_the_timeline(client: Any, incident_id: str, note: str = "rolled back the deploy") -> list[tuple[str, str]]:
    """Add a note to an incident's timeline (with a refusal in between) and delete it; return the events expected."""
    user = as_user(ALICE)
    base = f"/api/v0/incidents/{incident_id}/timeline"
    added = _ok(client.post(base, headers=user, json={"summary": note, "details": {"said": note}, "event_at": 1}), 201)
    assert client.post(base, headers=user, json={"summary": ""}).status_code == 400  # refused: no event
    assert client.delete(f"{base}/{added['id']}", headers=user).status_code == 204
    return [("incident", "add_timeline_event"), ("incident", "remove_timeline_event")]


def drive_status_updates(client: Any, components: Any, *, name: str = "db is down",
                         update: str = "rolled back") -> tuple[str, list[tuple[str, str]]]:
    """Broadcast channels, a status update and a snooze on a new incident (with a no-op and a refusal);
    return its id and the events they should send."""
    user = as_user(ALICE)
    incident = _ok(client.post("/api/v0/incidents", headers=user, json={
        "name": name, "team_id": TEAM, "commander_user_id": ALICE}), 201)
    base = f"/api/v0/incidents/{incident['id']}"
    stakeholders = components.host.create_channel(TEAM, "stakeholders", "Stakeholders", public=True,
                                                  member_ids=[ALICE])
    _ok(client.patch(base, headers=user, json={"broadcast_channel_ids": [stakeholders]}))
    _ok(client.patch(base, headers=user, json={"broadcast_channel_ids": [stakeholders]}))  # no-op: no event
    _ok(client.post(f"{base}/status-updates", headers=user, json={"message": update, "reminder_seconds": 1800}), 201)
    _ok(client.post(f"{base}/reminder", headers=user, json={"seconds": 0}))
    _ok(client.put(f"{base}/end", headers=user))
    assert client.post(f"{base}/status-updates", headers=user, json={"message": update}).status_code == 409
    return incident["id"], [("incident", "create"), ("incident", "change_broadcast_channels"),
                            ("incident", "update_status"), ("incident", "change_reminder"), ("incident", "end")]
