"""The telemetry sender's turn: one process of a server holds it at a time."""
from __future__ import annotations

import multiprocessing

from plugin.telemetry.dispatcher import Turn


def test_one_holder_at_a_time_and_the_next_takes_it_when_given_back(tmp_path):
    first, second = Turn(tmp_path / "turn.lock"), Turn(tmp_path / "turn.lock")
    assert first.take() and first.take()  # held, and still held
    assert not second.take() and not second.take()
    first.give_back()
    assert second.take()
    assert not first.take()


def test_without_a_path_or_a_usable_file_every_process_holds_it(tmp_path):
    assert Turn(None).take()
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    assert Turn(blocked / "turn.lock").take()  # cannot be created: every process sends


def _child(turn: Turn, to_child, from_child) -> None:
    from_child.put(turn.take())  # the parent holds it: not ours
    from_child.put(turn.take() if to_child.get(timeout=10) == "given back" else None)


def test_a_forked_child_neither_shares_its_parents_turn_nor_keeps_it_held(tmp_path):
    turn = Turn(tmp_path / "turn.lock")
    assert turn.take()
    context = multiprocessing.get_context("fork")
    to_child, from_child = context.Queue(), context.Queue()
    child = context.Process(target=_child, args=(turn, to_child, from_child))
    child.start()
    try:
        assert from_child.get(timeout=10) is False
        turn.give_back()
        to_child.put("given back")
        # The child closed the descriptor it inherited, so the parent's give_back freed the lock.
        assert from_child.get(timeout=10) is True
    finally:
        child.join(10)
