"""Setting values saved at run time (through the API or the CLI)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from plugin.store.tables import plugin_settings


class SqlSavedSettings:
    """Reads and writes saved setting values within the unit of work's transaction."""

    def __init__(self, connection: sa.Connection):
        self.connection = connection

    def all(self) -> dict[str, Any]:
        """Every saved value, by key."""
        rows = self.connection.execute(sa.select(plugin_settings.c.key, plugin_settings.c.value))
        return {key: value for key, value in rows}

    def revision(self) -> tuple[int, int]:
        """A cheap fingerprint of the saved values: (row count, newest change time)."""
        count, newest = self.connection.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.max(plugin_settings.c.update_at), 0))).one()
        return int(count), int(newest)

    def put(self, key: str, value: Any, *, now: int, user_id: str) -> None:
        """Save one value, replacing any earlier one."""
        updated = self.connection.execute(sa.update(plugin_settings).where(plugin_settings.c.key == key)
                                          .values(value=value, update_at=now, updated_by=user_id))
        if updated.rowcount == 0:
            self.connection.execute(sa.insert(plugin_settings).values(key=key, value=value, update_at=now,
                                                                      updated_by=user_id))
