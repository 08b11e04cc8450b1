"""Playbook rules, without Flask or a database."""
from __future__ import annotations

import itertools

from plugin.model import Checklist, ChecklistItem, ItemState, Playbook


def playbook() -> Playbook:
    return Playbook(id="p", title="Outage", team_id="t", checklists=[
        Checklist("c1", "Triage", [ChecklistItem("i1", "Page", command="/page", description="who"),
                                   ChecklistItem("i2", "Status")]),
        Checklist("c2", "Resolve", [])])


def test_counts_stages_and_tasks():
    assert (playbook().num_stages, playbook().num_tasks) == (2, 2)


def test_set_members_keeps_the_given_user_first_and_drops_repeats():
    book = playbook()
    book.set_members(["b", "a", "b"], keep="a")
    assert book.member_ids == ["a", "b"]
    assert book.is_member("b") and not book.is_member("c")


def test_stage_copies_have_new_ids_and_open_unassigned_tasks_with_the_same_texts():
    book = playbook()
    book.checklists[0].items[0].state = ItemState.CLOSED
    book.checklists[0].items[0].assignee_id = "someone"
    counter = itertools.count()
    copies = book.stage_copies(lambda: f"new{next(counter)}")
    assert [c.title for c in copies] == ["Triage", "Resolve"]
    first = copies[0].items[0]
    assert (first.title, first.command, first.description) == ("Page", "/page", "who")
    assert first.state is ItemState.OPEN and first.assignee_id == "" and first.id.startswith("new")
    assert copies[0].id.startswith("new")


def test_stage_copies_do_not_share_lists_with_the_template():
    book = playbook()
    copies = book.stage_copies(lambda: "x")
    copies[0].items.clear()
    assert book.num_tasks == 2
