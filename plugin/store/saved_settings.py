"""Setting values saved at run time (through the API or the CLI), and the settings state row."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from plugin.settings import SettingsState
from plugin.store.tables import plugin_settings, settings_state, telemetry_counters, telemetry_outbox

STATE_ID = 1


# Without its row (a database emptied by hand) the state is the initial one.
INITIAL_STATE = SettingsState()
_READ_STATE = (sa.select(settings_state.c.version, settings_state.c.telemetry_on, settings_state.c.telemetry_epoch)
               .where(settings_state.c.id == STATE_ID))


def read_state(connection: sa.Connection, *, lock: bool = False) -> SettingsState:
    """The state row, read on connection (locked against other changes until the transaction ends)."""
    statement = _READ_STATE.with_for_update() if lock and connection.dialect.name == "postgresql" else _READ_STATE
    row = connection.execute(statement).first()
    return INITIAL_STATE if row is None else SettingsState(int(row[0]), bool(row[1]), int(row[2]))


_READ_VERSION = sa.select(settings_state.c.version).where(settings_state.c.id == STATE_ID)


def read_version(connection: sa.Connection) -> int:
    """The settings version (the initial one without the row)."""
    version = connection.execute(_READ_VERSION).scalar_one_or_none()
    return INITIAL_STATE.version if version is None else int(version)


def _insert(connection: sa.Connection) -> Any:
    return postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert


def advance_state(connection: sa.Connection, telemetry_on: bool | None = None) -> SettingsState:
    """Raise the settings version on connection; set the telemetry switch unless None (a flip starts a new epoch).

    Changes take turns on the row (its lock on PostgreSQL, the write lock on SQLite),
    so no two changes make the same version.
    """
    connection.execute(_insert(connection)(settings_state).values(
        id=STATE_ID, version=INITIAL_STATE.version, telemetry_on=INITIAL_STATE.telemetry_on,
        telemetry_epoch=INITIAL_STATE.telemetry_epoch).on_conflict_do_nothing(index_elements=["id"]))
    old = read_state(connection, lock=True)
    on = old.telemetry_on if telemetry_on is None else telemetry_on
    new = SettingsState(old.version + 1, on, old.telemetry_epoch + (on != old.telemetry_on))
    connection.execute(sa.update(settings_state).where(settings_state.c.id == STATE_ID).values(
        version=new.version, telemetry_on=new.telemetry_on, telemetry_epoch=new.telemetry_epoch))
    return new


class SqlSavedSettings:
    """Reads and writes saved setting values within the unit of work's transaction."""

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        #: Whether this unit of work raised the settings version.
        self.advanced = False

    @property
    def connection(self) -> sa.Connection:
        return self._connection()

    def all(self) -> dict[str, Any]:
        """Every saved value, by key."""
        rows = self.connection.execute(sa.select(plugin_settings.c.key, plugin_settings.c.value)
                                       .order_by(plugin_settings.c.key))
        return {key: value for key, value in rows}

    def put(self, key: str, value: Any, *, now: int, user_id: str) -> None:
        """Save one value, replacing any earlier one (safe against a concurrent first save of the key)."""
        insert = _insert(self.connection)(plugin_settings).values(
            key=key, value=value, update_at=now, updated_by=user_id)
        self.connection.execute(insert.on_conflict_do_update(
            index_elements=[plugin_settings.c.key],
            set_={"value": insert.excluded.value, "update_at": insert.excluded.update_at,
                  "updated_by": insert.excluded.updated_by}))

    def state(self) -> SettingsState:
        """The settings version and the telemetry switch."""
        return read_state(self.connection)

    def advance(self, telemetry_on: bool | None = None) -> SettingsState:
        """Raise the settings version now, in this unit of work's transaction (see ``advance_state``)."""
        new = advance_state(self.connection, telemetry_on)
        self.advanced = True
        return new

    def delete_waiting_events(self) -> int:
        """Delete every telemetry event not yet sent and count them as deleted; return how many."""
        deleted = self.connection.execute(sa.delete(telemetry_outbox)).rowcount
        if deleted:
            insert = _insert(self.connection)(telemetry_counters).values(name="deleted", value=deleted)
            self.connection.execute(insert.on_conflict_do_update(
                index_elements=[telemetry_counters.c.name],
                set_={"value": telemetry_counters.c.value + insert.excluded.value}))
        return deleted
