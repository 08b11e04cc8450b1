"""Changing settings at run time: the use cases behind ``/api/v0/settings`` and ``incident-plugin settings``.

Decisions:
- Only system admins may read or change settings through the API; the shell
  (``incident-plugin settings``) acts as the operator and needs no user.
- A value is checked by the same code as at start-up (``validate_value``).
- A setting given by an environment variable is fixed, as in Mattermost's System
  Console: changing it is refused with 409 naming the variable.
- Settings read only at start-up (``RESTART_REQUIRED``, e.g. DatabaseUrl) are
  refused with 409: set them in the config file or environment and restart.
- Secrets are masked on read; sending the mask back leaves the secret unchanged,
  so a client may PUT back what it got.
- Saved values live in the database. Every change also raises the settings version
  (``settings_state``) in the same transaction, and each request (and each cycle of
  the telemetry dispatcher) checks that version and reloads when it moved: once a
  change has returned, no process acts on older settings (the store's lease on the
  version it read is shorter than the wait of a change before it returns).
- A change of a telemetry switch (``TELEMETRY_SWITCHES``) sets the telemetry switch
  of the database in the same transaction; switching it off deletes the events still
  waiting there and then (see plugin.telemetry.recorder).
- The chat server's own diagnostics switch (Mattermost's ``EnableDiagnostics``)
  enters as the setting ``ServerDiagnosticsEnabled``: the launcher passes it in the
  environment (handing a coming one over to :meth:`SettingsAdmin.environment_coming`
  first), the Mattermost adapter's poll saves it through
  :meth:`SettingsAdmin.chat_diagnostics_changed`, as do the settings API and
  ``incident-plugin settings set``.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from plugin.chat import ChatHost
from plugin.errors import BadInput, InvalidState, PermissionDenied
from plugin.model import now_ms
from plugin.settings import (MASK, RESTART_REQUIRED, TELEMETRY_SWITCHES, LiveSettings, Settings, SettingsError,
                             SettingsState, env_name, validate_value)

log = logging.getLogger(__name__)

SHELL_USER = ""
# Recorded as the author of a value the chat server reported (its diagnostics switch).
CHAT_SERVER_USER = "chat-server"




class SavedSettings(Protocol):
    """The saved values and the settings state, read and written in a unit of work's transaction."""

    def all(self) -> dict[str, Any]: ...
    def put(self, key: str, value: Any, *, now: int, user_id: str) -> None: ...
    def state(self) -> SettingsState: ...
    def advance(self, telemetry_on: bool | None = None) -> SettingsState: ...
    def delete_waiting_events(self) -> int: ...


class SettingsUnitOfWork(AbstractContextManager, Protocol):
    """What these use cases need of a unit of work."""

    saved_settings: SavedSettings

    def commit(self) -> object: ...


class SettingsAdmin:
    """Show, change and reload the settings in force."""

    def __init__(self, live: LiveSettings, uow_factory: Callable[..., SettingsUnitOfWork],
                 host: ChatHost | None = None, clock: Callable[[], int] = now_ms,
                 read_version: Callable[[], int] | None = None):
        self.live = live
        self.uow_factory = uow_factory
        self.read_version = read_version
        self.host = host
        self.clock = clock
        self.base = live.current  # defaults < config file < environment, without saved values
        # The settings version in force; set only once its settings are (see refresh).
        self.version = -1
        self._reload = threading.Lock()

    # ----- reads -----------------------------------------------------------------------
    def describe(self, settings: Settings | None = None) -> list[dict[str, Any]]:
        """Every setting: masked value, where it comes from, and whether it can change at run time."""
        settings = settings or self.live.current
        shown = settings.public_view()
        rows = []
        for key, spec in settings.specs.items():
            source = settings.sources.get(key, "default")
            rows.append({
                "key": key, "value": shown.get(key), "type": spec.type, "secret": spec.secret, "source": source,
                "env_var": env_name(key), "read_only": source == "environment" or key in RESTART_REQUIRED,
                "requires_restart": key in RESTART_REQUIRED,
            })
        return rows

    def show(self, user_id: str) -> list[dict[str, Any]]:
        """The settings, for a system admin."""
        self.require_admin(user_id)
        self.refresh()
        return self.describe()

    # ----- changes ---------------------------------------------------------------------
    def update(self, user_id: str, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Change settings as a system admin; returns the settings now in force."""
        self.require_admin(user_id)
        self.apply(changes, user_id)
        return self.describe()

    def apply(self, changes: Mapping[str, Any], user_id: str = SHELL_USER, origin: str = "request") -> Settings:
        """Validate, save and put in force; all or nothing. ``user_id`` is empty for the shell;
        ``origin`` names where the values came from in error messages."""
        if not changes:
            raise BadInput("Give at least one setting to change, as a JSON object of key: value.")
        current = self.live.current
        accepted: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for key, value in changes.items():
            spec = current.specs.get(key)
            if spec is None:
                raise BadInput(f"Unknown setting {key}: known settings are {', '.join(sorted(current.specs))}.",
                               {key: "unknown"})
            if current.sources.get(key) == "environment":
                raise InvalidState(f"Setting {key} is set by the environment variable {env_name(key)} and cannot "
                                   "be changed at run time; change or remove the variable and restart.",
                                   {key: "fixed by environment", "env_var": env_name(key)})
            if key in RESTART_REQUIRED:
                raise InvalidState(f"Setting {key} cannot be changed while the server runs; set it in the config "
                                   f"file or with {env_name(key)} and restart.", {key: "requires restart"})
            if spec.secret and value == MASK:
                continue  # the masked value sent back: keep the secret as it is
            try:
                accepted[key] = validate_value(spec, value, origin)
            except SettingsError as exc:
                errors[key] = str(exc)
        if errors:
            raise BadInput(" ".join(errors.values()), errors)
        if accepted:
            with self.uow_factory() as uow:
                for key, value in accepted.items():
                    uow.saved_settings.put(key, value, now=self.clock(), user_id=user_id)
                saved = uow.saved_settings.all()
                switch = None
                if TELEMETRY_SWITCHES & accepted.keys():
                    switch = not self.base.with_saved(saved).telemetry_off_reasons
                state = uow.saved_settings.advance(switch)
                deleted = 0 if state.telemetry_on else uow.saved_settings.delete_waiting_events()
                uow.commit()
            with self._reload:
                self._put_in_force(saved, state.version)
            log.info("settings changed: %s", ", ".join(sorted(accepted)))
            if deleted:
                log.info("telemetry is off: deleted %d event(s) not yet sent", deleted)
        return self.live.current

    def chat_diagnostics_changed(self, enabled: bool) -> None:
        """The entry point of the chat server's diagnostics switch (Mattermost's EnableDiagnostics).

        Saved as ``ServerDiagnosticsEnabled``, like a change through the API: when it
        goes off, telemetry is off in every process once this returns. When the
        environment fixes that setting, the database's telemetry switch follows the
        chat server all the same (on only while this process's settings allow it).
        """
        key = "ServerDiagnosticsEnabled"
        if self.live.current.sources.get(key) != "environment":
            if bool(self.live.current.get(key, True)) != enabled:
                self.apply({key: enabled}, CHAT_SERVER_USER)
            return
        on = enabled and not self.live.current.telemetry_off_reasons
        with self.uow_factory() as uow:
            if uow.saved_settings.state().telemetry_on == on:
                return
            state = uow.saved_settings.advance(on)
            deleted = 0 if state.telemetry_on else uow.saved_settings.delete_waiting_events()
            uow.commit()
        log.info("the chat server's diagnostics are %s: telemetry switched %s (%d waiting event(s) deleted)",
                 "on" if enabled else "off", "on" if on else "off", deleted)
        self.refresh()

    def environment_coming(self, upcoming: Settings) -> bool:
        """Set the database's telemetry switch as the settings of a coming restart say; True when it flipped.

        The plugin's launcher passes settings as the server's environment and restarts
        the server to change them; it hands the new environment over here first, so
        that a switch gone off is off in every process before the restart, and the
        events still waiting are deleted rather than sent by a process on its way out
        or after the switch is on again. Values saved at run time count as in ``apply``.
        """
        with self.uow_factory() as uow:
            on = not upcoming.with_saved(uow.saved_settings.all()).telemetry_off_reasons
            if uow.saved_settings.state().telemetry_on == on:
                return False
            state = uow.saved_settings.advance(on)
            deleted = 0 if state.telemetry_on else uow.saved_settings.delete_waiting_events()
            uow.commit()
        log.info("the launcher's coming settings switch telemetry %s (%d waiting event(s) deleted)",
                 "on" if on else "off", deleted)
        self.refresh()
        return True

    def load(self) -> Settings:
        """Apply the saved values (start-up); the settings now in force."""
        self.refresh()
        return self.live.current

    def refresh(self) -> bool:
        """Put the saved values in force when the settings version moved; True when the settings changed.

        One read of the one-row version when nothing changed (``read_version``, a
        lighter path than a unit of work, when given). The version is read before the
        values, so the values are at least as new as the version kept.
        """
        if self.read_version is not None and self.read_version() == self.version:
            return False
        with self.uow_factory(write=False) as uow:
            state = uow.saved_settings.state()
            if state.version == self.version:
                return False
            with self._reload:
                if state.version == self.version:
                    return False
                return self._put_in_force(uow.saved_settings.all(), state.version)

    def _put_in_force(self, saved: dict[str, Any], version: int) -> bool:
        if version < self.version:
            return False  # another thread already put newer settings in force
        new = self.base.with_saved(saved)
        changed = new.values != self.live.current.values or new.sources != self.live.current.sources
        if changed:
            self.live.replace(new)
        self.version = version
        return changed

    def require_admin(self, user_id: str) -> None:
        """PermissionDenied, saying how admins are made, unless the user is a system admin."""
        if self.host is None or not self.host.is_system_admin(user_id):
            raise PermissionDenied(
                "Only system admins may read or change the plugin's settings. On Mattermost they are the "
                "server's system admins; on the local chat host they are the user ids in the AdminUserIds "
                "setting: set the first one from a shell on the server with `incident-plugin settings set "
                "AdminUserIds <user id>` (or INCIDENT_ADMIN_USER_IDS), then use the API as that user.")
