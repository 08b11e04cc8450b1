"""Pooled connections: a connection cut while idle is replaced; SQLite writers queue and all commit."""
from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa

import plugin.store.database as database_module
from plugin.store import Database


def _terminate(db: Database, pid: int) -> None:
    """Cut a PostgreSQL backend, as a database restart or a network cut would."""
    killer = sa.create_engine(db.url)
    with killer.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})").scalar_one() is True
    killer.dispose()


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_an_idle_postgresql_connection_cut_by_the_server_is_replaced_before_use(db: Database, monkeypatch):
    assert db.dialect == "postgresql"
    with db.read_engine.connect() as connection:
        old_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    _terminate(db, old_pid)
    # Every checked-in connection counts as idle: the checkout pings, finds it dead, replaces it.
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    with db.read_engine.connect() as connection:
        new_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    assert new_pid != old_pid


@pytest.mark.parametrize("database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_write_whose_connection_was_cut_unnoticed_fails_cleanly_and_the_next_write_works(db: Database,
                                                                                          monkeypatch):
    # No ping at checkout: the write's BEGIN is the first to meet the dead connection.
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    with db.write_engine.begin() as connection:
        old_pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    _terminate(db, old_pid)
    with pytest.raises(sa.exc.OperationalError) as refused:
        with db.write_engine.begin() as connection:
            connection.exec_driver_sql("SELECT 1")
    assert refused.value.connection_invalidated
    with db.write_engine.begin() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != old_pid
        assert connection.exec_driver_sql("SELECT now() = statement_timestamp()").scalar_one() is False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_concurrent_sqlite_writers_from_many_threads_all_commit(db: Database):
    assert db.dialect == "sqlite"
    db.write_engine.dispose()
    table = sa.table("plugin_kv", sa.column("key"), sa.column("value"))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                with db.write_engine.begin() as connection:
                    connection.execute(sa.insert(table).values(key=f"bench-{n}-{i}", value="x"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    with db.read_engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM plugin_kv WHERE key LIKE 'bench-%'").scalar_one()
    assert count == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_writer_whose_connection_is_invalidated_still_gives_back_its_turn(db: Database):
    table = sa.table("plugin_kv", sa.column("key"), sa.column("value"))
    with db.write_engine.connect() as connection:
        connection.execute(sa.insert(table).values(key="lost", value="x"))  # BEGIN: this writer's turn
        connection.invalidate()
    done = threading.Event()

    def other_writer() -> None:
        with db.write_engine.begin() as connection:
            connection.execute(sa.insert(table).values(key="next", value="x"))
        done.set()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert done.wait(5), "the invalidated connection kept the writers' turn"
    thread.join()
    with db.read_engine.connect() as connection:
        keys = set(connection.exec_driver_sql("SELECT key FROM plugin_kv").scalars())
    assert keys == {"next"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_log_is_checkpointed_after_every_nth_write_and_not_inside_a_commit(database_url: str, monkeypatch):
    monkeypatch.setattr(database_module, "CHECKPOINT_EVERY", 5)
    db = Database(database_url)
    path = sa.make_url(database_url).database
    table = sa.table("plugin_kv", sa.column("key"), sa.column("value"))

    def in_database_file() -> int:
        # immutable=1 reads the database file alone, without the write-ahead log.
        reader = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return reader.execute("SELECT count(*) FROM plugin_kv").fetchone()[0]
        finally:
            reader.close()

    try:
        raw = db.write_engine.raw_connection()  # no transaction: not a write
        try:
            # SQLite's own checkpoint inside COMMIT is off on the write connections.
            assert raw.cursor().execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        finally:
            raw.close()
        for n in range(4):
            with db.write_engine.begin() as connection:
                connection.execute(sa.insert(table).values(key=f"k{n}", value="x"))
        assert in_database_file() == 0  # four writes: all still in the log
        with db.write_engine.begin() as connection:
            connection.execute(sa.insert(table).values(key="k4", value="x"))
        assert in_database_file() == 5  # the fifth write's turn ended with a checkpoint
        with db.read_engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM plugin_kv").scalar_one() == 5
    finally:
        db.dispose()
