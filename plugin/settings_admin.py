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
- Saved values live in the database and are applied through ``LiveSettings.replace``
  (subscribers hear the change). Other worker processes pick them up with
  ``refresh()``, which the app calls at most every ``REFRESH_SECONDS`` per process.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from plugin.chat import ChatHost
from plugin.errors import BadInput, InvalidState, PermissionDenied
from plugin.settings import MASK, RESTART_REQUIRED, LiveSettings, Settings, SettingsError, env_name, validate_value

log = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
SHELL_USER = ""


def _now_ms() -> int:
    return int(time.time() * 1000)


class SettingsAdmin:
    """Show, change and reload the settings in force."""

    def __init__(self, live: LiveSettings, uow_factory: Callable[..., Any], host: ChatHost | None = None,
                 clock: Callable[[], int] = _now_ms, monotonic: Callable[[], float] = time.monotonic):
        self.live = live
        self.uow_factory = uow_factory
        self.host = host
        self.clock = clock
        self.monotonic = monotonic
        self.base = live.current  # defaults < config file < environment, without saved values
        self._saved: dict[str, Any] | None = None
        self._checked_at = float("-inf")

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
        self.refresh(force=True)
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
                uow.commit()
            self._put_in_force(saved)
            log.info("settings changed: %s", ", ".join(sorted(accepted)))
        return self.live.current

    def load(self) -> Settings:
        """Apply the saved values (start-up); the settings now in force."""
        self.refresh(force=True)
        return self.live.current

    def refresh(self, *, force: bool = False) -> bool:
        """Pick up values saved by another process; True when the settings changed."""
        now = self.monotonic()
        if not force and now - self._checked_at < REFRESH_SECONDS:
            return False
        self._checked_at = now
        # The saved values are a handful of rows: comparing them whole is cheap and,
        # unlike a timestamp, cannot miss two changes made in the same instant.
        with self.uow_factory(write=False) as uow:
            saved = uow.saved_settings.all()
        if saved == self._saved:
            return False
        return self._put_in_force(saved)

    def _put_in_force(self, saved: dict[str, Any]) -> bool:
        self._saved = saved
        new = self.base.with_saved(saved)
        if new.values == self.live.current.values and new.sources == self.live.current.sources:
            return False
        self.live.replace(new)
        return True

    def require_admin(self, user_id: str) -> None:
        """PermissionDenied, saying how admins are made, unless the user is a system admin."""
        if self.host is None or not self.host.is_system_admin(user_id):
            raise PermissionDenied(
                "Only system admins may read or change the plugin's settings. On Mattermost they are the "
                "server's system admins; on the local chat host they are the user ids in the AdminUserIds "
                "setting: set the first one from a shell on the server with `incident-plugin settings set "
                "AdminUserIds <user id>` (or INCIDENT_ADMIN_USER_IDS), then use the API as that user.")
