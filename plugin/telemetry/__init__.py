"""Telemetry: the port that turns the service's domain events into outbox rows.

The unit of work asks the port, at commit, for the row of each telemetry event it
collected and stores the rows in the commit's own transaction, so nothing is
recorded for a request that fails or changes nothing.

The package: ``catalogue`` (event names, actions, allowed keys and value kinds:
the allow-list and the source of ``docs/telemetry.md``), ``outbox`` (the table the
events wait in), ``recorder.OutboxTelemetry`` (this port, with the switches),
``dispatcher`` (the background sender) and ``docs`` (the collected-data page).
Submodules are imported by the composition root only.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from plugin.events import TelemetryEvent


@dataclass(frozen=True)
class OutboxRow:
    """An event as the outbox stores it: catalogue name, checked properties, and the bound on waiting events."""

    event: str
    properties: dict[str, Any]
    recorded_at: int
    max_events: int
    message_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class Telemetry(Protocol):
    """Turns a domain event into the outbox row that records it.

    Error contract: never raises for an event it refuses (a property outside the
    catalogue): it logs the refusal and answers None, as it does while telemetry is off.
    """

    def row(self, event: TelemetryEvent) -> OutboxRow | None:
        """The outbox row for event, or None when nothing is to be recorded."""


class NoopTelemetry:
    """Records nothing: the default when telemetry is not configured."""

    def row(self, event: TelemetryEvent) -> OutboxRow | None:
        return None
