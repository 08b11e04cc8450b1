"""The runner over the real service with in-memory fakes of the store and the chat host."""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import pytest

from plugin.chat import ServerFacts
from plugin.command.parser import parse
from plugin.command.runner import HELP_TEXT, Caller, CommandRunner, _duration
from plugin.errors import HostUnavailable
from plugin.events import Announcement, Event
from plugin.model import Incident, IncidentFilter
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem

ALICE, BOB, TEAM, SQUARE = "a" * 26, "b" * 26, "t" * 26, "s" * 26


class FakeIncidents:
    """An in-memory incident repository (copies in and out, like a database)."""

    def __init__(self) -> None:
        self.rows: dict[str, Incident] = {}

    def get(self, incident_id: str) -> Incident | None:
        return copy.deepcopy(self.rows.get(incident_id))

    def get_by_channel(self, channel_id: str) -> Incident | None:
        return copy.deepcopy(next((i for i in self.rows.values() if i.channel_id == channel_id), None))

    def add(self, incident: Incident) -> None:
        self.rows[incident.id] = copy.deepcopy(incident)

    def save(self, incident: Incident) -> None:
        self.rows[incident.id] = copy.deepcopy(incident)

    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]:
        found = [i for i in self.rows.values() if query.status != "active" or i.is_active]
        if query.member_channel_ids is not None:
            found = [i for i in found if i.channel_id in query.member_channel_ids]
        found.sort(key=lambda i: i.create_at, reverse=True)
        return len(found), copy.deepcopy(found[:query.per_page])


class FakeUnitOfWork:
    """Writes are immediate in memory; commit hands the posts back to the host. Enough for the runner's questions."""

    chat = None

    def __init__(self, incidents: FakeIncidents):
        self.incidents = incidents
        self.posts: list[Announcement] = []

    def __enter__(self) -> "FakeUnitOfWork":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_event(self, event: Event) -> None:
        if isinstance(event, Announcement):
            self.posts.append(event)

    def commit(self) -> list[Announcement]:
        posts, self.posts = self.posts, []
        return posts


class FakeChatHost:
    """The chat host port in memory."""

    shares_database = False

    def __init__(self) -> None:
        self.users = {ALICE: "alice", BOB: "bob"}
        self.channels: dict[str, tuple[str, str]] = {SQUARE: (TEAM, "town-square")}
        self.members: set[tuple[str, str]] = {(SQUARE, ALICE)}
        self.posts: list[tuple[str, str]] = []
        self.down = False

    def is_system_admin(self, user_id: str) -> bool:
        return False

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        return True

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        return (channel_id, user_id) in self.members

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        return frozenset(c for c, u in self.members if u == user_id)

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool, purpose: str = "",
                       member_ids: Sequence[str] = ()) -> str:
        if self.down:
            raise HostUnavailable("Mattermost is having trouble right now; try again in a minute.")
        channel_id = f"{len(self.channels):026d}"
        self.channels[channel_id] = (team_id, slug)
        self.members.update((channel_id, user_id) for user_id in member_ids)
        return channel_id

    def add_channel_member(self, channel_id: str, user_id: str) -> None:
        self.members.add((channel_id, user_id))

    def post(self, channel_id: str, message: str) -> str:
        self.posts.append((channel_id, message))
        return "p" * 26

    def mention(self, user_id: str) -> str:
        return f"@{self.users.get(user_id, user_id)}"

    def server_facts(self) -> ServerFacts:
        return ServerFacts("", "fake", False)

    def find_user_by_username(self, username: str) -> str | None:
        return next((i for i, name in self.users.items() if name == username), None)

    def find_channel_by_name(self, team_id: str, name: str) -> str | None:
        return next((c for c, (t, n) in self.channels.items() if t == team_id and n == name), None)

    def channel_name(self, channel_id: str) -> str | None:
        return self.channels.get(channel_id, (None, None))[1]

    def can_post(self, channel_id: str, user_id: str) -> bool:
        return self.is_channel_member(channel_id, user_id)

    def note_user(self, user_id: str, username: str) -> None:
        self.users[user_id] = username


class Clock:
    """Milliseconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def setup() -> tuple[CommandRunner, FakeChatHost, IncidentService, Clock]:
    host, store, clock = FakeChatHost(), FakeIncidents(), Clock()
    service = IncidentService(lambda write=True: FakeUnitOfWork(store), host, clock=clock)
    return CommandRunner(service, host, clock=clock), host, service, clock


def say(runner: CommandRunner, text: str, channel: str = SQUARE, user: str = ALICE) -> str:
    """Run one command line; return the reply text (asserting it is ephemeral)."""
    body = runner.run(parse(text), Caller(user, TEAM, channel))
    assert body["response_type"] == "ephemeral"
    return body["text"]


def two_stage_incident(service: IncidentService) -> Incident:
    """An incident with stages Triage (2 tasks) and Fix (1 task)."""
    return service.create_incident(ALICE, NewIncident("db", TEAM, ALICE, checklists=[
        NewChecklist("Triage", [NewItem("page"), NewItem("status")]), NewChecklist("Fix", [NewItem("patch")])]))


def test_unknown_input_gets_the_message_and_the_help_text(setup):
    runner = setup[0]
    assert say(runner, "dance") == f"Unknown subcommand 'dance'.\n\n{HELP_TEXT}"
    assert say(runner, "help") == HELP_TEXT


def test_info_counts_stages_and_tasks_from_one_and_shows_the_duration(setup):
    runner, host, service, clock = setup
    incident = two_stage_incident(service)
    say(runner, "check 1 2", incident.channel_id)
    clock.now += 3_723_000
    assert say(runner, "info", incident.channel_id) == "\n".join([
        "**db** (active)", "* Duration: 1h 2m 3s", "* Commander: @alice", "* Stage 1 of 2: **Triage**",
        "* Tasks done: 1 of 3", "  1. Triage: 1 of 2 done", "  2. Fix: 0 of 1 done"])


def test_info_of_an_ended_incident_stops_the_clock_at_its_end(setup):
    runner, host, service, clock = setup
    incident = two_stage_incident(service)
    clock.now += 60_000
    say(runner, "end", incident.channel_id)
    clock.now += 10 * 86_400_000
    assert "* Duration: 1m 0s" in say(runner, "info", incident.channel_id)


def test_stage_next_with_all_tasks_closed_moves_without_force(setup):
    runner, host, service, _ = setup
    incident = two_stage_incident(service)
    say(runner, "check 1 1", incident.channel_id)
    say(runner, "check 1 2", incident.channel_id)
    assert say(runner, "stage next", incident.channel_id) == "The active stage is now 2 of 2: **Fix**."
    assert host.posts[-1] == (incident.channel_id, "@alice changed the active stage from **Triage** to **Fix**.")


def test_a_chat_host_failure_during_start_is_the_reply_and_stores_nothing(setup):
    runner, host, service, _ = setup
    host.down = True
    assert say(runner, "start db") == "Mattermost is having trouble right now; try again in a minute."
    assert service.list_incidents(ALICE, IncidentFilter(team_id=TEAM))[0] == 0


def test_a_too_long_name_is_refused_before_anything_happens(setup):
    runner, host, _, _ = setup
    assert say(runner, "start " + "x" * 65) == "The name is 65 characters long; use at most 64."
    assert len(host.channels) == 1


def test_commander_change_checks_membership_then_hands_over(setup):
    runner, host, service, _ = setup
    incident = two_stage_incident(service)
    assert "not a member" in say(runner, "commander @bob", incident.channel_id)
    host.add_channel_member(incident.channel_id, BOB)
    assert say(runner, "commander @bob", incident.channel_id) == "@bob is now the commander of **db**."
    assert say(runner, "commander @bob", incident.channel_id) == "@bob is already the commander."


@pytest.mark.parametrize("milliseconds, text", [
    (0, "0m 0s"), (59_999, "0m 59s"), (3_600_000, "1h 0m 0s"), (90_061_000, "1d 1h 1m"), (-5, "0m 0s")])
def test_durations_read_like_a_clock(milliseconds, text):
    assert _duration(milliseconds) == text
