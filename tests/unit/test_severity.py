"""Severity: the levels' rules, the use case over fakes, the slash command's parsing and replies."""
from __future__ import annotations

import pytest

from plugin.command.parser import Severity, Start, Usage, parse
from plugin.command.runner import Caller, CommandRunner
from plugin.errors import BadInput
from plugin.model import SeverityLevels, parse_severity_levels
from plugin.service import IncidentService, NewIncident
from tests.fakes.store import FakeChatHost, Memory, service_over

ALICE, BOB, TEAM = "alice".ljust(26, "0"), "bob".ljust(26, "0"), "team".ljust(26, "0")
LEVELS = SeverityLevels(("critical", "major", "minor"))


# ----- the levels ------------------------------------------------------------------------------
def test_levels_are_read_most_severe_first_with_their_spaces_trimmed():
    assert parse_severity_levels(" SEV1 , sev2,sev3 ") == ("SEV1", "sev2", "sev3")


@pytest.mark.parametrize("text,says", [
    ("", "at least one"),
    ("  ", "at least one"),
    ("sev1,,sev2", "empty"),
    ("sev1,", "empty"),
    ("sev 1,sev2", "one word"),
    ("x" * 33, "1 to 32 characters"),
    ("sev1,SEV1", "given twice"),
    (",".join(f"l{n}" for n in range(21)), "at most 20"),
    ("sev\x001", "one word"),
])
def test_levels_that_are_empty_repeated_spaced_or_too_long_are_refused_saying_why(text, says):
    with pytest.raises(ValueError, match=says):
        parse_severity_levels(text)


def test_ranks_count_from_one_with_zero_for_a_removed_level_and_minus_one_for_none():
    assert [LEVELS.rank(level) for level in ("critical", "major", "minor", "sev1", "")] == [1, 2, 3, 0, -1]


def test_a_level_is_found_ignoring_case_and_spelt_as_the_setting_spells_it():
    assert LEVELS.resolve(" MAJOR ") == "major"
    assert LEVELS.resolve("") == "" and LEVELS.resolve("  ") == ""


def test_an_unknown_level_is_refused_naming_every_level_in_order():
    with pytest.raises(BadInput) as refused:
        LEVELS.resolve("sev1")
    assert "use one of critical, major or minor (most severe first)" in refused.value.message
    assert refused.value.details["levels"] == ["critical", "major", "minor"]


# ----- the use case over fakes -------------------------------------------------------------------
@pytest.fixture
def host() -> FakeChatHost:
    return FakeChatHost(usernames={ALICE: "alice", BOB: "bob"})


@pytest.fixture
def service(memory: Memory, host: FakeChatHost) -> IncidentService:
    return service_over(memory, host, severity_levels=lambda: LEVELS)


def start(service: IncidentService, **fields):
    return service.create_incident(ALICE, NewIncident(**{"name": "db is down", "team_id": TEAM,
                                                         "commander_user_id": ALICE, **fields}))


def test_an_incident_starts_without_a_severity_unless_given_one(service, memory):
    assert start(service).severity == ""
    graded = start(service, severity="Major")
    assert memory.incidents[graded.id].severity == "major"
    assert [props["SeverityRank"] for _, action, *_, props in memory.events if action == "create"] == [-1, 2]


def test_an_unknown_level_on_start_is_refused_and_starts_nothing(service, memory, host):
    with pytest.raises(BadInput, match="critical, major or minor"):
        start(service, severity="sev1")
    assert memory.incidents == {} and host.channels == {} and memory.events == []


def test_setting_changing_and_clearing_the_severity_post_and_record_ranks_never_names(service, memory, host):
    incident = start(service)
    service.set_severity(ALICE, incident.id, "minor")
    service.set_severity(ALICE, incident.id, "CRITICAL")
    service.set_severity(ALICE, incident.id, "")
    assert memory.incidents[incident.id].severity == ""
    changes = [props for _, action, *_, props in memory.events if action == "change_severity"]
    assert changes == [{"SeverityRank": 3, "PreviousSeverityRank": -1}, {"SeverityRank": 1, "PreviousSeverityRank": 3},
                       {"SeverityRank": -1, "PreviousSeverityRank": 1}]
    assert host.posts_in(incident.channel_id)[1:] == [
        "@alice set the severity to **minor**.", "@alice changed the severity from **minor** to **critical**.",
        "@alice cleared the severity (it was **critical**)."]


def test_each_severity_change_writes_an_entry_with_names_and_ranks_from_and_to(service, memory):
    incident = start(service)
    service.set_severity(ALICE, incident.id, "minor")
    service.set_severity(ALICE, incident.id, "major")
    service.set_severity(ALICE, incident.id, "")
    entries = [entry for entry in memory.timeline if entry.event_type == "severity_changed"]
    assert [entry.summary for entry in entries] == [
        "@alice set the severity to minor.", "@alice changed the severity from minor to major.",
        "@alice cleared the severity (it was major)."]
    assert [entry.details for entry in entries] == [
        {"from_severity": "", "to_severity": "minor", "from_rank": -1, "to_rank": 3},
        {"from_severity": "minor", "to_severity": "major", "from_rank": 3, "to_rank": 2},
        {"from_severity": "major", "to_severity": "", "from_rank": 2, "to_rank": -1}]


def test_the_same_severity_again_changes_nothing_and_writes_no_entry(service, memory, host):
    incident = start(service, severity="major")
    outcome = service.set_severity(ALICE, incident.id, "Major")
    assert not outcome.changed and memory.incidents[incident.id].version == 0
    assert [e.event_type for e in memory.timeline] == ["incident_created"]
    assert len(host.posts_in(incident.channel_id)) == 1


def test_an_unknown_level_changes_nothing(service, memory, host):
    incident = start(service, severity="minor")
    with pytest.raises(BadInput, match="critical, major or minor"):
        service.set_severity(ALICE, incident.id, "sev9")
    assert memory.incidents[incident.id].severity == "minor" and memory.incidents[incident.id].version == 0
    assert len(memory.events) == 1 and len(host.posts_in(incident.channel_id)) == 1


def test_an_ended_incident_may_still_be_graded(service, memory):
    incident = start(service)
    service.end_incident(ALICE, incident.id)
    assert service.set_severity(ALICE, incident.id, "major").changed
    assert memory.incidents[incident.id].severity == "major"


def test_a_level_removed_from_the_setting_stays_on_the_incident_with_rank_zero(service, memory):
    incident = start(service, severity="minor")
    service.severity_levels = lambda: SeverityLevels(("critical", "major"))
    assert service.get_incident(ALICE, incident.id).severity == "minor"
    service.set_severity(ALICE, incident.id, "critical")
    assert memory.events[-1][4] == {"SeverityRank": 1, "PreviousSeverityRank": 0}


# ----- the slash command -------------------------------------------------------------------------
@pytest.mark.parametrize("text,command", [
    ("start db down --severity sev1", Start("db down", severity="sev1")),
    ("start db down --severity=SEV2 --public", Start("db down", public=True, severity="SEV2")),
    ("start db down", Start("db down")),
    ("severity", Severity()),
    ("severity sev2", Severity("sev2")),
    ("severity none", Severity("none")),
])
def test_severity_is_parsed_on_start_and_as_its_own_subcommand(text, command):
    assert parse(text) == command


@pytest.mark.parametrize("text,says", [
    ("start db down --severity", "--severity needs a value"),
    ("start db down --severity ''", "--severity needs a level"),
    ("severity sev1 sev2", "severity takes one level"),
])
def test_a_severity_without_a_level_or_with_two_gets_usage(text, says):
    command = parse(text)
    assert isinstance(command, Usage) and says in command.message


def say(runner: CommandRunner, text: str, channel: str) -> str:
    return runner.run(parse(text), Caller(ALICE, TEAM, channel))["text"]


def test_the_severity_subcommand_shows_sets_clears_and_refuses_unknown_levels(service, memory, host):
    runner = CommandRunner(service, host, clock=memory.clock)
    incident = start(service)
    room = incident.channel_id
    assert say(runner, "severity", room) == (
        "The severity of **db is down** is not set. Levels, most severe first: critical, major or minor; set one "
        "with `/incident severity <level>`.")
    assert say(runner, "severity MAJOR", room) == "The severity of **db is down** is now **major**."
    assert say(runner, "severity major", room) == "The severity of **db is down** is already **major**."
    refused = say(runner, "severity sev1", room)
    assert "'sev1' is not a severity level: use one of critical, major or minor" in refused
    assert memory.incidents[incident.id].severity == "major"
    assert say(runner, "severity none", room) == "The severity of **db is down** is cleared."
    assert memory.incidents[incident.id].severity == ""


def test_none_sets_the_level_when_the_admins_named_a_level_none(service, memory, host):
    service.severity_levels = lambda: SeverityLevels(("high", "None"))
    runner = CommandRunner(service, host, clock=memory.clock)
    incident = start(service, severity="high")
    assert say(runner, "severity none", incident.channel_id) == "The severity of **db is down** is now **None**."


def test_start_with_an_unknown_severity_replies_with_the_levels_and_starts_nothing(service, memory, host):
    runner = CommandRunner(service, host, clock=memory.clock)
    reply = say(runner, "start db down --severity sev1", "s" * 26)
    assert "use one of critical, major or minor" in reply
    assert memory.incidents == {}
    reply = say(runner, "start db down --severity Critical", "s" * 26)
    assert reply.startswith("Incident **db down** started at severity **critical** in ")
