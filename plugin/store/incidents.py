"""The incident repository: incidents as rows, their stages and tasks as JSON."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.errors import ConcurrentUpdate
from plugin.model import Incident, IncidentFilter, IncidentHead, checklists_from_json, checklists_to_json
from plugin.store import driver
from plugin.store.tables import incidents

SORT_COLUMNS = {
    "create_at": incidents.c.create_at,
    "end_at": incidents.c.end_at,
    "name": incidents.c.name,
    "commander_user_id": incidents.c.commander_user_id,
    "is_active": incidents.c.is_active,
}


# The statements every request runs, on the driver's cursor (see plugin.store.driver).
_GET = driver.Statement(sa.select(incidents).where(incidents.c.id == sa.bindparam("incident_id")))
_GET_FOR_UPDATE = driver.Statement(_GET.statement.with_for_update())
# Just the head (see IncidentHead): who may change it is decided on this.
_GET_HEAD = driver.Statement(sa.select(incidents.c.id, incidents.c.version, incidents.c.channel_id,
                                       incidents.c.team_id, incidents.c.public, incidents.c.commander_user_id)
                             .where(incidents.c.id == sa.bindparam("incident_id")))
_GET_BY_CHANNEL = driver.Statement(sa.select(incidents).where(incidents.c.channel_id == sa.bindparam("channel_id")))
_COLUMNS = [column.key for column in incidents.c]
_INSERT = driver.Statement(sa.insert(incidents), _COLUMNS)
# The row's new values, where it still has the version the change was made from.
_SAVE = driver.Statement(sa.update(incidents).where(incidents.c.id == sa.bindparam("old_id"),
                                                    incidents.c.version == sa.bindparam("old_version")), _COLUMNS)
# The same without the stages and tasks, for a change that left them as they were read
# (a stage moved, a commander changed, an end or a restart): the document is neither
# serialized nor written again. On PostgreSQL a document of more than about 2 kB lives
# compressed out of line, and writing it anew cost as much as the rest of the change.
_SAVE_HEAD = driver.Statement(_SAVE.statement, [column for column in _COLUMNS if column != "checklists"])
# Both as the guard of an optimistic unit of work: the row they changed, if any.
_GUARDS = {_SAVE: driver.Statement(_SAVE.statement.returning(incidents.c.id), _SAVE.keys),
           _SAVE_HEAD: driver.Statement(_SAVE.statement.returning(incidents.c.id), _SAVE_HEAD.keys)}


def _row_values(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "name": incident.name, "description": incident.description,
        "is_active": incident.is_active, "commander_user_id": incident.commander_user_id,
        "team_id": incident.team_id, "channel_id": incident.channel_id, "post_id": incident.post_id,
        "public": incident.public, "create_at": incident.create_at, "end_at": incident.end_at,
        "active_stage": incident.active_stage, "checklists": checklists_to_json(incident.checklists),
        "version": incident.version, "playbook_id": incident.playbook_id,
    }


def _head(row: Any) -> IncidentHead:
    return IncidentHead(row.id, row.version, row.channel_id, row.team_id, row.public, row.commander_user_id)


def _from_row(row: Any) -> Incident:
    """The incident of a row."""
    return Incident(
        id=row.id, name=row.name, description=row.description, is_active=row.is_active,
        commander_user_id=row.commander_user_id, team_id=row.team_id, channel_id=row.channel_id,
        post_id=row.post_id, public=row.public, create_at=row.create_at, end_at=row.end_at,
        active_stage=row.active_stage, checklists=checklists_from_json(row.checklists),
        version=row.version, playbook_id=row.playbook_id,
    )


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlIncidentRepository:
    """Reads and writes incidents within the unit of work's transaction."""

    def __init__(self, connection: sa.Connection, *, lock_rows: bool,
                 write_at_commit: Callable[[driver.Write], None], writes: bool = True,
                 guard_at_commit: Callable[[driver.Write], None] | None = None):
        self.connection = connection
        self.lock_rows = lock_rows
        # A writing unit of work's statements run in its transaction, begun at the first.
        self.writes = writes
        self.write_at_commit = write_at_commit
        # Given in an optimistic unit of work: a read for a change takes no lock, and the
        # save becomes the commit's guard (see SqlUnitOfWork).
        self.guard_at_commit = guard_at_commit
        # Rows this transaction read FOR UPDATE: nobody else can change them before commit.
        self._locked: set[str] = set()
        # Rows read for a change without a lock, saved only at the version read.
        self._unlocked: set[str] = set()
        # Locked rows whose save waits for the commit. On PostgreSQL the waiting writes are
        # joined into one statement, where a second save of the row would see the row as
        # it was before the first and change nothing: one save per row and transaction.
        self._saving: set[str] = set()
        # The stages and tasks of each incident as this unit of work last read or wrote them.
        self._documents: dict[str, Any] = {}

    def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None:
        """The incident, locked against other writers until commit when for_update.

        In an optimistic unit of work, for_update reads it without a transaction or a
        lock; its save is then made at commit only if it is still at this version.
        """
        optimistic = for_update and self.guard_at_commit is not None
        query = _GET_FOR_UPDATE if for_update and self.lock_rows and not optimistic else _GET
        row = driver.fetch_one(self.connection, query, {"incident_id": incident_id},
                               begin=self.writes and not optimistic)
        if row is None:
            return None
        if optimistic:
            self._unlocked.add(incident_id)
        elif query is _GET_FOR_UPDATE:
            self._locked.add(incident_id)
        self._documents[incident_id] = row.checklists
        return _from_row(row)

    def adopt(self, incident: Incident) -> Incident:
        """In an optimistic unit of work: a copy of incident, read earlier in the same request,
        to change and save as if read here (saved only if still at its version).

        Spares the read of a change whose caller has just read the incident (a slash
        command reads it to answer): on PostgreSQL the change is then one statement.
        """
        if self.guard_at_commit is None:
            raise RuntimeError("only an optimistic unit of work may adopt an incident read elsewhere")
        document = checklists_to_json(incident.checklists)
        self._documents[incident.id] = document
        self._unlocked.add(incident.id)
        return dataclasses.replace(incident, checklists=checklists_from_json(document))

    def get_head(self, incident_id: str) -> IncidentHead | None:
        """The incident's head, without its stages and tasks (None: no such incident)."""
        row = driver.fetch_one(self.connection, _GET_HEAD, {"incident_id": incident_id}, begin=self.writes)
        return _head(row) if row else None

    def get_by_channel(self, channel_id: str) -> Incident | None:
        """The incident whose channel this is."""
        row = driver.fetch_one(self.connection, _GET_BY_CHANNEL, {"channel_id": channel_id}, begin=self.writes)
        return _from_row(row) if row else None

    def add(self, incident: Incident) -> None:
        """Insert a new incident (its id is new: nothing to check before the commit)."""
        self.write_at_commit(_INSERT.write(self.connection.dialect, _row_values(incident)))

    def save(self, incident: Incident) -> None:
        """Write a changed incident; raise ConcurrentUpdate if its version moved on."""
        values = _row_values(incident)
        values.update(version=incident.version + 1, old_id=incident.id, old_version=incident.version)
        unchanged = self._documents.get(incident.id) == values["checklists"]
        statement = _SAVE_HEAD if unchanged else _SAVE
        if incident.id in self._unlocked or incident.id in self._locked:
            if incident.id in self._saving:
                raise RuntimeError(f"incident {incident.id} is already saved in this transaction: "
                                   "make every change first, then save it once")
            self._saving.add(incident.id)
            if incident.id in self._unlocked:
                # Read without a lock: the commit writes anything only if the row is still
                # at the version read (else it raises ConcurrentUpdate).
                # (PostgreSQL joins the guard into one statement, which needs its RETURNING;
                # SQLite runs it alone and counts the rows it changed.)
                assert self.guard_at_commit is not None
                guard = _GUARDS[statement] if self.connection.dialect.name == "postgresql" else statement
                self.guard_at_commit(guard.write(self.connection.dialect, values))
            else:
                # Read FOR UPDATE in this transaction: the version cannot have moved, and
                # the write can wait for the commit.
                self.write_at_commit(statement.write(self.connection.dialect, values))
        elif driver.execute(self.connection, statement, values, begin=True).rowcount != 1:
            raise ConcurrentUpdate()
        self._documents[incident.id] = values["checklists"]
        incident.version += 1

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
        if query.search_term:
            pattern = f"%{_escape_like(query.search_term.lower())}%"
            conditions.append(sa.func.lower(incidents.c.name).like(pattern, escape="\\"))
        if query.visible_channel_ids is not None:
            visible = incidents.c.channel_id.in_(sorted(query.visible_channel_ids))
            if query.include_public:
                visible = sa.or_(visible, incidents.c.public.is_(True))
            conditions.append(visible)
        where = sa.and_(sa.true(), *conditions)
        column = SORT_COLUMNS[query.sort]
        order = [column.desc(), incidents.c.id.desc()] if query.direction == "desc" else [column.asc(), incidents.c.id.asc()]
        count = sa.select(sa.func.count()).select_from(incidents).where(where)
        page = (sa.select(incidents).where(where).order_by(*order)
                .limit(query.per_page).offset(query.page * query.per_page))
        return count, page
