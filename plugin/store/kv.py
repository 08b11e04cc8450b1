"""Single values kept in ``plugin_kv``: read, or made once by whichever process comes first."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.store.tables import plugin_kv


def read_value(db: Any, key: str) -> str | None:
    """The value stored under key, or None."""
    with db.read_engine.connect() as connection:
        return connection.execute(sa.select(plugin_kv.c.value).where(plugin_kv.c.key == key)).scalar_one_or_none()


def value_made_once(db: Any, key: str, make: Callable[[], str]) -> str:
    """The value under key; when there is none, make() is stored. Processes racing here all get the first stored."""
    found = read_value(db, key)
    if found:
        return found
    try:
        with db.write_engine.begin() as connection:
            connection.execute(sa.insert(plugin_kv).values(key=key, value=make()))
    except sa.exc.IntegrityError:
        pass  # another process made it first: theirs is the one
    with db.read_engine.connect() as connection:
        return connection.execute(sa.select(plugin_kv.c.value).where(plugin_kv.c.key == key)).scalar_one()
