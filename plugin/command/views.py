"""``POST /command`` (and ``GET``): the endpoint a Mattermost custom slash command calls.

Mattermost sends form fields (``token, team_id, team_domain, channel_id,
channel_name, user_id, user_name, command, text, trigger_id, root_id,
response_url``, and the repeated ``user_mentions``/``user_mentions_ids`` and
``channel_mentions``/``channel_mentions_ids`` paired by index) with
``Authorization: Token <token>``. The token is compared in constant time with
the ``SlashCommandToken`` setting; a mismatch is a 401 in the one error shape and
runs nothing. The plugin's launcher adds ``site_url`` (Mattermost's site URL), so that
links in replies point where a browser reaches the plugin.

A form field holding text no database can store (NUL) is refused, before anything
is read or written, with an ephemeral reply naming the field.

Every authenticated request is answered 200 ``application/json``
``{response_type, text}``: domain errors and even unexpected failures become an
ephemeral message (Mattermost shows anything else as a raw error).
"""
from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, Flask, g, jsonify, request

from plugin.api import error_response
from plugin.command.parser import parse
from plugin.command.runner import Caller, CommandRunner, reply
from plugin.model import is_id, unstorable_text
from plugin.settings import load_manifest
from plugin.store import UNAVAILABLE

log = logging.getLogger(__name__)

APOLOGY = ("Sorry, something went wrong while running this command; nothing may have changed. "
           "The server logged the details; try again, or tell an admin if it keeps happening.")
UNREACHABLE = ("The incident server could not reach its database, so this command may not have run: check, then "
               "try again in a moment.")


def _given_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "token" and value.strip():
        return value.strip()
    return _fields().get("token", "")


def _fields() -> Any:
    return request.form if request.method == "POST" else request.args


def _token_matches(expected: str) -> bool:
    given = _given_token()
    # compare_digest on bytes: constant time for equal lengths, and no early exit on content.
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def create_blueprint(components: Any) -> Blueprint:
    """The /command blueprint bound to the app's service and chat host."""
    blp = Blueprint("command", __name__)
    runner = CommandRunner(components.service, components.host, reports=components.reports)
    plugin_id = load_manifest()["id"]

    @blp.route("/command", methods=["POST", "GET"])
    def command() -> Any:
        """Run one /incident command and answer as Mattermost expects."""
        expected = components.settings.current.slash_command_token
        if not expected:
            return error_response(401, "The /command endpoint is disabled: set the SlashCommandToken setting "
                                       "to the token of the /incident slash command.")
        if not _token_matches(expected):
            return error_response(401, "Missing or wrong slash command token: send the token Mattermost shows "
                                       "for the /incident command (Authorization: Token <token>).")
        fields = _fields()
        found = unstorable_text(dict(fields.lists()))  # every value of every field
        if found:
            # Refused before anything is read or written, with the same answer on both databases.
            return jsonify(reply(_unstorable_reply(found[0][0], found[1])))
        ids = {name: fields.get(name, "") for name in ("user_id", "team_id", "channel_id")}
        bad = sorted(name for name, value in ids.items() if not is_id(value))
        if bad:
            return error_response(400, f"Malformed slash command request: {', '.join(bad)} must be ids of "
                                       "26 characters a-z0-9.", {name: "malformed" for name in bad})
        g.user_id = ids["user_id"]
        try:
            _learn_users(components.host, fields)
            caller = Caller(ids["user_id"], ids["team_id"], ids["channel_id"], fields.get("user_name", ""),
                            link_base=_link_base(fields.get("site_url", ""), plugin_id))
            body = runner.run(parse(fields.get("text", "")), caller)
        except UNAVAILABLE:
            log.warning("a slash command could not reach the database", exc_info=True)
            body = reply(UNREACHABLE)
        except Exception:  # noqa: BLE001 - Mattermost must always get a message it can show
            log.exception("the slash command failed unexpectedly")
            body = reply(APOLOGY)
        return jsonify(body)

    return blp


def _link_base(site_url: str, plugin_id: str) -> str:
    """Where links in replies start: under Mattermost's site URL for the plugin (the launcher sends ``site_url``,
    and Mattermost serves the plugin's routes at /plugins/<id>), else this server's own URL as it was called."""
    site = site_url.strip().rstrip("/")
    if site.startswith(("http://", "https://")):
        return f"{site}/plugins/{plugin_id}"
    return request.url_root.rstrip("/")


def _unstorable_reply(field: str, problem: str) -> str:
    where = "The command text" if field == "text" else f"The {field} field of the slash command request"
    return f"{where} {problem}: remove it and run the command again. Nothing was changed."


def _learn_users(host: Any, fields: Any) -> None:
    """Tell the host the usernames Mattermost vouched for: the caller and any @mentions."""
    pairs = [(fields.get("user_id", ""), fields.get("user_name", ""))]
    pairs += zip(fields.getlist("user_mentions_ids"), fields.getlist("user_mentions"))
    for user_id, username in pairs:
        if is_id(user_id) and username:
            try:
                host.note_user(user_id, username)
            except Exception:  # noqa: BLE001 - remembering names is a convenience, never a failure
                log.warning("could not record a username", exc_info=True)


def init_app(app: Flask, components: Any) -> None:
    """Register the /command endpoint."""
    app.register_blueprint(create_blueprint(components))
