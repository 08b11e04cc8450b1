"""The telemetry outbox: events stored in the transaction of their change, claimed and removed by the dispatcher.

Claims are leases on ranges: a claim takes the oldest waiting events that no live
lease covers and records one row in ``telemetry_leases`` (a token, the first and
last sequence number, an expiry), so two dispatchers (two workers, two servers on
one PostgreSQL) never send the same event at the same time. Claims take turns:
SQLite's write lock (``BEGIN IMMEDIATE``), a transaction-scoped advisory lock on
PostgreSQL. A dispatcher that dies mid-send leaves its lease to expire; its events
are then sent again with the same message ids, which the data plane de-duplicates.

An event row is written once and deleted once: a delivered (or refused) event
leaves the outbox in the transaction that counts it and ends its lease, so the
table only holds what is still to be sent. Events of a lease that were not done
are free again as soon as the lease row is gone. What was sent is kept for admins
in ``telemetry_audit``: one row per batch with its newest messages.
"""
from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from plugin.model import now_ms
from plugin.store import Database
from plugin.store.outbox import bump_counter, put_kv
from plugin.store.saved_settings import SettingsState, read_state
from plugin.store.tables import plugin_kv, telemetry_audit, telemetry_counters, telemetry_leases, telemetry_outbox

SENT = "sent"
# Refused by the data plane on its own (HTTP 400): never retried.
REJECTED = "rejected"
LAST_ERROR_KEY = "telemetry_last_error"
LAST_SUCCESS_KEY = "telemetry_last_success"
# Delivered (and refused) messages kept, of each, so that admins can audit what left the server.
KEEP_SENT = 200




@dataclass(frozen=True)
class OutboxEvent:
    """A claimed event, ready to send."""

    seq: int
    message_id: str
    event: str
    properties: dict[str, Any]
    recorded_at: int


# Claims of one PostgreSQL database take turns on this transaction-scoped advisory lock.
_CLAIM_LOCK = 0x1C1D_0757
# The audit rows of a state that hold none of its newest KEEP_SENT messages: those
# whose newer rows (of the same state) already hold that many.
_NEWER_MESSAGES = (sa.func.sum(telemetry_audit.c.count).over(order_by=telemetry_audit.c.seq.desc(), rows=(None, 0))
                   - telemetry_audit.c.count).label("newer")
_RANKED_AUDIT = (sa.select(telemetry_audit.c.seq, _NEWER_MESSAGES)
                 .where(telemetry_audit.c.state == sa.bindparam("state")).subquery())
_PRUNE_AUDIT = sa.delete(telemetry_audit).where(
    telemetry_audit.c.state == sa.bindparam("state"),
    telemetry_audit.c.seq.in_(sa.select(_RANKED_AUDIT.c.seq).where(_RANKED_AUDIT.c.newer >= sa.bindparam("keep"))))
# The contents of a claimed range.
_CLAIMED = (sa.select(telemetry_outbox.c.seq, telemetry_outbox.c.message_id, telemetry_outbox.c.event,
                      telemetry_outbox.c.properties, telemetry_outbox.c.recorded_at)
            .where(telemetry_outbox.c.seq.between(sa.bindparam("first"), sa.bindparam("last")))
            .order_by(telemetry_outbox.c.seq))


def _uncovered(now: Any) -> Any:
    """Outbox rows no live lease covers."""
    leases = telemetry_leases
    return ~sa.exists().where(leases.c.until >= now,
                              telemetry_outbox.c.seq.between(leases.c.first_seq, leases.c.last_seq))


def _choose(*columns: Any) -> sa.Select[Any]:
    return (sa.select(*columns).where(_uncovered(sa.bindparam("now")), telemetry_outbox.c.epoch == sa.bindparam("epoch"))
            .order_by(telemetry_outbox.c.seq).limit(sa.bindparam("limit")))


# The events a claim takes: the oldest no live lease covers. PostgreSQL reads their
# contents with the claim; SQLite only their numbers (see ``Outbox.claim``).
_CHOOSE = {"postgresql": _choose(*_CLAIMED.selected_columns), "sqlite": _choose(telemetry_outbox.c.seq)}


@dataclass(frozen=True)
class _Done:
    """Events done in one state (sent or rejected), in order, with their audit document prepared."""

    state: str
    events: list[tuple[int, dict[str, Any]]]
    kept: int  # how many of the newest messages the audit keeps
    document: str  # their JSON

    @classmethod
    def of(cls, state: str, events: list[tuple[int, dict[str, Any]]]) -> "_Done":
        ordered = sorted(events, key=lambda pair: pair[0])
        newest = [message for _, message in ordered[-KEEP_SENT:]]
        return cls(state, ordered, len(newest), json.dumps(newest))

    def audit(self, gone: set[int]) -> tuple[int, str]:
        """How many messages the audit keeps and their JSON, for the events that were still waiting."""
        if len(gone) == len(self.events):  # the usual case: every event was still there
            return self.kept, self.document
        newest = [message for seq, message in self.events if seq in gone][-KEEP_SENT:]
        return len(newest), json.dumps(newest)


class Outbox:
    """SQL operations on the outbox of one database."""

    def __init__(self, db: Database, clock: Any = now_ms):
        self.db = db
        self.clock = clock

    # ----- the dispatcher -------------------------------------------------------------
    def claim(self, limit: int, lease_ms: int, *, look_first: bool = True,
              version: int | None = None) -> tuple[str, list[OutboxEvent]]:
        """Lease up to limit waiting events nobody else holds; return the lease token and the events.

        The claim reads the database's telemetry switch in its own transaction: while
        it is off it deletes every waiting event (counted as deleted) and takes none;
        while it is on it deletes the events of an earlier epoch (stored before the
        switch last went off, by a statement that began before it did) and takes
        only events of the current epoch. With version, a claim takes nothing once
        the settings have moved past it: the caller's destination may be stale.

        On SQLite a claim holds the write lock, which every writer of every process
        waits for: only the choice of events and the lease are made under it, and the
        events' contents are read after the commit. The lease keeps them ours
        meanwhile; an event deleted in between (sent by a dispatcher whose lease had
        expired, dropped by the bound, purged when telemetry was switched off) is
        simply not returned. On PostgreSQL a claim holds up no request (claims take
        turns on an advisory lock of their own), so the events are read with it.
        """
        token = secrets.token_hex(16)
        now = self.clock()
        table, leases = telemetry_outbox, telemetry_leases
        # Look before taking the write lock: an idle poll must not queue behind requests.
        if look_first:
            with self.db.read_engine.connect() as connection:
                if connection.execute(sa.select(table.c.seq).where(_uncovered(now)).limit(1)).first() is None:
                    return token, []
        postgres = self.db.dialect == "postgresql"
        choose = _CHOOSE[self.db.dialect]
        rows: list[Any] = []
        with self.db.write_engine.begin() as connection:
            if postgres:
                connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_CLAIM_LOCK)))
            state = read_state(connection)
            if not state.telemetry_on:
                deleted = connection.execute(sa.delete(table)).rowcount
                bump_counter(connection, "deleted", deleted)
                return token, []
            stale = connection.execute(sa.delete(table).where(table.c.epoch != state.telemetry_epoch)).rowcount
            bump_counter(connection, "deleted", stale)
            if version is not None and state.version != version:
                return token, []
            connection.execute(sa.delete(leases).where(leases.c.until < now))
            rows = connection.execute(choose, {"now": now, "limit": limit, "epoch": state.telemetry_epoch}).all()
            if rows:
                # One row for the whole batch: the events themselves are not written.
                connection.execute(sa.insert(leases).values(token=token, first_seq=rows[0].seq,
                                                            last_seq=rows[-1].seq, until=now + lease_ms))
        if not postgres and rows:
            claimed = {row.seq for row in rows}
            with self.db.read_engine.connect() as connection:
                found = connection.execute(_CLAIMED, {"first": rows[0].seq, "last": rows[-1].seq}).all()
            # The range may hold events the claim did not take (another lease's): not ours to send.
            rows = [row for row in found if row.seq in claimed]
        return token, [OutboxEvent(row.seq, row.message_id, row.event, dict(row.properties), row.recorded_at)
                       for row in rows]

    def switch(self) -> SettingsState:
        """The settings version and telemetry switch the database holds now."""
        with self.db.read_engine.connect() as connection:
            return read_state(connection)

    def may_send(self, version: int | None) -> bool:
        """Does the database still let a batch claimed under this settings version go out?

        Every flip of the switch raises the version, so an unchanged version that is
        on means: on since the claim, in the same epoch.
        """
        state = self.switch()
        return state.telemetry_on and (version is None or state.version == version)

    def finish(self, token: str, sent: list[tuple[int, dict[str, Any]]],
               rejected: list[tuple[int, dict[str, Any]]] = ()) -> int:
        """Remove what was delivered and what was refused, and end the lease, in one transaction.

        The lease's other events are free again at once, for the next attempt. The
        audit's documents are built before the transaction, outside the write lock.
        """
        done = [_Done.of(SENT, sent), _Done.of(REJECTED, list(rejected))]
        with self.db.write_engine.begin() as connection:
            marked = self._done(connection, done[0])
            self._done(connection, done[1])
            self._release(connection, token)
        return marked

    def mark_sent(self, sent: list[tuple[int, dict[str, Any]]]) -> int:
        """Record events as delivered, keeping the newest messages exactly as sent; return how many still waited."""
        if not sent:
            return 0
        done = _Done.of(SENT, sent)
        with self.db.write_engine.begin() as connection:
            return self._done(connection, done)

    def _done(self, connection: sa.Connection, done: "_Done") -> int:
        """Delete these events from the outbox, count them under state and keep the newest messages for audit.

        Only events still in the outbox count: one whose lease expired mid-send may
        have been delivered and removed by another dispatcher already (the data plane
        de-duplicates the second copy by its messageId).
        """
        if not done.events:
            return 0
        seqs = [seq for seq, _ in done.events]
        gone = set(connection.execute(sa.delete(telemetry_outbox).where(telemetry_outbox.c.seq.in_(seqs))
                                      .returning(telemetry_outbox.c.seq)).scalars())
        if not gone:
            return 0
        now = self.clock()
        count, document = done.audit(gone)
        connection.execute(sa.insert(telemetry_audit).values(state=done.state, at=now, count=count,
                                                             messages=document))
        bump_counter(connection, done.state, len(gone))
        if done.state == SENT:
            put_kv(connection, LAST_SUCCESS_KEY, str(now))
        connection.execute(_PRUNE_AUDIT, {"state": done.state, "keep": KEEP_SENT})
        return len(gone)

    def release(self, token: str) -> None:
        """End a lease, so that its events can be taken by the next claim."""
        with self.db.write_engine.begin() as connection:
            self._release(connection, token)

    @staticmethod
    def _release(connection: sa.Connection, token: str) -> None:
        connection.execute(sa.delete(telemetry_leases).where(telemetry_leases.c.token == token))

    def record_error(self, message: str) -> None:
        """Remember the last delivery error (shown to admins)."""
        value = json.dumps({"at": self.clock(), "error": message[:300]})
        with self.db.write_engine.begin() as connection:
            put_kv(connection, LAST_ERROR_KEY, value)

    def purge_pending(self) -> int:
        """Delete every event not yet sent; return how many."""
        # Called at every poll while telemetry is off: only take the write lock when there is work.
        if not self.pending_count():
            return 0
        with self.db.write_engine.begin() as connection:
            deleted = connection.execute(sa.delete(telemetry_outbox)).rowcount
            bump_counter(connection, "deleted", deleted)
        return deleted

    # ----- reports --------------------------------------------------------------------
    def pending_count(self) -> int:
        """Events waiting to be sent."""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(telemetry_outbox)).scalar_one()

    def counters(self) -> dict[str, int]:
        """Events sent, rejected (refused by the data plane), dropped (outbox full) and deleted (switched off)."""
        with self.db.read_engine.connect() as connection:
            found = dict(connection.execute(sa.select(telemetry_counters.c.name, telemetry_counters.c.value)).all())
        return {name: int(found.get(name, 0)) for name in ("sent", "rejected", "dropped", "deleted")}

    def last_error(self) -> dict[str, Any] | None:
        """The last delivery error and when it happened, or None."""
        with self.db.read_engine.connect() as connection:
            value = connection.execute(sa.select(plugin_kv.c.value).where(
                plugin_kv.c.key == LAST_ERROR_KEY)).scalar_one_or_none()
        return json.loads(value) if value else None

    def last_success_at(self) -> int | None:
        """When a batch was last delivered (ms), or None."""
        with self.db.read_engine.connect() as connection:
            value = connection.execute(sa.select(plugin_kv.c.value).where(
                plugin_kv.c.key == LAST_SUCCESS_KEY)).scalar_one_or_none()
        return int(value) if value else None

    def recent_sent(self, limit: int, state: str = SENT) -> list[dict[str, Any]]:
        """The newest delivered (or rejected) messages, newest first, exactly as sent."""
        audit = telemetry_audit
        found: list[dict[str, Any]] = []
        with self.db.read_engine.connect() as connection:
            for messages in connection.execute(sa.select(audit.c.messages).where(audit.c.state == state)
                                               .order_by(audit.c.seq.desc())).scalars():
                if len(found) >= limit:
                    break
                found.extend(reversed(json.loads(messages)))
        return found[:limit]
