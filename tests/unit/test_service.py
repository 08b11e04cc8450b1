"""The incident use cases over in-memory fakes of their ports: no Flask, no database."""
from __future__ import annotations

import pytest

from plugin.errors import InvalidState, NotFound, PermissionDenied
from plugin.model import ItemState
from plugin.service import IncidentService, NewChecklist, NewIncident, NewItem
from tests.fakes.store import FakeChatHost, FakeUnitOfWork, Memory

ALICE, BOB, CAROL, ADMIN = (name.ljust(26, "0") for name in ("alice", "bob", "carol", "admin"))
TEAM = "team".ljust(26, "0")
STAGES = [NewChecklist("Triage", [NewItem("Page the on-call"), NewItem("Open a status page")]),
          NewChecklist("Resolve", [NewItem("Roll back")]), NewChecklist("Review")]


@pytest.fixture
def memory() -> Memory:
    return Memory()


@pytest.fixture
def host() -> FakeChatHost:
    return FakeChatHost(admins=frozenset({ADMIN}), usernames={ALICE: "alice", BOB: "bob", CAROL: "carol"})


@pytest.fixture
def service(memory: Memory, host: FakeChatHost) -> IncidentService:
    ticks = iter(range(1_000, 1_000_000))
    return IncidentService(lambda **options: FakeUnitOfWork(memory, **options), host, clock=lambda: next(ticks))


def start(service: IncidentService, user: str = ALICE, **fields):
    return service.create_incident(user, NewIncident(**{"name": "db is down", "team_id": TEAM,
                                                        "commander_user_id": user, "checklists": STAGES,
                                                        **fields}))


def events(memory: Memory) -> list[tuple[str, str]]:
    return [(event, action) for event, action, *_ in memory.events]


def test_start_makes_a_channel_with_the_starter_and_commander_and_posts_who_started_it(service, memory, host):
    incident = start(service, commander_user_id=BOB)
    assert memory.incidents[incident.id].name == "db is down"
    assert host.is_channel_member(incident.channel_id, ALICE) and host.is_channel_member(incident.channel_id, BOB)
    assert host.posts_in(incident.channel_id) == ["This incident was started by @alice; the commander is @bob."]
    assert events(memory) == [("incident", "create")]


def test_end_then_restart_each_record_one_event_and_post(service, memory, host):
    incident = start(service)
    service.end_incident(ALICE, incident.id)
    assert not memory.incidents[incident.id].is_active and memory.incidents[incident.id].end_at > 0
    service.restart_incident(ALICE, incident.id)
    assert memory.incidents[incident.id].is_active and memory.incidents[incident.id].version == 2
    assert events(memory)[1:] == [("incident", "end"), ("incident", "restart")]
    assert host.posts_in(incident.channel_id)[1:] == ["This incident was ended by @alice.",
                                                      "This incident was restarted by @alice."]


def test_end_errors_when_incident_already_ended(service, memory):
    incident = start(service)
    service.end_incident(ALICE, incident.id)
    with pytest.raises(InvalidState, match="already ended"):
        service.end_incident(ALICE, incident.id)
    assert events(memory).count(("incident", "end")) == 1


def test_a_change_that_changes_nothing_records_nothing_and_posts_nothing(service, memory, host):
    incident = start(service)
    outcome = service.change_commander(ALICE, incident.id, ALICE)
    assert not outcome.changed and memory.incidents[incident.id].version == 0
    assert events(memory) == [("incident", "create")] and len(host.posts_in(incident.channel_id)) == 1


def test_someone_outside_a_private_incident_may_neither_see_nor_change_it(service, memory):
    incident = start(service)
    with pytest.raises(PermissionDenied):
        service.get_incident(BOB, incident.id)
    with pytest.raises(PermissionDenied):
        service.set_active_stage(BOB, incident.id, 1)
    assert memory.incidents[incident.id].active_stage == 0


def test_a_system_admin_may_change_any_incident(service, memory):
    incident = start(service)
    service.set_active_stage(ADMIN, incident.id, 2)
    assert memory.incidents[incident.id].active_stage == 2


def test_a_change_to_an_incident_that_does_not_exist_is_not_found(service):
    with pytest.raises(NotFound):
        service.end_incident(ALICE, "nothing".ljust(26, "0"))


def test_the_commander_goes_only_to_a_member_of_the_channel_added_first(service, memory, host):
    incident = start(service)
    with pytest.raises(InvalidState, match="member of the incident channel"):
        service.change_commander(ALICE, incident.id, BOB)
    added, already = service.add_members(ALICE, incident.id, [BOB, ALICE])
    assert (added, already) == ([BOB], [ALICE])
    service.change_commander(ALICE, incident.id, BOB)
    assert memory.incidents[incident.id].commander_user_id == BOB
    assert host.posts_in(incident.channel_id)[-2:] == [
        "@alice added @bob to the incident.", "@alice changed the incident commander from @alice to @bob."]
    assert events(memory)[-2:] == [("incident", "add_members"), ("incident", "change_commander")]


def test_a_change_that_loses_a_race_is_made_again_on_the_state_the_winner_left(service, memory):
    incident = start(service)

    def another_change_gets_in_first() -> None:
        memory.incidents[incident.id].active_stage = 1
        memory.incidents[incident.id].version += 1

    memory.before_commit = another_change_gets_in_first
    outcome = service.next_stage(ALICE, incident.id, force=True)
    assert outcome.changed and outcome.incident.active_stage == 2
    assert memory.incidents[incident.id].active_stage == 2 and memory.incidents[incident.id].version == 2
    assert events(memory).count(("incident", "change_stage")) == 1


def test_a_toggle_that_loses_a_race_toggles_the_task_as_the_winner_left_it(service, memory):
    incident = start(service)
    service.toggle_item_state(ALICE, incident.id, 0, 0)  # closed

    def another_toggle_gets_in_first() -> None:
        stored = memory.incidents[incident.id]
        stored.checklists[0].items[0].state = ItemState.OPEN
        stored.version += 1

    memory.before_commit = another_toggle_gets_in_first
    outcome = service.toggle_item_state(ALICE, incident.id, 0, 0)
    assert outcome.incident.checklists[0].items[0].state.value == "closed"
    assert memory.incidents[incident.id].checklists[0].items[0].state.value == "closed"


def test_next_stage_at_the_last_stage_is_refused_and_changes_nothing(service, memory):
    incident = start(service)
    service.set_active_stage(ALICE, incident.id, 2)
    with pytest.raises(InvalidState):
        service.next_stage(ALICE, incident.id)
    assert memory.incidents[incident.id].active_stage == 2 and memory.incidents[incident.id].version == 1


def test_a_new_task_and_its_state_each_record_one_task_event(service, memory):
    incident = start(service)
    service.add_item(ALICE, incident.id, 2, NewItem("Write the review"))
    service.set_item_state(ALICE, incident.id, 2, 0, ItemState.CLOSED)
    stored = memory.incidents[incident.id]
    assert [item.title for item in stored.checklists[2].items] == ["Write the review"]
    assert stored.checklists[2].items[0].state.value == "closed"
    assert events(memory)[1:] == [("tasks", "add_task"), ("tasks", "modify_task_state")]
