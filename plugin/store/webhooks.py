"""Webhooks and their deliveries in SQL.

A change's deliveries are written in the change's own transaction, one per timeline
entry and matching webhook (``SqlDeliveryRepository``), so a change and what it
sends out commit together or not at all. Senders take them through
``DeliveryQueue``: a delivery is claimed by moving its lease from a time already
past to a time ahead (a compare-and-set in one UPDATE), so any number of senders in
any number of processes and servers never hold one delivery at once, and a sender
that dies lets go when its lease runs out. A delivery is due only while no earlier
delivery of the same incident to the same webhook is pending: each receiver sees an
incident's entries in the order they were written.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.errors import InvalidState, NotFound
from plugin.model import Incident, TimelineEntry, new_id
from plugin.store.outbox import insert_event
from plugin.store.saved_settings import advance_state
from plugin.store.tables import plugin_kv, webhook_attempts, webhook_deliveries, webhooks
from plugin.telemetry import OutboxRow
from plugin.webhooks.rules import Delivery, Webhook, payload

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
W, D, A = webhooks.c, webhook_deliveries.c, webhook_attempts.c
_EARLIER = webhook_deliveries.alias("earlier")
# No earlier delivery of the same incident to the same webhook is still pending.
_IN_ORDER = ~sa.exists().where(_EARLIER.c.webhook_id == D.webhook_id, _EARLIER.c.incident_id == D.incident_id,
                               _EARLIER.c.status == PENDING, _EARLIER.c.seq < D.seq)
_DUE = (sa.select(D.seq, D.webhook_id)
        .where(D.status == PENDING, D.next_at <= sa.bindparam("now"), D.lease_until <= sa.bindparam("now"), _IN_ORDER)
        .order_by(D.next_at, D.seq).limit(sa.bindparam("limit")))
REPORTED_DAY_KEY = "webhook_deliveries_reported_day"


def _webhook(row: Any) -> Webhook:
    return Webhook(id=row.id, url=row.url, events=list(row.events), secret=row.secret, team_id=row.team_id,
                   creator_user_id=row.creator_user_id, create_at=row.create_at, update_at=row.update_at)


def _values(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "events": hook.events, "secret": hook.secret, "team_id": hook.team_id,
            "creator_user_id": hook.creator_user_id, "create_at": hook.create_at, "update_at": hook.update_at}


class SqlWebhookRepository:
    """Webhooks within one unit of work: read at once, written at commit.

    A commit that changes webhooks also raises the settings version, which is what
    tells every process to read the webhooks again (``Database.webhooks_in_force``).
    """

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._added: list[Webhook] = []
        self._saved: list[Webhook] = []
        self._deleted: list[str] = []
        #: Whether the last flush changed webhooks (and so raised the settings version).
        self.changed = False

    def get(self, webhook_id: str) -> Webhook | None:
        """The webhook with this id, or None."""
        row = self._connection().execute(sa.select(webhooks).where(W.id == webhook_id)).first()
        return _webhook(row) if row else None

    def all(self) -> list[Webhook]:
        """Every webhook, oldest first."""
        return [_webhook(row) for row in self._connection().execute(sa.select(webhooks).order_by(W.create_at, W.id))]

    def list(self, page: int, per_page: int) -> tuple[int, list[Webhook]]:
        """A page of the webhooks, oldest first, and how many there are."""
        connection = self._connection()
        total = connection.execute(sa.select(sa.func.count()).select_from(webhooks)).scalar_one()
        rows = connection.execute(sa.select(webhooks).order_by(W.create_at, W.id)
                                  .limit(per_page).offset(page * per_page)).all()
        return total, [_webhook(row) for row in rows]

    def add(self, hook: Webhook) -> None:
        """Insert the webhook at commit."""
        self._added.append(hook)

    def save(self, hook: Webhook) -> None:
        """Write the webhook's new values at commit (NotFound if it was deleted meanwhile)."""
        self._saved.append(hook)

    def delete(self, webhook_id: str) -> None:
        """Delete the webhook with its deliveries and their attempts at commit."""
        self._deleted.append(webhook_id)

    def flush(self, connection: sa.Connection) -> None:
        """Make the writes (in the commit's transaction)."""
        self.changed = bool(self._added or self._saved or self._deleted)
        if self.changed:
            advance_state(connection)
        for hook in self._added:
            connection.execute(sa.insert(webhooks).values(**_values(hook)))
        for hook in self._saved:
            if connection.execute(sa.update(webhooks).where(W.id == hook.id).values(**_values(hook))).rowcount != 1:
                raise NotFound(f"Webhook {hook.id} was deleted meanwhile.", {"webhook_id": hook.id})
        for webhook_id in self._deleted:
            connection.execute(sa.delete(webhook_attempts).where(A.delivery_id.in_(
                sa.select(D.id).where(D.webhook_id == webhook_id))))
            connection.execute(sa.delete(webhook_deliveries).where(D.webhook_id == webhook_id))
            if connection.execute(sa.delete(webhooks).where(W.id == webhook_id)).rowcount != 1:
                raise NotFound(f"Webhook {webhook_id} was deleted already.", {"webhook_id": webhook_id})
        self._added.clear()
        self._saved.clear()
        self._deleted.clear()


def _delivery(row: Any) -> Delivery:
    return Delivery(id=row.id, webhook_id=row.webhook_id, incident_id=row.incident_id, event_type=row.event_type,
                    status=row.status, attempts=row.attempts, create_at=row.create_at, next_at=row.next_at,
                    finished_at=row.finished_at)


class SqlDeliveryRepository:
    """Deliveries within one unit of work: those the commit writes for its timeline entries, and admins' reads."""

    def __init__(self, connection: Callable[[], sa.Connection], hooks: Callable[[], list[Webhook]],
                 clock: Callable[[], int]):
        self._connection = connection
        self._hooks = hooks
        self._clock = clock
        self._entries: list[tuple[TimelineEntry, Incident]] = []
        self._rows: list[dict[str, Any]] = []
        self._redelivered: list[tuple[Delivery, int]] = []
        #: How many deliveries the last flush wrote.
        self.written = 0

    def add(self, entry: TimelineEntry, incident: Incident) -> None:
        """Write a delivery of this entry to each matching webhook at commit (see ``prepare``)."""
        self._entries.append((entry, incident))

    def prepare(self) -> None:
        """Read the webhooks and build the deliveries of the entries added (before the commit's transaction)."""
        if not self._entries:
            return
        hooks = self._hooks()
        now = self._clock()
        for entry, incident in self._entries:
            matching = [hook for hook in hooks if hook.matches(entry.event_type, incident.team_id)]
            if not matching:
                continue
            document = payload(entry, incident)
            self._rows.extend({
                "id": new_id(), "webhook_id": hook.id, "incident_id": incident.id, "event_type": entry.event_type,
                "payload": document, "status": PENDING, "attempts": 0, "create_at": now, "next_at": now,
                "lease_until": 0, "lease_token": "", "window_at": now, "finished_at": 0} for hook in matching)
        self._entries.clear()

    def list(self, webhook_id: str, page: int, per_page: int) -> tuple[int, list[Delivery]]:
        """A page of the webhook's deliveries, newest first, with their attempts, and how many there are."""
        connection = self._connection()
        total = connection.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)
                                   .where(D.webhook_id == webhook_id)).scalar_one()
        rows = connection.execute(sa.select(webhook_deliveries).where(D.webhook_id == webhook_id)
                                  .order_by(D.seq.desc()).limit(per_page).offset(page * per_page)).all()
        found = [_delivery(row) for row in rows]
        self._attach_attempts(connection, found)
        return total, found

    def get(self, webhook_id: str, delivery_id: str) -> Delivery | None:
        """The webhook's delivery with this id, with its attempts, or None."""
        connection = self._connection()
        row = connection.execute(sa.select(webhook_deliveries).where(
            D.webhook_id == webhook_id, D.id == delivery_id)).first()
        if row is None:
            return None
        found = _delivery(row)
        self._attach_attempts(connection, [found])
        return found

    @staticmethod
    def _attach_attempts(connection: sa.Connection, deliveries: list[Delivery]) -> None:
        by_id = {delivery.id: delivery for delivery in deliveries}
        if not by_id:
            return
        for row in connection.execute(sa.select(webhook_attempts).where(A.delivery_id.in_(list(by_id)))
                                      .order_by(A.seq)):
            by_id[row.delivery_id].attempt_log.append({"at": row.at, "response_code": row.response_code,
                                                       "error": row.error, "duration_ms": row.duration_ms})

    def redeliver(self, delivery: Delivery, now: int) -> None:
        """Make a delivered or failed delivery pending again at commit, with a fresh retry window."""
        self._redelivered.append((delivery, now))

    def flush(self, connection: sa.Connection) -> None:
        """Write the deliveries built and the redeliveries (in the commit's transaction)."""
        self.written = len(self._rows)
        if self._rows:
            connection.execute(sa.insert(webhook_deliveries), self._rows)
        for delivery, now in self._redelivered:
            moved = connection.execute(sa.update(webhook_deliveries).where(
                D.id == delivery.id, D.status == delivery.status, D.status != PENDING).values(
                status=PENDING, next_at=now, window_at=now, finished_at=0)).rowcount
            if moved != 1:
                raise InvalidState(f"Delivery {delivery.id} is already waiting to be sent; it is retried on its own.",
                                   {"delivery_id": delivery.id})
        self._rows.clear()
        self._redelivered.clear()


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender holds until ``lease_until``: what to post, where, and with which secret."""

    seq: int
    id: str
    webhook_id: str
    incident_id: str
    event_type: str
    payload: str
    attempts: int
    window_at: int
    url: str
    secret: str
    token: str
    lease_until: int


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the delivery's new status and next try, and the attempt's record."""

    status: str
    next_at: int
    response_code: int | None
    error: str
    duration_ms: int


class DeliveryQueue:
    """The senders' side of the deliveries table (see the module's docstring)."""

    def __init__(self, db: Any):
        self.db = db

    def due(self, now: int, limit: int) -> list[tuple[int, str]]:
        """(seq, webhook id) of deliveries that may be claimed now, the longest due first; read without a lock."""
        with self.db.read_engine.connect() as connection:
            return [(row.seq, row.webhook_id) for row in connection.execute(_DUE, {"now": now, "limit": limit})]

    def claim(self, seqs: list[int], now: int, lease_ms: int) -> list[Claimed]:
        """Lease those of these deliveries still due and free; return what was claimed, with its webhook."""
        if not seqs:
            return []
        token = secrets.token_hex(16)
        until = now + lease_ms
        with self.db.write_engine.begin() as connection:
            taken = set(connection.execute(
                sa.update(webhook_deliveries)
                .where(D.seq.in_(seqs), D.status == PENDING, D.lease_until <= now, D.next_at <= now, _IN_ORDER)
                .values(lease_until=until, lease_token=token).returning(D.seq)).scalars())
        if not taken:
            return []
        with self.db.read_engine.connect() as connection:
            rows = connection.execute(
                sa.select(webhook_deliveries, W.url, W.secret)
                .join(webhooks, W.id == D.webhook_id)
                .where(D.seq.in_(sorted(taken)), D.lease_token == token).order_by(D.seq)).all()
        return [Claimed(row.seq, row.id, row.webhook_id, row.incident_id, row.event_type, row.payload, row.attempts,
                        row.window_at, row.url, row.secret, token, until) for row in rows]

    def finish(self, claimed: Claimed, outcome: Outcome, now: int) -> bool:
        """Record an attempt and its outcome, while the lease is still ours; False when it was not."""
        with self.db.write_engine.begin() as connection:
            moved = connection.execute(
                sa.update(webhook_deliveries).where(D.seq == claimed.seq, D.lease_token == claimed.token)
                .values(status=outcome.status, attempts=D.attempts + 1, next_at=outcome.next_at, lease_until=0,
                        lease_token="", finished_at=0 if outcome.status == PENDING else now)).rowcount
            if moved:
                connection.execute(sa.insert(webhook_attempts).values(
                    delivery_id=claimed.id, at=now, response_code=outcome.response_code, error=outcome.error[:300],
                    duration_ms=outcome.duration_ms))
        return bool(moved)

    def has_pending(self) -> bool:
        """Is any delivery waiting to be sent?"""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(D.seq).where(D.status == PENDING).limit(1)).first() is not None

    def has_webhooks(self) -> bool:
        """Is any webhook registered?"""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(W.id).limit(1)).first() is not None

    def counts(self, start: int, end: int) -> dict[str, int]:
        """Deliveries finished between start and end (ms): delivered, failed; and the webhooks there are."""
        with self.db.read_engine.connect() as connection:
            found = dict(connection.execute(
                sa.select(D.status, sa.func.count()).where(D.finished_at >= start, D.finished_at < end,
                                                          D.status != PENDING).group_by(D.status)).all())
            hooks = connection.execute(sa.select(sa.func.count()).select_from(webhooks)).scalar_one()
        return {"delivered": int(found.get(DELIVERED, 0)), "failed": int(found.get(FAILED, 0)), "webhooks": hooks}

    def report_day(self, day: int, row: OutboxRow | None) -> bool:
        """Mark the day reported and store its telemetry row, in one transaction, unless another process did first."""
        value = f"{day:08d}"
        insert = (postgresql_insert if self.db.dialect == "postgresql" else sqlite_insert)(plugin_kv).values(
            key=REPORTED_DAY_KEY, value=value)
        with self.db.write_engine.begin() as connection:
            claimed = connection.execute(insert.on_conflict_do_update(
                index_elements=["key"], set_={"value": insert.excluded.value},
                where=plugin_kv.c.value < insert.excluded.value).returning(plugin_kv.c.key)).first() is not None
            if claimed and row is not None:
                insert_event(connection, row)
        return claimed

    def prune(self, before: int) -> int:
        """Delete deliveries finished before this time, with their attempts; return how many."""
        with self.db.write_engine.begin() as connection:
            old = sa.select(D.id).where(D.status != PENDING, D.finished_at < before, D.finished_at > 0)
            connection.execute(sa.delete(webhook_attempts).where(A.delivery_id.in_(old)))
            return connection.execute(sa.delete(webhook_deliveries).where(
                D.status != PENDING, D.finished_at < before, D.finished_at > 0)).rowcount
