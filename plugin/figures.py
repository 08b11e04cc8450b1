"""Figures of incidents (standard library only): time per stage, percentiles, weeks, what statistics cover.

``stage_durations`` is the one computation of time per stage: the Markdown report
shows its result for one incident and the statistics take medians of it over many.

An incident starts in its first stage at ``create_at``; each ``stage_changed``
timeline entry moves it (``details.to_stage``) at its ``event_at``; its last stage
runs until it ends (or until now while it is active). Time while an incident is
ended (between an ``incident_ended`` and an ``incident_restarted`` entry) counts
for no stage. Entries a person deleted from the timeline count too: deleting hides
an entry from the story people read, but the change it records still happened, and
the time spent in each stage is a measurement of what happened.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

WEEK_MS = 7 * 24 * 3600 * 1000
# 1970-01-05, the first Monday since the epoch: weeks start on Mondays at 00:00 UTC.
FIRST_MONDAY_MS = 4 * 24 * 3600 * 1000

# The timeline entries that move time from one stage to another (or stop and restart it).
HISTORY_TYPES = ("stage_changed", "incident_ended", "incident_restarted")


@dataclass(frozen=True)
class Mark:
    """One moment of an incident's history that matters to its stage times (a timeline entry's gist)."""

    event_type: str
    event_at: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Life:
    """What the stage times of one incident are computed from: its row's times and its history, in order."""

    create_at: int
    end_at: int
    is_active: bool
    stage_count: int
    marks: Sequence[Mark] = ()


def stage_durations(life: Life, now: int) -> list[int | None]:
    """Milliseconds spent in each stage, by position; None for a stage the incident never entered.

    ``life.marks`` must be ordered as the timeline orders them (event_at, then the
    order they were written); marks of other types are ignored.
    """
    if life.stage_count <= 0:
        return []
    spent: list[int | None] = [None] * life.stage_count
    stage, running, since = 0, True, life.create_at
    spent[0] = 0

    def close(until: int) -> None:
        if running and 0 <= stage < life.stage_count:
            spent[stage] = (spent[stage] or 0) + max(0, until - since)

    for mark in life.marks:
        if mark.event_type == "stage_changed":
            to_stage = mark.details.get("to_stage")
            if not isinstance(to_stage, int) or isinstance(to_stage, bool):
                continue
            close(mark.event_at)
            stage, since = to_stage, mark.event_at
            if 0 <= stage < life.stage_count and spent[stage] is None:
                spent[stage] = 0
        elif mark.event_type == "incident_ended" and running:
            close(mark.event_at)
            running = False
        elif mark.event_type == "incident_restarted" and not running:
            running, since = True, mark.event_at
    if running:
        close(now if life.is_active else max(life.end_at, since))
    return spent


def percentile(values: Sequence[int], percent: float) -> int | None:
    """The nearest-rank percentile (a value that occurred; the lower middle one for an even median); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def describe_duration(milliseconds: int) -> str:
    """A duration as people read it: 45s, 12m 5s, 3h 4m, 2d 5h."""
    seconds = max(0, milliseconds // 1000)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def week_start(milliseconds: int) -> int:
    """The Monday 00:00 UTC at or before a moment."""
    return milliseconds - (milliseconds - FIRST_MONDAY_MS) % WEEK_MS


@dataclass(frozen=True)
class StatsScope:
    """Which incidents statistics are about: a team's, in a window of time (ms, both ends included), that the
    caller may see (``visible_channel_ids`` None: all of them; else those channels, and public incidents
    when ``include_public``)."""

    team_id: str
    from_ms: int
    to_ms: int
    visible_channel_ids: frozenset[str] | None = None
    include_public: bool = False


@dataclass(frozen=True)
class EndedLife:
    """An incident that ended in a window: its stage titles and what its stage times are computed from."""

    incident_id: str
    stage_titles: tuple[str, ...]
    life: Life
