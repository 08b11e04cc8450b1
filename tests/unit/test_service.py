"""The incident use cases over in-memory fakes of their ports: no Flask, no database."""
from __future__ import annotations

import pytest

from plugin.errors import BadInput, HostUnavailable, InvalidState, NotFound, PermissionDenied
from plugin.model import ItemState
from plugin.service import IncidentPatch, IncidentService, NewChecklist, NewIncident, NewItem
from tests.fakes.clock import Clock
from tests.fakes.store import FakeChatHost, FakeUnitOfWork, Memory, service_over

ALICE, BOB, CAROL, ADMIN = (name.ljust(26, "0") for name in ("alice", "bob", "carol", "admin"))
TEAM = "team".ljust(26, "0")
STAGES = [NewChecklist("Triage", [NewItem("Page the on-call"), NewItem("Open a status page")]),
          NewChecklist("Resolve", [NewItem("Roll back")]), NewChecklist("Review")]


@pytest.fixture
def host() -> FakeChatHost:
    return FakeChatHost(admins=frozenset({ADMIN}), usernames={ALICE: "alice", BOB: "bob", CAROL: "carol"})


@pytest.fixture
def service(memory: Memory, host: FakeChatHost) -> IncidentService:
    return service_over(memory, host)


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


def another_change_moves_the_stage_first(memory: Memory, incident_id: str) -> None:
    """Before the next commit, another change moves the incident to its second stage and commits."""
    def move() -> None:
        memory.incidents[incident_id].active_stage = 1
        memory.incidents[incident_id].version += 1

    memory.before_commit = move


def test_a_change_that_loses_a_race_is_made_again_on_the_state_the_winner_left(service, memory):
    incident = start(service)
    another_change_moves_the_stage_first(memory, incident.id)
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


# ----- the timeline ---------------------------------------------------------------------------
def timeline(memory: Memory) -> list[tuple[str, str]]:
    """Every entry written, in order: (type, summary)."""
    return [(entry.event_type, entry.summary) for entry in memory.timeline]


# Each kind of change, made on a fresh incident of STAGES with bob in the channel, and the entry it writes.
CHANGES = [
    ("end", lambda s, i: s.end_incident(ALICE, i), "incident_ended", "@alice ended the incident."),
    ("stage", lambda s, i: s.set_active_stage(ALICE, i, 1), "stage_changed",
     '@alice changed the stage from "Triage" to "Resolve".'),
    ("next stage", lambda s, i: s.next_stage(ALICE, i, force=True), "stage_changed",
     '@alice changed the stage from "Triage" to "Resolve".'),
    ("commander", lambda s, i: s.change_commander(ALICE, i, BOB), "commander_changed",
     "@alice changed the commander from @alice to @bob."),
    ("task state", lambda s, i: s.set_item_state(ALICE, i, 0, 1, ItemState.IN_PROGRESS), "task_state_changed",
     '@alice started the task "Open a status page" in stage "Triage".'),
    ("toggle", lambda s, i: s.toggle_item_state(ALICE, i, 0, 0), "task_state_changed",
     '@alice closed the task "Page the on-call" in stage "Triage".'),
    ("assign", lambda s, i: s.set_item_assignee(ALICE, i, 1, 0, BOB), "task_assigned",
     '@alice assigned the task "Roll back" to @bob.'),
]


@pytest.mark.parametrize("name, change, event_type, summary", CHANGES, ids=[c[0] for c in CHANGES])
def test_each_kind_of_change_writes_exactly_one_timeline_entry_with_its_commit(service, memory, name, change,
                                                                               event_type, summary):
    incident = start(service)
    service.add_members(ALICE, incident.id, [BOB])
    before = len(memory.timeline)
    change(service, incident.id)
    assert timeline(memory)[before:] == [(event_type, summary)]
    entry = memory.timeline[-1]
    assert (entry.incident_id, entry.creator_user_id, entry.deleted) == (incident.id, ALICE, False)


def test_start_and_restart_write_their_entries_naming_the_starter_and_the_commander(service, memory):
    incident = start(service, commander_user_id=BOB)
    service.end_incident(ALICE, incident.id)
    service.restart_incident(BOB, incident.id)
    assert timeline(memory) == [
        ("incident_created", '@alice started the incident "db is down" with @bob as commander.'),
        ("incident_ended", "@alice ended the incident."), ("incident_restarted", "@bob restarted the incident.")]
    created = memory.timeline[0]
    assert (created.event_at, created.subject_user_id, created.details) == (
        incident.create_at, BOB, {"public": False, "playbook_id": "", "severity": ""})


def test_adding_members_tells_the_timeline_who_was_added(service, memory):
    incident = start(service)
    service.add_members(ALICE, incident.id, [BOB])
    assert timeline(memory)[-1] == ("members_added", "@alice added @bob to the incident.")
    assert memory.timeline[-1].subject_user_id == BOB


def test_unassigning_a_task_says_so_and_names_nobody(service, memory):
    incident = start(service)
    service.set_item_assignee(ALICE, incident.id, 0, 0, ALICE)
    service.set_item_assignee(ALICE, incident.id, 0, 0, "")
    assert timeline(memory)[-1] == ("task_assigned", '@alice unassigned the task "Page the on-call".')
    assert memory.timeline[-1].subject_user_id == ""


@pytest.mark.parametrize("change", [
    lambda s, i: s.add_item(ALICE, i, 0, NewItem("Call the vendor")),
    lambda s, i: s.edit_item(ALICE, i, 0, 0, title="Page the DBA"),
    lambda s, i: s.move_item(ALICE, i, 0, 0, 1),
    lambda s, i: s.remove_item(ALICE, i, 0, 0),
], ids=["add task", "edit task", "move task", "remove task"])
def test_changes_the_timeline_does_not_tell_write_no_entry(service, memory, change):
    incident = start(service)
    change(service, incident.id)
    assert [event_type for event_type, _ in timeline(memory)] == ["incident_created"]


@pytest.mark.parametrize("change", [
    lambda s, i: s.change_commander(ALICE, i, ALICE),
    lambda s, i: s.set_active_stage(ALICE, i, 0),
    lambda s, i: s.set_item_state(ALICE, i, 0, 0, ItemState.OPEN),
    lambda s, i: s.set_item_assignee(ALICE, i, 0, 0, ""),
], ids=["same commander", "same stage", "same state", "same assignee"])
def test_a_change_that_changes_nothing_writes_no_entry(service, memory, change):
    incident = start(service)
    assert not change(service, incident.id).changed
    assert len(memory.timeline) == 1


@pytest.mark.parametrize("change, error", [
    (lambda s, i: s.restart_incident(ALICE, i), InvalidState),
    (lambda s, i: s.previous_stage(ALICE, i), InvalidState),
    (lambda s, i: s.change_commander(ALICE, i, CAROL), InvalidState),
    (lambda s, i: s.set_active_stage(BOB, i, 1), PermissionDenied),
    (lambda s, i: s.set_item_state(ALICE, i, 0, 9, ItemState.CLOSED), NotFound),
], ids=["restart active", "before first stage", "commander outside", "outsider", "no such task"])
def test_a_refused_change_writes_no_entry(service, memory, change, error):
    incident = start(service)
    with pytest.raises(error):
        change(service, incident.id)
    assert len(memory.timeline) == 1


def test_a_change_that_loses_a_race_writes_one_entry_telling_what_the_committed_attempt_did(service, memory):
    incident = start(service)
    another_change_moves_the_stage_first(memory, incident.id)
    service.next_stage(ALICE, incident.id, force=True)
    assert timeline(memory)[1:] == [("stage_changed", '@alice changed the stage from "Resolve" to "Review".')]


def test_a_note_is_added_by_a_channel_member_and_listed_oldest_first_by_when_it_happened(service, memory):
    incident = start(service)
    service.set_active_stage(ALICE, incident.id, 1)
    earlier = service.add_note(ALICE, incident.id, "  first page at 09:00  ", event_at=incident.create_at - 60_000,
                               details={"pager": "ops"})
    entries = service.get_timeline(ALICE, incident.id)
    assert [e.event_type for e in entries] == ["note", "incident_created", "stage_changed"]
    assert (entries[0].id, entries[0].summary, entries[0].details) == (earlier.id, "first page at 09:00",
                                                                       {"pager": "ops"})
    assert [e.event_type for e in service.get_timeline(ALICE, incident.id, ["stage_changed"])] == ["stage_changed"]
    assert [e.event_type for e in service.get_timeline(ALICE, incident.id, last=1)] == ["stage_changed"]
    assert events(memory)[-1] == ("incident", "add_timeline_event")
    assert memory.events[-1][4] == {"EventType": "note", "Backdated": True, "HasPost": False, "NumDetails": 1}


def test_deleting_an_entry_hides_it_but_keeps_who_deleted_it_and_when(service, memory):
    incident = start(service)
    added = service.add_note(ALICE, incident.id, "wrong channel, ignore")
    service.remove_timeline_entry(ALICE, incident.id, added.id)
    assert [e.event_type for e in service.get_timeline(ALICE, incident.id)] == ["incident_created"]
    kept = next(e for e in memory.timeline if e.id == added.id)
    assert kept.deleted and kept.deleted_by == ALICE and kept.deleted_at >= kept.create_at
    assert memory.events[-1][1:2] == ("remove_timeline_event",)
    assert memory.events[-1][4] == {"EventType": "note", "WasCreator": True}
    with pytest.raises(NotFound, match="deleted already"):
        service.remove_timeline_entry(ALICE, incident.id, added.id)


def test_an_entry_of_another_incident_or_none_at_all_is_not_found_and_nothing_changes(service, memory):
    first, second = start(service), start(service)
    entry = service.add_note(ALICE, first.id, "only in the first")
    for incident_id, entry_id in ((second.id, entry.id), (first.id, "nothing".ljust(26, "0"))):
        with pytest.raises(NotFound, match="has no timeline entry"):
            service.remove_timeline_entry(ALICE, incident_id, entry_id)
    assert not any(e.deleted for e in memory.timeline)


def test_only_those_who_may_change_the_incident_add_or_delete_and_only_viewers_read(service, memory):
    incident = start(service)
    entry = service.add_note(ALICE, incident.id, "ours")
    for act in (lambda: service.add_note(BOB, incident.id, "theirs"),
                lambda: service.remove_timeline_entry(BOB, incident.id, entry.id),
                lambda: service.get_timeline(BOB, incident.id)):
        with pytest.raises(PermissionDenied):
            act()
    assert [e.summary for e in service.get_timeline(ADMIN, incident.id)][-1] == "ours"
    assert len(memory.timeline) == 2 and not memory.timeline[-1].deleted


def test_a_bad_note_is_refused_and_writes_nothing(service, memory):
    incident = start(service)
    with pytest.raises(BadInput, match="in the future"):
        service.add_note(ALICE, incident.id, "from tomorrow", event_at=10 ** 12 * 9)
    assert len(memory.timeline) == 1 and events(memory) == [("incident", "create")]


# ----- status updates, broadcast channels, reminders ----------------------------------------
@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clocked(memory: Memory, host: FakeChatHost, clock: Clock) -> IncidentService:
    return IncidentService(lambda **options: FakeUnitOfWork(memory, **options), host, clock=clock)


def broadcast_channel(host: FakeChatHost, name: str, *members: str) -> str:
    channel_id = host.create_channel(TEAM, name, name, public=True, member_ids=members)
    return channel_id


def test_a_status_update_is_posted_in_the_incident_channel_and_each_broadcast_channel_and_kept(clocked, memory, host):
    incident = start(clocked)
    stakeholders = broadcast_channel(host, "stakeholders", ALICE)
    support = broadcast_channel(host, "support", ALICE)
    clocked.set_broadcast_channels(ALICE, incident.id, [stakeholders, support])

    update = clocked.post_status_update(ALICE, incident.id, "  rolled back; errors dropping  ")

    assert update.message == "rolled back; errors dropping" and update.user_id == ALICE
    assert host.posts_in(incident.channel_id)[-1] == "Status update from @alice:\n\nrolled back; errors dropping"
    for channel in (stakeholders, support):
        assert host.posts_in(channel) == ["Status update on **db is down** (~db-is-down) from @alice:\n\n"
                                          "rolled back; errors dropping"]
    assert memory.status_updates == [update]
    assert memory.events[-1][:2] == ("incident", "update_status")
    assert memory.events[-1][4] == {"ReminderSeconds": 0, "NumBroadcastChannels": 2}


def test_a_status_update_writes_one_status_updated_entry_on_the_timeline(clocked, memory):
    incident = start(clocked)
    update = clocked.post_status_update(ALICE, incident.id, "rolled back\nerrors dropping")
    entries = [entry for entry in memory.timeline if entry.event_type == "status_updated"]
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.summary, entry.subject_user_id, entry.event_at, entry.details) == (
        "@alice posted a status update: rolled back", ALICE, update.create_at, {"status_update_id": update.id})


def test_a_refused_status_update_writes_no_timeline_entry(clocked, memory):
    incident = start(clocked)
    clocked.end_incident(ALICE, incident.id)
    before = len(memory.timeline)
    with pytest.raises(InvalidState):
        clocked.post_status_update(ALICE, incident.id, "too late")
    assert len(memory.timeline) == before


def test_status_updates_are_listed_newest_first_and_paged(clocked, clock):
    incident = start(clocked)
    for number in range(5):
        clock.advance(1)
        clocked.post_status_update(ALICE, incident.id, f"update {number}")
    total, page = clocked.list_status_updates(ALICE, incident.id, page=1, per_page=2)
    assert total == 5 and [u.message for u in page] == ["update 2", "update 1"]


def test_an_ended_incident_refuses_a_status_update_and_nothing_is_posted_or_kept(clocked, memory, host):
    incident = start(clocked)
    clocked.end_incident(ALICE, incident.id)
    posts = list(host.posts)
    with pytest.raises(InvalidState, match="has ended"):
        clocked.post_status_update(ALICE, incident.id, "still down")
    assert host.posts == posts and memory.status_updates == []


def test_broadcast_channels_must_exist_and_be_ones_the_person_can_post_in(clocked, memory, host):
    incident = start(clocked)
    theirs = broadcast_channel(host, "bobs-channel", BOB)
    missing = "missing".ljust(26, "0")
    with pytest.raises(PermissionDenied, match="only channels you can post in") as refused:
        clocked.set_broadcast_channels(ALICE, incident.id, [theirs, missing])
    assert refused.value.details == {"broadcast_channel_ids": [theirs, missing]}
    assert memory.incidents[incident.id].broadcast_channel_ids == []
    clocked.set_broadcast_channels(ADMIN, incident.id, [theirs])  # a system admin may post anywhere
    assert memory.incidents[incident.id].broadcast_channel_ids == [theirs]
    assert events(memory)[-1] == ("incident", "change_broadcast_channels")


def test_a_reminder_comes_due_once_then_each_period_until_an_update_is_posted(clocked, clock, host):
    incident = start(clocked)
    clocked.post_status_update(ALICE, incident.id, "looking", reminder_seconds=60)
    clock.advance(59)
    assert clocked.send_due_reminders() == 0
    clock.advance(1)
    assert clocked.send_due_reminders() == 1
    assert clocked.send_due_reminders() == 0  # the same due time never fires twice
    assert host.posts_in(incident.channel_id)[-1].startswith("@alice, please post a status update on **db is down**")
    clock.advance(60)
    assert clocked.send_due_reminders() == 1
    clock.advance(30)
    clocked.post_status_update(ALICE, incident.id, "found it")  # the clock starts again from here
    clock.advance(30)
    assert clocked.send_due_reminders() == 0
    clock.advance(30)
    assert clocked.send_due_reminders() == 1
    reminders = [post for post in host.posts_in(incident.channel_id) if "please post a status update" in post]
    assert len(reminders) == 3


def test_a_reminder_missed_while_no_server_ran_fires_once_late_then_a_period_after(clocked, clock, memory):
    incident = start(clocked)
    clocked.set_reminder(ALICE, incident.id, 60)
    clock.advance(60 * 10)  # ten periods with nobody scanning
    assert clocked.send_due_reminders() == 1
    assert clocked.send_due_reminders() == 0
    assert memory.reminders[incident.id] == clock.now + 60_000


def test_a_snooze_moves_the_reminder_and_never_switches_it_off(clocked, clock, memory):
    incident = start(clocked)
    clocked.set_reminder(ALICE, incident.id, 60)
    clock.advance(50)
    clocked.set_reminder(ALICE, incident.id, 600)
    clock.advance(20)
    assert clocked.send_due_reminders() == 0
    clocked.set_reminder(ALICE, incident.id, 0)
    clock.advance(3600)
    assert clocked.send_due_reminders() == 0 and memory.reminders[incident.id] is None
    assert [props for _, action, _, _, props in memory.events if action == "change_reminder"] == [
        {"ReminderSeconds": 60}, {"ReminderSeconds": 600}, {"ReminderSeconds": 0}]


def test_ending_stops_the_reminder_and_a_restart_starts_its_period_again(clocked, clock, memory):
    incident = start(clocked)
    clocked.set_reminder(ALICE, incident.id, 60)
    clocked.end_incident(ALICE, incident.id)
    clock.advance(120)
    assert clocked.send_due_reminders() == 0
    clocked.restart_incident(ALICE, incident.id)
    assert memory.reminders[incident.id] == clock.now + 60_000
    clock.advance(60)
    assert clocked.send_due_reminders() == 1


def test_a_reminder_another_server_sent_first_is_not_sent_again(clocked, clock, memory, host):
    incident = start(clocked)
    clocked.set_reminder(ALICE, incident.id, 60)
    clock.advance(60)

    def another_server_claims_it() -> None:
        memory.reminders[incident.id] = clock.now + 60_000

    memory.before_commit = another_server_claims_it
    posts = len(host.posts)
    assert clocked.send_due_reminders() == 0 and len(host.posts) == posts


def test_an_incident_started_from_a_playbook_copies_its_broadcast_channels_and_reminder(memory, host, clock):
    from plugin.model import Playbook
    stakeholders = broadcast_channel(host, "stakeholders", ALICE)
    playbook = Playbook(id="playbook".ljust(26, "0"), title="db", team_id=TEAM, member_ids=[ALICE],
                        broadcast_channel_ids=[stakeholders], reminder_seconds=900)

    class WithPlaybook(FakeUnitOfWork):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.playbooks = type("Playbooks", (), {"get": staticmethod(lambda _id: playbook)})()

    service = IncidentService(lambda **options: WithPlaybook(memory, **options), host, clock=clock)
    incident = service.create_incident(ALICE, NewIncident("db is down", TEAM, ALICE, playbook_id=playbook.id))
    assert incident.broadcast_channel_ids == [stakeholders] and incident.reminder_seconds == 900
    assert memory.reminders[incident.id] == clock.now + 900_000
    service.post_status_update(ALICE, incident.id, "on it")
    assert host.posts_in(stakeholders)[-1].endswith("on it")


def test_a_reminder_the_chat_host_cannot_word_now_is_tried_again_and_does_not_hold_up_the_others(
        clocked, clock, host):
    first, second = start(clocked), start(clocked)
    clocked.set_reminder(ALICE, first.id, 60)
    clock.advance(1)
    clocked.set_reminder(ALICE, second.id, 60)
    clock.advance(60)
    mention, failures = host.mention, [True]

    def mention_failing_once(user_id: str) -> str:
        if failures and failures.pop():
            raise HostUnavailable("Mattermost is having trouble right now; try again in a minute.")
        return mention(user_id)

    host.mention = mention_failing_once
    assert clocked.send_due_reminders() == 1  # the first could not be worded; the second went out
    assert [channel for channel, post in host.posts if "please post" in post] == [second.channel_id]
    assert clocked.send_due_reminders() == 1  # the first, at the next scan
    assert clocked.send_due_reminders() == 0


def test_a_patch_makes_the_one_change_it_gives(service, memory):
    incident = start(service)
    outcome = service.patch_incident(ALICE, incident.id, IncidentPatch(active_stage=1))
    assert outcome.changed and memory.incidents[incident.id].active_stage == 1
    assert events(memory)[1:] == [("incident", "change_stage")]


def test_a_patch_that_gives_no_change_is_refused_and_changes_nothing(service, memory):
    incident = start(service)
    version = memory.incidents[incident.id].version
    with pytest.raises(BadInput, match="exactly one"):
        service.patch_incident(ALICE, incident.id, IncidentPatch())
    assert memory.incidents[incident.id].version == version and events(memory) == [("incident", "create")]
