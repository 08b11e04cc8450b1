"""Domain events: what a use case did, recorded in its unit of work and acted on at commit.

The unit of work turns the telemetry events into outbox rows and timeline entries
(``plugin.timeline``) in the commit's own transaction, writes the posts of a chat
host that keeps them in our database there too, and hands the other posts back to
be sent after the commit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plugin.model import Incident, Playbook, Retrospective, StatusUpdate, TimelineEntry


@dataclass(frozen=True)
class Before:
    """The commander, active stage and severity an incident had before a change: what the change replaced."""

    commander_user_id: str
    active_stage: int
    active_stage_title: str
    severity: str = ""

    @classmethod
    def of(cls, incident: Incident) -> Before:
        """The incident's commander, stage and severity as they are now."""
        return cls(incident.commander_user_id, incident.active_stage, incident.active_stage_title, incident.severity)


@dataclass(frozen=True)
class IncidentEvent:
    """The incident was created, ended, restarted, or changed commander, stage, members or timeline.

    ``properties`` are the action's own catalogued telemetry values. The rest is
    for the timeline: ``mentions`` names the users involved as the chat host named
    them at the time (id -> "@name"), ``before`` is what a commander or stage change
    replaced, ``entry`` the timeline entry a person added or removed, and ``members``
    the people a change of members brought in.
    """

    action: str
    incident: Incident
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    mentions: Mapping[str, str] = field(default_factory=dict)
    before: Before | None = None
    entry: TimelineEntry | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskEvent:
    """A task of the incident was added, removed, renamed, moved, re-stated or re-assigned.

    ``task`` is the (stage, task) position the change left the task at (-1, -1 for
    one removed); ``mentions`` as for IncidentEvent.
    """

    action: str
    incident: Incident
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)
    mentions: Mapping[str, str] = field(default_factory=dict)
    task: tuple[int, int] = (-1, -1)


@dataclass(frozen=True)
class PlaybookEvent:
    """A playbook was created, updated or deleted."""

    action: str
    playbook: Playbook
    user_id: str


@dataclass(frozen=True)
class Announcement:
    """A bot post telling the incident channel what happened."""

    channel_id: str
    message: str


@dataclass(frozen=True)
class StatusUpdated:
    """Someone posted a status update: the unit of work keeps it with the incident's updates."""

    update: StatusUpdate
    incident: Incident
    author: str = ""  # the author as the chat host named them then, for the timeline


@dataclass(frozen=True)
class ReminderDue:
    """The incident's next reminder is due at ``due_at`` (ms), or is not due at all (None).

    Set by a status update, a snooze, an end (None) and a restart; the unit of work
    writes it to the incident's reminder row, which the servers claim when it comes due.
    """

    incident_id: str
    due_at: int | None


@dataclass(frozen=True)
class WebhookEvent:
    """A webhook was created or deleted, or a day's deliveries were counted: telemetry only (ids and counts)."""

    action: str
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrospectiveSaved:
    """An incident's retrospective was written, or given its playbook's template at the start: the unit of work keeps it."""

    retrospective: Retrospective


TelemetryEvent = IncidentEvent | TaskEvent | PlaybookEvent | WebhookEvent
Event = TelemetryEvent | Announcement | StatusUpdated | ReminderDue | RetrospectiveSaved
