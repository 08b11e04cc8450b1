"""Migrations that move data: run from the previous revision on a database holding rows in the old shape."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from plugin.store import Database, migrate
from plugin.store.migrate import alembic_config, current_revision
from plugin.telemetry import OutboxRow
from plugin.telemetry.outbox import REJECTED, Outbox
from tests.conftest import new_postgres_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def blank_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'blank.db'}")
        yield db
        db.dispose()
        return
    with new_postgres_database("incident_migration") as url:
        db = Database(url)
        yield db
        db.dispose()


def _old_outbox_row(n: int, state: str) -> dict:
    message = {"messageId": f"id-{state}-{n}", "event": "incident"}
    return {"message_id": f"id-{state}-{n}", "event": "incident", "properties": json.dumps({"n": n}),
            "recorded_at": n, "state": state, "lease_until": 0, "lease_token": "", "attempts": 1,
            "sent_at": 1_000 + n if state != "pending" else 0,
            "sent_message": json.dumps(message) if state != "pending" else ""}


def test_0004_keeps_waiting_events_and_moves_the_newest_sent_messages_to_the_audit(blank_db):
    migrate(blank_db, "0003")
    rows = ([_old_outbox_row(n, "sent") for n in range(250)] + [_old_outbox_row(n, "pending") for n in range(3)]
            + [_old_outbox_row(n, "rejected") for n in range(2)])
    insert = sa.text("INSERT INTO telemetry_outbox (message_id, event, properties, recorded_at, state, lease_until, "
                     "lease_token, attempts, sent_at, sent_message) VALUES (:message_id, :event, :properties, "
                     ":recorded_at, :state, :lease_until, :lease_token, :attempts, :sent_at, :sent_message)")
    with blank_db.write_engine.begin() as connection:
        connection.execute(insert, rows)

    migrate(blank_db, "0004")
    assert current_revision(blank_db) == "0004"
    migrate(blank_db)  # and 0005: waiting events are of the first epoch, claimed as before
    outbox = Outbox(blank_db)
    _, waiting = outbox.claim(10, lease_ms=5_000)
    assert [(e.message_id, e.properties) for e in waiting] == [(f"id-pending-{n}", {"n": n}) for n in range(3)]
    assert outbox.recent_sent(200) == [{"messageId": f"id-sent-{n}", "event": "incident"}
                                       for n in reversed(range(50, 250))]
    assert [m["messageId"] for m in outbox.recent_sent(10, REJECTED)] == ["id-rejected-1", "id-rejected-0"]
    columns = {column["name"] for column in sa.inspect(blank_db.read_engine).get_columns("telemetry_outbox")}
    assert columns == {"seq", "message_id", "event", "properties", "recorded_at", "epoch"}
    # The new shape takes new events beside the ones kept.
    with blank_db.unit_of_work() as uow:
        uow.outbox.add(OutboxRow("incident", {"n": 3}, 3, 10_000))
        uow.commit()
    assert outbox.pending_count() == 4


def test_0004_downgrades_and_upgrades_again(blank_db):
    from alembic import command

    migrate(blank_db)
    outbox = Outbox(blank_db)
    with blank_db.unit_of_work() as uow:
        uow.outbox.add(OutboxRow("incident", {"n": 1}, 1, 10_000))
        uow.commit()
    command.downgrade(alembic_config(blank_db), "0003")
    with blank_db.read_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT state FROM telemetry_outbox")).scalars().all() == ["pending"]
    migrate(blank_db)
    assert outbox.pending_count() == 1


def test_0006_adds_the_timeline_beside_existing_incidents_and_downgrades_cleanly(blank_db):
    from alembic import command

    migrate(blank_db, "0005")
    assert "timeline_events" not in sa.inspect(blank_db.read_engine).get_table_names()
    migrate(blank_db, "0006")
    blank_db.dispose()  # a SQLite connection that read the schema before keeps its index list
    indexes = sa.inspect(blank_db.read_engine).get_indexes("timeline_events")
    assert [index["column_names"] for index in indexes if index["name"].startswith("ix_timeline")] == [
        ["incident_id", "event_at"]]
    command.downgrade(alembic_config(blank_db), "0005")
    assert "timeline_events" not in sa.inspect(blank_db.read_engine).get_table_names()
    migrate(blank_db)
    assert "timeline_events" in sa.inspect(blank_db.read_engine).get_table_names()
