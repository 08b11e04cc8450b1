"""The incident repository: incidents as rows, their stages and tasks as JSON."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.errors import ConcurrentUpdate
from plugin.model import Incident, IncidentFilter, checklists_from_json, checklists_to_json
from plugin.store.tables import incidents

SORT_COLUMNS = {
    "create_at": incidents.c.create_at,
    "end_at": incidents.c.end_at,
    "name": incidents.c.name,
    "commander_user_id": incidents.c.commander_user_id,
    "is_active": incidents.c.is_active,
}


def severity_order(levels: tuple[str, ...]) -> sa.ColumnElement[int]:
    """How severe an incident's level is, as a number that grows with severity.

    The most severe configured level is highest; a level no longer configured is 0,
    below every configured one; no severity is -1. So ``sort=severity`` descending
    lists the most severe first and the incidents without a severity last.
    """
    count = len(levels)
    return sa.case(*[(incidents.c.severity == name, count - index) for index, name in enumerate(levels)],
                   (incidents.c.severity == "", -1), else_=0)


# Built once: the statements every request runs (SQLAlchemy then finds them compiled in its cache).
_INSERT = sa.insert(incidents)
_GET = sa.select(incidents).where(incidents.c.id == sa.bindparam("incident_id"))
_GET_BY_CHANNEL = sa.select(incidents).where(incidents.c.channel_id == sa.bindparam("channel_id"))
_SAVE = sa.update(incidents).where(incidents.c.id == sa.bindparam("old_id"),
                                   incidents.c.version == sa.bindparam("old_version"))


def _row_values(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "name": incident.name, "description": incident.description,
        "is_active": incident.is_active, "commander_user_id": incident.commander_user_id,
        "team_id": incident.team_id, "channel_id": incident.channel_id, "post_id": incident.post_id,
        "public": incident.public, "create_at": incident.create_at, "end_at": incident.end_at,
        "active_stage": incident.active_stage, "checklists": checklists_to_json(incident.checklists),
        "version": incident.version, "playbook_id": incident.playbook_id,
        "broadcast_channel_ids": incident.broadcast_channel_ids, "reminder_seconds": incident.reminder_seconds,
        "severity": incident.severity, "retrospective_published_at": incident.retrospective_published_at,
    }


def _from_row(row: Any) -> Incident:
    """The incident of a row."""
    return Incident(
        id=row.id, name=row.name, description=row.description, is_active=row.is_active,
        commander_user_id=row.commander_user_id, team_id=row.team_id, channel_id=row.channel_id,
        post_id=row.post_id, public=row.public, create_at=row.create_at, end_at=row.end_at,
        active_stage=row.active_stage, checklists=checklists_from_json(row.checklists),
        version=row.version, playbook_id=row.playbook_id,
        broadcast_channel_ids=list(row.broadcast_channel_ids), reminder_seconds=row.reminder_seconds,
        severity=row.severity, retrospective_published_at=row.retrospective_published_at,
    )


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlIncidentRepository:
    """Incidents of one unit of work: read at once, written at its commit.

    An incident is saved only at the version it had when it was saved (the version
    read): when another change committed first, the commit raises ConcurrentUpdate.
    """

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._added: list[Incident] = []
        self._saved: list[Incident] = []

    @property
    def connection(self) -> sa.Connection:
        return self._connection()

    def get(self, incident_id: str) -> Incident | None:
        """The incident as last committed, or None."""
        row = self.connection.execute(_GET, {"incident_id": incident_id}).first()
        return _from_row(row) if row else None

    def get_by_channel(self, channel_id: str) -> Incident | None:
        """The incident whose channel this is."""
        row = self.connection.execute(_GET_BY_CHANNEL, {"channel_id": channel_id}).first()
        return _from_row(row) if row else None

    def add(self, incident: Incident) -> None:
        """Insert a new incident at commit."""
        self._added.append(incident)

    def save(self, incident: Incident) -> None:
        """Write the changed incident at commit, if it is still at its version then."""
        self._saved.append(incident)

    def flush(self, connection: sa.Connection) -> None:
        """Write what was added and saved (in the commit's transaction); ConcurrentUpdate when a row moved on."""
        if self._added:
            connection.execute(_INSERT, [_row_values(incident) for incident in self._added])
        for incident in self._saved:
            values = {**_row_values(incident), "version": incident.version + 1,
                      "old_id": incident.id, "old_version": incident.version}
            changed = connection.execute(_SAVE, values).rowcount
            if changed != 1:
                raise ConcurrentUpdate()
            incident.version += 1
        self._added.clear()
        self._saved.clear()

    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]:
        """One page of incidents matching the filter, and how many match in all."""
        count, page = self.list_statements(query)
        total = self.connection.execute(count).scalar_one()
        return total, [_from_row(row) for row in self.connection.execute(page).all()]

    @staticmethod
    def list_statements(query: IncidentFilter) -> tuple[sa.Select[Any], sa.Select[Any]]:
        """The count and page queries for a filter (separate so their plans can be checked)."""
        conditions: list[Any] = []
        if query.team_id:
            conditions.append(incidents.c.team_id == query.team_id)
        if query.status == "active":
            conditions.append(incidents.c.is_active == sa.true())
        elif query.status == "ended":
            conditions.append(incidents.c.is_active == sa.false())
        if query.commander_user_id:
            conditions.append(incidents.c.commander_user_id == query.commander_user_id)
        if query.member_channel_ids is not None:
            conditions.append(incidents.c.channel_id.in_(sorted(query.member_channel_ids)))
        if query.severity:
            conditions.append(incidents.c.severity.in_(sorted(set(query.severity))))
        if query.search_term:
            pattern = f"%{_escape_like(query.search_term.lower())}%"
            conditions.append(sa.func.lower(incidents.c.name).like(pattern, escape="\\"))
        if query.visible_channel_ids is not None:
            visible = incidents.c.channel_id.in_(sorted(query.visible_channel_ids))
            if query.include_public:
                visible = sa.or_(visible, incidents.c.public.is_(True))
            conditions.append(visible)
        where = sa.and_(sa.true(), *conditions)
        if query.sort == "severity":
            # Levels of one rank (those no longer configured) grouped by name, then newest or oldest first.
            keys = [severity_order(query.severity_levels), incidents.c.severity, incidents.c.create_at, incidents.c.id]
        else:
            keys = [SORT_COLUMNS[query.sort], incidents.c.id]
        order = [key.desc() if query.direction == "desc" else key.asc() for key in keys]
        count = sa.select(sa.func.count()).select_from(incidents).where(where)
        page = (sa.select(incidents).where(where).order_by(*order)
                .limit(query.per_page).offset(query.page * query.per_page))
        return count, page
