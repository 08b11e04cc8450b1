"""The runner over the real service with in-memory fakes of the store and the chat host (tests/fakes/store.py)."""
from __future__ import annotations

import pytest

from plugin.command.parser import parse
from plugin.command.runner import HELP_TEXT, Caller, CommandRunner, _duration
from plugin.model import Incident, IncidentFilter
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem
from tests.fakes.store import FakeChatHost, FakeUnitOfWork, Memory

ALICE, BOB, TEAM, SQUARE = "a" * 26, "b" * 26, "t" * 26, "s" * 26


class Clock:
    """Milliseconds, moved by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def setup() -> tuple[CommandRunner, FakeChatHost, IncidentService, Clock]:
    host, memory, clock = FakeChatHost(usernames={ALICE: "alice", BOB: "bob"}), Memory(), Clock()
    host.channels[SQUARE] = (TEAM, "town-square")
    host.members.add((SQUARE, ALICE))
    service = IncidentService(lambda write=True: FakeUnitOfWork(memory, write=write), host, clock=clock)
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
