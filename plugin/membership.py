"""Leaves from channels and teams, as the plugin's launcher reports them: ``POST /launcher/membership-left``.

The Mattermost host caches "is a member" answers and users' channel lists for a few
seconds in every worker process of every server (``plugin.chat.mattermost``). Someone
removed from a private incident's channel must lose it at once, so the launcher
passes on Mattermost's ``UserHasLeftChannel`` and ``UserHasLeftTeam`` hooks here, and
a notice raises the settings version (``advance_state``) before it returns. Every
process already reads that version at the start of each request, and the host trusts
a cached membership only while the version it was fetched under is in force. Reusing
the version adds no read per request, no table and no second way to reach every
process; its price, after a leave, is one reload of the saved settings and fresh
membership calls in each process, for every user rather than the one who left, which
is cheap because leaves are rare.

Only the launcher may send notices: the request must carry the activation's
``X-Host-Secret``, and the launcher never forwards browser requests to ``/launcher/``.
Logs name ids only.
"""
from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Blueprint, Flask, request
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validates_schema

from plugin.api import SECRET_HEADER, describe_messages
from plugin.errors import BadInput, PermissionDenied, Unauthorized, UnsupportedMediaType
from plugin.model import is_id

log = logging.getLogger(__name__)

LEFT_PATH = "/launcher/membership-left"


class VersionUnitOfWork(AbstractContextManager, Protocol):
    """What a notice needs of a unit of work: the settings version to raise, and commit."""

    saved_settings: Any

    def commit(self) -> object: ...


class MembershipNotices:
    """Make every process stop trusting the memberships it cached before a leave."""

    def __init__(self, uow_factory: Callable[[], VersionUnitOfWork]):
        self.uow_factory = uow_factory

    def left(self, user_id: str, *, channel_id: str = "", team_id: str = "") -> None:
        """Someone left a channel or a team: raise the settings version; returns once every process sees it."""
        with self.uow_factory() as uow:
            uow.saved_settings.advance()
            uow.commit()  # waits out every process's lease on the version it read
        log.info("membership left: user=%s channel=%s team=%s", user_id, channel_id or "-", team_id or "-")


def _id(value: str) -> None:
    if not is_id(value):
        raise ValidationError("Expected an id of 26 characters a-z0-9.")


@dataclass(frozen=True)
class Departure:
    """Who left, and the channel or the team they left ("" for the one not given)."""

    user_id: str
    channel_id: str = ""
    team_id: str = ""


class LeftSchema(Schema):
    """``{user_id, channel_id}`` or ``{user_id, team_id}``."""

    class Meta:
        unknown = RAISE

    user_id = fields.String(required=True, validate=_id)
    channel_id = fields.String(validate=_id)
    team_id = fields.String(validate=_id)

    @validates_schema
    def _one_place(self, data: dict[str, Any], **_: Any) -> None:
        if ("channel_id" in data) == ("team_id" in data):
            raise ValidationError("Give either channel_id or team_id, not both and not neither.")

    @post_load
    def to_departure(self, data: dict[str, Any], **_: Any) -> Departure:
        return Departure(**data)


def require_launcher(secret: str, what: str = "Membership notices") -> None:
    """Refuse a call to a ``/launcher/`` route that does not carry the launcher's secret; what names the calls."""
    if not secret:
        raise PermissionDenied(f"{what} come from the plugin's launcher only, and this server runs "
                               "without the HostSecret setting it sends.")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise Unauthorized(f"Missing or wrong {SECRET_HEADER} header: {what[0].lower() + what[1:]} come from the "
                           "plugin's launcher only.")


def launcher_body(secret: str, what: str, shape: str) -> dict[str, Any]:
    """The JSON object a call to a ``/launcher/`` route carries, once the caller proved to be the launcher.

    what names the calls in a refusal, shape shows the object expected.
    """
    require_launcher(secret, what)
    if not request.is_json:
        raise UnsupportedMediaType("The body must be JSON, sent with Content-Type: application/json.",
                                   {"content_type": request.mimetype or ""})
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None  # nested too deeply to decode: not an object expected either
    if not isinstance(body, dict):
        raise BadInput(f"The body must be a JSON object: {shape}.")
    return body


def init_app(app: Flask, components: Any) -> None:
    """Register the notice endpoint on app."""
    notices = MembershipNotices(components.db.unit_of_work)
    schema = LeftSchema()
    blp = Blueprint("membership", __name__)

    @blp.post(LEFT_PATH)
    def membership_left() -> Any:
        """Someone left a channel or a team in Mattermost: 204 once no process trusts older memberships."""
        body = launcher_body(components.settings.current.host_secret, "Membership notices",
                             '{"user_id": ..., "channel_id": ...} or {"user_id": ..., "team_id": ...}')
        try:
            notice = schema.load(body)
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            raise BadInput(f"Invalid membership notice: {describe_messages(messages)}.", messages) from None
        notices.left(notice.user_id, channel_id=notice.channel_id, team_id=notice.team_id)
        return "", 204

    app.register_blueprint(blp)
