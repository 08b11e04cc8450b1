"""A lock file opened once per process: exclusive across descriptors, never shared with a forked child."""
from __future__ import annotations

import multiprocessing
import os

from plugin.lockfile import LockFile


def test_two_holders_exclude_each_other_and_the_lock_passes_on_unlock(tmp_path):
    first, second = LockFile(tmp_path / "a" / "x.lock"), LockFile(tmp_path / "a" / "x.lock")
    assert first.try_lock()
    assert not second.try_lock()
    first.unlock()
    assert second.try_lock()
    assert not first.try_lock()
    second.close()  # closing lets go as well
    assert first.try_lock()
    first.close()


def test_the_file_is_opened_once_per_process(tmp_path):
    lock = LockFile(tmp_path / "x.lock")
    assert lock.descriptor() == lock.descriptor()
    lock.close()


def _child(lock: LockFile, results) -> None:
    results.put(lock.try_lock())  # the parent holds it: a child must not share that
    lock.close()  # closing the child's own copy must not free the parent's lock
    results.put(os.getpid())


def test_a_forked_child_neither_shares_its_parents_lock_nor_frees_it(tmp_path):
    lock = LockFile(tmp_path / "x.lock")
    assert lock.try_lock()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_child, args=(lock, results))
    child.start()
    try:
        assert results.get(timeout=10) is False
        assert results.get(timeout=10) != os.getpid()
        child.join(10)
        probe = LockFile(tmp_path / "x.lock")
        assert not probe.try_lock()  # still the parent's
        probe.close()
        lock.unlock()
        other = LockFile(tmp_path / "x.lock")
        assert other.try_lock()
        other.close()
    finally:
        child.join(10)
        lock.close()
