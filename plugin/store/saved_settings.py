"""Setting values saved at run time (through the API or the CLI)."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from plugin.store.tables import plugin_settings


class SqlSavedSettings:
    """Reads and writes saved setting values within the unit of work's transaction."""

    def __init__(self, connection: sa.Connection):
        self.connection = connection

    def all(self) -> dict[str, Any]:
        """Every saved value, by key."""
        rows = self.connection.execute(sa.select(plugin_settings.c.key, plugin_settings.c.value)
                                       .order_by(plugin_settings.c.key))
        return {key: value for key, value in rows}

    def put(self, key: str, value: Any, *, now: int, user_id: str) -> None:
        """Save one value, replacing any earlier one (safe against a concurrent first save of the key)."""
        insert = (postgresql.insert if self.connection.dialect.name == "postgresql" else sqlite.insert)(
            plugin_settings).values(key=key, value=value, update_at=now, updated_by=user_id)
        self.connection.execute(insert.on_conflict_do_update(
            index_elements=[plugin_settings.c.key],
            set_={"value": insert.excluded.value, "update_at": insert.excluded.update_at,
                  "updated_by": insert.excluded.updated_by}))
