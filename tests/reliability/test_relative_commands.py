"""Commands whose change depends on the current state, sent by many users at once (SQLite and PostgreSQL).

`/incident stage next`, `stage prev` and `check` are relative: where they go depends
on where the incident is. Twenty users send one at the same moment through the real
app's ``/command`` endpoint. A recording telemetry fake notes every committed change
with the incident after it and the sender, so the changes can be read in version
order: each must be one step from the state the previous one left, and each
sender's reply must say what that sender's own change did. `stage next` is also sent
to a served app of three worker processes, and the last section makes each race
happen one at a time.
"""
from __future__ import annotations

import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from plugin.app import create_app
from plugin.chat.local import LocalChatHost
from plugin.errors import InvalidState
from plugin.model import Incident, ItemState
from plugin.service import NewChecklist, NewIncident, NewItem
from plugin.store import Database
from tests.conftest import ALICE, BOB, TEAM, uid
from tests.integration.test_server import call, clean_env, serve
from tests.reliability.test_concurrency import RecordingTelemetry
from tests.threads import run_in_threads

TOKEN = "relativecommandtoken000000"
SENDERS = 20
STAGES = 25
TIMEOUT_SECONDS = 60
USERS = [uid(f"sender{n:02d}") for n in range(SENDERS)]
MOVED = re.compile(r"The active stage is now (\d+) of (\d+): \*\*stage (\d+)\*\*\.")
MOVE_POST = re.compile(r"changed the active stage from \*\*stage (\d+)\*\* to \*\*stage (\d+)\*\*\.")


def form(user: str, channel_id: str, text: str) -> dict[str, str]:
    """The fields Mattermost sends for /incident text typed by user in the channel."""
    return {"token": TOKEN, "team_id": TEAM, "team_domain": "acme", "channel_id": channel_id,
            "channel_name": "incident", "user_id": user, "user_name": f"user{USERS.index(user):02d}",
            "command": "/incident", "text": text, "trigger_id": "t", "root_id": "",
            "response_url": "http://127.0.0.1:1/hooks/commands/x"}


@pytest.fixture
def recorded(settings) -> Iterator[tuple[Any, RecordingTelemetry]]:
    """The app with the slash command on and a telemetry fake that records each committed change."""
    telemetry = RecordingTelemetry()
    app = create_app(settings.replace(SlashCommandToken=TOKEN), telemetry=telemetry, migrate_db=False)
    telemetry.db = app.extensions["incident"].db
    try:
        yield app, telemetry
    finally:
        app.extensions["incident"].db.dispose()


def shared_incident(app: Any, telemetry: RecordingTelemetry, *, stage: int = 0) -> Incident:
    """An incident of 25 stages, one open task each, at the given stage, with every sender in its channel."""
    components = app.extensions["incident"]
    telemetry.current.mutation = "setup"
    stages = [NewChecklist(f"stage {n}", [NewItem(f"task {n}")]) for n in range(1, STAGES + 1)]
    incident = components.service.create_incident(ALICE, NewIncident("crowded", TEAM, ALICE, checklists=stages))
    for user in USERS:
        components.host.add_channel_member(incident.channel_id, user)
    if stage:
        components.service.set_active_stage(ALICE, incident.id, stage)
    return components.service.get_incident(ALICE, incident.id)


def send_at_once(send, count: int = SENDERS) -> dict[int, str]:
    """Run send(number) in count threads released together; each sender's reply by number."""
    barrier = threading.Barrier(count)
    replies: dict[int, str] = {}

    def sender(number: int) -> None:
        barrier.wait(TIMEOUT_SECONDS)
        replies[number] = send(number)

    run_in_threads(sender, count, TIMEOUT_SECONDS, "senders")
    return replies


def send_through_app(app: Any, telemetry: RecordingTelemetry, channel_id: str, text: str) -> dict[int, str]:
    """Each sender types the same /incident text at once; replies by sender."""

    def send(number: int) -> str:
        telemetry.current.mutation = number  # the request runs in this thread: its change is noted as this sender's
        response = app.test_client().post("/command", data=form(USERS[number], channel_id, text),
                                          headers={"Authorization": f"Token {TOKEN}"})
        assert response.status_code == 200, response.data
        return response.json["text"]

    return send_at_once(send)


def committed(telemetry: RecordingTelemetry, incident: Incident) -> list[dict[str, Any]]:
    """The senders' committed changes of the incident, in version order (none lost, none twice)."""
    records = sorted((r for r in telemetry.records if r["id"] == incident.id and r["mutation"] != "setup"),
                     key=lambda r: r["version"])
    assert [r["version"] for r in records] == list(range(incident.version + 1, incident.version + 1 + len(records)))
    return records


def assert_every_move_is_one_stage(app: Any, telemetry: RecordingTelemetry, start: Incident,
                                   replies: dict[int, str], step: int, earlier_posts: int) -> None:
    """Each committed move goes one stage in its direction from the last; each mover's reply names its own move.

    earlier_posts: how many posts the channel had before the senders' commands.
    """
    records = committed(telemetry, start)
    stages = [r["after"].active_stage for r in records]
    assert stages == [start.active_stage + step * n for n in range(1, len(records) + 1)], \
        "a move went back, skipped or stood still"
    moved = {number: MOVED.fullmatch(text) for number, text in replies.items()}
    movers = {number for number, match in moved.items() if match}
    assert movers == {r["mutation"] for r in records}, "every reply that claims a move made one, and only those"
    for record in records:
        match = moved[record["mutation"]]
        assert int(match.group(1)) == record["after"].active_stage + 1 == int(match.group(3)), replies
    # With 25 stages none of the 20 moves runs out of stages: every sender moved.
    assert len(records) == SENDERS, replies
    final = app.extensions["incident"].service.get_incident(ALICE, start.id)
    assert final.active_stage == start.active_stage + step * len(movers)
    posts = app.extensions["incident"].host.posts(start.channel_id)[earlier_posts:]
    posted = [tuple(int(n) - 1 for n in match.groups()) for match in map(MOVE_POST.search, posts) if match]
    assert sorted(posted) == sorted(zip([start.active_stage, *stages[:-1]], stages)), \
        "one post per move, from the stage the move found to the next one in its direction"


def test_twenty_simultaneous_stage_next_commands_each_move_exactly_one_stage_forward(recorded):
    app, telemetry = recorded
    start = shared_incident(app, telemetry)
    earlier_posts = len(app.extensions["incident"].host.posts(start.channel_id))
    replies = send_through_app(app, telemetry, start.channel_id, "stage next --force")
    assert_every_move_is_one_stage(app, telemetry, start, replies, +1, earlier_posts)


def test_twenty_simultaneous_stage_prev_commands_each_move_exactly_one_stage_back(recorded):
    app, telemetry = recorded
    start = shared_incident(app, telemetry, stage=STAGES - 1)
    earlier_posts = len(app.extensions["incident"].host.posts(start.channel_id))
    replies = send_through_app(app, telemetry, start.channel_id, "stage prev")
    assert_every_move_is_one_stage(app, telemetry, start, replies, -1, earlier_posts)


def test_twenty_simultaneous_checks_of_one_task_each_toggle_it_and_say_what_they_made_it(recorded):
    app, telemetry = recorded
    start = shared_incident(app, telemetry)
    replies = send_through_app(app, telemetry, start.channel_id, "check 1 1")
    records = committed(telemetry, start)
    states = [r["after"].checklists[0].items[0].state for r in records]
    expected = [ItemState.CLOSED if n % 2 == 0 else ItemState.OPEN for n in range(len(records))]
    assert states == expected, "each committed toggle turned the task the other way"
    done = sum(text == "Task 1.1 (**task 1**) is done." for text in replies.values())
    reopened = sum(text == "Task 1.1 (**task 1**) is open again." for text in replies.values())
    assert done + reopened == len(records), replies
    final = app.extensions["incident"].service.get_incident(ALICE, start.id).checklists[0].items[0].state
    assert done - reopened == int(final is ItemState.CLOSED), "the task started open"
    for record in records:
        said = "done" if record["after"].checklists[0].items[0].state is ItemState.CLOSED else "open again"
        assert replies[record["mutation"]] == f"Task 1.1 (**task 1**) is {said}.", replies
    assert len(records) == SENDERS, "a toggle always changes the task"


@pytest.mark.parametrize(("text", "prepare", "claim", "refusal"), [
    ("end", None, "Incident **crowded** ended. `/incident restart` reopens it.",
     "This incident has already ended: only an active incident can be ended."),
    ("restart", "end", "Incident **crowded** is active again.",
     "This incident is already active: only an ended incident can be restarted."),
    ("commander @bob", None, "@bob is now the commander of **crowded**.", "@bob is already the commander."),
], ids=["end", "restart", "commander"])
def test_of_twenty_simultaneous_end_restart_or_commander_commands_exactly_one_claims_the_change(
        recorded, text, prepare, claim, refusal):
    app, telemetry = recorded
    components = app.extensions["incident"]
    start = shared_incident(app, telemetry)
    components.host.note_user(BOB, "bob")
    components.host.add_channel_member(start.channel_id, BOB)
    if prepare == "end":
        components.service.end_incident(ALICE, start.id)
        start = components.service.get_incident(ALICE, start.id)
    replies = send_through_app(app, telemetry, start.channel_id, text)
    assert len(committed(telemetry, start)) == 1
    assert sorted(replies.values()) == sorted([claim] + [refusal] * (SENDERS - 1)), replies


def send_through_server(base: str, channel_id: str, text: str) -> dict[int, str]:
    """Each sender types the same /incident text at once to a running server; replies by sender."""

    def send(number: int) -> str:
        body = urllib.parse.urlencode(form(USERS[number], channel_id, text)).encode()
        request = urllib.request.Request(f"{base}/command", data=body, method="POST",
                                         headers={"Authorization": f"Token {TOKEN}"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read())["text"]

    return send_at_once(send)


@pytest.mark.slow
def test_twenty_simultaneous_stage_next_commands_to_a_server_of_three_workers_each_move_one_stage(
        tmp_path, database_url):
    url = database_url if database_url.startswith("postgresql") else f"sqlite:///{tmp_path / 'data' / 'incidents.db'}"
    env = clean_env(tmp_path, INCIDENT_SLASH_COMMAND_TOKEN=TOKEN,
                    **({} if url.startswith("sqlite") else {"INCIDENT_DATABASE_URL": url}))
    with serve(tmp_path, env, workers=3) as base:
        status, incident = call(base, "POST", "/api/v0/incidents", {
            "name": "served crowd", "team_id": TEAM, "commander_user_id": ALICE,
            "checklists": [{"title": f"stage {n}", "items": [{"title": f"task {n}"}]} for n in range(1, STAGES + 1)]})
        assert status == 201
        db = Database(url)
        try:
            host = LocalChatHost(db, frozenset)
            for user in USERS:
                host.add_channel_member(incident["channel_id"], user)
            replies = send_through_server(base, incident["channel_id"], "stage next --force")
            status, final = call(base, "GET", f"/api/v0/incidents/{incident['id']}")
            posts = host.posts(incident["channel_id"])
        finally:
            db.dispose()
    assert status == 200
    movers = [MOVED.fullmatch(text) for text in replies.values()]
    assert all(movers), replies
    assert sorted(int(match.group(1)) for match in movers) == list(range(2, SENDERS + 2)), \
        "each reply names its own move: stages 2 to 21, each once"
    assert final["active_stage"] == SENDERS
    moves = [tuple(int(n) for n in match.groups()) for match in map(MOVE_POST.search, posts) if match]
    assert sorted(moves) == [(n, n + 1) for n in range(1, SENDERS + 1)], "one post per move, each one stage forward"


# ----- the same races, made one at a time: another change commits after a change has read --------
# The other change is made while the chat host is asked who may make the change, that is
# after its read and before its commit: the commit finds a conflict, and the change is
# decided again on the current row.
def five_stages(components, tasks: int = 0) -> Incident:
    """An incident of five stages named "stage 1".."stage 5", with so many open tasks each."""
    stages = [NewChecklist(f"stage {n}", [NewItem(f"task {n}.{i}") for i in range(tasks)]) for n in range(1, 6)]
    return components.service.create_incident(ALICE, NewIncident("older read", TEAM, ALICE, checklists=stages))


def meanwhile(components, monkeypatch, other_change) -> None:
    """Make other_change once, right after the next change has read the incident."""
    asked = components.host.is_channel_member
    pending = [other_change]

    def answer(channel_id: str, user_id: str) -> bool:
        if pending:
            pending.pop()()
        return asked(channel_id, user_id)

    monkeypatch.setattr(components.host, "is_channel_member", answer)


def test_stage_next_after_another_move_moves_on_from_the_current_stage(components, monkeypatch):
    incident = five_stages(components)  # at stage 1
    meanwhile(components, monkeypatch, lambda: components.service.set_active_stage(ALICE, incident.id, 2))
    outcome = components.service.next_stage(ALICE, incident.id)
    assert outcome.changed and outcome.incident.active_stage == 3
    assert components.service.get_incident(ALICE, incident.id).active_stage == 3
    assert components.host.posts(incident.channel_id)[-1].endswith("from **stage 3** to **stage 4**.")


def test_stage_prev_after_another_move_moves_back_from_the_current_stage(components, monkeypatch):
    incident = five_stages(components)
    components.service.set_active_stage(ALICE, incident.id, 4)  # at stage 5
    meanwhile(components, monkeypatch, lambda: components.service.set_active_stage(ALICE, incident.id, 1))
    outcome = components.service.previous_stage(ALICE, incident.id)
    assert outcome.changed and outcome.incident.active_stage == 0
    assert components.host.posts(incident.channel_id)[-1].endswith("from **stage 2** to **stage 1**.")


def test_stage_next_is_refused_when_the_current_stage_is_the_last_whatever_the_first_read_showed(components,
                                                                                                  monkeypatch):
    incident = five_stages(components)  # at stage 1
    meanwhile(components, monkeypatch, lambda: components.service.set_active_stage(ALICE, incident.id, 4))
    with pytest.raises(InvalidState, match='"stage 5" is the last stage'):
        components.service.next_stage(ALICE, incident.id, force=True)
    now = components.service.get_incident(ALICE, incident.id)
    assert (now.active_stage, now.version) == (4, incident.version + 1)


def test_stage_next_counts_the_open_tasks_of_the_current_stage_not_of_the_first_read(components, monkeypatch):
    incident = five_stages(components, tasks=1)
    components.service.set_item_state(ALICE, incident.id, 0, 0, ItemState.CLOSED)  # stage 1 has no open task
    meanwhile(components, monkeypatch,
              lambda: components.service.set_item_state(ALICE, incident.id, 0, 0, ItemState.OPEN))
    with pytest.raises(InvalidState, match=r"still has 1 open task"):
        components.service.next_stage(ALICE, incident.id)
    assert components.service.get_incident(ALICE, incident.id).active_stage == 0


def test_a_toggle_after_another_closed_the_task_opens_it_again(components, monkeypatch):
    incident = five_stages(components, tasks=1)  # task 1.0 open
    meanwhile(components, monkeypatch,
              lambda: components.service.set_item_state(ALICE, incident.id, 0, 0, ItemState.CLOSED))
    outcome = components.service.toggle_item_state(ALICE, incident.id, 0, 0)
    assert outcome.changed and outcome.incident.checklists[0].items[0].state is ItemState.OPEN
    now = components.service.get_incident(ALICE, incident.id)
    assert now.checklists[0].items[0].state is ItemState.OPEN and now.version == incident.version + 2


def test_a_commander_change_that_finds_the_change_already_made_reports_no_change(components, monkeypatch):
    incident = five_stages(components)  # commanded by alice
    components.host.note_user(BOB, "bob")
    components.host.add_channel_member(incident.channel_id, BOB)
    posts: list[str] = []

    def other_change() -> None:
        components.service.change_commander(ALICE, incident.id, BOB)
        posts.extend(components.host.posts(incident.channel_id))

    meanwhile(components, monkeypatch, other_change)
    outcome = components.service.change_commander(ALICE, incident.id, BOB)
    assert not outcome.changed and outcome.incident.commander_user_id == BOB
    assert components.host.posts(incident.channel_id) == posts
    assert components.service.get_incident(ALICE, incident.id).version == incident.version + 1


@pytest.mark.parametrize(("change", "message"), [
    ("end_incident", "already ended"), ("restart_incident", "already active")], ids=["end", "restart"])
def test_end_and_restart_are_refused_when_another_made_them_after_the_first_read(components, monkeypatch, change,
                                                                                  message):
    incident = five_stages(components)
    if change == "restart_incident":
        components.service.end_incident(ALICE, incident.id)
    meanwhile(components, monkeypatch, lambda: getattr(components.service, change)(ALICE, incident.id))
    with pytest.raises(InvalidState, match=message):
        getattr(components.service, change)(ALICE, incident.id)
    assert components.service.get_incident(ALICE, incident.id).version == incident.version + (
        2 if change == "restart_incident" else 1)
