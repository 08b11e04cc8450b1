"""The Telemetry port over the outbox: record in the mutation's transaction, send in the background.

Switches (all must hold, read live at every event): a write key and a data plane
URL are configured, the chat server's diagnostics are on, and ``EnableTelemetry``
is on. While any is off nothing is recorded, and events not yet sent are deleted.

The settings a process holds are those of the newest version when its request
began; the database decides the rest. It holds the telemetry switch, set in the
transaction of the settings change that flips it (which also deletes the waiting
events): the statement that stores an event stores it only while that switch is on,
tagged with the switch's epoch, and a claim takes only events of the current epoch
while it is on. So once a change that switches telemetry off has returned, no event
is stored and no waiting event is sent, in any process of any server on the
database, whether or not they handle requests.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import plugin
from plugin.chat import ChatHost
from plugin.events import IncidentEvent, PlaybookEvent, TaskEvent, TelemetryEvent, WebhookEvent
from plugin.model import Incident, Playbook, now_ms
from plugin.settings import DIAGNOSTICS_OFF, LiveSettings, Settings
from plugin.store import Database
from plugin.telemetry.catalogue import Refused, allowed_properties
from plugin.telemetry.dispatcher import Destination, Dispatcher
from plugin.telemetry import OutboxRow
from plugin.telemetry.outbox import REJECTED, Outbox

log = logging.getLogger(__name__)
# How long switching telemetry off waits for a post of this process that passed its check just before.
POST_END_WAIT_SECONDS = 1.0

# The catalogue's name of each kind of event.
EVENT_NAMES: dict[type, str] = {IncidentEvent: "incident", TaskEvent: "tasks", PlaybookEvent: "playbook",
                                WebhookEvent: "webhook"}


@dataclass(frozen=True)
class Switches:
    """Whether telemetry is on and, when it is not, every reason why."""

    reasons: tuple[str, ...] = ()
    diagnostic_id: str = ""
    server_version: str = ""
    destination: Destination | None = field(default=None, compare=False)

    @property
    def enabled(self) -> bool:
        """True when every switch is on."""
        return not self.reasons


def incident_metadata(incident: Incident, user_id: str) -> dict[str, Any]:
    """The catalogued metadata of an incident (ids, counts, states: never its texts)."""
    return {
        "incidentID": incident.id, "IsActive": incident.is_active, "CommanderUserID": incident.commander_user_id,
        "TeamID": incident.team_id, "CreatedAt": incident.create_at, "PostID": incident.post_id or "",
        "NumChecklists": len(incident.checklists), "TotalChecklistItems": incident.total_items,
        "ActiveStage": incident.active_stage, "UserActualID": user_id,
    }


def playbook_metadata(playbook: Playbook, user_id: str) -> dict[str, Any]:
    """The catalogued metadata of a playbook (ids and counts: never its texts)."""
    return {
        "PlaybookID": playbook.id, "TeamID": playbook.team_id, "NumChecklists": playbook.num_stages,
        "TotalChecklistItems": playbook.num_tasks, "IsPublic": playbook.create_public_incident,
        "NumMembers": len(playbook.member_ids), "UserActualID": user_id,
    }


class OutboxTelemetry:
    """Records each event in the outbox, in the transaction of its mutation; a dispatcher sends them."""

    def __init__(self, db: Database, settings: LiveSettings, host: ChatHost, *, clock: Any = now_ms,
                 dispatcher_options: dict[str, Any] | None = None, refresh: Callable[[], Any] = lambda: None,
                 settings_version: Callable[[], int | None] = lambda: None):
        self.db = db
        self.settings = settings
        self.host = host
        self.clock = clock
        self.outbox = Outbox(db, clock)
        self.dispatcher = Dispatcher(self.outbox, self._destination, on_disabled=self._purge_if_pending,
                                     refresh=refresh, settings_version=settings_version,
                                     **(dispatcher_options or {}))
        settings.subscribe(self._settings_changed)

    # ----- switches -------------------------------------------------------------------
    def switches(self, settings: Settings | None = None) -> Switches:
        """Which switches are off right now (an empty list: telemetry is on)."""
        settings = settings or self.settings.current
        reasons = list(settings.telemetry_off_reasons)
        if reasons:
            # Nothing to ask the chat server: telemetry is off either way.
            return Switches(tuple(reasons))
        try:
            facts = self.host.server_facts()
        except Exception as exc:  # noqa: BLE001 - a chat host outage must not fail the change itself
            return Switches((f"the chat server could not be asked for its diagnostics setting "
                             f"({type(exc).__name__})",))
        if not facts.diagnostics_enabled:
            reasons.append(DIAGNOSTICS_OFF)
        if not facts.diagnostic_id:
            reasons.append("the chat server has no diagnostic id")
        return Switches(tuple(reasons), facts.diagnostic_id, facts.version,
                        None if reasons else Destination(settings["RudderDataPlaneUrl"], settings["RudderWriteKey"]))

    def _destination(self) -> Destination | None:
        return self.switches().destination

    def _purge_if_pending(self) -> None:
        deleted = self.outbox.purge_pending()
        if deleted:
            log.info("telemetry is off: deleted %d event(s) not yet sent", deleted)

    def _settings_changed(self, _old: Settings, new: Settings) -> None:
        if self.switches(new).enabled:
            self.start()
            self.dispatcher.nudge()
        else:
            self.dispatcher.posts_ended(POST_END_WAIT_SECONDS)
            self._purge_if_pending()

    def start(self) -> None:
        """Start this process's dispatcher if telemetry is on (after fork; later switches start it too)."""
        if self.switches().enabled:
            self.dispatcher.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the dispatcher: nothing more is sent; what waits stays for the next process."""
        return self.dispatcher.stop(timeout)

    # ----- the port -------------------------------------------------------------------
    def row(self, event: TelemetryEvent) -> OutboxRow | None:
        """The outbox row of a catalogued event while every switch is on, else None."""
        switches = self.switches()
        if not switches.enabled:
            return None
        if isinstance(event, PlaybookEvent):
            values = playbook_metadata(event.playbook, event.user_id)
        elif isinstance(event, WebhookEvent):
            values = dict(event.properties)  # ids and counts only: never a URL or a secret
        else:
            values = {**incident_metadata(event.incident, event.user_id), **event.properties}
        recorded_at = self.clock()
        values.update(diagnosticID=switches.diagnostic_id, serverVersion=switches.server_version,
                      pluginVersion=plugin.__version__, eventTimeStamp=recorded_at)
        name = EVENT_NAMES[type(event)]
        try:
            properties = allowed_properties(name, event.action, values)
        except Refused as exc:
            log.warning("telemetry: refused an event: %s", exc)
            return None
        # The dispatcher's next poll takes the row once it is committed.
        self.dispatcher.start()
        return OutboxRow(name, properties, recorded_at, int(self.settings.current.get("TelemetryOutboxMaxEvents") or 10000))

    # ----- what admins see ------------------------------------------------------------
    def report(self, limit: int = 20) -> dict[str, Any]:
        """Enabled or not and why, counts, the last delivery error, the last events sent (and refused) exactly."""
        reasons = list(self.switches().reasons)
        if not reasons and not self.outbox.switch().telemetry_on:
            reasons.append("switched off at run time: the database's telemetry switch is off "
                           "(turn it on by saving a telemetry setting again)")
        counters = self.outbox.counters()
        return {
            "enabled": not reasons, "reasons": reasons,
            "pending": self.outbox.pending_count(), "sent": counters["sent"], "rejected": counters["rejected"],
            "dropped": counters["dropped"], "deleted": counters["deleted"], "last_error": self.outbox.last_error(),
            "last_success_at": self.outbox.last_success_at(), "recent": self.outbox.recent_sent(limit),
            "recent_rejected": self.outbox.recent_sent(limit, REJECTED),
        }
