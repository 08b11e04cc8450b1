"""The playbook repository: playbooks as rows, stages and tasks as JSON, members as rows."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.model import Playbook, PlaybookFilter
from plugin.model import checklists_from_json, checklists_to_json
from plugin.store.tables import playbook_members, playbooks

SORT_COLUMNS = {"title": playbooks.c.title, "stages": playbooks.c.num_stages, "tasks": playbooks.c.num_tasks}


def _row_values(playbook: Playbook) -> dict[str, Any]:
    return {
        "id": playbook.id, "title": playbook.title, "description": playbook.description,
        "team_id": playbook.team_id, "create_public_incident": playbook.create_public_incident,
        "checklists": checklists_to_json(playbook.checklists), "num_stages": playbook.num_stages,
        "num_tasks": playbook.num_tasks, "create_at": playbook.create_at, "update_at": playbook.update_at,
        "broadcast_channel_ids": playbook.broadcast_channel_ids, "reminder_seconds": playbook.reminder_seconds,
        "default_severity": playbook.default_severity, "retrospective_template": playbook.retrospective_template,
        "retrospective_before_end": playbook.retrospective_before_end,
    }


class SqlPlaybookRepository:
    """Playbooks of one unit of work: read at once, written at its commit."""

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection
        self._writes: list[Callable[[sa.Connection], None]] = []

    @property
    def connection(self) -> sa.Connection:
        return self._connection()

    def flush(self, connection: sa.Connection) -> None:
        """Make the additions, changes and deletions (in the commit's transaction)."""
        for write in self._writes:
            write(connection)
        self._writes.clear()

    def _members(self, ids: list[str]) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {playbook_id: [] for playbook_id in ids}
        if ids:
            rows = self.connection.execute(
                sa.select(playbook_members.c.playbook_id, playbook_members.c.user_id)
                .where(playbook_members.c.playbook_id.in_(ids))
                .order_by(playbook_members.c.playbook_id, playbook_members.c.user_id))
            for playbook_id, user_id in rows:
                members[playbook_id].append(user_id)
        return members

    def _from_rows(self, rows: list[sa.Row[Any]]) -> list[Playbook]:
        members = self._members([row.id for row in rows])
        return [Playbook(id=row.id, title=row.title, team_id=row.team_id, description=row.description,
                         create_public_incident=row.create_public_incident,
                         checklists=checklists_from_json(row.checklists), member_ids=members[row.id],
                         create_at=row.create_at, update_at=row.update_at,
                         broadcast_channel_ids=list(row.broadcast_channel_ids),
                         reminder_seconds=row.reminder_seconds, default_severity=row.default_severity,
                         retrospective_template=row.retrospective_template,
                         retrospective_before_end=row.retrospective_before_end)
                for row in rows]

    def get(self, playbook_id: str) -> Playbook | None:
        """The playbook with its members, or None."""
        rows = self.connection.execute(sa.select(playbooks).where(playbooks.c.id == playbook_id)).all()
        found = self._from_rows(list(rows))
        return found[0] if found else None

    @staticmethod
    def _write_members(connection: sa.Connection, playbook: Playbook) -> None:
        connection.execute(sa.delete(playbook_members).where(playbook_members.c.playbook_id == playbook.id))
        if playbook.member_ids:
            connection.execute(sa.insert(playbook_members), [
                {"playbook_id": playbook.id, "user_id": user_id} for user_id in playbook.member_ids])

    def add(self, playbook: Playbook) -> None:
        """Insert a new playbook and its members at commit."""
        def write(connection: sa.Connection) -> None:
            connection.execute(sa.insert(playbooks).values(**_row_values(playbook)))
            self._write_members(connection, playbook)
        self._writes.append(write)

    def save(self, playbook: Playbook) -> None:
        """Write a changed playbook and replace its members at commit."""
        def write(connection: sa.Connection) -> None:
            connection.execute(sa.update(playbooks).where(playbooks.c.id == playbook.id)
                               .values(**_row_values(playbook)))
            self._write_members(connection, playbook)
        self._writes.append(write)

    def delete(self, playbook_id: str) -> None:
        """Remove a playbook and its members at commit (incidents started from it keep their copies)."""
        def write(connection: sa.Connection) -> None:
            # Explicit, because SQLite enforces no foreign keys unless asked to.
            connection.execute(sa.delete(playbook_members).where(playbook_members.c.playbook_id == playbook_id))
            connection.execute(sa.delete(playbooks).where(playbooks.c.id == playbook_id))
        self._writes.append(write)

    def list(self, query: PlaybookFilter) -> tuple[int, list[Playbook]]:
        """One page of a team's playbooks (only those member_id belongs to, when given) and the total."""
        where: Any = playbooks.c.team_id == query.team_id
        if query.member_id is not None:
            where = sa.and_(where, playbooks.c.id.in_(
                sa.select(playbook_members.c.playbook_id).where(playbook_members.c.user_id == query.member_id)))
        total = self.connection.execute(sa.select(sa.func.count()).select_from(playbooks).where(where)).scalar_one()
        column = SORT_COLUMNS[query.sort]
        order = [column.desc(), playbooks.c.id.desc()] if query.direction == "desc" else [column.asc(),
                                                                                          playbooks.c.id.asc()]
        rows = self.connection.execute(sa.select(playbooks).where(where).order_by(*order)
                                       .limit(query.per_page).offset(query.page * query.per_page)).all()
        return total, self._from_rows(list(rows))
