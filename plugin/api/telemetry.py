"""Telemetry audit route: what telemetry does and exactly what it sent (system admins only)."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from plugin.api import Blueprint, admins_only
from plugin.api.schemas import QueryNumber


class TelemetryQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    limit = QueryNumber(load_default=20, validate=validate.Range(0, 200),
                           metadata={"description": "How many of the last events sent to include."})


class TelemetryErrorSchema(Schema):
    at = fields.Integer(metadata={"description": "When, in milliseconds since 1970."})
    error = fields.String()


class TelemetryReportSchema(Schema):
    enabled = fields.Boolean(required=True)
    reasons = fields.List(fields.String(), metadata={"description": "Why telemetry is off (empty when on)."})
    pending = fields.Integer(metadata={"description": "Events waiting in the outbox."})
    sent = fields.Integer(metadata={"description": "Events delivered so far."})
    rejected = fields.Integer(metadata={"description": "Events the data plane refused on their own (HTTP 400); "
                                                       "never sent again."})
    dropped = fields.Integer(metadata={"description": "Oldest events dropped because the outbox was full."})
    deleted = fields.Integer(metadata={"description": "Unsent events deleted when telemetry was switched off."})
    last_error = fields.Nested(TelemetryErrorSchema, allow_none=True)
    last_success_at = fields.Integer(allow_none=True)
    recent = fields.List(fields.Dict(), metadata={"description": "The last events sent, newest first, "
                                                                 "exactly as sent."})
    recent_rejected = fields.List(fields.Dict(), metadata={"description": "The last events the data plane refused, "
                                                                          "newest first, exactly as attempted."})


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/telemetry blueprint."""
    blp = Blueprint("telemetry", __name__, url_prefix="/api/v0/telemetry",
                    description="What telemetry sends, for system admins to audit.")

    admins_only(blp, components, "Only system admins may see the telemetry report.")

    @blp.route("", methods=["GET"])
    @blp.arguments(TelemetryQuerySchema, location="query")
    @blp.response(200, TelemetryReportSchema)
    def report(query: dict[str, Any]) -> Any:
        """Enabled or not and why, counts, the last delivery error and the last events exactly as sent."""
        telemetry = components.telemetry
        if not hasattr(telemetry, "report"):
            return {"enabled": False, "reasons": ["telemetry is not configured on this server"], "pending": 0,
                    "sent": 0, "rejected": 0, "dropped": 0, "deleted": 0, "last_error": None,
                    "last_success_at": None, "recent": [], "recent_rejected": []}
        return telemetry.report(query["limit"])

    return blp
