"""Domain events: what a use case did, recorded in its unit of work and acted on at commit.

The unit of work turns the telemetry events into outbox rows in the commit's own
transaction, writes the posts of a chat host that keeps them in our database there
too, and hands the other posts back to be sent after the commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from plugin.model import Incident, Playbook


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


TelemetryEvent = IncidentEvent | TaskEvent | PlaybookEvent
Event = TelemetryEvent | Announcement
