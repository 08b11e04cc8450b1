"""Which domain event writes which timeline entry (plugin.timeline.entry_for), without a store."""
from __future__ import annotations

from plugin.events import Announcement, Before, IncidentEvent, PlaybookEvent, TaskEvent
from plugin.model import Checklist, ChecklistItem, Incident, ItemState, Playbook
from plugin.timeline import entry_for

ALICE, BOB = "a" * 26, "b" * 26
NOW = 1_700_000_000_000


def incident() -> Incident:
    return Incident(id="i" * 26, name="db\ndown", team_id="t" * 26, commander_user_id=ALICE, channel_id="c" * 26,
                    create_at=NOW - 10, active_stage=1, checklists=[
                        Checklist("s" * 26, "Triage", [ChecklistItem("x" * 26, "Page\r\nthe DBA")]),
                        Checklist("r" * 26, "Resolve")])


def test_names_with_line_breaks_make_a_one_line_summary():
    entry = entry_for(IncidentEvent("create", incident(), ALICE, mentions={ALICE: "@alice"}), NOW)
    assert entry.summary == '@alice started the incident "db down" as its commander.'
    task = entry_for(TaskEvent("set_assignee_for_task", incident(), ALICE, task=(0, 0)), NOW)
    assert task.summary == f'@{ALICE} unassigned the task "Page the DBA".'


def test_a_user_the_change_did_not_name_is_named_by_id():
    entry = entry_for(IncidentEvent("change_commander", incident(), BOB, before=Before(BOB, 0, "Triage"),
                                    mentions={BOB: "@bob"}), NOW)
    assert entry.summary == f"@bob changed the commander from @bob to @{ALICE}."
    assert (entry.subject_user_id, entry.details) == (ALICE, {"from_user_id": BOB, "to_user_id": ALICE})


def test_a_task_state_entry_is_dated_when_the_task_changed_and_names_its_position():
    changed = incident()
    changed.checklists[0].items[0].state, changed.checklists[0].items[0].state_modified = ItemState.CLOSED, NOW - 5
    entry = entry_for(TaskEvent("modify_task_state", changed, ALICE, task=(0, 0)), NOW)
    assert (entry.event_type, entry.event_at, entry.create_at) == ("task_state_changed", NOW - 5, NOW)
    assert entry.details == {"checklist": 0, "item": 0, "item_id": "x" * 26, "state": "closed"}


def test_events_the_timeline_does_not_tell_have_no_entry():
    playbook = Playbook("p" * 26, "Runbook", "t" * 26)
    for event in (PlaybookEvent("create", playbook, ALICE), IncidentEvent("add_members", incident(), ALICE),
                  TaskEvent("add_task", incident(), ALICE), IncidentEvent("remove_timeline_event", incident(), ALICE),
                  Announcement("c" * 26, "hello")):
        assert entry_for(event, NOW) is None


def test_members_added_names_each_person_and_keeps_their_ids():
    entry = entry_for(IncidentEvent("add_members", incident(), ALICE, mentions={ALICE: "@alice", BOB: "@bob"},
                                    members=(BOB, "c" * 26)), NOW)
    assert (entry.event_type, entry.summary) == ("members_added", f"@alice added @bob, @{'c' * 26} to the incident.")
    assert (entry.subject_user_id, entry.details) == ("", {"user_ids": [BOB, "c" * 26]})
    alone = entry_for(IncidentEvent("add_members", incident(), ALICE, members=(BOB,)), NOW)
    assert alone.subject_user_id == BOB
