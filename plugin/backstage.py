"""The backstage page at ``/backstage/``: its built files and its sign-in.

The page itself (``webapp_stub/dist/backstage/``, built from ``webapp_stub/src/backstage``)
is static and served to anyone; every fact it shows comes from the API, which
authenticates each request. Inside Mattermost the API sees the user Mattermost
signed in (the ``Mattermost-User-ID`` header the launcher forwards). Standalone,
the development sign-in lets a visitor pick one of the local chat host's users
and keeps the choice in a signed, HttpOnly, SameSite=Lax cookie (Flask's session)
that lasts 12 hours; a request that changes something with that cookie must also
carry the session's ``X-CSRF-Token``, which only a page of this origin can read.
Signing out ends every development sign-in of that user, so a copied cookie dies too.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, g, jsonify, redirect, request, send_from_directory, session
from flask.sessions import SecureCookieSessionInterface
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from plugin.api import USER_HEADER, authenticate
from plugin.command.console import DEFAULT_TEAM
from plugin.command.parser import USERNAME_MAX
from plugin.errors import BadInput, NotFound, PermissionDenied, Unauthorized
from plugin.model import ID_PATTERN, is_id, text_problem
from plugin.store.kv import read_value, value_made_once
from plugin.store.tables import plugin_kv

# The built page; served from the source tree and from the plugin bundle alike.
DIST = Path(__file__).resolve().parent.parent / "webapp_stub" / "dist" / "backstage"
SESSION_KEY_NAME = "backstage_session_key"
CSRF_HEADER = "X-CSRF-Token"
# Sent by the page's fetch on sign-in and sign-out: a cross-site form cannot add it.
REQUESTED_WITH = "X-Requested-With"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_NAME_IDS = 200
# How long a development sign-in lasts from the moment it was made (not refreshed by use).
SESSION_LIFETIME = timedelta(hours=12)
# The page loads only its own files and talks only to its own origin; nothing may frame it
# (the Mattermost panel links to it in a new tab).
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
               "frame-ancestors 'none'")
# Per user: the generation of their development sign-ins; signing out replaces it.
GENERATION_KEY = "backstage_generation:{}"


class StoredKeySessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, signed with a key kept in the database.

    Every worker of every server on one database signs with the same key, made once
    on first use; the key is read when first needed, not when the app is built.
    """

    def __init__(self, db: Any):
        self.db = db
        self._key: str | None = None

    def open_session(self, app: Flask, request: Any) -> Any:
        """A request without the cookie (nearly every API call) gets an empty session and reads no key."""
        if not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure whenever this request itself came over https (no forwarded header is trusted)."""
        return bool(super().get_cookie_secure(app) or request.is_secure)

    def get_signing_serializer(self, app: Flask) -> Any:
        """The serializer of Flask's sessions, with the stored key as the app's secret."""
        if app.secret_key is None:
            app.secret_key = value_made_once(self.db, SESSION_KEY_NAME, lambda: secrets.token_hex(32))
        return super().get_signing_serializer(app)


class SignInGenerations:
    """Which development sign-ins of a user are still good: those made in the current generation.

    A signed cookie cannot be taken back, so signing out replaces the user's generation
    (kept in the database, so every worker agrees) and every older cookie stops working.
    """

    def __init__(self, db: Any):
        self.db = db

    def current(self, user_id: str) -> str | None:
        """The user's generation, or None if none was ever made."""
        return read_value(self.db, GENERATION_KEY.format(user_id))

    def for_sign_in(self, user_id: str) -> str:
        """The generation a new sign-in joins, made on the user's first sign-in."""
        return value_made_once(self.db, GENERATION_KEY.format(user_id), lambda: secrets.token_urlsafe(16))

    def end(self, user_id: str) -> None:
        """End every development sign-in of the user (who has a generation, having signed in)."""
        # An update, not a delete and insert: sign-outs racing each other never collide on the key.
        with self.db.write_engine.begin() as connection:
            connection.execute(sa.update(plugin_kv).where(plugin_kv.c.key == GENERATION_KEY.format(user_id))
                               .values(value=secrets.token_urlsafe(16)))


def dev_sign_in_enabled(components: Any) -> bool:
    """Is the development sign-in on: the DevSignIn setting, on a host that has a user list?"""
    if not hasattr(components.host, "users"):
        return False
    mode = components.settings.current.get("DevSignIn") or "auto"
    return mode == "on" or (mode == "auto" and not components.settings.current.host_secret)


def session_user() -> str | None:
    """The user of a valid development sign-in cookie, or None.

    Raises PermissionDenied for a change (a POST, PUT, PATCH or DELETE) sent with the
    cookie but without the session's CSRF token.
    """
    components = current_app.extensions.get("incident")
    if components is None or not request.cookies.get(current_app.config["SESSION_COOKIE_NAME"]):
        return None
    if not dev_sign_in_enabled(components):
        return None
    user_id, expected, generation = session.get("user_id"), session.get("csrf"), session.get("generation")
    if not (isinstance(user_id, str) and is_id(user_id) and isinstance(expected, str) and expected
            and isinstance(generation, str) and generation):
        return None
    if not hmac.compare_digest(generation.encode(), (SignInGenerations(components.db).current(user_id) or "").encode()):
        return None  # signed out since
    if request.method not in SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise PermissionDenied(f"This change was sent with the backstage sign-in but without its {CSRF_HEADER} "
                                   "header: send it from the backstage page, which adds it.")
    return user_id


@dataclass(frozen=True)
class SignIn:
    """The local user to sign in as."""

    user_id: str


class SignInSchema(Schema):
    """The user to sign in as."""

    class Meta:
        unknown = RAISE

    user_id = fields.String(required=True, validate=validate.Regexp(f"^{ID_PATTERN.pattern}$",
                                                                     error="Expected a user id of 26 characters a-z0-9."))

    @post_load
    def to_sign_in(self, data: dict[str, Any], **_: Any) -> SignIn:
        return SignIn(**data)


def _require_page_header() -> None:
    if request.headers.get(REQUESTED_WITH) != "XMLHttpRequest":
        raise BadInput(f"Send this from the backstage page: it needs the header {REQUESTED_WITH}: XMLHttpRequest.")


def _current_user(components: Any) -> tuple[str | None, str]:
    """(user id, how they signed in) of this request, without refusing it."""
    if request.headers.get(USER_HEADER) or request.headers.get("Authorization"):
        try:
            authenticate(components.settings.current.host_secret)
        except Unauthorized:
            return None, ""
        return g.user_id, "host"
    user_id = session_user()
    return (user_id, "dev") if user_id else (None, "")


def create_blueprint(components: Any) -> Blueprint:
    """The page's files and its session endpoints."""
    bp = Blueprint("backstage", __name__)

    @bp.get("/backstage")
    def page_without_slash() -> Any:
        return redirect(request.script_root + "/backstage/", code=308)

    @bp.get("/backstage/")
    def page() -> Any:
        """The page's one HTML document; it routes by the URL's #fragment."""
        if not (DIST / "index.html").exists():
            raise NotFound("The backstage page is not built: run npm ci && npm run build in webapp_stub/.")
        response = send_from_directory(DIST, "index.html", max_age=0)
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    @bp.get("/backstage/assets/<path:name>")
    def asset(name: str) -> Any:
        """The page's scripts and styles; their names carry a content hash, so they keep."""
        return send_from_directory(DIST / "assets", name, max_age=365 * 24 * 3600)

    @bp.get("/backstage/api/session")
    def who_am_i() -> Any:
        """Who the page is showing things for, whether the development sign-in is offered, the CSRF token
        and the severity levels in force."""
        user_id, via = _current_user(components)
        body: dict[str, Any] = {"user_id": user_id, "username": components.host.mention(user_id)[1:] if user_id else "",
                                "signed_in_via": via, "dev_sign_in": dev_sign_in_enabled(components),
                                "is_admin": bool(user_id) and components.host.is_system_admin(user_id),
                                "csrf_token": session.get("csrf", "") if via == "dev" else "",
                                "severity_levels": list(components.settings.current.severity_levels.names),
                                # The local host's users are in every team; the console uses this one.
                                "default_team_id": DEFAULT_TEAM if hasattr(components.host, "users") else ""}
        response = jsonify(body)
        response.headers["Cache-Control"] = "no-store"  # it carries the CSRF token
        return response

    @bp.get("/backstage/api/users")
    def users() -> Any:
        """The local chat host's users to pick from (only while the development sign-in is on)."""
        if not dev_sign_in_enabled(components):
            raise PermissionDenied("The development sign-in is off (the DevSignIn setting, or HostSecret is set).")
        return jsonify({"items": [{"id": user_id, "username": name} for name, user_id in components.host.users()]})

    @bp.post("/backstage/api/sign-in")
    def sign_in() -> Any:
        """Sign in as one of the local chat host's users (development only)."""
        _require_page_header()
        if not dev_sign_in_enabled(components):
            raise PermissionDenied("The development sign-in is off (the DevSignIn setting, or HostSecret is set).")
        session_user()  # switching user from a live sign-in needs its CSRF token
        try:
            wanted = SignInSchema().load(request.get_json(silent=True) or {})
        except ValidationError as error:
            raise BadInput("Invalid sign-in: " + "; ".join(f"{key}: {' '.join(value)}" for key, value in
                                                          error.normalized_messages().items())) from None
        known = {user_id for _, user_id in components.host.users()}
        if wanted.user_id not in known:
            raise BadInput("No such user on the local chat host: pick one of GET /backstage/api/users, or add one "
                           "with incident-plugin users add NAME.", {"user_id": wanted.user_id})
        # A new session whatever cookie came with the request: nothing of an earlier one is kept.
        session.clear()
        session.permanent = True
        session["user_id"] = wanted.user_id
        session["csrf"] = secrets.token_urlsafe(24)
        session["generation"] = SignInGenerations(components.db).for_sign_in(wanted.user_id)
        return jsonify({"user_id": wanted.user_id, "csrf_token": session["csrf"]})

    @bp.post("/backstage/api/sign-out")
    def sign_out() -> Any:
        """End the development sign-in: this cookie, and every other one of the same user."""
        _require_page_header()
        user_id = session_user()  # needs the session's CSRF token
        if user_id:
            SignInGenerations(components.db).end(user_id)
        session.clear()
        return jsonify({"user_id": None})

    @bp.get("/backstage/api/names")
    def names() -> Any:
        """Usernames of up to 200 user ids (``ids=a,b``), as the chat host knows them."""
        user_id, _ = _current_user(components)
        if not user_id:
            raise Unauthorized("Sign in first: this page needs a signed-in user.")
        ids = [part for part in request.args.get("ids", "").split(",") if part]
        if len(ids) > MAX_NAME_IDS or not all(is_id(part) for part in ids):
            raise BadInput(f"ids must be up to {MAX_NAME_IDS} user ids (26 characters a-z0-9) separated by commas.")
        return jsonify({part: components.host.mention(part)[1:] for part in dict.fromkeys(ids)})

    @bp.get("/backstage/api/lookup")
    def lookup() -> Any:
        """The id of the user with this username (``username=bob``, no @), as the chat host knows it."""
        user_id, _ = _current_user(components)
        if not user_id:
            raise Unauthorized("Sign in first: this page needs a signed-in user.")
        username = request.args.get("username", "").strip().lstrip("@")
        problem = text_problem(username)
        if problem:  # PostgreSQL cannot even compare such text: refused on either database alike
            raise BadInput(f"username {problem}: send a username of 1 to {USERNAME_MAX} characters, without the @.")
        if not username or len(username) > USERNAME_MAX:
            raise BadInput(f"username must be a username of 1 to {USERNAME_MAX} characters, without the @.")
        found = components.host.find_user_by_username(username.lower())
        if not found:
            raise NotFound(f"No user is called @{username}.", {"username": username})
        return jsonify({"id": found, "username": username.lower()})

    return bp


def init_app(app: Flask, components: Any) -> None:
    """Serve the page and keep development sign-ins in a signed cookie."""
    app.session_interface = StoredKeySessions(components.db)
    app.config.update(SESSION_COOKIE_NAME="incident_backstage", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
                      SESSION_REFRESH_EACH_REQUEST=False)
    app.register_blueprint(create_blueprint(components))
    app.after_request(protective_headers)


def protective_headers(response: Any) -> Any:
    """Headers every answer carries: no type sniffing, no framing, no referrer, no shared caching of answers."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # Answers of the API depend on who asks: a browser may keep them to revalidate (ETag), a proxy never.
    if request.path.startswith(("/api/", "/backstage/api/")) and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "private, no-cache"
    return response
