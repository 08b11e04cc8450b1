"""Settings: plugin.json defaults < JSON config file < saved via the API < environment.

``plugin.json``'s ``settings_schema`` is the one place a setting is declared (its
key, type and default). This module is the only reader of ``os.environ``: each
setting ``SomeKey`` may be given as ``INCIDENT_SOME_KEY``. Invalid values raise
:class:`SettingsError` naming the setting, so start-up stops with a clear message.

Settings that are not admin-facing are read here too: ``INCIDENT_DATA_DIR``
(default ``./data``) holds the SQLite file of the default database URL and the lock
file by which one worker process sends telemetry; ``INCIDENT_REMINDER_SCAN_SECONDS``
(default 5) is how often each server process looks for reminders come due (0: never,
for tests that send them themselves and for processes that only run commands).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from plugin.model import SeverityLevels, is_id, parse_severity_levels, text_problem

_log = logging.getLogger(__name__)

ENV_PREFIX = "INCIDENT_"
MANIFEST_PATH = Path(__file__).resolve().parent.parent / "plugin.json"
SECRET_TYPES = {"generated"}
MASK = "********"
# Settings read once when the process starts: changing them needs a restart.
RESTART_REQUIRED = frozenset({"DatabaseUrl"})
# The settings that switch telemetry on or off (with the chat server's own diagnostics
# switch, which ServerDiagnosticsEnabled carries; see settings_admin).
TELEMETRY_SWITCHES = frozenset({"EnableTelemetry", "RudderWriteKey", "RudderDataPlaneUrl",
                                "ServerDiagnosticsEnabled"})
DIAGNOSTICS_OFF = "the chat server's diagnostics are off"
_SECRET_KEY_PATTERN = re.compile(r"(Secret|Token|WriteKey|Password)$")
_LOOPBACK_URL = re.compile(r"http://(127\.0\.0\.1|localhost|\[::1\]):[0-9]{1,5}")


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the setting and its source."""


def env_name(key: str) -> str:
    """``DatabaseUrl`` -> ``INCIDENT_DATABASE_URL``."""
    return ENV_PREFIX + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).upper()


def load_manifest(path: Path | str | None = None) -> dict[str, Any]:
    """Read plugin.json."""
    with open(path or MANIFEST_PATH, encoding="utf-8") as handle:
        return json.load(handle)


@dataclass(frozen=True)
class SettingSpec:
    """One setting as declared in the manifest."""

    key: str
    type: str
    default: Any
    options: tuple[str, ...] = ()

    @property
    def secret(self) -> bool:
        """Secrets are masked wherever settings are shown."""
        return self.type in SECRET_TYPES or bool(_SECRET_KEY_PATTERN.search(self.key))


def specs_from_manifest(manifest: Mapping[str, Any]) -> dict[str, SettingSpec]:
    """The settings declared in a manifest, by key."""
    specs = {}
    for entry in manifest.get("settings_schema", {}).get("settings", []):
        options = tuple(str(option["value"]) for option in entry.get("options", []))
        specs[entry["key"]] = SettingSpec(entry["key"], entry["type"], entry.get("default"), options)
    return specs


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    problem = text_problem(value)
    if problem:
        raise ValueError(f"text {problem}")
    return value.strip()


def _coerce(spec: SettingSpec, value: Any) -> Any:
    if spec.type == "bool":
        return _to_bool(value)
    if spec.type == "number":
        return _to_int(value)
    text = _to_text(value)
    if spec.options and text not in spec.options:
        raise ValueError(f"expected one of {', '.join(spec.options)}")
    return text


def _check_database_url(value: str) -> None:
    if value and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
        raise ValueError("expected a sqlite:// or postgresql:// URL, or empty for the default SQLite file")


def _check_user_ids(value: str) -> None:
    bad = [part for part in _split_ids(value) if not is_id(part)]
    if bad:
        raise ValueError(f"not user ids (26 characters a-z0-9): {', '.join(bad)}")


def _check_max_body(value: int) -> None:
    if not 1024 <= value <= 64 * 1024 * 1024:
        raise ValueError("expected a number of bytes from 1024 to 67108864")


def _check_url(value: str) -> None:
    if value and not re.match(r"^https?://[^\s/]+", value):
        raise ValueError("expected an http:// or https:// URL")


def _check_outbox_size(value: int) -> None:
    if not 1 <= value <= 10_000_000:
        raise ValueError("expected a number of events from 1 to 10000000")


def _check_retry_seconds(value: int) -> None:
    if not 1 <= value <= 7 * 86400:
        raise ValueError("expected a number of seconds from 1 to 604800 (7 days)")


def _check_hosts(value: str) -> None:
    bad = [part for part in _split_ids(value) if not re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,255}", part)]
    if bad:
        raise ValueError(f"not host names: {', '.join(bad)}")


def _check_severity_levels(value: str) -> None:
    parse_severity_levels(value)


# Checks beyond the manifest type; a later setting adds its own here.
VALIDATORS: dict[str, Callable[[Any], None]] = {
    "DatabaseUrl": _check_database_url,
    "AdminUserIds": _check_user_ids,
    "MaxBodyBytes": _check_max_body,
    "MattermostSiteUrl": _check_url,
    "RudderDataPlaneUrl": _check_url,
    "TelemetryOutboxMaxEvents": _check_outbox_size,
    "WebhookRetrySeconds": _check_retry_seconds,
    "WebhookHttpHosts": _check_hosts,
    "SeverityLevels": _check_severity_levels,
}


def register_validator(key: str, check: Callable[[Any], None]) -> None:
    """Add a value check for a setting (used by modules that own a setting)."""
    VALIDATORS[key] = check


def validate_value(spec: SettingSpec, value: Any, source: str) -> Any:
    """Coerce and check one value; raise SettingsError naming setting and source."""
    try:
        coerced = _coerce(spec, value)
        check = VALIDATORS.get(spec.key)
        if check:
            check(coerced)
    except ValueError as exc:
        raise SettingsError(f"Setting {spec.key} ({source}) is invalid: {exc}; got {value!r}.") from None
    return coerced


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    """Resolved, validated settings. Immutable: a change builds a new object."""

    values: Mapping[str, Any]
    specs: Mapping[str, SettingSpec]
    sources: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("data")
    reminder_scan_seconds: float = 5.0
    # The first pause between two attempts of a webhook delivery, and how long a sender holds one it claimed.
    webhook_backoff_seconds: float = 5.0
    webhook_lease_seconds: float = 60.0
    #: The plugin's launcher, on loopback ("" when not inside Mattermost): it runs slash commands as a user.
    launcher_url: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of a setting, or default when the manifest does not declare it."""
        return self.values.get(key, default)

    @property
    def database_url(self) -> str:
        """The configured database URL, or the default SQLite file in the data directory."""
        url = self.values.get("DatabaseUrl") or ""
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'incidents.db').resolve()}"

    @property
    def admin_user_ids(self) -> frozenset[str]:
        """System admins for the local chat host."""
        return frozenset(_split_ids(self.values.get("AdminUserIds") or ""))

    @property
    def host_secret(self) -> str:
        """Shared secret each API request must carry (empty: none required)."""
        return self.values.get("HostSecret") or ""

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted."""
        return int(self.values.get("MaxBodyBytes") or 262144)

    @property
    def slash_command_token(self) -> str:
        """Token the /command endpoint requires (empty: the endpoint refuses everything)."""
        return self.values.get("SlashCommandToken") or ""

    @property
    def mattermost_site_url(self) -> str:
        """Base URL of the Mattermost server, without a trailing slash."""
        return (self.values.get("MattermostSiteUrl") or "").rstrip("/")

    @property
    def mattermost_bot_token(self) -> str:
        """Access token of the bot account on the Mattermost server."""
        return self.values.get("MattermostBotToken") or ""

    @property
    def mattermost_configured(self) -> bool:
        """Both the site URL and the bot token are set: use the Mattermost host."""
        return bool(self.mattermost_site_url and self.mattermost_bot_token)

    @property
    def webhook_http_hosts(self) -> frozenset[str]:
        """Hosts webhooks may reach over plain http (lower case)."""
        return frozenset(part.lower() for part in _split_ids(self.values.get("WebhookHttpHosts") or ""))

    @property
    def severity_levels(self) -> SeverityLevels:
        """The severity levels in force, most severe first."""
        value = self.values.get("SeverityLevels")
        return SeverityLevels(parse_severity_levels(value)) if value else SeverityLevels()

    @property
    def telemetry_off_reasons(self) -> tuple[str, ...]:
        """Why these settings keep telemetry off (empty: they let it on; the chat server may still say no)."""
        reasons = []
        if not self.values.get("RudderWriteKey"):
            reasons.append("no RudderWriteKey is configured")
        if not self.values.get("RudderDataPlaneUrl"):
            reasons.append("no RudderDataPlaneUrl is configured")
        if not self.values.get("EnableTelemetry", True):
            reasons.append("EnableTelemetry is off")
        if not self.values.get("ServerDiagnosticsEnabled", True):
            reasons.append(DIAGNOSTICS_OFF)
        return tuple(reasons)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (validated like any other source)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for key, value in changes.items():
            if key not in self.specs:
                raise SettingsError(f"Unknown setting {key}: known settings are {', '.join(sorted(self.specs))}.")
            values[key] = validate_value(self.specs[key], value, "override")
            sources[key] = "override"
        return dataclasses.replace(self, values=values, sources=sources)

    def with_saved(self, saved: Mapping[str, Any]) -> "Settings":
        """A copy with values saved at run time applied above the config file, below the environment.

        A saved value that no longer validates (or names a setting no longer
        declared) is skipped with a warning: start-up must not fail on it.
        """
        values = dict(self.values)
        sources = dict(self.sources)
        for key, value in saved.items():
            spec = self.specs.get(key)
            if spec is None or self.sources.get(key) == "environment" or key in RESTART_REQUIRED:
                continue
            try:
                values[key] = validate_value(spec, value, "saved value")
            except SettingsError:
                # The key only: the error quotes the value, which may be a secret or typed text.
                _log.warning("ignoring the saved value of setting %s: it is no longer valid", key)
                continue
            sources[key] = "saved"
        return dataclasses.replace(self, values=values, sources=sources)

    def public_view(self) -> dict[str, Any]:
        """All settings with secrets masked (non-empty secrets show as ********, as does DatabaseUrl's password)."""
        return {
            key: (MASK if self.specs[key].secret and value else
                  database_url_without_password(value) if key == "DatabaseUrl" and value else value)
            for key, value in self.values.items()
        }


def database_url_without_password(url: str) -> str:
    """The database URL with its password (in the user part or the query) shown as ********."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    # A placeholder of letters only, which the URL writes out as it is, stands in for the mask.
    placeholder = "maskedpassword" * 2
    if parsed.password is not None:
        parsed = parsed.set(password=placeholder)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": placeholder})
    return parsed.render_as_string(hide_password=False).replace(placeholder, MASK)


def load_settings(config_file: str | Path | None = None, environ: Mapping[str, str] | None = None,
                  manifest: Mapping[str, Any] | None = None) -> Settings:
    """Build settings: manifest defaults < config file < environment."""
    environ = os.environ if environ is None else environ
    specs = specs_from_manifest(manifest or load_manifest())
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, spec in specs.items():
        values[key] = validate_value(spec, spec.default if spec.default is not None else "", "plugin.json default")
        sources[key] = "default"
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG") or None
    if config_file:
        try:
            with open(config_file, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"Config file {config_file} could not be read: {exc}") from None
        if not isinstance(loaded, dict):
            raise SettingsError(f"Config file {config_file} must hold a JSON object of setting keys.")
        for key, value in loaded.items():
            if key not in specs:
                raise SettingsError(f"Config file {config_file} names unknown setting {key}; "
                                    f"known settings are {', '.join(sorted(specs))}.")
            values[key] = validate_value(specs[key], value, f"config file {config_file}")
            sources[key] = "config"
    for key, spec in specs.items():
        name = env_name(key)
        if name in environ:
            values[key] = validate_value(spec, environ[name], f"environment variable {name}")
            sources[key] = "environment"
    data_dir = Path(environ.get(ENV_PREFIX + "DATA_DIR") or "data")
    scan = environ.get(ENV_PREFIX + "REMINDER_SCAN_SECONDS") or "5"
    try:
        reminder_scan_seconds = float(scan)
    except ValueError:
        reminder_scan_seconds = -1.0
    if not 0 <= reminder_scan_seconds <= 3600:
        raise SettingsError(f"Environment variable {ENV_PREFIX}REMINDER_SCAN_SECONDS must be a number of seconds "
                            "from 0 (no scanning) to 3600.")
    webhook_timing = [_seconds_from(environ, ENV_PREFIX + name, default, low, high) for name, default, low, high in (
        ("WEBHOOK_BACKOFF_SECONDS", 5.0, 0.01, 3600.0), ("WEBHOOK_LEASE_SECONDS", 60.0, 0.5, 3600.0))]
    launcher_url = (environ.get(ENV_PREFIX + "LAUNCHER_URL") or "").rstrip("/")
    if launcher_url and not _LOOPBACK_URL.fullmatch(launcher_url):
        # The host secret goes with every call to it: never to another machine.
        raise SettingsError(f"Environment variable {ENV_PREFIX}LAUNCHER_URL must be a loopback http URL such as "
                            "http://127.0.0.1:8066 (the plugin's launcher sets it).")
    return Settings(values, specs, sources, data_dir, reminder_scan_seconds, *webhook_timing,
                    launcher_url=launcher_url)


def _seconds_from(environ: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """A number of seconds from an environment variable, within bounds (SettingsError otherwise)."""
    try:
        value = float(environ.get(name) or default)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        raise SettingsError(f"Environment variable {name} must be a number of seconds from {low:g} to {high:g}.")
    return value


class LiveSettings:
    """The settings in force, replaceable at run time; listeners hear each change."""

    def __init__(self, settings: Settings):
        self._current = settings
        self._listeners: list[Callable[[Settings, Settings], None]] = []

    @property
    def current(self) -> Settings:
        """The settings now in force."""
        return self._current

    def subscribe(self, listener: Callable[[Settings, Settings], None]) -> None:
        """Call listener(old, new) after every change."""
        self._listeners.append(listener)

    def replace(self, settings: Settings) -> None:
        """Put new settings in force and tell the listeners."""
        old, self._current = self._current, settings
        for listener in self._listeners:
            listener(old, settings)


@dataclass(frozen=True)
class SettingsState:
    """The settings version and the run-time telemetry switch, as the database holds them."""

    version: int = 0
    telemetry_on: bool = True
    telemetry_epoch: int = 0
