"""Webhook routes (system admins): register, list, change and delete webhooks; see and redo their deliveries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g, url_for
from marshmallow import Schema, fields, post_load, validate

from plugin.api import Blueprint, admins_only, page_of
from plugin.api.schemas import OptionalId, PageSchema, PagingSchema, StrictSchema, Text
from plugin.model import TIMELINE_EVENT_TYPES
from plugin.webhooks.rules import ALL_EVENTS, SECRET_MAX, URL_MAX
from plugin.webhooks.service import WebhookChanges

_EVENTS = {"description": f"Timeline event types ({', '.join(TIMELINE_EVENT_TYPES)}) or {ALL_EVENTS!r} for all."}


def _events(**kwargs: Any) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf([*TIMELINE_EVENT_TYPES, ALL_EVENTS])),
                       validate=validate.Length(1, len(TIMELINE_EVENT_TYPES) + 1), metadata=_EVENTS, **kwargs)


@dataclass(frozen=True)
class NewWebhook:
    """A webhook to register: where to, on which events, for which team ("": all); secret None: generate one."""

    url: str
    events: list[str]
    team_id: str
    secret: str | None = None


class CreateWebhookSchema(StrictSchema):
    url = Text(required=True, validate=validate.Length(1, URL_MAX),
               metadata={"description": "https://..., or http:// to a host in the WebhookHttpHosts setting."})
    events = _events(required=True)
    secret = Text(validate=validate.Length(1, SECRET_MAX),
                  metadata={"description": "Signs each delivery; generated when left out, and shown only once."})
    team_id = OptionalId(load_default="", metadata={"description": "Only incidents of this team; empty: all."})

    @post_load
    def to_webhook(self, data: dict[str, Any], **_: Any) -> NewWebhook:
        return NewWebhook(**data)


class UpdateWebhookSchema(StrictSchema):
    url = Text(validate=validate.Length(1, URL_MAX))
    events = _events()
    secret = Text(validate=validate.Length(1, SECRET_MAX), metadata={"description": "A new signing secret."})
    team_id = OptionalId()

    @post_load
    def to_changes(self, data: dict[str, Any], **_: Any) -> WebhookChanges:
        return WebhookChanges(**data)


class WebhookSchema(Schema):
    id = fields.String()
    url = fields.String()
    events = fields.List(fields.String())
    team_id = fields.String()
    creator_user_id = fields.String()
    create_at = fields.Integer()
    update_at = fields.Integer()


class NewWebhookSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "The signing secret: shown in this answer only, never again."})


class WebhookPageSchema(PageSchema):
    items = fields.List(fields.Nested(WebhookSchema))


class AttemptSchema(Schema):
    at = fields.Integer(metadata={"description": "When, in milliseconds since 1970."})
    response_code = fields.Integer(allow_none=True, metadata={"description": "The receiver's HTTP status; null "
                                                                             "when it was not reached."})
    error = fields.String(metadata={"description": "Why the attempt failed (empty when it succeeded)."})
    duration_ms = fields.Integer()


class DeliverySchema(Schema):
    id = fields.String(metadata={"description": "The delivery id: the X-Incident-Delivery header and the body's id."})
    webhook_id = fields.String()
    incident_id = fields.String()
    event_type = fields.String()
    status = fields.String(metadata={"description": "pending, delivered or failed."})
    attempts = fields.Integer()
    last_response_code = fields.Integer(allow_none=True)
    create_at = fields.Integer()
    next_at = fields.Integer(metadata={"description": "When a pending delivery is tried next."})
    finished_at = fields.Integer(metadata={"description": "When it was delivered or given up (0: pending)."})
    attempt_log = fields.List(fields.Nested(AttemptSchema), data_key="attempt_log")


class DeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema))


class DeliveryListQuerySchema(PagingSchema):
    pass


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/webhooks blueprint bound to the app's webhook service."""
    blp = Blueprint("webhooks", __name__, url_prefix="/api/v0/webhooks",
                    description="Outgoing webhooks: signed, retried deliveries of timeline entries (system admins).")
    service = components.webhooks

    admins_only(blp, components, "Only system admins may manage webhooks.")

    @blp.route("", methods=["POST"])
    @blp.arguments(CreateWebhookSchema)
    @blp.response(201, NewWebhookSchema)
    def create(new: NewWebhook) -> Any:
        """Register a webhook; the answer holds its secret, shown this once."""
        hook = service.create(g.user_id, new.url, new.events, new.secret, new.team_id)
        return hook, 201, {"Location": url_for("webhooks.get", webhook_id=hook.id)}

    @blp.route("", methods=["GET"])
    @blp.arguments(PagingSchema, location="query")
    @blp.response(200, WebhookPageSchema)
    def list_(query: dict[str, Any]) -> Any:
        """The webhooks, oldest first, paged (secrets are never shown)."""
        total, items = service.list(g.user_id, query["page"], query["per_page"])
        return page_of(items, total, query["page"], query["per_page"])

    @blp.route("/<id:webhook_id>", methods=["GET"])
    @blp.response(200, WebhookSchema)
    def get(webhook_id: str) -> Any:
        """One webhook (its secret is never shown)."""
        return service.get(g.user_id, webhook_id)

    @blp.route("/<id:webhook_id>", methods=["PATCH"])
    @blp.arguments(UpdateWebhookSchema)
    @blp.response(200, WebhookSchema)
    def update(changes: WebhookChanges, webhook_id: str) -> Any:
        """Change any of the URL, events, team and secret."""
        return service.update(g.user_id, webhook_id, changes)

    @blp.route("/<id:webhook_id>", methods=["DELETE"])
    @blp.response(204)
    def delete(webhook_id: str) -> Any:
        """Delete a webhook and its deliveries."""
        service.delete(g.user_id, webhook_id)
        return None

    @blp.route("/<id:webhook_id>/deliveries", methods=["GET"])
    @blp.arguments(DeliveryListQuerySchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def deliveries(query: dict[str, Any], webhook_id: str) -> Any:
        """The webhook's deliveries, newest first, with every attempt: status, response code, time."""
        total, items = service.deliveries(g.user_id, webhook_id, query["page"], query["per_page"])
        return page_of(items, total, query["page"], query["per_page"])

    @blp.route("/<id:webhook_id>/deliveries/<id:delivery_id>/redeliver", methods=["POST"])
    @blp.response(200, DeliverySchema)
    def redeliver(webhook_id: str, delivery_id: str) -> Any:
        """Send a delivered or failed delivery again, with the same id and body (409 while it is pending)."""
        return service.redeliver(g.user_id, webhook_id, delivery_id)

    return blp
