"""The environment the plugin's launcher is about to restart the server with: ``POST /launcher/environment``.

Inside Mattermost every System Console setting, and Mattermost's diagnostics switch,
reaches the server as an ``INCIDENT_*`` environment variable, and the launcher restarts
the server to change one. The restart takes a moment, and a server on its way out
still delivers what waits in the telemetry outbox; so before Mattermost's save of the
configuration returns, and after each start, the launcher posts the environment here.
The database's telemetry switch is then set as those settings say
(``SettingsAdmin.environment_coming``): off at once in every process, the waiting
events deleted. Nothing else changes before the restart.

Only the launcher may call it: the request must carry the activation's
``X-Host-Secret``, and the launcher never forwards browser requests to ``/launcher/``.
Neither the environment nor a refusal's message is logged: both may hold secrets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from plugin.errors import BadInput
from plugin.membership import launcher_body
from plugin.settings import ENV_PREFIX, SettingsError, load_settings

ENVIRONMENT_PATH = "/launcher/environment"


@dataclass(frozen=True)
class EnvironmentHandOver:
    """The environment variables the launcher restarts the server with."""

    variables: dict[str, str]


class EnvironmentSchema(Schema):
    """``{"environment": {"INCIDENT_ENABLE_TELEMETRY": "false", ...}}``: the server's variables, as text."""

    class Meta:
        unknown = RAISE

    environment = fields.Dict(
        required=True, keys=fields.String(validate=validate.Regexp(f"^{ENV_PREFIX}[A-Z0-9_]+$",
                                                                   error="Expected an INCIDENT_* variable name.")),
        values=fields.String())

    @post_load
    def to_hand_over(self, data: dict[str, Any], **_: Any) -> EnvironmentHandOver:
        return EnvironmentHandOver(data["environment"])


def init_app(app: Flask, components: Any) -> None:
    """Register the hand-over endpoint on app."""
    schema = EnvironmentSchema()
    blp = Blueprint("launcher", __name__)

    @blp.post(ENVIRONMENT_PATH)
    def environment_coming() -> Any:
        """The launcher restarts the server with this environment: 204 once the telemetry switch follows it."""
        body = launcher_body(components.settings.current.host_secret, "Environment hand-overs",
                             '{"environment": {"INCIDENT_...": "..."}}')
        try:
            upcoming = load_settings(environ=schema.load(body).variables)
        except ValidationError as exc:
            raise BadInput("Invalid environment: expected {\"environment\": {\"INCIDENT_...\": \"text\"}}.",
                           {"fields": sorted(exc.messages) if isinstance(exc.messages, dict) else []}) from None
        except SettingsError as exc:
            raise BadInput(str(exc)) from None
        components.settings_admin.environment_coming(upcoming)
        return "", 204

    app.register_blueprint(blp)
