"""The reads behind the incident report and the statistics: counts and weekly buckets in SQL, histories in bulk."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugin.figures import HISTORY_TYPES, WEEK_MS, EndedLife, Life, Mark, StatsScope
from plugin.model import TimelineEntry
from plugin.store.tables import incidents, timeline_events

I = incidents.c
T = timeline_events.c


def _visible(scope: StatsScope) -> list[Any]:
    conditions: list[Any] = [I.team_id == scope.team_id]
    if scope.visible_channel_ids is not None:
        visible = I.channel_id.in_(sorted(scope.visible_channel_ids))
        if scope.include_public:
            visible = sa.or_(visible, I.public.is_(True))
        conditions.append(visible)
    return conditions


def _started(scope: StatsScope) -> list[Any]:
    return [*_visible(scope), I.create_at >= scope.from_ms, I.create_at <= scope.to_ms]


def _ended(scope: StatsScope) -> list[Any]:
    return [*_visible(scope), I.is_active.is_(False), I.end_at >= scope.from_ms, I.end_at <= scope.to_ms]


def _active(scope: StatsScope) -> list[Any]:
    return [*_visible(scope), I.is_active.is_(True), I.create_at <= scope.to_ms]


class SqlReportRepository:
    """Read-only: each method is a statement or two, whose cost follows the team's incidents in the window."""

    def __init__(self, connection: Callable[[], sa.Connection]):
        self._connection = connection

    def history(self, incident_id: str, event_types: tuple[str, ...]) -> list[TimelineEntry]:
        """The incident's entries of these types, deleted ones too (what happened, not what is shown), in order."""
        rows = self._connection().execute(
            sa.select(timeline_events).where(T.incident_id == incident_id, T.event_type.in_(event_types))
            .order_by(T.event_at, T.seq)).all()
        return [TimelineEntry(**{key: value for key, value in row._mapping.items() if key != "seq"}) for row in rows]

    @staticmethod
    def count_statement(scope: StatsScope) -> sa.Select[Any]:
        """Started, ended and active in one statement of three counts, each on an index led by team_id."""
        def count(conditions: list[Any]) -> Any:
            return sa.select(sa.func.count()).select_from(incidents).where(*conditions).scalar_subquery()
        return sa.select(count(_started(scope)).label("started"), count(_ended(scope)).label("ended"),
                         count(_active(scope)).label("active"))

    def counts(self, scope: StatsScope) -> tuple[int, int, int]:
        """How many incidents started in the window, ended in it, and are active now having started by its end."""
        row = self._connection().execute(self.count_statement(scope)).one()
        return int(row.started), int(row.ended), int(row.active)

    @staticmethod
    def week_statement(scope: StatsScope, first_week: int) -> sa.Select[Any]:
        """Incidents started and ended per week of the window, numbered from ``first_week`` (a Monday, ms)."""
        started = sa.select(sa.literal(0).label("kind"),
                            ((I.create_at - first_week) // WEEK_MS).label("week")).where(*_started(scope))
        ended = sa.select(sa.literal(1).label("kind"),
                          ((I.end_at - first_week) // WEEK_MS).label("week")).where(*_ended(scope))
        both = sa.union_all(started, ended).subquery()
        return (sa.select(both.c.kind, both.c.week, sa.func.count().label("n"))
                .group_by(both.c.kind, both.c.week))

    def weeks(self, scope: StatsScope, first_week: int) -> dict[int, tuple[int, int]]:
        """{week number: (started, ended)} for the weeks that had any, counted in SQL."""
        found: dict[int, list[int]] = {}
        for row in self._connection().execute(self.week_statement(scope, first_week)):
            found.setdefault(int(row.week), [0, 0])[int(row.kind)] += int(row.n)
        return {week: (counts[0], counts[1]) for week, counts in found.items()}

    def severities(self, scope: StatsScope) -> dict[str, int]:
        """{severity: how many} of the incidents started in the window ("" for none), counted in SQL."""
        rows = self._connection().execute(sa.select(I.severity, sa.func.count().label("n"))
                                          .where(*_started(scope)).group_by(I.severity))
        return {row.severity: int(row.n) for row in rows}

    def ended_lives(self, scope: StatsScope) -> list[EndedLife]:
        """The incidents that ended in the window, with their stage histories (deleted entries too): two statements."""
        connection = self._connection()
        rows = connection.execute(sa.select(I.id, I.create_at, I.end_at, I.is_active, I.checklists)
                                  .where(*_ended(scope))).all()
        if not rows:
            return []
        ids = sa.select(I.id).where(*_ended(scope)).scalar_subquery()
        marks: dict[str, list[Mark]] = {}
        for entry in connection.execute(sa.select(T.incident_id, T.event_type, T.event_at, T.details)
                                        .where(T.incident_id.in_(ids), T.event_type.in_(HISTORY_TYPES))
                                        .order_by(T.incident_id, T.event_at, T.seq)):
            marks.setdefault(entry.incident_id, []).append(Mark(entry.event_type, entry.event_at, entry.details or {}))
        lives = []
        for row in rows:
            titles = tuple(str(stage.get("title", "")) for stage in row.checklists or [])
            lives.append(EndedLife(row.id, titles, Life(row.create_at, row.end_at, row.is_active, len(titles),
                                                        tuple(marks.get(row.id, ())))))
        return lives
