"""Reading incidents back: one incident's Markdown report, and a team's statistics.

Both are reads: they change nothing and record no telemetry. The report is shown to
whoever may view the incident (anyone else gets the refusal of fetching it); the
statistics count the incidents the caller could list (system admins: all of the
team's; others: those in channels they belong to, and public ones of a team they are in).

Time per stage comes from ``plugin.figures.stage_durations`` for both, computed
from every stage change, including timeline entries a person deleted: a deleted
entry is hidden from the timeline people read, but the change it records happened.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

from plugin.chat import ChatHost
from plugin.figures import (
    HISTORY_TYPES,
    WEEK_MS,
    EndedLife,
    Life,
    Mark,
    StatsScope,
    percentile,
    stage_durations,
    week_start,
)
from plugin.errors import BadInput, NotFound, PermissionDenied
from plugin.markdown import Line, Report, StageTime, TaskLine, render
from plugin.markdown import Retrospective as RetrospectiveText
from plugin.model import Incident, ItemState, Retrospective, StatusUpdate, TimelineEntry
from plugin.service import (
    IncidentRepository,
    IncidentService,
    RetrospectiveRepository,
    StatusUpdateRepository,
    TimelineRepository,
)

DAY_MS = 24 * 3600 * 1000
DEFAULT_WINDOW_DAYS = 90
MAX_WINDOW_DAYS = 3660
# A report lists at most this many status updates and timeline entries (the newest of each), more than any
# incident is expected to have: so its size stays bounded, and it says how much it left out.
REPORT_STATUS_UPDATES = 1000
REPORT_TIMELINE_ENTRIES = 2000


class ReportRepository(Protocol):
    """The reads of reports and statistics (plugin.store.reports)."""

    def history(self, incident_id: str, event_types: tuple[str, ...]) -> list[TimelineEntry]: ...
    def counts(self, scope: StatsScope) -> tuple[int, int, int]: ...
    def weeks(self, scope: StatsScope, first_week: int) -> dict[int, tuple[int, int]]: ...
    def severities(self, scope: StatsScope) -> dict[str, int]: ...
    def ended_lives(self, scope: StatsScope) -> list[EndedLife]: ...


class ReadingUnitOfWork(AbstractContextManager, Protocol):
    """What these reads need of a unit of work."""

    incidents: IncidentRepository
    timeline: TimelineRepository
    status_updates: StatusUpdateRepository
    retrospectives: RetrospectiveRepository
    reports: ReportRepository


@dataclass(frozen=True)
class StatsQuery:
    """What the caller asked for: a team, and a window in ms (None: the default)."""

    team_id: str
    from_ms: int | None = None
    to_ms: int | None = None


@dataclass(frozen=True)
class StageStats:
    """One stage (by title) across the incidents that ended in the window: the median time of those that entered it."""

    name: str
    p50_ms: int | None
    count: int


@dataclass(frozen=True)
class SeverityCount:
    severity: str
    count: int


@dataclass(frozen=True)
class WeekStats:
    week_start: int
    started: int
    ended: int


@dataclass(frozen=True)
class Stats:
    """A team's figures for a window; see docs/reports.md for what each counts."""

    team_id: str
    from_ms: int
    to_ms: int
    started: int
    ended: int
    active: int
    time_to_end_p50: int | None
    time_to_end_p90: int | None
    stages: list[StageStats] = field(default_factory=list)
    severity: list[SeverityCount] = field(default_factory=list)
    weeks: list[WeekStats] = field(default_factory=list)

    @property
    def time_to_end(self) -> dict[str, int | None]:
        """The time-to-end percentiles by name."""
        return {"p50": self.time_to_end_p50, "p90": self.time_to_end_p90}


def check_window(from_ms: int | None, to_ms: int | None, now: int) -> tuple[int, int]:
    """The window asked for, with its defaults (to: now; from: DEFAULT_WINDOW_DAYS before to); BadInput if wrong."""
    to = now if to_ms is None else to_ms
    start = to - DEFAULT_WINDOW_DAYS * DAY_MS if from_ms is None else from_ms
    start = max(0, start)
    if start > to:
        raise BadInput(f"from ({start}) is after to ({to}): give from <= to, both in milliseconds since 1970"
                       f"{' (to defaults to now)' if to_ms is None else ''}.", {"from": start, "to": to})
    if to - start > MAX_WINDOW_DAYS * DAY_MS:
        raise BadInput(f"The window from {start} to {to} is longer than {MAX_WINDOW_DAYS} days: ask for a "
                       "shorter one.", {"from": start, "to": to, "max_days": MAX_WINDOW_DAYS})
    return start, to


class ReportService:
    """The incident report and the team statistics, over the incident service's permission rules."""

    def __init__(self, incidents: IncidentService, uow_factory: Callable[..., ReadingUnitOfWork], host: ChatHost,
                 clock: Callable[[], int] | None = None):
        self.incidents = incidents
        self.uow_factory = uow_factory
        self.host = host
        self._clock = clock

    def clock(self) -> int:
        """Now: this service's clock when given one, else the incident service's (so both tell the same time)."""
        return (self._clock or self.incidents.clock)()

    # ----- the report ---------------------------------------------------------------------
    def report(self, user_id: str, incident_id: str) -> str:
        """The incident's Markdown report; NotFound when it does not exist, PermissionDenied when the user may not
        view it (the answers of fetching the incident itself)."""
        with self.uow_factory(write=False) as uow:
            incident = uow.incidents.get(incident_id)
            if incident is None:
                raise NotFound(f"Incident {incident_id} does not exist.")
            if not self.incidents.can_view(user_id, incident):
                raise PermissionDenied("You do not have permission to view this incident.")
            # One more than shown tells whether earlier entries were left out.
            shown = uow.timeline.list(incident.id, last=REPORT_TIMELINE_ENTRIES + 1)
            happened = uow.reports.history(incident.id, (*HISTORY_TYPES, "task_state_changed"))
            update_count, updates = uow.status_updates.list(incident.id, 0, REPORT_STATUS_UPDATES)
            retrospective = uow.retrospectives.get(incident.id)
        # The retrospective is read by those who may change the incident (as GET .../retrospective):
        # a team member viewing a public incident gets the rest of the report without it.
        readable = self.incidents.can_edit(user_id, incident)
        report = self._report(incident, shown[-REPORT_TIMELINE_ENTRIES:], happened, updates, retrospective, readable)
        return render(replace(report, timeline_left_out=len(shown) > REPORT_TIMELINE_ENTRIES,
                              status_updates_left_out=max(0, update_count - len(updates))))

    def _report(self, incident: Incident, shown: Sequence[TimelineEntry], happened: Sequence[TimelineEntry],
                updates: Sequence[StatusUpdate], retrospective: Retrospective | None, readable: bool) -> Report:
        now = self.clock()
        life = Life(incident.create_at, incident.end_at, incident.is_active, len(incident.checklists),
                    tuple(Mark(e.event_type, e.event_at, e.details) for e in happened if e.event_type in HISTORY_TYPES))
        spent = stage_durations(life, now)
        stages = [StageTime(stage.title, spent[index], index == incident.active_stage)
                  for index, stage in enumerate(incident.checklists)]
        closers: dict[str, str] = {}
        for entry in happened:
            if entry.event_type == "task_state_changed" and entry.details.get("state") == ItemState.CLOSED.value:
                closers[str(entry.details.get("item_id", ""))] = entry.creator_user_id
        names: dict[str, str] = {}

        def name(user_id: str) -> str:
            if user_id and user_id not in names:
                names[user_id] = self.host.mention(user_id)
            return names.get(user_id, "")

        tasks = [TaskLine(stage.title, item.title, item.state.value, name(item.assignee_id),
                          name(closers.get(item.id, "")) if item.state is ItemState.CLOSED else "")
                 for stage in incident.checklists for item in stage.items]
        end = now if incident.is_active else incident.end_at
        return Report(
            name=incident.name, description=incident.description, is_active=incident.is_active,
            severity=incident.severity, commander=name(incident.commander_user_id),
            create_at=incident.create_at, end_at=incident.end_at, duration_ms=max(0, end - incident.create_at),
            stages=stages, timeline=[Line(entry.event_at, entry.summary) for entry in shown],
            status_updates=[Line(update.create_at, update.message, name(update.user_id))
                            for update in sorted(updates, key=lambda u: (u.create_at, u.id))],
            tasks=tasks, retrospective=self._retrospective_text(incident, retrospective, readable, name))

    @staticmethod
    def _retrospective_text(incident: Incident, retrospective: Retrospective | None, readable: bool,
                            name: Callable[[str], str]) -> RetrospectiveText:
        """The retrospective for the report: hidden from those who may not read it; empty until someone wrote it
        (a playbook's template alone is not a retrospective)."""
        if not readable:
            return RetrospectiveText(hidden=True)
        if retrospective is None or not retrospective.update_at:
            return RetrospectiveText()
        return RetrospectiveText(retrospective.text, name(retrospective.updated_by), retrospective.update_at,
                                 incident.retrospective_published_at)

    # ----- statistics ---------------------------------------------------------------------
    def stats(self, user_id: str, query: StatsQuery) -> Stats:
        """The team's figures for the window, over the incidents the user could list."""
        start, to = check_window(query.from_ms, query.to_ms, self.clock())
        if self.host.is_system_admin(user_id):
            scope = StatsScope(query.team_id, start, to)
        else:
            scope = StatsScope(query.team_id, start, to, self.host.user_channel_ids(user_id, query.team_id),
                               self.host.is_team_member(query.team_id, user_id))
        first = week_start(start)
        with self.uow_factory(write=False) as uow:
            started, ended, active = uow.reports.counts(scope)
            weeks = uow.reports.weeks(scope, first)
            lives = uow.reports.ended_lives(scope)
            severities = self._severity_counts(uow, scope)
        to_end = [life.life.end_at - life.life.create_at for life in lives]
        return Stats(
            team_id=query.team_id, from_ms=start, to_ms=to, started=started, ended=ended, active=active,
            time_to_end_p50=percentile(to_end, 50), time_to_end_p90=percentile(to_end, 90),
            stages=self._stage_stats(lives), severity=severities,
            weeks=[WeekStats(first + n * WEEK_MS, *weeks.get(n, (0, 0)))
                   for n in range((to - first) // WEEK_MS + 1)])

    def _severity_counts(self, uow: ReadingUnitOfWork, scope: StatsScope) -> list[SeverityCount]:
        """Incidents started in the window by severity: every level in force in order (zeros included), then
        levels since removed that some incident holds (by name), then none ("") when some incident has none."""
        counts = uow.reports.severities(scope)
        levels = self.incidents.severity_levels().names
        removed = sorted(level for level in counts if level and level not in levels)
        return ([SeverityCount(level, counts.get(level, 0)) for level in levels]
                + [SeverityCount(level, counts[level]) for level in removed]
                + ([SeverityCount("", counts[""])] if counts.get("") else []))

    def _stage_stats(self, lives: Sequence[EndedLife]) -> list[StageStats]:
        """Per stage title (ordered by the earliest position it holds, then by title): how many entered it, their median time."""
        times: dict[str, list[int]] = {}
        position_of: dict[str, int] = {}
        for ended in lives:
            # Ended incidents only: the clock never matters (their last stage runs until end_at).
            for position, (title, spent) in enumerate(zip(ended.stage_titles, stage_durations(ended.life, 0))):
                position_of[title] = min(position, position_of.get(title, position))
                if spent is not None:
                    times.setdefault(title, []).append(spent)
        return [StageStats(title, percentile(times.get(title, []), 50), len(times.get(title, [])))
                for title in sorted(position_of, key=lambda t: (position_of[t], t))]
