"""Concurrent mutations on the same incidents lose nothing, on SQLite (a file) and PostgreSQL.

Eight threads each apply random mutations to three shared incidents through the
service. A recording telemetry fake notes, for each committed unit of work,
the incident's new version, the mutation that produced it and a snapshot of the
result. Because every mutation writes only if the incident is still at the
version it read (otherwise it is made again on a fresh read), the accepted
mutations of one incident form the sequence of versions 1..N: replaying them
serially on the starting state must give each snapshot in turn and the stored
final state. Refused mutations (a task index that no longer exists) and no-ops
record nothing.

A second test sends the same mutations as API requests through the Flask test
client: no answer may be a 5xx, and the same replay must hold.

Size: ``INCIDENT_RELIABILITY_MUTATIONS`` per thread (default 500, the full size,
which the suite runs in about 40 s on both databases; the API variant sends a
third as many).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import random
import threading
from functools import partial
from typing import Any

import sqlalchemy as sa

from plugin.app import create_app
from plugin.errors import DomainError
from plugin.events import IncidentEvent, TaskEvent, TelemetryEvent
from plugin.model import ChecklistItem, Incident, ItemState, checklists_from_json, checklists_to_json
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem
from plugin.store.tables import telemetry_outbox
from plugin.telemetry import OutboxRow
from tests.conftest import ALICE, BOB, CAROL, TEAM, as_user
from tests.threads import run_in_threads

THREADS = 8
MUTATIONS = int(os.environ.get("INCIDENT_RELIABILITY_MUTATIONS", "500"))
TIMEOUT_SECONDS = float(os.environ.get("INCIDENT_RELIABILITY_TIMEOUT", "120"))
MEMBERS = (ALICE, BOB, CAROL)
FIXED_NOW = 1_700_000_000_000


class RecordingTelemetry:
    """Telemetry fake whose outbox rows carry the change: the incident after it and the mutation that made it.

    The rows are stored in the transaction of the change, like every telemetry
    event: the outbox holds one row per committed change, and none for an attempt
    whose commit failed (a concurrent change came first: the service made it again).
    """

    def __init__(self) -> None:
        self.current = threading.local()
        self.db: Any = None  # set once the app is built: the records are read from its outbox
        self._mutations: dict[int, Any] = {}
        self._lock = threading.Lock()

    def row(self, event: TelemetryEvent) -> OutboxRow | None:
        if not isinstance(event, (IncidentEvent, TaskEvent)) or event.action == "create":
            return None
        with self._lock:
            token = len(self._mutations)
            self._mutations[token] = getattr(self.current, "mutation", None)
        incident = event.incident
        after = {name: getattr(incident, name) for name in SCALARS}
        after.update(version=incident.version + 1, checklists=checklists_to_json(incident.checklists))
        return OutboxRow("recorded", {"id": incident.id, "version": after["version"], "action": event.action,
                                      "mutation": token, "after": after}, 0, 10**9)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The committed changes, in the order they were stored."""
        with self.db.read_engine.connect() as connection:
            rows = connection.execute(sa.select(telemetry_outbox.c.properties).where(
                telemetry_outbox.c.event == "recorded").order_by(telemetry_outbox.c.seq)).scalars().all()
        return [{**row, "mutation": self._mutations[row["mutation"]],
                 "after": Incident(**{**row["after"], "checklists": checklists_from_json(row["after"]["checklists"])})}
                for row in rows]


SCALARS = [field.name for field in dataclasses.fields(Incident) if field.name != "checklists"]


def random_mutation(rng: random.Random) -> tuple:
    """One mutation, chosen without looking at the current state (so some are refused)."""
    kind = rng.choice(["commander", "stage", "state", "assignee", "add", "add", "remove", "move"])
    stage = rng.randrange(3)
    if kind == "commander":
        return ("commander", rng.choice(MEMBERS))
    if kind == "stage":
        return ("stage", stage)
    if kind == "state":
        return ("state", stage, rng.randrange(4), rng.choice(list(ItemState)))
    if kind == "assignee":
        return ("assignee", stage, rng.randrange(4), rng.choice([*MEMBERS, ""]))
    if kind == "add":
        return ("add", stage, f"task {rng.randrange(10**6)}")
    if kind == "remove":
        return ("remove", stage, rng.randrange(4))
    return ("move", stage, rng.randrange(4), rng.randrange(4))


def apply_through_service(service: IncidentService, user: str, incident_id: str, mutation: tuple) -> None:
    """Send one mutation through the service, as the API would."""
    kind, *args = mutation
    if kind == "commander":
        service.change_commander(user, incident_id, args[0])
    elif kind == "stage":
        service.set_active_stage(user, incident_id, args[0])
    elif kind == "state":
        service.set_item_state(user, incident_id, *args)
    elif kind == "assignee":
        service.set_item_assignee(user, incident_id, *args)
    elif kind == "add":
        service.add_item(user, incident_id, args[0], NewItem(args[1]))
    elif kind == "remove":
        service.remove_item(user, incident_id, *args)
    else:
        service.move_item(user, incident_id, *args)


def replay(incident: Incident, mutation: tuple, after: Incident) -> None:
    """Apply one accepted mutation with the model's own rules (the serial replay)."""
    kind, *args = mutation
    if kind == "commander":
        assert incident.change_commander(args[0])
    elif kind == "stage":
        assert incident.set_active_stage(args[0])
    elif kind == "state":
        # The time of the change comes from the service's clock: take it from the snapshot.
        assert incident.set_item_state(*args, after.checklists[args[0]].items[args[1]].state_modified)
    elif kind == "assignee":
        assert incident.set_item_assignee(*args)
    elif kind == "add":
        # The new task's id was drawn at random inside the service: take it from the snapshot.
        added = after.checklists[args[0]].items[-1]
        assert added.title == args[1]
        incident.add_item(args[0], ChecklistItem(added.id, args[1]))
    elif kind == "remove":
        incident.remove_item(*args)
    else:
        assert incident.move_item(*args)
    incident.version += 1


def shared_incidents(service: IncidentService, telemetry: RecordingTelemetry, host) -> list[Incident]:
    """Three incidents of three stages with two tasks each, all three members in each channel."""
    stages = [NewChecklist(f"stage {n}", [NewItem(f"task {n}.{i}") for i in range(2)]) for n in range(3)]
    telemetry.current.mutation = None
    incidents = [service.create_incident(ALICE, NewIncident(f"shared {n}", TEAM, ALICE, checklists=stages))
                 for n in range(3)]
    for incident in incidents:
        for member in MEMBERS:
            host.add_channel_member(incident.channel_id, member)
    return incidents


def run_workers(incidents: list[Incident], telemetry: RecordingTelemetry, send, mutations: int) -> list[int]:
    """Eight threads of random mutations; returns how many each had refused."""
    refused = [0] * THREADS

    def worker(number: int) -> None:
        rng = random.Random(number)
        for _ in range(mutations):
            incident_id = rng.choice(incidents).id
            mutation = random_mutation(rng)
            telemetry.current.mutation = mutation
            if not send(MEMBERS[number % 3], incident_id, mutation):
                refused[number] += 1

    run_in_threads(worker, THREADS, TIMEOUT_SECONDS, "workers")
    return refused


def assert_serial_replay(service: IncidentService, telemetry: RecordingTelemetry, starting: dict[str, Incident],
                         attempted: int, refused: list[int]) -> None:
    """Per incident, the accepted mutations replayed in version order give the stored state."""
    accepted = 0
    for incident_id, replayed in starting.items():
        records = sorted((r for r in telemetry.records if r["id"] == incident_id), key=lambda r: r["version"])
        assert [r["version"] for r in records] == list(range(1, len(records) + 1)), \
            "every accepted mutation has its own version: none lost, none applied twice"
        for record in records:
            replay(replayed, record["mutation"], record["after"])
            assert replayed == record["after"], f"replay differs after version {record['version']}"
        stored = service.get_incident(ALICE, incident_id)
        assert stored == replayed
        assert stored.version == len(records)
        accepted += len(records)
    assert accepted > attempted // 4, "a good share of the mutations should be accepted"
    assert accepted + sum(refused) <= attempted


def test_concurrent_random_mutations_equal_a_serial_replay_of_the_accepted_ones(components):
    telemetry = RecordingTelemetry()
    telemetry.db = components.db
    service = IncidentService(partial(components.db.unit_of_work, telemetry=telemetry, local_chat=True),
                              components.host, clock=lambda: FIXED_NOW)
    incidents = shared_incidents(service, telemetry, components.host)
    starting = {incident.id: copy.deepcopy(incident) for incident in incidents}

    def send(user: str, incident_id: str, mutation: tuple) -> bool:
        try:
            apply_through_service(service, user, incident_id, mutation)
        except DomainError:
            return False
        return True

    refused = run_workers(incidents, telemetry, send, MUTATIONS)
    assert_serial_replay(service, telemetry, starting, THREADS * MUTATIONS, refused)


def http_request(mutation: tuple, incident_id: str) -> tuple[str, str, dict[str, Any]]:
    """The API request for one mutation: (method, path, JSON body)."""
    kind, *args = mutation
    base = f"/api/v0/incidents/{incident_id}"
    if kind == "commander":
        return "POST", f"{base}/commander", {"commander_id": args[0]}
    if kind == "stage":
        return "PATCH", base, {"active_stage": args[0]}
    if kind == "add":
        return "POST", f"{base}/checklists/{args[0]}/items", {"title": args[1]}
    if kind == "move":
        return "PUT", f"{base}/checklists/{args[0]}/reorder", {"item_num": args[1], "new_location": args[2]}
    item = f"{base}/checklists/{args[0]}/items/{args[1]}"
    if kind == "state":
        return "PUT", f"{item}/state", {"new_state": args[2].value}
    if kind == "assignee":
        return "PUT", f"{item}/assignee", {"assignee_id": args[2]}
    return "DELETE", item, None


def test_concurrent_random_api_requests_never_fail_with_5xx_and_equal_a_serial_replay(settings):
    telemetry = RecordingTelemetry()
    app = create_app(settings, telemetry=telemetry, migrate_db=False)
    components = app.extensions["incident"]
    telemetry.db = components.db
    try:
        incidents = shared_incidents(components.service, telemetry, components.host)
        starting = {incident.id: copy.deepcopy(incident) for incident in incidents}

        def send(user: str, incident_id: str, mutation: tuple) -> bool:
            method, path, body = http_request(mutation, incident_id)
            response = app.test_client().open(path, method=method, json=body, headers=as_user(user))
            assert response.status_code < 500, (mutation, response.status_code, response.json)
            assert response.status_code in (200, 400, 404, 409), (mutation, response.status_code, response.json)
            return response.status_code == 200

        refused = run_workers(incidents, telemetry, send, max(10, MUTATIONS // 3))
        assert_serial_replay(components.service, telemetry, starting, THREADS * max(10, MUTATIONS // 3), refused)
    finally:
        components.db.dispose()
