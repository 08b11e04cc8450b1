"""The egress table: per day, destination host and kind, how many requests left the server and the last error."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.store.tables import egress

E = egress.c
DAY_MS = 86_400_000


def add_counts(db: Any, counts: list[dict[str, Any]]) -> None:
    """Add each (day, host, kind)'s requests and failures in one transaction; keep the newest error."""
    if not counts:
        return
    insert = (postgresql_insert if db.dialect == "postgresql" else sqlite_insert)(egress)
    excluded = insert.excluded
    newer = excluded.last_error_at > E.last_error_at
    statement = insert.on_conflict_do_update(index_elements=["day", "host", "kind"], set_={
        "requests": E.requests + excluded.requests, "failures": E.failures + excluded.failures,
        "last_at": sa.case((excluded.last_at > E.last_at, excluded.last_at), else_=E.last_at),
        "last_error": sa.case((newer, excluded.last_error), else_=E.last_error),
        "last_error_at": sa.case((newer, excluded.last_error_at), else_=E.last_error_at)})
    with db.write_engine.begin() as connection:
        # Sorted: two processes adding the same rows lock them in the same order.
        for row in sorted(counts, key=lambda row: (row["day"], row["host"], row["kind"])):
            connection.execute(statement, row)


def read_since(db: Any, day: int) -> list[dict[str, Any]]:
    """Per host and kind since this day: requests, failures, the last request and the last error."""
    query = (sa.select(E.host, E.kind, sa.func.sum(E.requests).label("requests"),
                       sa.func.sum(E.failures).label("failures"), sa.func.max(E.last_at).label("last_at"))
             .where(E.day >= day).group_by(E.host, E.kind).order_by(E.host, E.kind))
    errors = (sa.select(E.host, E.kind, E.last_error, E.last_error_at)
              .where(E.day >= day, E.last_error_at > 0).order_by(E.last_error_at))
    with db.read_engine.connect() as connection:
        found = [{"host": row.host, "kind": row.kind, "requests": int(row.requests), "failures": int(row.failures),
                  "last_at": int(row.last_at), "last_error": None} for row in connection.execute(query)]
        last = {(row.host, row.kind): {"at": row.last_error_at, "error": row.last_error}
                for row in connection.execute(errors)}
    for item in found:
        item["last_error"] = last.get((item["host"], item["kind"]))
    return found
