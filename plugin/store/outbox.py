"""The telemetry outbox's writes made in other transactions: an event stored with its change, counters, settings."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.store.tables import plugin_kv, settings_state, telemetry_counters, telemetry_outbox
from plugin.telemetry import OutboxRow


def _upsert(connection: sa.Connection, table: sa.Table, key: str, values: dict[str, Any],
            update: dict[str, Any]) -> None:
    """Insert one row of table, or update the row with the same key as update says."""
    insert = (postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert)(table).values(**values)
    connection.execute(insert.on_conflict_do_update(
        index_elements=[key], set_={name: value(insert.excluded) for name, value in update.items()}))


def bump_counter(connection: sa.Connection, name: str, by: int) -> None:
    """Add by to a counter, creating it at by (inside the connection's transaction)."""
    if by:
        _upsert(connection, telemetry_counters, "name", {"name": name, "value": by},
                {"value": lambda excluded: telemetry_counters.c.value + excluded.value})


def put_kv(connection: sa.Connection, key: str, value: str) -> None:
    """Set one plugin_kv value (inside the connection's transaction)."""
    _upsert(connection, plugin_kv, "key", {"key": key, "value": value}, {"value": lambda excluded: excluded.value})


# The database's telemetry switch, read by the very statement that stores an event:
# the event is stored only while the switch is on, with the switch's epoch (a
# missing state row is the initial state: on, epoch 0).
_SWITCH = settings_state.alias("switch")
_ONE = sa.select(sa.literal(1).label("one")).subquery("one")
# The oldest event waiting, returned with the insert so that the bound is enforced
# by a delete only when some event is past it.
_OLDEST = sa.select(sa.func.min(telemetry_outbox.c.seq)).scalar_subquery().label("oldest")


def _record(typed: bool) -> sa.Insert:
    """The insert of one event, with its values typed in SQL where the database needs it.

    PostgreSQL takes a bare parameter in a SELECT list as text, so each is cast to
    its column's type; SQLite would cast the JSON document to a number, so there
    the values go in as they are.
    """
    def value(name: str, column_type: sa.types.TypeEngine) -> Any:
        parameter = sa.bindparam(name, type_=column_type)
        return sa.cast(parameter, column_type) if typed else parameter

    return sa.insert(telemetry_outbox).from_select(
        ["message_id", "event", "properties", "recorded_at", "epoch"],
        sa.select(value("message_id", sa.String(36)), value("event", sa.String(32)), value("properties", sa.JSON()),
                  value("recorded_at", sa.BigInteger()), sa.func.coalesce(_SWITCH.c.telemetry_epoch, 0))
        .select_from(_ONE.outerjoin(_SWITCH, _SWITCH.c.id == 1))
        .where(sa.func.coalesce(_SWITCH.c.telemetry_on, sa.true()))).returning(telemetry_outbox.c.seq, _OLDEST)


_RECORD = {"postgresql": _record(typed=True), "sqlite": _record(typed=False)}
_DROP = sa.delete(telemetry_outbox).where(telemetry_outbox.c.seq <= sa.bindparam("bound"))


def insert_event(connection: sa.Connection, row: OutboxRow) -> None:
    """Store one event in the connection's transaction (only while the database's switch is on).

    Events more than max_events inserts older than this one are dropped (and
    counted), so no more than max_events wait, without counting the backlog.
    """
    inserted = connection.execute(_RECORD[connection.dialect.name], {"message_id": row.message_id, "event": row.event,
                                            "properties": row.properties, "recorded_at": row.recorded_at}).first()
    if inserted is None:
        return  # the database's switch is off
    bound = inserted.seq - row.max_events
    if inserted.oldest is not None and inserted.oldest <= bound:
        bump_counter(connection, "dropped", connection.execute(_DROP, {"bound": bound}).rowcount)


class SqlOutboxRepository:
    """The outbox rows of one unit of work, written in its commit's transaction."""

    def __init__(self) -> None:
        self._rows: list[OutboxRow] = []

    def add(self, row: OutboxRow) -> None:
        """Store row at commit."""
        self._rows.append(row)

    def flush(self, connection: sa.Connection) -> None:
        """Write the rows added (in the commit's transaction)."""
        for row in self._rows:
            insert_event(connection, row)
        self._rows.clear()
