"""Concurrent edits of one incident never lose an update (SQLite and PostgreSQL)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from plugin.model import ItemState
from plugin.service import NewChecklist, NewIncident, NewItem
from tests.conftest import ALICE, BOB, CAROL, TEAM

THREADS = 8


def _start(components, items: int = 0):
    stages = [NewChecklist("One", [NewItem(f"task {i}") for i in range(items)]), NewChecklist("Two"),
              NewChecklist("Three")]
    incident = components.service.create_incident(ALICE, NewIncident("race", TEAM, ALICE, checklists=stages))
    for user in (BOB, CAROL):
        components.host.add_channel_member(incident.channel_id, user)
    return incident


def test_concurrent_task_additions_are_all_kept(components):
    incident = _start(components)
    service = components.service

    def add(worker: int) -> None:
        for n in range(10):
            service.add_item(ALICE, incident.id, 1, NewItem(f"w{worker}-{n}"))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(add, range(THREADS)))
    final = service.get_incident(ALICE, incident.id)
    titles = [item.title for item in final.checklists[1].items]
    assert len(titles) == THREADS * 10
    assert set(titles) == {f"w{w}-{n}" for w in range(THREADS) for n in range(10)}
    assert final.version == THREADS * 10


def test_concurrent_state_commander_and_stage_changes_all_land(components):
    incident = _start(components, items=THREADS)
    service = components.service

    def work(worker: int) -> None:
        # Each worker closes its own task, then makes shared changes that race.
        service.set_item_state(ALICE, incident.id, 0, worker, ItemState.CLOSED)
        service.change_commander(ALICE, incident.id, (ALICE, BOB, CAROL)[worker % 3])
        service.set_active_stage(BOB, incident.id, worker % 3)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))
    final = service.get_incident(ALICE, incident.id)
    assert [item.state for item in final.checklists[0].items] == [ItemState.CLOSED] * THREADS
    assert final.commander_user_id in {ALICE, BOB, CAROL}
    assert final.active_stage in {0, 1, 2}
    # Every committed change bumped the version exactly once: 8 closes plus the
    # commander and stage changes that were not no-ops (at least one of each kind
    # must have been real, since workers asked for different values).
    assert final.version >= THREADS + 2


def test_version_counts_exactly_the_committed_changes(components):
    incident = _start(components, items=1)
    service = components.service

    def toggle(worker: int) -> None:
        for _ in range(6):
            service.add_item(ALICE, incident.id, 2, NewItem("x"))
            service.remove_item(ALICE, incident.id, 2, 0)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(toggle, range(4)))
    final = service.get_incident(ALICE, incident.id)
    assert final.checklists[2].items == []
    assert final.version == 4 * 6 * 2
