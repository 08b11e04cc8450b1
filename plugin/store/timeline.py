"""The timeline repository: each incident's entries, written in the commit of the change they tell."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from plugin.errors import NotFound
from plugin.model import TimelineEntry
from plugin.store.tables import timeline_events

T = timeline_events.c
_INSERT = sa.insert(timeline_events)
_GET = sa.select(timeline_events).where(T.incident_id == sa.bindparam("incident_id"), T.id == sa.bindparam("entry_id"))
_DELETE = (sa.update(timeline_events)
           .where(T.id == sa.bindparam("entry_id"), T.incident_id == sa.bindparam("of_incident"),
                  T.deleted == sa.false())
           .values(deleted=True, deleted_at=sa.bindparam("at"), deleted_by=sa.bindparam("by")))


def _row_values(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "id": entry.id, "incident_id": entry.incident_id, "event_type": entry.event_type, "event_at": entry.event_at,
        "create_at": entry.create_at, "subject_user_id": entry.subject_user_id,
        "creator_user_id": entry.creator_user_id, "summary": entry.summary, "details": entry.details,
        "post_id": entry.post_id, "deleted": entry.deleted, "deleted_at": entry.deleted_at,
        "deleted_by": entry.deleted_by,
    }


def _from_row(row: Any) -> TimelineEntry:
    return TimelineEntry(
        id=row.id, incident_id=row.incident_id, event_type=row.event_type, event_at=row.event_at,
        create_at=row.create_at, creator_user_id=row.creator_user_id, summary=row.summary,
        subject_user_id=row.subject_user_id, details=row.details, post_id=row.post_id, deleted=row.deleted,
        deleted_at=row.deleted_at, deleted_by=row.deleted_by,
    )


class SqlTimelineRepository:
    """Timeline entries of one unit of work: read at once, written at its commit.

    The entries a commit adds go in as one statement; a deletion only hides an
    entry, keeping who deleted it and when.
    """

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._added: list[TimelineEntry] = []
        self._deleted: list[TimelineEntry] = []

    def get(self, incident_id: str, entry_id: str) -> TimelineEntry | None:
        """The incident's entry with this id, deleted or not; None when the incident has none such."""
        row = self._connection().execute(_GET, {"incident_id": incident_id, "entry_id": entry_id}).first()
        return _from_row(row) if row else None

    def list(self, incident_id: str, event_types: Sequence[str] = (), last: int | None = None) -> list[TimelineEntry]:
        """The incident's entries not deleted, oldest first; only of these types, and only the last few, when given."""
        rows = self._connection().execute(self.list_statement(incident_id, event_types, last)).all()
        entries = [_from_row(row) for row in rows]
        return entries if last is None else entries[::-1]

    @staticmethod
    def list_statement(incident_id: str, event_types: Sequence[str] = (), last: int | None = None) -> sa.Select[Any]:
        """The query of ``list`` (newest first when ``last`` is given; separate so its plan can be checked)."""
        query = sa.select(timeline_events).where(T.incident_id == incident_id, T.deleted == sa.false())
        if event_types:
            query = query.where(T.event_type.in_(sorted(set(event_types))))
        if last is None:
            return query.order_by(T.event_at, T.seq)
        return query.order_by(T.event_at.desc(), T.seq.desc()).limit(last)

    def add(self, entry: TimelineEntry) -> None:
        """Insert the entry at commit."""
        self._added.append(entry)

    def delete(self, entry: TimelineEntry) -> None:
        """Hide the entry at commit, as its deleted_at and deleted_by say (see TimelineEntry.delete)."""
        self._deleted.append(entry)

    def flush(self, connection: sa.Connection) -> None:
        """Write what was added and deleted (in the commit's transaction); NotFound when an entry was deleted first."""
        if self._added:
            connection.execute(_INSERT, [_row_values(entry) for entry in self._added])
        for entry in self._deleted:
            hidden = connection.execute(_DELETE, {"entry_id": entry.id, "of_incident": entry.incident_id,
                                                  "at": entry.deleted_at, "by": entry.deleted_by}).rowcount
            if hidden != 1:
                raise NotFound(f"Timeline entry {entry.id} was deleted already.", {"event_id": entry.id})
        self._added.clear()
        self._deleted.clear()
