"""Engines and units of work for SQLite (default) and PostgreSQL."""
from __future__ import annotations

import re
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from plugin.store.incidents import SqlIncidentRepository
from plugin.store.playbooks import SqlPlaybookRepository
from plugin.store.saved_settings import SqlSavedSettings


def normalise_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs that name no driver."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def _sqlite_engine(url: str, immediate: bool) -> sa.Engine:
    path = sa.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Writers take the write lock at BEGIN: a deferred transaction that reads and
        # then writes could fail with SQLITE_BUSY instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The engines of one database: one for reads and one for writes.

    On PostgreSQL both share one pool (writes lock the incident row with
    ``SELECT ... FOR UPDATE``; reads run in autocommit, without BEGIN/ROLLBACK). On SQLite, writers use ``BEGIN IMMEDIATE`` so they
    queue on the database's single write lock, while readers use a plain deferred
    ``BEGIN`` and, thanks to WAL, never wait for writers.
    """

    def __init__(self, url: str):
        self.url = normalise_url(url)
        if self.url.startswith("sqlite"):
            self.write_engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.write_engine = sa.create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=10)
            # Reads share the pool but skip BEGIN/ROLLBACK: under READ COMMITTED each
            # statement takes its own snapshot anyway, so a read-only transaction adds
            # two round trips and no consistency.
            self.read_engine = self.write_engine.execution_options(isolation_level="AUTOCOMMIT")
        self.dialect = self.write_engine.dialect.name

    def unit_of_work(self, *, write: bool = True) -> "SqlUnitOfWork":
        """A new unit of work (a transaction) on this database."""
        return SqlUnitOfWork(self, write=write)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


class SqlUnitOfWork:
    """One transaction: commits only when told to, rolls back otherwise."""

    def __init__(self, db: Database, *, write: bool):
        self.db = db
        self.write = write
        self.connection: sa.Connection | None = None

    def __enter__(self) -> "SqlUnitOfWork":
        engine = self.db.write_engine if self.write else self.db.read_engine
        self.connection = engine.connect()
        self._transaction = self.connection.begin()
        self.incidents = SqlIncidentRepository(self.connection, lock_rows=self.db.dialect != "sqlite")
        self.playbooks = SqlPlaybookRepository(self.connection)
        self.saved_settings = SqlSavedSettings(self.connection)
        return self

    def commit(self) -> None:
        """Make the transaction's changes permanent."""
        self._transaction.commit()

    def rollback(self) -> None:
        """Discard the transaction's changes."""
        if self._transaction.is_active:
            self._transaction.rollback()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.rollback()
        finally:
            assert self.connection is not None
            self.connection.close()
