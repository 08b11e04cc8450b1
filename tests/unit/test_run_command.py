"""Running a task's slash command: as the caller, in the incident channel, recorded only once it ran."""
from __future__ import annotations

import pytest

from plugin.errors import BadInput, HostUnavailable, NotFound, PermissionDenied
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem
from tests.fakes.store import FakeChatHost, Memory, service_over

ALICE, BOB, ADMIN = (name.ljust(26, "0") for name in ("alice", "bob", "admin"))
TEAM = "team".ljust(26, "0")
STAGES = [NewChecklist("Triage", [NewItem("Page the on-call", command="/page oncall"), NewItem("Look")]),
          NewChecklist("Resolve", [NewItem("Roll back", command="  /deploy rollback  ")])]


@pytest.fixture
def host() -> FakeChatHost:
    return FakeChatHost(admins=frozenset({ADMIN}), usernames={ALICE: "alice", BOB: "bob"})


@pytest.fixture
def service(memory: Memory, host: FakeChatHost) -> IncidentService:
    return service_over(memory, host)


@pytest.fixture
def incident(service: IncidentService):
    return service.create_incident(ALICE, NewIncident(name="db is down", team_id=TEAM, commander_user_id=ALICE,
                                                      checklists=STAGES))


def test_a_tasks_command_runs_as_the_caller_in_the_channel_and_its_run_is_recorded_once(
        service, memory, host, incident):
    service.clock = lambda: 1_700_000_000_123
    outcome = service.run_item_command(ALICE, incident.id, 1, 0)
    assert host.commands == [(ALICE, TEAM, incident.channel_id, "/deploy rollback")]
    assert outcome.changed and outcome.incident.checklists[1].items[0].command_last_run == 1_700_000_000_123
    assert memory.incidents[incident.id].checklists[1].items[0].command_last_run == 1_700_000_000_123
    assert [(event, action) for event, action, *_ in memory.events][-1] == ("tasks", "run_task_slash_command")
    entry = memory.timeline[-1]
    assert (entry.event_type, entry.summary, entry.event_at) == (
        "task_command_run", '@alice ran the command of the task "Roll back" in stage "Resolve".', 1_700_000_000_123)
    assert entry.details == {"checklist": 1, "item": 0, "item_id": incident.checklists[1].items[0].id}
    assert "/deploy" not in entry.summary  # a command may carry arguments nobody should copy from the timeline


def test_a_system_admin_outside_the_channel_may_run_a_command(service, host, incident):
    service.run_item_command(ADMIN, incident.id, 0, 0)
    assert host.commands == [(ADMIN, TEAM, incident.channel_id, "/page oncall")]


@pytest.mark.parametrize("user, stage, task, error", [
    (BOB, 0, 0, PermissionDenied),  # not in the channel
    (ALICE, 0, 1, BadInput),  # the task has no command
    (ALICE, 0, 2, NotFound), (ALICE, 2, 0, NotFound),
])
def test_a_run_refused_before_it_starts_runs_nothing_and_records_nothing(service, memory, host, incident,
                                                                         user, stage, task, error):
    before = (len(memory.events), len(memory.timeline))
    with pytest.raises(error):
        service.run_item_command(user, incident.id, stage, task)
    assert host.commands == [] and (len(memory.events), len(memory.timeline)) == before
    assert all(item.command_last_run == 0 for stage_ in memory.incidents[incident.id].checklists
               for item in stage_.items)


def test_a_command_the_host_cannot_run_records_nothing(service, memory, host, incident):
    host.down = True
    before = (len(memory.events), len(memory.timeline), memory.incidents[incident.id].version)
    with pytest.raises(HostUnavailable):
        service.run_item_command(ALICE, incident.id, 1, 0)
    assert (len(memory.events), len(memory.timeline), memory.incidents[incident.id].version) == before


def test_a_task_moved_while_its_command_ran_is_still_the_one_recorded(service, memory, host, incident):
    def run_while_moving(user_id, team_id, channel_id, command):
        host.commands.append((user_id, team_id, channel_id, command))
        service.move_item(ALICE, incident.id, 0, 0, 1)  # another request moves the task meanwhile
    host.run_command = run_while_moving
    outcome = service.run_item_command(ALICE, incident.id, 0, 0)
    items = outcome.incident.checklists[0].items
    assert [item.title for item in items] == ["Look", "Page the on-call"]
    assert (items[0].command_last_run, items[1].command_last_run > 0) == (0, True)
    assert memory.timeline[-1].details["item"] == 1


def test_a_task_removed_while_its_command_ran_is_not_recorded(service, memory, host, incident):
    def run_while_removing(user_id, team_id, channel_id, command):
        host.commands.append((user_id, team_id, channel_id, command))
        service.remove_item(ALICE, incident.id, 1, 0)
    host.run_command = run_while_removing
    before = len(memory.timeline)
    outcome = service.run_item_command(ALICE, incident.id, 1, 0)
    assert not outcome.changed and outcome.incident.checklists[1].items == []
    assert len(host.commands) == 1 and len(memory.timeline) == before
