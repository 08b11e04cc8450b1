"""The egress route: what left the server, per destination host, over the last days (system admins)."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from plugin.api import Blueprint, admins_only
from plugin.api.schemas import QueryNumber, StrictSchema


class EgressQuerySchema(StrictSchema):
    days = QueryNumber(load_default=7, validate=validate.Range(1, 90),
                          metadata={"description": "How many days back, today included (UTC)."})


class EgressErrorSchema(Schema):
    at = fields.Integer(metadata={"description": "When, in milliseconds since 1970."})
    error = fields.String(metadata={"description": "A short error without content: a status or an error kind."})


class EgressItemSchema(Schema):
    host = fields.String(metadata={"description": "The destination, as the request's Host header named it."})
    kind = fields.String(metadata={"description": "telemetry (batches of events), webhook (delivery attempts) or "
                                                  "chat (chat server REST calls)."})
    requests = fields.Integer()
    failures = fields.Integer(metadata={"description": "Requests not answered, or answered with a 4xx or 5xx."})
    last_at = fields.Integer(metadata={"description": "When the last request went, in milliseconds since 1970."})
    last_error = fields.Nested(EgressErrorSchema, allow_none=True)


class EgressReportSchema(Schema):
    days = fields.Integer()
    since = fields.Integer(metadata={"description": "Start of the first day counted, in milliseconds since 1970."})
    items = fields.List(fields.Nested(EgressItemSchema))


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/egress blueprint."""
    blp = Blueprint("egress", __name__, url_prefix="/api/v0/egress",
                    description="Everything that left the server, per destination host (system admins).")

    admins_only(blp, components, "Only system admins may see what left the server.")

    @blp.route("", methods=["GET"])
    @blp.arguments(EgressQuerySchema, location="query")
    @blp.response(200, EgressReportSchema)
    def report(query: dict[str, Any]) -> Any:
        """Per destination host and kind: requests, failures, the last request and the last error. No content."""
        return components.egress.report(query["days"])

    return blp
