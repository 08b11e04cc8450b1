"""The composition root: ``create_app(settings)`` builds and wires everything."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Flask, g, jsonify, request

from plugin import api, backstage, launcher, logs, membership
from plugin.chat import ChatHost
from plugin.chat.local import LocalChatHost
from plugin.chat.mattermost import MattermostChatHost
from plugin.egress import EgressRecorder
from plugin.command import views as command_views
from plugin.playbooks import PlaybookService
from plugin.reminders import ReminderScanner
from plugin.reports import ReportService
from plugin.service import IncidentService
from plugin.settings_admin import SettingsAdmin
from plugin.settings import LiveSettings, Settings, load_settings
from plugin.store import Database, migrate
from plugin.telemetry import Telemetry
from plugin.store.webhooks import DeliveryQueue
from plugin.telemetry.dispatcher import RudderSender
from plugin.telemetry.recorder import OutboxTelemetry
from plugin.webhooks.rules import Lookups, system_resolver
from plugin.webhooks.sender import WebhookSender
from plugin.webhooks.service import SAVE_LOOKUP_SECONDS, SAVE_LOOKUP_THREADS, WebhookService, deliveries_counted

access_log = logging.getLogger("plugin.access")
log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything the app is made of, for the views, the CLI and the tests."""

    settings: LiveSettings
    db: Database
    host: ChatHost
    telemetry: Telemetry
    service: IncidentService
    playbooks: PlaybookService
    settings_admin: SettingsAdmin
    reminders: ReminderScanner
    reports: ReportService
    webhooks: WebhookService | None = None
    webhook_sender: WebhookSender | None = None
    egress: EgressRecorder | None = None
    webhook_lookups: Lookups | None = None


def _save_chat_diagnostics(settings_admin: SettingsAdmin, enabled: bool) -> None:
    """Save the diagnostics switch Mattermost reported, in a thread of its own.

    The report arrives wherever facts are read, which may be inside a mutation's
    transaction; the save takes the database's write lock, so it must not wait there.
    """
    threading.Thread(target=_logged(settings_admin.chat_diagnostics_changed), args=(enabled,),
                     name="chat-diagnostics", daemon=True).start()


def _logged(function: Any) -> Any:
    """function, with any failure logged rather than lost in its thread."""
    def run(*args: Any) -> None:
        try:
            function(*args)
        except Exception:  # noqa: BLE001 - the next poll reports the switch again
            log.warning("could not save the chat server's diagnostics switch", exc_info=True)
    return run


def build_components(settings: Settings, *, host: ChatHost | None = None,
                     telemetry: Telemetry | None = None, migrate_db: bool = True,
                     telemetry_options: dict[str, Any] | None = None, send_telemetry: bool = True,
                     scan_reminders: bool = True, webhook_options: dict[str, Any] | None = None,
                     send_webhooks: bool = True) -> Components:
    """Wire the store, chat host, telemetry and service for these settings.

    Call it after fork (each gunicorn worker does): it starts this process's
    telemetry dispatcher when telemetry is on, unless ``send_telemetry`` is false
    (a short-lived command: its events wait in the outbox for a server to send),
    and its reminder scanner unless ``scan_reminders`` is false (the same) or the
    settings' scan interval is 0. ``telemetry_options`` tunes the dispatcher (poll interval, backoff) for tests.
    The webhook sender starts when a webhook exists or is created, unless ``send_webhooks`` is false;
    ``webhook_options`` tunes it for tests (with ``resolve``, the host name resolver of webhooks,
    ``transport``, the HTTP transport under the counting one, and ``save_lookup_seconds``, the time a
    save's host lookup gets).
    """
    live = LiveSettings(settings)
    db = Database(settings.database_url)
    # Every outgoing request is counted for GET /api/v0/egress.
    egress = EgressRecorder(db)
    if migrate_db:
        migrate(db)
    # Values saved through the settings API or CLI, above the config file and below
    # the environment; read after the migrations have created their table and
    # before the chat host is chosen, since they may configure Mattermost.
    settings_admin = SettingsAdmin(live, db.unit_of_work, read_version=db.settings_version)
    settings_admin.load()
    if host is None and live.current.mattermost_configured:
        # URL and token are read live; switching between hosts needs a restart. Cached memberships
        # hold only while the settings version stays in force, which a leave raises (plugin.membership).
        host = MattermostChatHost(lambda: live.current.mattermost_site_url,
                                  lambda: live.current.mattermost_bot_token, transport=egress.transport("chat"),
                                  memberships_version=lambda: settings_admin.version,
                                  launcher_url=lambda: live.current.launcher_url,
                                  launcher_secret=lambda: live.current.host_secret)
    host = host or LocalChatHost(db, lambda: live.current.admin_user_ids,
                                 diagnostics_enabled=lambda: bool(live.current.get("ServerDiagnosticsEnabled", True)))
    settings_admin.host = host
    if isinstance(host, MattermostChatHost):
        host.subscribe_facts(lambda _old, facts: _save_chat_diagnostics(settings_admin, facts.diagnostics_enabled))
    if telemetry is None:
        # One worker of a server sends at a time (see plugin.telemetry.dispatcher); one
        # lock per database, in case one data directory serves several.
        turn_file = settings.data_dir / f"telemetry-{hashlib.sha256(db.url.encode()).hexdigest()[:12]}.lock"
        counted = partial(RudderSender, transport=egress.transport("telemetry"))
        telemetry = OutboxTelemetry(db, live, host, dispatcher_options={
                                        "turn_file": turn_file, "sender_factory": counted, **(telemetry_options or {})},
                                    refresh=settings_admin.refresh, settings_version=lambda: settings_admin.version)
        if send_telemetry:
            telemetry.start()
    # Every use case's unit of work records through this telemetry and, on the local
    # host, writes the host's channels and posts in the change's own transaction.
    options = dict(webhook_options or {})
    resolve = options.pop("resolve", system_resolver)
    save_lookup_seconds = options.pop("save_lookup_seconds", SAVE_LOOKUP_SECONDS)
    queue = DeliveryQueue(db)
    active_telemetry = telemetry
    sender = WebhookSender(queue, lambda: live.current, transport=egress.transport("webhook", options.pop(
                               "transport", None)), resolve=resolve,
                           daily_row=lambda counts: active_telemetry.row(deliveries_counted(counts)),
                           refresh=settings_admin.refresh, **options)
    # A change that wrote deliveries wakes this process's sender (starting it when it is not running).
    wake = sender.wake if send_webhooks else (lambda: None)
    uow_factory = partial(db.unit_of_work, telemetry=telemetry, local_chat=host.shares_database,
                          deliveries_written=wake)
    service = IncidentService(uow_factory, host, severity_levels=lambda: live.current.severity_levels)
    playbooks = PlaybookService(uow_factory, host, severity_levels=lambda: live.current.severity_levels)
    reminders = ReminderScanner(service.send_due_reminders, settings.reminder_scan_seconds)
    if scan_reminders:
        reminders.start()
    reports = ReportService(service, uow_factory, host)
    # The saves' lookups have a pool of their own, so that deliveries to a dead DNS server never hold up a save.
    webhook_lookups = Lookups(resolve, SAVE_LOOKUP_THREADS, "webhook-save-lookup")
    webhooks = WebhookService(uow_factory, host, lambda: live.current, lookups=webhook_lookups,
                              lookup_seconds=save_lookup_seconds, wake=wake)
    if send_webhooks and queue.has_webhooks():
        sender.start()  # deliveries left by a process that stopped or died are sent from here too
    return Components(live, db, host, telemetry, service, playbooks, settings_admin, reminders, reports, webhooks,
                      sender, egress, webhook_lookups)


def create_app(settings: Settings | None = None, *, host: ChatHost | None = None,
               telemetry: Telemetry | None = None, migrate_db: bool = True,
               telemetry_options: dict[str, Any] | None = None,
               webhook_options: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app; settings default to plugin.json < config file < environment."""
    settings = settings or load_settings()
    components = build_components(settings, host=host, telemetry=telemetry, migrate_db=migrate_db,
                                  telemetry_options=telemetry_options, webhook_options=webhook_options)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["incident"] = components

    @app.before_request
    def _start_timer() -> Any:
        g.started = time.perf_counter()
        # g outlives a request when an app context is already pushed (tests, CLI):
        # never let one request's user show up in the next one's access line.
        g.pop("user_id", None)
        # Every request runs under the newest settings: a change that has returned (in
        # any process) is in force here before this request is looked at.
        if request.path == "/healthz":
            return None  # liveness answers without the database
        try:
            components.settings_admin.refresh()
        except Exception:  # noqa: BLE001 - never serve under settings that may be out of date
            log.warning("could not check for changed settings; refusing the request", exc_info=True)
            return api.error_response(503, "The server could not read its settings from the database; try again "
                                           "in a moment.", {}, {"Retry-After": str(api.RETRY_AFTER_SECONDS)})
        return None

    @app.after_request
    def _log_request(response: Any) -> Any:
        # The route's pattern, not the path: a path or query string can carry text people typed.
        duration = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access_log.info("%s %s %s %.1fms user=%s", request.method, logs.route_pattern(request),
                        response.status_code, duration, g.get("user_id", "-"))
        return response

    @app.get("/healthz")
    def healthz() -> Any:
        """Liveness: the process answers."""
        return jsonify({"status": "ok"})

    api.init_app(app, components)
    command_views.init_app(app, components)
    backstage.init_app(app, components)
    membership.init_app(app, components)
    launcher.init_app(app, components)
    logs.install()
    return app
