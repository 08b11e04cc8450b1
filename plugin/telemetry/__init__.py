"""Telemetry: the port the service records business events through.

The service calls the port inside the mutation's unit of work, so an
implementation can store the event in the same transaction (an outbox) and
nothing is recorded for a request that fails or changes nothing.

The package: ``catalogue`` (event names, actions, allowed keys and value kinds:
the allow-list and the source of ``docs/telemetry.md``), ``outbox`` (the table the
events wait in), ``recorder.OutboxTelemetry`` (this port over the outbox, with the
switches), ``dispatcher`` (the background sender using rudder-sdk-python) and
``docs`` (the collected-data page). Submodules are imported by the composition
root only, so the service depends on nothing but this port.
"""
from __future__ import annotations

from typing import Any, Protocol

from plugin.model import Incident


class Telemetry(Protocol):
    """Records one event per successful business mutation.

    ``uow`` is the open unit of work of the mutation; ``extra`` holds the
    action-specific properties (``Public``, ``NewState``, ``WasCommander``,
    ``WasAssignee``). Implementations must never raise into the caller for a
    property they refuse: they drop it and log the refusal.
    """

    def track_incident(self, uow: Any, action: str, incident: Incident, user_id: str, **extra: Any) -> None:
        """An incident was created, ended, restarted, or changed commander or stage."""

    def track_task(self, uow: Any, action: str, incident: Incident, user_id: str, **extra: Any) -> None:
        """A task of an incident was added, removed, renamed, moved, re-stated or re-assigned."""

    def track_playbook(self, uow: Any, action: str, playbook: Any, user_id: str) -> None:
        """A playbook was created, updated or deleted (ids and counts only)."""


class NoopTelemetry:
    """Records nothing: the default when telemetry is not configured."""

    def track_incident(self, uow: Any, action: str, incident: Incident, user_id: str, **extra: Any) -> None:
        return None

    def track_task(self, uow: Any, action: str, incident: Incident, user_id: str, **extra: Any) -> None:
        return None

    def track_playbook(self, uow: Any, action: str, playbook: Any, user_id: str) -> None:
        return None
