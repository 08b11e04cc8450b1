"""Domain events: what a use case did, recorded in its unit of work and acted on at commit.

The unit of work turns the telemetry events into outbox rows in the commit's own
transaction, writes the posts of a chat host that keeps them in our database there
too, and hands the other posts back to be sent after the commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugin.model import Incident, Playbook, StatusUpdate


@dataclass(frozen=True)
class IncidentEvent:
    """The incident was created, ended, restarted, or changed commander, stage or members."""

    action: str
    incident: Incident
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)  # the action's own catalogued values


@dataclass(frozen=True)
class TaskEvent:
    """A task of the incident was added, removed, renamed, moved, re-stated or re-assigned."""

    action: str
    incident: Incident
    user_id: str
    properties: dict[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class ReminderDue:
    """The incident's next reminder is due at ``due_at`` (ms), or is not due at all (None).

    Set by a status update, a snooze, an end (None) and a restart; the unit of work
    writes it to the incident's reminder row, which the servers claim when it comes due.
    """

    incident_id: str
    due_at: int | None


TelemetryEvent = IncidentEvent | TaskEvent | PlaybookEvent
Event = TelemetryEvent | Announcement | StatusUpdated | ReminderDue
