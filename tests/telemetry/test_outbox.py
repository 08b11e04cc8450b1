"""The outbox's claims: a leased event is never handed to a second claimer until its lease expires."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from plugin.store.tables import telemetry_audit
from plugin.telemetry import OutboxRow
from plugin.telemetry.outbox import KEEP_SENT, REJECTED, Outbox
from tests.fakes.clock import Clock


def _record(db, outbox: Outbox, count: int, max_events: int = 100) -> None:
    with db.unit_of_work() as uow:
        for n in range(count):
            uow.outbox.add(OutboxRow("incident", {"Action": "end", "n": n}, n, max_events))
        uow.commit()


def test_a_claimed_event_is_not_claimed_again_until_its_lease_expires(db):
    clock = Clock()
    first, second = Outbox(db, clock), Outbox(db, clock)
    _record(db, first, 3)
    _, mine = first.claim(10, lease_ms=5_000)
    assert [e.properties["n"] for e in mine] == [0, 1, 2]
    assert second.claim(10, lease_ms=5_000)[1] == []
    clock.now += 5_001
    _, retaken = second.claim(10, lease_ms=5_000)
    assert [e.message_id for e in retaken] == [e.message_id for e in mine]


def test_claims_split_pending_events_between_claimers_without_overlap(db):
    clock = Clock()
    outboxes = [Outbox(db, clock) for _ in range(3)]
    _record(db, outboxes[0], 10)
    taken = [outbox.claim(4, lease_ms=5_000)[1] for outbox in outboxes]
    ids = [e.message_id for batch in taken for e in batch]
    assert [len(batch) for batch in taken] == [4, 4, 2] and len(set(ids)) == 10


def test_a_claim_whose_range_spans_another_live_lease_returns_only_its_own_events(db):
    clock = Clock()
    first, second, third = (Outbox(db, clock) for _ in range(3))
    _record(db, first, 10)
    token, _ = first.claim(3, lease_ms=5_000)  # events 0-2
    _, held = second.claim(3, lease_ms=5_000)  # events 3-5, leased until later
    first.release(token)
    _, mine = third.claim(10, lease_ms=5_000)
    # The claim's range runs from event 0 to 9 and holds the second claimer's three.
    assert [e.properties["n"] for e in mine] == [0, 1, 2, 6, 7, 8, 9]
    assert not {e.message_id for e in mine} & {e.message_id for e in held}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL reads them with the claim
def test_a_claimed_event_deleted_before_its_contents_are_read_is_not_returned(db, monkeypatch):
    outbox = Outbox(db, Clock())
    _record(db, outbox, 4)
    real_read = outbox.db.read_engine.connect

    def purge_then_read():
        # Between the claim's commit and the read of what it took, telemetry is switched off.
        monkeypatch.setattr(outbox.db.read_engine, "connect", real_read)
        assert outbox.purge_pending() == 4
        return real_read()

    monkeypatch.setattr(outbox.db.read_engine, "connect", purge_then_read)
    _, events = outbox.claim(10, lease_ms=5_000, look_first=False)
    assert events == [] and outbox.pending_count() == 0


def test_a_released_claim_can_be_taken_at_once_and_a_marked_event_never_again(db):
    clock = Clock()
    outbox = Outbox(db, clock)
    _record(db, outbox, 2)
    token, events = outbox.claim(10, lease_ms=5_000)
    assert outbox.mark_sent([(events[0].seq, {"messageId": events[0].message_id})]) == 1
    outbox.release(token)
    _, again = outbox.claim(10, lease_ms=5_000)
    assert [e.seq for e in again] == [events[1].seq]
    assert outbox.counters()["sent"] == 1 and outbox.pending_count() == 1
    assert outbox.recent_sent(5) == [{"messageId": events[0].message_id}]


def test_recording_past_the_bound_drops_the_oldest_pending_events(db):
    outbox = Outbox(db, Clock())
    _record(db, outbox, 7, max_events=4)
    _, events = outbox.claim(10, lease_ms=5_000)
    assert [e.properties["n"] for e in events] == [3, 4, 5, 6]
    assert outbox.counters()["dropped"] == 3


def test_a_lowered_bound_holds_from_the_next_event(db):
    outbox = Outbox(db, Clock())
    _record(db, outbox, 10, max_events=10)
    _record(db, outbox, 1, max_events=4)
    _, events = outbox.claim(10, lease_ms=5_000)
    assert [e.properties["n"] for e in events] == [7, 8, 9, 0]
    assert outbox.counters()["dropped"] == 7


def test_delivered_events_leave_the_outbox_and_the_audit_keeps_the_newest_messages(db):
    outbox = Outbox(db, Clock())
    _record(db, outbox, 300, max_events=1_000)
    sent: list[str] = []
    while True:
        _, events = outbox.claim(60, lease_ms=5_000)
        if not events:
            break
        assert outbox.mark_sent([(e.seq, {"messageId": e.message_id}) for e in events]) == len(events)
        sent.extend(e.message_id for e in events)
    assert len(sent) == 300 and outbox.pending_count() == 0 and outbox.counters()["sent"] == 300
    newest_first = [{"messageId": message_id} for message_id in reversed(sent)]
    assert outbox.recent_sent(KEEP_SENT) == newest_first[:KEEP_SENT]
    assert outbox.recent_sent(7) == newest_first[:7]
    # Batches of 60: the newest four hold the newest 200 messages; older batches are gone.
    with db.read_engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(telemetry_audit)).scalar_one() == 4


def test_a_batch_holding_the_newest_messages_alone_replaces_the_older_audit_rows_of_its_state(db):
    outbox = Outbox(db, Clock())
    _record(db, outbox, KEEP_SENT + 60, max_events=1_000)
    token, poison = outbox.claim(10, lease_ms=5_000)
    outbox.finish(token, [], [(e.seq, {"messageId": e.message_id}) for e in poison])  # refused: kept apart
    token, first = outbox.claim(50, lease_ms=5_000)
    outbox.finish(token, [(e.seq, {"messageId": e.message_id}) for e in first])
    token, big = outbox.claim(KEEP_SENT, lease_ms=5_000)
    outbox.finish(token, [(e.seq, {"messageId": e.message_id}) for e in big])
    assert outbox.recent_sent(KEEP_SENT + 50) == [{"messageId": e.message_id} for e in reversed(big)]
    assert outbox.recent_sent(20, REJECTED) == [{"messageId": e.message_id} for e in reversed(poison)]
    with db.read_engine.connect() as connection:
        rows = connection.execute(sa.select(telemetry_audit.c.state, telemetry_audit.c.count)
                                  .order_by(telemetry_audit.c.seq)).all()
    assert [tuple(row) for row in rows] == [(REJECTED, 10), ("sent", KEEP_SENT)]


def test_an_event_already_removed_by_another_dispatcher_is_not_counted_twice(db):
    clock = Clock()
    first, second = Outbox(db, clock), Outbox(db, clock)
    _record(db, first, 2)
    _, events = first.claim(10, lease_ms=5_000)
    clock.now += 5_001  # the lease expired mid-send: the second dispatcher sends them too
    _, again = second.claim(10, lease_ms=5_000)
    assert [e.seq for e in again] == [e.seq for e in events]
    assert second.mark_sent([(e.seq, {"messageId": e.message_id}) for e in again]) == 2
    assert first.mark_sent([(e.seq, {"messageId": e.message_id}) for e in events]) == 0
    assert first.counters()["sent"] == 2 and len(first.recent_sent(10)) == 2


def test_rejected_events_leave_the_outbox_and_are_kept_apart_from_the_sent_ones(db):
    outbox = Outbox(db, Clock())
    _record(db, outbox, 3)
    token, events = outbox.claim(10, lease_ms=5_000)
    poison = events[1]
    outbox.finish(token, [(events[0].seq, {"messageId": events[0].message_id})],
                  [(poison.seq, {"messageId": poison.message_id})])
    assert outbox.pending_count() == 1
    assert outbox.recent_sent(10, REJECTED) == [{"messageId": poison.message_id}]
    assert outbox.recent_sent(10) == [{"messageId": events[0].message_id}]
    assert (outbox.counters()["sent"], outbox.counters()["rejected"]) == (1, 1)
    _, rest = outbox.claim(10, lease_ms=5_000)  # the third was given back at once
    assert [e.seq for e in rest] == [events[2].seq]


def test_concurrent_claimers_take_every_event_once(db):
    import threading

    clock = Clock()
    _record(db, Outbox(db, clock), 400, max_events=1_000)
    taken: list[list[str]] = [[] for _ in range(4)]

    def claimer(n: int) -> None:
        outbox = Outbox(db, clock)
        while True:
            _, events = outbox.claim(7, lease_ms=60_000, look_first=False)
            if not events:
                return
            taken[n].extend(e.message_id for e in events)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    ids = [message_id for part in taken for message_id in part]
    assert len(ids) == 400 and len(set(ids)) == 400


def _switch(db, *flips: bool) -> None:
    """Flip the database's telemetry switch, one transaction per flip (waiting events are left alone)."""
    for on in flips:
        with db.unit_of_work() as uow:
            uow.saved_settings.advance(on)
            uow.commit()


def test_an_event_is_not_stored_while_the_database_switch_is_off(db):
    outbox = Outbox(db)
    _switch(db, False)
    _record(db, outbox, 2)
    assert outbox.pending_count() == 0
    _switch(db, True)
    _record(db, outbox, 1)
    assert outbox.pending_count() == 1


def test_an_event_of_an_epoch_before_the_switch_last_went_off_is_deleted_by_the_next_claim_and_never_sent(db):
    # A statement that began before the switch went off may commit its event after the
    # change deleted the waiting ones: it carries the old epoch.
    outbox = Outbox(db)
    _record(db, outbox, 2)
    _switch(db, False, True)
    _record(db, outbox, 1)
    _, events = outbox.claim(10, lease_ms=5_000)
    assert [event.properties["n"] for event in events] == [0]  # the one event of the new epoch
    assert outbox.pending_count() == 1 and outbox.counters()["deleted"] == 2


def test_a_claim_while_the_database_switch_is_off_takes_nothing_and_deletes_what_waits(db):
    outbox = Outbox(db)
    _record(db, outbox, 3)
    _switch(db, False)
    assert outbox.claim(10, lease_ms=5_000)[1] == []
    assert outbox.pending_count() == 0 and outbox.counters()["deleted"] == 3


def test_a_claim_under_settings_older_than_the_database_takes_nothing(db):
    outbox = Outbox(db)
    _record(db, outbox, 2)
    _switch(db, True)  # another change: the version moves, the switch stays on
    version = outbox.switch().version
    assert outbox.claim(10, lease_ms=5_000, version=version - 1)[1] == []
    assert len(outbox.claim(10, lease_ms=5_000, version=version)[1]) == 2
    assert outbox.may_send(version) and not outbox.may_send(version - 1)
