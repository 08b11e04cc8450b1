"""The incident rules, without Flask or a database."""
from __future__ import annotations

import collections

import pytest

from plugin.errors import BadInput, InvalidState, NotFound
from plugin.model import (
    CLOCK_SKEW_MS,
    DETAILS_MAX,
    STATUS_MESSAGE_MAX,
    SUMMARY_MAX,
    Checklist,
    ChecklistItem,
    Incident,
    ItemState,
    Reminder,
    TimelineEntry,
    check_status_message,
    is_id,
    new_id,
    slugify,
)


def make_incident(stages: int = 2, items: int = 3) -> Incident:
    checklists = [Checklist(new_id(), f"Stage {s}", [ChecklistItem(new_id(), f"task {s}.{i}") for i in range(items)])
                  for s in range(stages)]
    return Incident(id=new_id(), name="db down", team_id="t" * 26, commander_user_id="a" * 26,
                    channel_id="c" * 26, create_at=1, active_stage=0 if stages else -1, checklists=checklists)


def test_new_ids_are_mattermost_shaped_and_unique():
    ids = {new_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(is_id(i) for i in ids)


def test_new_ids_use_every_character_of_mattermosts_alphabet_alike():
    counts = collections.Counter("".join(new_id() for _ in range(4000)))  # 104,000 characters
    assert set(counts) == set("ybndrfg8ejkmcpqxot1uwisza345h769")
    # 3,250 expected per character; a biased mapping (say, bytes mod 26) would be far off.
    assert all(2_900 < count < 3_600 for count in counts.values())


@pytest.mark.parametrize("value", ["", "A" * 26, "a" * 25, "a" * 27, "a" * 25 + "-", "a" * 26 + "\n", 26, None])
def test_is_id_refuses_anything_else(value):
    assert not is_id(value)


def test_end_sets_end_time_and_a_second_end_is_refused():
    incident = make_incident()
    incident.end(now=42)
    assert not incident.is_active and incident.end_at == 42
    with pytest.raises(InvalidState, match="already ended"):
        incident.end(now=43)
    assert incident.end_at == 42


def test_restart_clears_end_time_and_refuses_an_active_incident():
    incident = make_incident()
    with pytest.raises(InvalidState):
        incident.restart()
    incident.end(now=5)
    incident.restart()
    assert incident.is_active and incident.end_at == 0


def test_same_commander_and_same_stage_are_no_ops():
    incident = make_incident()
    assert incident.change_commander("a" * 26) is False
    assert incident.set_active_stage(0) is False
    assert incident.change_commander("b" * 26) is True and incident.commander_user_id == "b" * 26
    assert incident.set_active_stage(1) is True and incident.active_stage_title == "Stage 1"


@pytest.mark.parametrize("stage", [-1, 2, 99])
def test_a_stage_to_make_active_that_does_not_exist_is_bad_input(stage):
    incident = make_incident()
    with pytest.raises(BadInput, match="does not exist: use a stage number from 0 to 1"):
        incident.set_active_stage(stage)
    assert incident.active_stage == 0


def test_an_incident_without_stages_explains_why_it_has_no_stage_to_change():
    incident = make_incident(stages=0)
    with pytest.raises(BadInput, match="no stages"):
        incident.set_active_stage(0)
    assert incident.active_stage_title == ""


def test_next_stage_moves_one_on_from_the_active_stage_and_stops_at_the_last():
    incident = make_incident(stages=3, items=0)
    assert incident.next_stage() is True and incident.active_stage == 1
    assert incident.next_stage() is True and incident.active_stage == 2
    with pytest.raises(InvalidState, match='"Stage 2" is the last stage') as refused:
        incident.next_stage(force=True)
    assert refused.value.details["last_stage"] is True and incident.active_stage == 2
    assert refused.value.chat == "**Stage 2** is the last stage."


def test_next_stage_leaves_a_stage_with_open_tasks_only_when_forced():
    incident = make_incident(stages=2, items=2)
    incident.set_item_state(0, 0, ItemState.CLOSED, now=1)
    with pytest.raises(InvalidState, match=r'Stage "Stage 0" still has 1 open task\(s\)') as refused:
        incident.next_stage()
    assert refused.value.details["open_tasks"] == 1 and incident.active_stage == 0
    assert incident.next_stage(force=True) is True and incident.active_stage == 1


def test_previous_stage_moves_one_back_and_stops_at_the_first():
    incident = make_incident(stages=3)
    incident.set_active_stage(2)
    assert incident.previous_stage() is True and incident.active_stage == 1
    assert incident.previous_stage() is True and incident.active_stage == 0
    with pytest.raises(InvalidState, match='"Stage 0" is already the first stage'):
        incident.previous_stage()
    assert incident.active_stage == 0


@pytest.mark.parametrize("move", [Incident.next_stage, Incident.previous_stage], ids=["next", "previous"])
def test_an_incident_without_stages_has_no_stage_to_move_to(move):
    incident = make_incident(stages=0)
    with pytest.raises(InvalidState, match="no stages"):
        move(incident)
    assert incident.active_stage == -1


@pytest.mark.parametrize("start", list(ItemState), ids=[state.value for state in ItemState])
def test_toggle_opens_a_closed_task_and_closes_any_other(start):
    incident = make_incident()
    incident.set_item_state(1, 2, start, now=5)
    assert incident.toggle_item_state(1, 2, now=9) is True
    item = incident.checklists[1].items[2]
    assert item.state is (ItemState.OPEN if start is ItemState.CLOSED else ItemState.CLOSED)
    assert item.state_modified == 9


def test_move_item_reorders_within_the_stage():
    incident = make_incident()
    assert incident.move_item(0, 2, 0) is True
    assert [i.title for i in incident.checklists[0].items] == ["task 0.2", "task 0.0", "task 0.1"]
    assert incident.move_item(0, 1, 1) is False


@pytest.mark.parametrize("item_num, new_location, field", [(0, 3, "new_location"), (3, 0, "item_num"),
                                                           (-1, 0, "item_num"), (0, -1, "new_location")])
def test_moving_a_task_from_or_to_a_place_the_stage_lacks_is_bad_input_naming_the_field(item_num, new_location,
                                                                                        field):
    incident = make_incident()
    before = [i.title for i in incident.checklists[0].items]
    with pytest.raises(BadInput, match=f"^{field} -?[0-9] is out of range: stage 0 has 3 task.s., so use 0 to 2") \
            as refused:
        incident.move_item(0, item_num, new_location)
    assert refused.value.details == {field: item_num if field == "item_num" else new_location, "item_count": 3}
    assert [i.title for i in incident.checklists[0].items] == before


def test_item_state_records_when_it_changed():
    incident = make_incident()
    assert incident.set_item_state(1, 2, ItemState.CLOSED, now=77) is True
    item = incident.checklists[1].items[2]
    assert item.state is ItemState.CLOSED and item.state_modified == 77
    assert incident.set_item_state(1, 2, ItemState.CLOSED, now=78) is False and item.state_modified == 77
    assert incident.checklists[1].open_item_count == 2


@pytest.mark.parametrize("checklist, item", [(2, 0), (-1, 0), (0, 3), (0, -1)])
def test_task_indexes_must_exist(checklist, item):
    incident = make_incident()
    with pytest.raises(NotFound):
        incident.remove_item(checklist, item)
    assert incident.total_items == 6


def test_edit_item_reports_whether_anything_changed():
    incident = make_incident()
    assert incident.edit_item(0, 0, title="task 0.0") is False
    assert incident.edit_item(0, 0, description="why") is True
    assert incident.checklists[0].items[0].description == "why"


def test_assignee_can_be_set_and_cleared():
    incident = make_incident()
    assert incident.set_item_assignee(0, 0, "b" * 26) is True
    assert incident.set_item_assignee(0, 0, "b" * 26) is False
    assert incident.set_item_assignee(0, 0, "") is True and incident.checklists[0].items[0].assignee_id == ""


@pytest.mark.parametrize("name, slug", [
    ("DB is down!", "db-is-down"), ("  ", "incident"), ("数据库", "incident"), ("x", "incident"),
    ("a" * 80, "a" * 50), ("Ünïcode -- name", "unicode-name"),
])
def test_slugify_makes_channel_names(name, slug):
    assert slugify(name) == slug


# ----- timeline entries -----------------------------------------------------------------------
NOW = 1_700_000_000_000


def note(summary: str = "rolled back the deploy", **options) -> TimelineEntry:
    return TimelineEntry.note("e" * 26, "i" * 26, "a" * 26, summary, NOW, **options)


def test_a_note_is_dated_now_unless_it_gives_an_earlier_time():
    assert (note().event_type, note().event_at, note().create_at) == ("note", NOW, NOW)
    assert note(event_at=NOW - 3_600_000).event_at == NOW - 3_600_000


def test_a_note_trims_its_summary_and_keeps_details_and_post():
    entry = note("  paged the DBA  ", details={"ticket": 42}, post_id="p" * 26)
    assert (entry.summary, entry.details, entry.post_id, entry.deleted) == ("paged the DBA", {"ticket": 42},
                                                                           "p" * 26, False)


@pytest.mark.parametrize("options, message", [
    ({"summary": "   "}, "needs a summary"),
    ({"summary": "x" * (SUMMARY_MAX + 1)}, f"at most {SUMMARY_MAX}"),
    ({"summary": "two\nlines"}, "one line"),
    ({"summary": "nul\x00inside"}, "NUL"),
    ({"summary": "lone \ud800 surrogate"}, "surrogate"),
    ({"details": ["not", "an", "object"]}, "JSON object"),
    ({"details": {"big": "x" * DETAILS_MAX}}, "too large"),
    ({"event_at": NOW + CLOCK_SKEW_MS + 1}, "in the future"),
    ({"post_id": "not-an-id"}, "post_id"),
])
def test_a_note_that_breaks_a_rule_is_refused_saying_what_to_fix(options, message):
    summary = options.pop("summary", "fine")
    with pytest.raises(BadInput, match=message):
        note(summary, **options)


def test_a_note_a_little_ahead_of_the_server_clock_is_accepted():
    assert note(event_at=NOW + CLOCK_SKEW_MS).event_at == NOW + CLOCK_SKEW_MS


def test_deleting_an_entry_keeps_it_with_who_and_when_and_a_second_delete_is_not_found():
    entry = note()
    entry.delete("b" * 26, NOW + 5)
    assert (entry.deleted, entry.deleted_by, entry.deleted_at, entry.summary) == (True, "b" * 26, NOW + 5,
                                                                                 "rolled back the deploy")
    with pytest.raises(NotFound, match="deleted already"):
        entry.delete("a" * 26, NOW + 6)


# ----- status updates, broadcast channels, reminders ----------------------------------------
def test_an_ended_incident_refuses_status_updates_reminders_and_new_broadcast_channels_saying_why():
    incident = make_incident()
    incident.end(5)
    for attempt in (lambda: incident.post_status_update(None), lambda: incident.set_reminder(600),
                    lambda: incident.set_broadcast_channels(["b" * 26])):
        with pytest.raises(InvalidState, match="has ended: it takes no .* Restart it first"):
            attempt()
    assert incident.reminder_seconds == 0 and incident.broadcast_channel_ids == []


@pytest.mark.parametrize("seconds", [1, 9, 30 * 24 * 3600 + 1, -5])
def test_a_reminder_period_outside_ten_seconds_to_thirty_days_is_bad_input(seconds):
    incident = make_incident()
    with pytest.raises(BadInput, match="0 \\(never\\) or from 10 seconds to 30 days"):
        incident.set_reminder(seconds)
    assert incident.reminder_seconds == 0


def test_a_status_update_keeps_the_period_unless_it_gives_one_and_zero_means_never():
    incident = make_incident()
    incident.set_reminder(600)
    incident.post_status_update(None)
    assert incident.next_reminder_at(1_000) == 601_000
    incident.post_status_update(0)
    assert incident.reminder_seconds == 0 and incident.next_reminder_at(1_000) is None


def test_broadcast_channels_drop_repeats_and_setting_the_same_list_changes_nothing():
    incident = make_incident()
    assert incident.set_broadcast_channels(["b" * 26, "c" * 26, "b" * 26])
    assert incident.broadcast_channel_ids == ["b" * 26, "c" * 26]
    assert not incident.set_broadcast_channels(["b" * 26, "c" * 26])


def test_a_reminder_fired_on_time_keeps_its_rhythm_and_one_fired_late_waits_a_period_from_now():
    reminder = Reminder("i" * 26, due_at=60_000)
    assert reminder.next_due(60, now=62_500) == 120_000  # a scan a little after the due time
    assert reminder.next_due(60, now=200_000) == 260_000  # down for two periods: once now, then a period on


@pytest.mark.parametrize("message", ["", "   \n "])
def test_a_blank_status_update_is_bad_input(message):
    with pytest.raises(BadInput, match="needs a message"):
        check_status_message(message)


def test_a_status_update_over_the_length_limit_is_bad_input_naming_the_limit():
    with pytest.raises(BadInput, match=f"at most {STATUS_MESSAGE_MAX}"):
        check_status_message("x" * (STATUS_MESSAGE_MAX + 1))
