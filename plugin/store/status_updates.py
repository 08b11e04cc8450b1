"""Status updates and reminders: the rows behind an incident's updates and its next reminder."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.errors import ConcurrentUpdate
from plugin.model import Reminder, StatusUpdate
from plugin.store.tables import incident_reminders, status_updates

# Built once: the statements of a reminder's life.
def _upsert(insert: Any) -> Any:
    statement = insert(incident_reminders)
    return statement.on_conflict_do_update(index_elements=["incident_id"],
                                           set_={"due_at": statement.excluded.due_at})


_INSERT_UPDATES = sa.insert(status_updates)
_SCHEDULE = {"postgresql": _upsert(postgresql_insert), "sqlite": _upsert(sqlite_insert)}
_CLAIM = (sa.update(incident_reminders)
          .where(incident_reminders.c.incident_id == sa.bindparam("old_incident_id"),
                 incident_reminders.c.due_at == sa.bindparam("old_due_at"))
          .values(due_at=sa.bindparam("next_due_at")))
_DUE = (sa.select(incident_reminders.c.incident_id, incident_reminders.c.due_at)
        .where(incident_reminders.c.due_at <= sa.bindparam("now"))
        .order_by(incident_reminders.c.due_at).limit(sa.bindparam("limit")))


class SqlStatusUpdateRepository:
    """An incident's status updates: read at once, added at the unit of work's commit."""

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._added: list[StatusUpdate] = []

    def add(self, update: StatusUpdate) -> None:
        """Keep the update at commit."""
        self._added.append(update)

    def list(self, incident_id: str, page: int, per_page: int) -> tuple[int, list[StatusUpdate]]:
        """One page of the incident's updates, newest first, and how many it has in all."""
        connection = self._connection()
        where = status_updates.c.incident_id == incident_id
        total = connection.execute(sa.select(sa.func.count()).select_from(status_updates).where(where)).scalar_one()
        rows = connection.execute(sa.select(status_updates).where(where)
                                  .order_by(status_updates.c.create_at.desc(), status_updates.c.id.desc())
                                  .limit(per_page).offset(page * per_page)).all()
        return total, [StatusUpdate(row.id, row.incident_id, row.user_id, row.message, row.create_at)
                       for row in rows]

    def flush(self, connection: sa.Connection) -> None:
        """Insert the updates added (in the commit's transaction)."""
        if self._added:
            connection.execute(_INSERT_UPDATES, [
                {"id": u.id, "incident_id": u.incident_id, "user_id": u.user_id, "message": u.message,
                 "create_at": u.create_at} for u in self._added])
        self._added.clear()


class SqlReminderRepository:
    """Incidents' next reminders: read at once; scheduled and claimed at the unit of work's commit.

    A claim moves a reminder's due time on only if it still is the time read: when
    another server (or a status update) moved it first, the commit raises
    ConcurrentUpdate and writes nothing, so each due time fires in one commit only.
    """

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._scheduled: dict[str, int | None] = {}
        self._claims: list[tuple[Reminder, int | None]] = []

    def due(self, now: int, limit: int) -> list[Reminder]:
        """Up to limit reminders due by now, the longest overdue first."""
        rows = self._connection().execute(_DUE, {"now": now, "limit": limit}).all()
        return [Reminder(row.incident_id, row.due_at) for row in rows]

    def schedule(self, incident_id: str, due_at: int | None) -> None:
        """Make the incident's next reminder due at due_at (None: not due) at commit, whatever it was."""
        self._scheduled[incident_id] = due_at

    def claim(self, reminder: Reminder, next_due_at: int | None) -> None:
        """At commit, move the reminder from its due time to the next (None: stop), if no one else did."""
        self._claims.append((reminder, next_due_at))

    def flush(self, connection: sa.Connection) -> None:
        """Write the claims (ConcurrentUpdate when one was lost) and the schedules, in the commit's transaction."""
        for reminder, next_due_at in self._claims:
            moved = connection.execute(_CLAIM, {"old_incident_id": reminder.incident_id,
                                                "old_due_at": reminder.due_at, "next_due_at": next_due_at}).rowcount
            if moved != 1:
                raise ConcurrentUpdate("This reminder was already sent, or changed, by another server.")
        if self._scheduled:
            connection.execute(_SCHEDULE[connection.dialect.name], [
                {"incident_id": incident_id, "due_at": due_at} for incident_id, due_at in self._scheduled.items()])
        self._claims.clear()
        self._scheduled.clear()
