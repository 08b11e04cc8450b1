"""Engines and units of work for SQLite (default) and PostgreSQL."""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from psycopg import pq
from sqlalchemy import event

from plugin.errors import ConcurrentUpdate
from plugin.lockfile import LockFile
from plugin.store import driver
from plugin.store.incidents import SqlIncidentRepository
from plugin.store.playbooks import SqlPlaybookRepository
from plugin.store.saved_settings import SqlSavedSettings, read_version

log = logging.getLogger(__name__)


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
    waits (in 3,000 creates, 52 commits took 5 ms and together a third of all commit
    time). The write connections switch that off (``wal_autocheckpoint=0``) and each
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
            driver.execute_sql(connection, "BEGIN IMMEDIATE")
    # Readers emit no BEGIN: with pysqlite's own transaction handling off, each
    # statement runs in its own implicit transaction, as reads do on PostgreSQL.

    return engine


PING_AFTER_IDLE_SECONDS = 2.0
_WRITES = "incident_writes"


def _begin_writes(engine: sa.Engine) -> None:
    """Emit BEGIN for the transactions of connections from the engine's writing variant.

    The pool's connections are in autocommit: SQLAlchemy's begin emits nothing, so
    a writing unit of work opens its transaction itself at its first statement.
    """

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(_WRITES):
            begin_postgresql(connection)


def begin_postgresql(connection: sa.Connection) -> None:
    """BEGIN on a PostgreSQL connection in autocommit: through libpq directly, else through a cursor.

    A cursor's execute costs psycopg about 50 us of CPU for a statement that takes no
    parameters and returns nothing; ``PQexec`` (psycopg's ``pgconn.exec_``) about 6.
    When that does not plainly succeed, BEGIN runs again through the cursor, which
    raises the error as SQLAlchemy's and invalidates a lost connection.
    """
    raw = connection.connection.dbapi_connection
    pgconn = getattr(raw, "pgconn", None)
    if pgconn is not None:
        try:
            if pgconn.exec_(b"BEGIN").status == pq.ExecStatus.COMMAND_OK:
                return
        except Exception:  # noqa: BLE001 - the cursor below reports it properly
            pass
    driver.execute_sql(connection, "BEGIN")


def _ping_after_idle(engine: sa.Engine) -> None:
    """Ping a pooled PostgreSQL connection at checkout only when it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout: a round trip that was a fifth of a
    fetch. A connection checked in moments ago is alive; one that sat idle may have
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

    On PostgreSQL both draw on one pool of connections in autocommit; writes
    begin a transaction explicitly and lock the incident row with ``SELECT ...
    FOR UPDATE``. On SQLite, writers use ``BEGIN IMMEDIATE`` so they queue on the
    database's single write lock, while readers, thanks to WAL, never wait for
    writers. On both, reads run in autocommit (no BEGIN, no ROLLBACK): each
    statement sees the latest commit, so a read of several statements (a page and
    its total) may straddle a concurrent commit, which costs nothing but a total
    that is off by one for a moment.
    """

    def __init__(self, url: str):
        self.url = normalise_url(url)
        if self.url.startswith("sqlite"):
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            # One pool whose connections stay in autocommit for good: reads skip
            # BEGIN/ROLLBACK (under READ COMMITTED each statement takes its own snapshot
            # anyway, so a read-only transaction adds two round trips and no
            # consistency), and nothing switches a connection's mode at checkout and
            # back at checkin (that cost about a tenth of a read under load). Writes
            # begin their transaction explicitly (``_begin_writes``); psycopg's commit
            # and rollback follow the server's transaction state. (A second pool for
            # reads did the same but doubled the connections each worker keeps open.)
            # hide_parameters: as for SQLite, no log line or error message shows what people typed.
            base = sa.create_engine(self.url, pool_size=10, max_overflow=10, isolation_level="AUTOCOMMIT",
                                     hide_parameters=True)
            _ping_after_idle(base)
            _begin_writes(base)
            self.read_engine = base
            self.write_engine = base.execution_options(**{_WRITES: True})
        self.dialect = self.write_engine.dialect.name

    def unit_of_work(self, *, write: bool = True, optimistic: bool = False) -> "SqlUnitOfWork":
        """A new unit of work (a transaction) on this database (optimistic: see SqlUnitOfWork)."""
        return SqlUnitOfWork(self, write=write, optimistic=optimistic)

    def settings_version(self) -> int:
        """The version of the settings saved at run time (raised by every change)."""
        with self.read_engine.connect() as connection:
            return read_version(connection)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


class SqlUnitOfWork:
    """One transaction: commits only when told to, rolls back otherwise.

    The transaction begins with its first statement (on SQLite, that is where a
    writer waits for the database's write lock), so work done before it, such as
    building rows and events, is done outside the lock. Writes whose results
    nobody reads (a new incident, its channel and members, a post, an outbox
    event, saving a row locked earlier in the transaction) go through
    :meth:`write_at_commit` and run at commit. On PostgreSQL they are joined into
    one statement (``driver.compose``); when no statement ran before it, that one
    statement is the whole transaction and runs in autocommit, without BEGIN and
    COMMIT: a create on the local host is one statement, one round trip. On SQLite
    they run one after another, so the lock's turn starts late and ends soon.

    An optimistic unit of work (a writing one asked for with ``optimistic``) changes
    an incident without locking it: the incident is read in autocommit, and its save
    becomes the commit's guard (:meth:`guard_at_commit`), an update of the row at the
    version read. On PostgreSQL the commit joins the guard and the other writes into
    one statement in which the others happen only if the guard found its row: a
    change is then two round trips (the read and that statement) instead of five
    (BEGIN, a locked read, the writes, COMMIT, after the read that decided who may
    make it). On SQLite the commit takes the database's write lock, runs the guard
    and then the other writes: the read, and everything the change computes from
    it, happen before the lock, which every writer of every process waits for, is
    taken. When the row has moved on, nothing is written and the commit raises
    ConcurrentUpdate; the caller retries with a locked read.
    """

    def __init__(self, db: Database, *, write: bool, optimistic: bool = False):
        self.db = db
        self.write = write
        self.connection: sa.Connection | None = None
        self._at_commit: list[driver.Write | Callable[[sa.Connection], Any]] = []
        self._guard: driver.Write | None = None
        self._joins = write and db.dialect == "postgresql"
        self.optimistic = optimistic and write

    def __enter__(self) -> "SqlUnitOfWork":
        engine = self.db.write_engine if self.write else self.db.read_engine
        # No begin() here: SQLAlchemy begins the transaction at the first statement.
        self.connection = engine.connect()
        self.incidents = SqlIncidentRepository(self.connection, lock_rows=self.db.dialect != "sqlite",
                                               write_at_commit=self.write_at_commit, writes=self.write,
                                               guard_at_commit=self.guard_at_commit if self.optimistic else None)
        self.playbooks = SqlPlaybookRepository(self.connection)
        self.saved_settings = SqlSavedSettings(self.connection)
        return self

    def write_at_commit(self, step: driver.Write | Callable[[sa.Connection], Any]) -> None:
        """Run step, a ``driver.Write`` or a callable given the connection (its result unused), at commit.

        Steps run in the order given, after every statement executed directly in
        this transaction; an error in one surfaces from :meth:`commit`, which then
        rolls the whole transaction back. Only Writes are joined into one statement
        on PostgreSQL. In a reading unit of work, step runs at once.
        """
        assert self.connection is not None
        if self.write:
            self._at_commit.append(step)
        else:
            self._run(step)

    def guard_at_commit(self, guard: driver.Write) -> None:
        """Make the commit's writes depend on guard, an UPDATE ... RETURNING that must change one row.

        At commit the guard runs first; when it changes no row, nothing of this unit
        of work is written and :meth:`commit` raises ConcurrentUpdate. One guard per
        unit of work.
        """
        if self._guard is not None:
            raise RuntimeError("a unit of work has at most one guard: change one incident per unit of work")
        self._guard = guard

    def _run(self, step: driver.Write | Callable[[sa.Connection], Any]) -> None:
        assert self.connection is not None
        if isinstance(step, driver.Write):
            # A failed statement leaves nothing behind in autocommit and on SQLite;
            # in a PostgreSQL transaction it ends the transaction, so it is not retried.
            may_retry = self.db.dialect == "sqlite" or not self.connection.in_transaction()
            driver.run(self.connection, step, may_retry=may_retry)
        else:
            step(self.connection)

    def commit(self) -> None:
        """Run the writes waiting for the commit, then make the transaction's changes permanent."""
        assert self.connection is not None
        steps, self._at_commit = self._at_commit, []
        guard, self._guard = self._guard, None
        if guard is not None:
            self._commit_guarded(guard, steps)
            return
        if len(steps) > 1 and self._joins and all(isinstance(step, driver.Write) for step in steps):
            joined = driver.compose(steps)  # type: ignore[arg-type]
            if joined is not None:
                steps = [joined]
        if steps and not self.connection.in_transaction():
            if self._joins and len(steps) == 1 and isinstance(steps[0], driver.Write):
                # Nothing ran before it: one statement in autocommit is atomic on its own.
                self._run(steps[0])
                return
            # Steps may write on the driver's cursor, which SQLAlchemy does not see:
            # begin here so that they run inside the transaction (and its write lock).
            self.connection.begin()
        for step in steps:
            self._run(step)
        self.connection.commit()

    def _commit_guarded(self, guard: driver.Write, steps: list[driver.Write | Callable[[sa.Connection], Any]]) -> None:
        """Commit with a guard: on PostgreSQL one statement when nothing ran before, else in a transaction."""
        assert self.connection is not None
        if (self._joins and not self.connection.in_transaction()
                and all(isinstance(step, driver.Write) for step in steps)):
            joined = driver.compose(steps, guard)  # type: ignore[arg-type]
            if joined is not None:
                changed = driver.execute_sql(self.connection, joined.text, joined.parameters).fetchone()[0]
                if changed != 1:
                    raise ConcurrentUpdate()
                return
        # In a transaction (on SQLite: holding the write lock, taken here) the guard takes
        # the row when it finds it at the version read; the rest follows.
        if not self.connection.in_transaction():
            self.connection.begin()
        if driver.execute_sql(self.connection, guard.text, guard.parameters).rowcount != 1:
            self.connection.rollback()
            raise ConcurrentUpdate()
        for step in steps:
            self._run(step)
        self.connection.commit()

    def rollback(self) -> None:
        """Discard the transaction's changes (and the writes still waiting for the commit)."""
        self._at_commit.clear()
        self._guard = None
        if self.connection is not None and self.connection.in_transaction():
            self.connection.rollback()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.rollback()
        finally:
            assert self.connection is not None
            self.connection.close()
