"""Engines and units of work for SQLite (default) and PostgreSQL."""
from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from plugin.events import Announcement, Event, ReminderDue, RetrospectiveSaved, StatusUpdated
from plugin.lockfile import LockFile
from plugin.model import now_ms
from plugin.store.chat import SqlChatRepository
from plugin.store.incidents import SqlIncidentRepository
from plugin.store.outbox import SqlOutboxRepository
from plugin.store.playbooks import SqlPlaybookRepository
from plugin.store.reports import SqlReportRepository
from plugin.store.retrospectives import SqlRetrospectiveRepository
from plugin.store.saved_settings import SqlSavedSettings, read_version
from plugin.store.status_updates import SqlReminderRepository, SqlStatusUpdateRepository
from plugin.store.timeline import SqlTimelineRepository
from plugin.store.webhooks import SqlDeliveryRepository, SqlWebhookRepository
from plugin.webhooks.rules import Webhook
from plugin.telemetry import NoopTelemetry, Telemetry
from plugin.timeline import entry_for

log = logging.getLogger(__name__)


#: What SQLAlchemy raises when the database cannot answer now: it is down or restarting, a
#: connection was cut, every pooled connection stayed busy, or SQLite stayed locked. Worth a retry.
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs that name no driver."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


class _WriterQueue:
    """Writers to one SQLite file take turns here before they BEGIN IMMEDIATE.

    SQLite's busy handler polls: a writer that finds the lock taken sleeps 1 to
    100 ms before it looks again, so under load most of a write's time is spent
    asleep while the lock is free. A thread lock (the threads of one process) and
    an ``flock`` on a file beside the database (the processes) queue writers
    instead, and wake the next one as soon as the lock is let go.
    """

    WAIT_SECONDS = 30.0

    def __init__(self, database_path: str):
        self._file = LockFile(database_path + ".writer-lock")
        self._lock = threading.RLock()
        self._local = threading.local()

    def acquire(self) -> None:
        """Wait for this thread's turn (re-entrant), then for this process's turn."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            if not self._lock.acquire(timeout=self.WAIT_SECONDS):
                # Never wait forever here: fall back to SQLite's own busy handler.
                self._local.held = False
                self._local.depth = 1
                return
            self._local.held = True
            try:
                self._file.lock()
            except BaseException:
                self._lock.release()
                self._local.held = False
                raise
        self._local.depth = depth + 1

    def release(self) -> None:
        """Let the next writer in (the outermost release only)."""
        depth = getattr(self._local, "depth", 0)
        if depth == 0:
            return
        self._local.depth = depth - 1
        if depth == 1 and self._local.held:
            self._local.held = False
            try:
                self._file.unlock()
            finally:
                self._lock.release()


class _Checkpoints:
    """Checkpoints of a SQLite file's write-ahead log, run after a writer's turn has ended.

    SQLite checkpoints inside the COMMIT that pushes the log past 1,000 pages: it
    copies the log into the database file and syncs it, for milliseconds, while the
    committing writer still holds its turn, so every other writer of every process
    waits. The write connections switch that off (``wal_autocheckpoint=0``) and each
    process instead runs a PASSIVE checkpoint after every ``every``-th of its write
    transactions, once the turn is given back: a passive checkpoint blocks neither
    readers nor writers. The log thus holds at most about ``every`` transactions per
    process between checkpoints.
    """

    def __init__(self, every: int = 100):
        self.every = every
        self._count = 0
        self._lock = threading.Lock()

    def after_write(self, dbapi_connection: Any) -> None:
        """Count one finished write transaction; checkpoint on this connection when it is time."""
        with self._lock:
            self._count += 1
            if self._count < self.every:
                return
            self._count = 0
        try:
            dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:  # noqa: BLE001 - a checkpoint not done now is done at the next one
            log.warning("SQLite checkpoint failed; retried after the next writes", exc_info=True)


CHECKPOINT_EVERY = 100


def _sqlite_engine(url: str, immediate: bool) -> sa.Engine:
    path = sa.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: statement parameters are what people typed; no log line or error message shows them.
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              hide_parameters=True)
    queue = _WriterQueue(str(Path(path).resolve())) if immediate and path and path != ":memory:" else None
    checkpoints = _Checkpoints(CHECKPOINT_EVERY) if queue is not None else None
    if queue is not None:
        # Held from the transaction's BEGIN to the connection's checkin, i.e. until
        # commit or rollback has finished. Not from checkout: a unit of work prepares
        # what it can before its first statement, and none of that needs the lock.
        # The mark lives in record_info, which outlives an invalidated connection, so a
        # turn is always given back at checkin.
        @event.listens_for(engine, "checkin")
        def _on_checkin(dbapi_connection: Any, record: Any) -> None:
            if record.record_info.pop("writer_turn", False):
                queue.release()
                if dbapi_connection is not None:  # None: the connection was invalidated
                    checkpoints.after_write(dbapi_connection)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        if checkpoints is not None:
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # see _Checkpoints
        cursor.close()

    if immediate:
        @event.listens_for(engine, "begin")
        def _on_begin(connection: sa.Connection) -> None:
            turn = connection.connection.record_info
            if queue is not None and turn is not None and not turn.get("writer_turn"):
                queue.acquire()
                turn["writer_turn"] = True
            # Writers take the write lock at BEGIN: a deferred transaction that reads and
            # then writes could fail with SQLITE_BUSY instead of waiting its turn.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    # Readers emit no BEGIN: with pysqlite's own transaction handling off, each
    # statement runs in its own implicit transaction, as reads do on PostgreSQL.

    return engine


PING_AFTER_IDLE_SECONDS = 2.0
# How long a process trusts the settings version it read. A change of settings returns
# only this long after its commit, so once it has returned every process reads again.
SETTINGS_LEASE_SECONDS = 0.05


def _ping_after_idle(engine: sa.Engine) -> None:
    """Ping a pooled PostgreSQL connection at checkout only when it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout, a round trip per request. A connection checked in moments ago is alive; one that sat idle may have
    been cut by a database restart, and a dead one is replaced before use.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("checked_in", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()  # leave no transaction open behind the ping
        except Exception as exc:  # noqa: BLE001 - any failure means: use a fresh connection
            raise sa.exc.DisconnectionError(str(exc)) from exc


class Database:
    """The engines of one database: one for reads and one for writes.

    On PostgreSQL both draw on one pool of connections, in autocommit except while
    a connection writes. On SQLite, writers use ``BEGIN IMMEDIATE`` so they queue on the
    database's single write lock, while readers, thanks to WAL, never wait for
    writers. On both, reads run in autocommit (no BEGIN, no ROLLBACK): each
    statement sees the latest commit, so a read of several statements (a page and
    its total) may straddle a concurrent commit, which costs nothing but a total
    that is off by one for a moment.
    """

    def __init__(self, url: str, *, monotonic: Callable[[], float] = time.monotonic):
        self.url = normalise_url(url)
        self.monotonic = monotonic
        if self.url.startswith("sqlite"):
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            # One pool whose connections are in autocommit: reads skip BEGIN/ROLLBACK
            # (under READ COMMITTED each statement takes its own snapshot anyway, so a
            # read-only transaction adds round trips and no consistency). The writing
            # variant turns autocommit off for the time a connection is checked out, as
            # SQLAlchemy documents for isolation levels per engine; psycopg then begins
            # the transaction itself before the first statement.
            # hide_parameters: as for SQLite, no log line or error message shows what people typed.
            base = sa.create_engine(self.url, pool_size=10, max_overflow=10, isolation_level="AUTOCOMMIT",
                                     hide_parameters=True)
            _ping_after_idle(base)
            self.read_engine = base
            self.write_engine = base.execution_options(isolation_level="READ COMMITTED")
        self.dialect = self.write_engine.dialect.name
        # The settings version last read and the monotonic time its read started.
        self._settings_version: tuple[int, float] | None = None
        # Every webhook, and the settings version read before they were.
        self._webhooks: tuple[int, list[Webhook]] | None = None

    def unit_of_work(self, *, write: bool = True, telemetry: Telemetry | None = None,
                     local_chat: bool = False, deliveries_written: Callable[[], None] | None = None) -> "SqlUnitOfWork":
        """A new unit of work on this database (see SqlUnitOfWork)."""
        return SqlUnitOfWork(self, write=write, telemetry=telemetry, local_chat=local_chat,
                             deliveries_written=deliveries_written)

    def settings_version(self, connection: Callable[[], sa.Connection] | None = None) -> int:
        """The version of the settings saved at run time (raised by every change, by webhook changes and by leaves).

        A version read less than SETTINGS_LEASE_SECONDS ago is answered without a
        statement: its read started after any change that has since returned (see
        ``SqlUnitOfWork.commit``), so it is still the newest. Otherwise it is read on
        ``connection`` when given (a unit of work's, so that it never holds one
        connection while it waits for another), else on a connection of its own.
        """
        started = self.monotonic()
        known = self._settings_version
        if known is not None and started - known[1] < SETTINGS_LEASE_SECONDS:
            return known[0]
        with self._reading_on(connection) as reading:
            version = read_version(reading)
        self._settings_version = (version, started)
        return version

    def webhooks_in_force(self, connection: Callable[[], sa.Connection] | None = None) -> list[Webhook]:
        """Every webhook, oldest first; read again only once the settings version moved.

        Every change writing a timeline entry asks for them, so most changes cost no
        statement here. Webhook changes raise the settings version, and what was read
        after an older version is read again at the next. Reads use ``connection`` as
        ``settings_version`` does.
        """
        version = self.settings_version(connection)
        known = self._webhooks
        if known is None or known[0] != version:
            with self._reading_on(connection) as reading:
                known = (version, SqlWebhookRepository(lambda: reading).all())
            self._webhooks = known
        return known[1]

    @contextmanager
    def _reading_on(self, connection: Callable[[], sa.Connection] | None) -> Iterator[sa.Connection]:
        if connection is not None:
            yield connection()
        else:
            with self.read_engine.connect() as own:
                yield own

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


class SqlUnitOfWork:
    """One transaction: every write waits for commit, which makes them all or none.

    Repositories read at once, in autocommit, and keep their writes; ``commit``
    makes them in one transaction on a writing connection, taken for the commit
    only (on SQLite, that is the writer's turn for the database's write lock), and
    rolls everything back when one fails. An incident is saved only at the version
    it was read at: when another change committed first, commit writes nothing and
    raises ConcurrentUpdate, and so it does when a reminder claimed (moved on from
    the due time read) was moved by someone else first. The domain events collected
    (``add_event``) are written in the same transaction: telemetry events as outbox
    rows, timeline entries (``plugin.timeline.entry_for``), status updates as their
    rows, reminders' due times, and the posts of the local chat host (``local_chat``);
    commit returns the posts left for a remote host to send. Each timeline entry also
    writes one webhook delivery per matching webhook (``plugin.store.webhooks``);
    ``deliveries_written`` is told after a commit that wrote some.
    """

    def __init__(self, db: Database, *, write: bool = True, telemetry: Telemetry | None = None,
                 local_chat: bool = False, deliveries_written: Callable[[], None] | None = None):
        self.db = db
        self.write = write
        self.telemetry = telemetry or NoopTelemetry()
        self.local_chat = local_chat
        self.deliveries_written = deliveries_written
        self._reads: sa.Connection | None = None
        self._writes: sa.Connection | None = None

    def __enter__(self) -> "SqlUnitOfWork":
        self.incidents = SqlIncidentRepository(self._reading)
        self.playbooks = SqlPlaybookRepository(self._reading)
        self.timeline = SqlTimelineRepository(self._reading)
        self.status_updates = SqlStatusUpdateRepository(self._reading)
        self.reminders = SqlReminderRepository(self._reading)
        self.retrospectives = SqlRetrospectiveRepository(self._reading)
        self.reports = SqlReportRepository(self._reading)  # reads only: reports and statistics
        self.saved_settings = SqlSavedSettings(self._writing if self.write else self._reading)
        self.outbox = SqlOutboxRepository()
        self.webhooks = SqlWebhookRepository(self._reading)
        self.deliveries = SqlDeliveryRepository(self._reading, lambda: self.db.webhooks_in_force(self._reading),
                                                now_ms)
        #: The local chat host's channels and posts; None when the host keeps them elsewhere.
        self.chat = SqlChatRepository(now_ms) if self.local_chat else None
        self.events: list[Event] = []
        return self

    def _reading(self) -> sa.Connection:
        if self._reads is None:
            self._reads = self.db.read_engine.connect()
        return self._reads

    def _writing(self) -> sa.Connection:
        if not self.write:
            raise RuntimeError("a reading unit of work writes nothing")
        if self._writes is None:
            self._writes = self.db.write_engine.connect()
        return self._writes

    def add_event(self, event: Event) -> None:
        """Record what happened; acted on at commit."""
        self.events.append(event)

    def commit(self) -> list[Announcement]:
        """Make every write and the events' rows in one transaction; return the posts left to send."""
        left: list[Announcement] = []
        now = now_ms()
        for happened in self.events:
            if isinstance(happened, Announcement):
                if self.chat is not None:
                    self.chat.add_post(happened.channel_id, happened.message)
                else:
                    left.append(happened)
                continue
            if isinstance(happened, StatusUpdated):
                self.status_updates.add(happened.update)
            elif isinstance(happened, ReminderDue):
                self.reminders.schedule(happened.incident_id, happened.due_at)
            elif isinstance(happened, RetrospectiveSaved):
                self.retrospectives.save(happened.retrospective)
            elif (row := self.telemetry.row(happened)) is not None:
                self.outbox.add(row)
            if (entry := entry_for(happened, now)) is not None:
                self.timeline.add(entry)
                if (incident := getattr(happened, "incident", None)) is not None:
                    self.deliveries.add(entry, incident)
        self.events.clear()
        self.deliveries.prepare()
        # The reads are done: give their connection back before taking one to write with,
        # so that no unit of work holds one connection while it waits for another.
        self._close_reads()
        connection = self._writing()
        try:
            self.incidents.flush(connection)  # first: a version that moved on stops the rest
            self.reminders.flush(connection)  # then a reminder claimed by another server
            self.playbooks.flush(connection)
            self.timeline.flush(connection)
            self.status_updates.flush(connection)
            self.retrospectives.flush(connection)
            if self.chat is not None:
                self.chat.flush(connection)
            self.outbox.flush(connection)
            self.webhooks.flush(connection)
            self.deliveries.flush(connection)
            connection.commit()
        finally:
            self._close_writes()
        if self.deliveries.written and self.deliveries_written is not None:
            self.deliveries_written()
        if self.saved_settings.advanced or self.webhooks.changed:
            # Outwait every process's lease on the version it read before this commit.
            time.sleep(SETTINGS_LEASE_SECONDS)
        return left

    def _close_writes(self) -> None:
        # Closing gives the connection back, and with it a SQLite writer's turn.
        if self._writes is not None:
            writes, self._writes = self._writes, None
            writes.close()  # rolls back what was not committed

    def rollback(self) -> None:
        """Discard every write not yet committed."""
        self._close_writes()

    def _close_reads(self) -> None:
        if self._reads is not None:
            reads, self._reads = self._reads, None
            reads.close()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self._close_writes()
        finally:
            self._close_reads()
