"""The retrospective repository: one row per incident that has one, beside the incident's row."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.model import Retrospective
from plugin.store.tables import incident_retrospectives

_GET = sa.select(incident_retrospectives).where(incident_retrospectives.c.incident_id == sa.bindparam("incident_id"))
_UPDATE = sa.update(incident_retrospectives).where(
    incident_retrospectives.c.incident_id == sa.bindparam("old_incident_id"))


def _values(retrospective: Retrospective) -> dict[str, Any]:
    return {"incident_id": retrospective.incident_id, "text": retrospective.text,
            "update_at": retrospective.update_at, "updated_by": retrospective.updated_by,
            "allowed_before_end": retrospective.allowed_before_end}


class SqlRetrospectiveRepository:
    """Retrospectives of one unit of work: read at once, written at its commit.

    Every write of a retrospective commits with a write of its incident's row at the
    version read (a start, or a change through ``IncidentService``), so two writers of
    one retrospective never both commit: an update that finds no row may insert it.
    """

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._saved: list[Retrospective] = []

    def get(self, incident_id: str) -> Retrospective | None:
        """The incident's retrospective as last committed, or None when it has none yet."""
        row = self._connection().execute(_GET, {"incident_id": incident_id}).first()
        if row is None:
            return None
        return Retrospective(incident_id=row.incident_id, text=row.text, update_at=row.update_at,
                             updated_by=row.updated_by, allowed_before_end=row.allowed_before_end)

    def save(self, retrospective: Retrospective) -> None:
        """Write the retrospective at commit (inserted when the incident has none yet)."""
        self._saved.append(retrospective)

    def flush(self, connection: sa.Connection) -> None:
        """Write what was saved, in the commit's transaction."""
        for retrospective in self._saved:
            values = _values(retrospective)
            if connection.execute(_UPDATE, {**values, "old_incident_id": retrospective.incident_id}).rowcount == 0:
                connection.execute(sa.insert(incident_retrospectives), values)
        self._saved.clear()
