"""The HTTP face: flask-smorest blueprints, one error shape, request identity."""
from __future__ import annotations

import hmac
import io
import json
import logging
import math
import re
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from plugin.api.schemas import ErrorSchema
from plugin.errors import BadInput, DomainError, Unauthorized
from plugin.model import ID_PATTERN, is_id

log = logging.getLogger(__name__)

USER_HEADER = "Mattermost-User-ID"
SECRET_HEADER = "X-Host-Secret"


class Parser(FlaskParser):
    """Bad input is a 400 (Bad Request), like every other malformed request.

    Unknown fields are refused in every location, query strings included (each
    schema says RAISE), so a misspelt filter never silently lists everything.
    """

    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {}

    def _raw_load_json(self, req: Any) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            # A body of deeply nested arrays exhausts the decoder's stack: bad JSON, not a crash.
            raise json.JSONDecodeError("JSON nested too deeply", "nested", 0) from None


# Error answers every operation may give, documented so clients (and fuzzers) know them.
COMMON_ERRORS = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 502: "BAD_GATEWAY"}
WRITE_ERRORS = {409: "CONFLICT", 413: "REQUEST_ENTITY_TOO_LARGE"}
_PATH_ID = re.compile(r"<(?:[^:<>]+:)?([a-z_]+_id)>")


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose argument errors are 400s and whose errors are documented."""

    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._prepare_doc_cbks.insert(0, self._prepare_error_doc)

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, with one schema instance per route made here, once.

        Given a class, webargs builds a new instance for every request, and each
        instance deep-copies its fields and its nested schemas' fields: a tenth of a
        create. Loading does not change a schema, so one instance serves every request.
        """
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def route(self, rule: str, *, parameters: list | None = None, **options: Any) -> Any:
        """Like flask-smorest's route, documenting each ``*_id`` path parameter as an id."""
        parameters = list(parameters or [])
        for name in _PATH_ID.findall(rule):
            parameters.append({"in": "path", "name": name, "required": True,
                               "description": "An id of 26 characters a-z0-9.",
                               "schema": {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}})
        return super().route(rule, parameters=parameters, **options)

    @staticmethod
    def _prepare_error_doc(doc: dict, doc_info: dict, *, method: str, **_: Any) -> dict:
        responses = doc_info.setdefault("response", {}).setdefault("responses", {})
        errors = COMMON_ERRORS | (WRITE_ERRORS if method in {"post", "put", "patch", "delete"} else {})
        for status, name in errors.items():
            if status not in responses and str(status) not in responses:
                responses[status] = [name]
        return doc


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    """Validation messages as 'field: message' lines."""
    if isinstance(messages, dict):
        lines = []
        for key, value in messages.items():
            name = prefix if key in ("json", "query", "form", "_schema") else f"{prefix}{key}"
            lines += _flatten(value, f"{name}." if name and not name.endswith(".") else name)
        return lines
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix.rstrip('.')}: {' '.join(messages)}" if prefix else " ".join(messages)]
    if isinstance(messages, list):
        return [line for m in messages for line in _flatten(m, prefix)]
    return [f"{prefix.rstrip('.')}: {messages}" if prefix else str(messages)]


def path_id(value: str, kind: str) -> str:
    """An id taken from the URL path, or a 400 naming what it should have been."""
    if not is_id(value):
        article = "an" if kind[0] in "aeiou" else "a"
        raise BadInput(f"'{value[:40]}' is not {article} {kind} id: ids are 26 characters a-z0-9.",
                       {f"{kind}_id": "malformed"})
    return value


def page_of(items: list[Any], total: int, page: int, per_page: int) -> dict[str, Any]:
    """The list envelope every listing answers with."""
    return {"total_count": total, "page_count": math.ceil(total / per_page),
            "has_more": (page + 1) * per_page < total, "items": items}


def error_response(status: int, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Any:
    """The one error payload: {"error": ..., "details": {...}}."""
    response = jsonify({"error": message, "details": details or {}})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


class Api(SmorestApi):
    """flask-smorest's Api with our error payload."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") or data.get("errors")
        if messages:
            details = {location: value for location, value in messages.items()} if isinstance(messages, dict) else {}
            lines = _flatten(messages)
            message = "Invalid request: " + "; ".join(line.rstrip(".") for line in lines) + "."
            return error_response(400, message, details, data.get("headers"))
        if error.code == 413:
            return error_response(413, "The request body is too large; send less than the MaxBodyBytes setting "
                                       "allows.", {"max_body_bytes": request.max_content_length})
        if error.code == 404:
            return error_response(404, f"No such endpoint: {request.method} {request.path}. "
                                       "See /api/v0/openapi.json for the API.")
        if error.code == 405:
            return error_response(405, f"{request.method} is not allowed on {request.path}.",
                                  {"allowed": sorted(error.valid_methods or [])})  # type: ignore[attr-defined]
        if error.code and error.code >= 500:
            log.error("server error on %s %s", request.method, request.path, exc_info=error)
            return error_response(error.code, "Internal error; the server logged the details.")
        return error_response(error.code or 500, error.description or error.name)


def limit_body(limit: int) -> None:
    """Refuse a request body over ``limit`` bytes with 413, however it is framed.

    The one check of MaxBodyBytes, run before every view with the value in force
    for this request. A declared Content-Length is compared as it is (the front
    serving the app gives every body one, a chunked body included, after reading it
    whole). A chunked body whose end the WSGI server marks (``wsgi.input_terminated``)
    is read here, one byte past the limit to tell a body at the limit from one over
    it, and handed to the view from memory: never cut at the limit and accepted.
    """
    request.max_content_length = limit
    length = request.content_length
    if length is None and request.environ.get("wsgi.input_terminated") \
            and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        length = 0
        while length <= limit:
            part = request.input_stream.read(limit + 1 - length)
            if not part:
                break
            parts.append(part)
            length += len(part)
        request.stream = io.BytesIO(b"".join(parts))
    if length is not None and length > limit:
        raise RequestEntityTooLarge()


def _bearer_user() -> str | None:
    """The user of an ``Authorization: Bearer`` Mattermost token, when the Mattermost host is configured.

    None when there is no bearer token or no Mattermost host (the usual header rules
    apply then); raises Unauthorized when Mattermost rejects the token.
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    components = current_app.extensions.get("incident")
    verify = getattr(getattr(components, "host", None), "user_for_token", None)
    if verify is None:
        return None
    user_id = verify(token.strip())
    if not user_id:
        raise Unauthorized("Mattermost did not accept the bearer token: send a valid personal access token "
                           "or session token of your Mattermost account.")
    return user_id


def authenticate(settings_secret: str) -> None:
    """Set g.user_id from a Mattermost bearer token or the host's headers, or refuse with 401."""
    bearer_user = _bearer_user()
    if bearer_user:
        # The token was verified by Mattermost itself, so neither the host secret nor the
        # Mattermost-User-ID header (which a direct caller could forge) is consulted.
        g.user_id = bearer_user
        return
    if settings_secret:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), settings_secret.encode()):
            raise Unauthorized(f"Missing or wrong {SECRET_HEADER} header: this server only accepts requests "
                               "from its chat host.")
    user_id = request.headers.get(USER_HEADER, "")
    if not user_id:
        raise Unauthorized(f"Missing {USER_HEADER} header: requests must come through the chat host, "
                           "which sets it for a signed-in user.")
    if not is_id(user_id):
        raise Unauthorized(f"Malformed {USER_HEADER} header: expected a user id of 26 characters a-z0-9.")
    g.user_id = user_id


def init_app(app: Flask, components: Any) -> Api:
    """Register the API blueprints and the error handlers on app."""
    from plugin.api import incidents, playbooks, settings, telemetry

    app.config.setdefault("API_TITLE", "Incident Response")
    app.config.setdefault("API_VERSION", "v0")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v0")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = Api(app, spec_kwargs={"components": {"securitySchemes": {
        "MattermostUserId": {"type": "apiKey", "in": "header", "name": USER_HEADER},
        "MattermostToken": {"type": "http", "scheme": "bearer"}}}})

    @app.before_request
    def _limit_body() -> None:
        # Read per request: MaxBodyBytes may change at run time.
        limit_body(components.settings.current.max_body_bytes)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        return error_response(error.status, error.message, error.details)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=error)
        return error_response(500, "Internal error; the server logged the details.")

    for module in (incidents, playbooks, settings, telemetry):
        api.register_blueprint(module.create_blueprint(components))
    return api
