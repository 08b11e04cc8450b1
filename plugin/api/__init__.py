"""The HTTP face: flask-smorest blueprints, one error shape, request identity."""
from __future__ import annotations

import hmac
import io
import json
import logging
import math
from typing import Any

from flask import Flask, current_app, g, jsonify, request
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import ValidationError, missing
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from plugin import logs, model
from plugin.api.schemas import ErrorSchema, document_details, document_severity_levels
from plugin.errors import BadInput, DomainError, PermissionDenied, Unauthorized, UnsupportedMediaType
from plugin.model import ID_PATTERN, is_id
from plugin.store import UNAVAILABLE

log = logging.getLogger(__name__)

USER_HEADER = "Mattermost-User-ID"
SECRET_HEADER = "X-Host-Secret"
# Seconds a client is asked to wait before it tries again when the database could not answer.
RETRY_AFTER_SECONDS = 1


class Parser(FlaskParser):
    """Bad input is a 400 (Bad Request), like every other malformed request.

    Unknown fields are refused in every location, query strings included (each
    schema says RAISE), so a misspelt filter never silently lists everything. Text
    no database can store is refused in every location before a schema sees it.
    """

    DEFAULT_VALIDATION_STATUS = 400
    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {}

    def load_json(self, req: Any, schema: Any) -> Any:
        try:
            data = super().load_json(req, schema)
            if data is not missing:
                # Read again to find a repeated key, which the first read kept the last of.
                json.loads(req.get_data(cache=True), object_pairs_hook=_refuse_repeated_keys)
            refuse_unstorable(data)
        except RecursionError:
            # A body of deeply nested arrays exhausts the decoder's stack: bad JSON, not a crash.
            raise BadInput("The body is not valid JSON: it is nested too deeply.") from None
        except ValueError:
            # Python refuses to read an integer of thousands of digits (int_max_str_digits).
            raise BadInput("The body is not valid JSON: a number in it has too many digits to read.") from None
        return data

    def load_querystring(self, req: Any, schema: Any) -> Any:
        refuse_unstorable(_every_value(req.args))
        self._refuse_repeated_parameters(req.args, schema)
        return super().load_querystring(req, schema)

    def _refuse_repeated_parameters(self, args: Any, schema: Any) -> None:
        """A parameter that takes one value given more than once is refused, not read as its first value."""
        multiple = tuple(self.KNOWN_MULTI_FIELDS)
        single = {field.data_key or name for name, field in schema.fields.items()
                  if not getattr(field, "is_multiple", isinstance(field, multiple))}
        repeated = {key: [f"Given {len(values)} times: give it once."]
                    for key, values in args.lists() if key in single and len(values) > 1}
        if repeated:
            raise ValidationError(repeated)

    def load_form(self, req: Any, schema: Any) -> Any:
        refuse_unstorable(_every_value(req.form))
        return super().load_form(req, schema)


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing one that gives a key twice (readers differ on which one counts)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise BadInput(f'The body gives the field "{key[:40]}" more than once: give each field once.',
                           {"field": key[:40]})
        found[key] = value
    return found


def _every_value(values: Any) -> dict[str, Any]:
    """A query string or form as a dict: a repeated key maps to the list of its values."""
    return {key: found[0] if len(found) == 1 else found for key, found in values.lists()}


def refuse_unstorable(data: Any) -> None:
    """Raise a ValidationError naming the first text in data that no database can store.

    Every key and value a request carries is checked, whatever its schema would make
    of it, so every route gives the same answer on both databases.
    """
    found = model.unstorable_text(data)
    if found:
        path, problem = found
        message: Any = [problem[0].upper() + problem[1:] + "."]
        for key in reversed(path or ("_schema",)):
            message = {key: message}
        raise ValidationError(message)


# The rules a client can rely on, published as the OpenAPI document's description (docs/api.md has them too).
STATUS_RULES = (
    "Every failure answers {\"error\": \"<what is wrong and how to fix it>\", \"details\": {...}} and changes "
    "nothing. Stages and tasks are numbered from 0. A path segment that is not a well-formed id, stage or task "
    "number (for example -1) is a 400 naming it; a path naming a stage or task the incident does not have is a "
    "404 saying how many it has; a body field out of range (active_stage, item_num, new_location) is a 400 "
    "naming the field and the numbers allowed; 409 is only for a change the incident's state forbids (such as "
    "ending an ended incident, or a status update once it has ended). A body must be JSON (Content-Type: application/json), sent "
    "uncompressed (no Content-Encoding but identity): 415 otherwise; 413 when it is over MaxBodyBytes.")

# Error answers every operation may give, documented so clients (and fuzzers) know them.
COMMON_ERRORS = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                 502: "BAD_GATEWAY"}
WRITE_ERRORS = {409: "CONFLICT", 413: "REQUEST_ENTITY_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


class MalformedId(BadRequest):
    """A path segment where an id belongs that is not one."""

    def __init__(self, value: str):
        super().__init__(f"'{value[:40]}' is not an id: ids in paths are 26 characters a-z0-9.")


class IdConverter(BaseConverter):
    """``<id:name>``: a path segment that must be an id; anything else is a 400 saying so."""

    def to_python(self, value: str) -> str:
        if not is_id(value):
            raise MalformedId(value)
        return value


def _id_parameter(_converter: IdConverter) -> dict[str, str]:
    return {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$", "description": "An id of 26 characters a-z0-9."}


# Digits a stage or task number in a path may have; more is refused before int() reads it.
NUMBER_MAX_DIGITS = 100


class MalformedNumber(BadRequest):
    """A path segment where a stage or task number belongs that is not a whole number from 0."""

    def __init__(self, what: str, value: str):
        super().__init__(f"'{value[:40]}' is not a {what} number: an incident's {what}s are numbered from 0 "
                         "(0, 1, 2, ... as GET /api/v0/incidents/{id} lists them).")
        self.details = {what: value[:40]}


class NumberConverter(BaseConverter):
    """A path segment that must be a stage or task number (from 0); anything else is a 400 saying so.

    Unlike werkzeug's ``int``, which leaves ``-1`` or ``1.5`` to match no route (a 404
    that blames the endpoint), every segment reaches this check. A number past the
    incident's last stage or task is the model's to refuse: 404, naming how many it has.
    """

    what = "number"

    def to_python(self, value: str) -> int:
        if not (value.isascii() and value.isdigit() and len(value) <= NUMBER_MAX_DIGITS):
            raise MalformedNumber(self.what, value)
        return int(value)


class StageConverter(NumberConverter):
    """``<stage:name>``: a stage's number, from 0."""

    what = "stage"


class TaskConverter(NumberConverter):
    """``<task:name>``: a task's number within its stage, from 0."""

    what = "task"


def _number_parameter(converter: NumberConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0,
            "description": f"A {converter.what} number: an incident's {converter.what}s are numbered from 0."}


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose argument errors are 400s and whose errors are documented."""

    ARGUMENTS_PARSER = Parser()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.before_request(require_json_body)

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        """As flask-smorest's, with one schema instance per route made here, once (loading never changes it)."""
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)

    def route(self, rule: str, **options: Any) -> Any:
        """Like flask-smorest's route, documenting the error answers every such operation may give."""
        register = super().route(rule, **options)
        writes = {method.upper() for method in options.get("methods", ["GET"])} & {"POST", "PUT", "PATCH", "DELETE"}
        errors = COMMON_ERRORS | (WRITE_ERRORS if writes else {})

        def decorator(view: Any) -> Any:
            for status, name in errors.items():
                view = self.alt_response(status, response=name)(view)
            return register(view)

        return decorator


def _has_body() -> bool:
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def refuse_encoded_body() -> None:
    """A body must be sent as it is: any Content-Encoding but identity is a 415 naming it, on every route.

    No route decodes a compressed body: a JSON one would reach the decoder as bytes
    and be called invalid JSON, a slash command's form would lose its token.
    """
    encoding = request.headers.get("Content-Encoding", "")
    if _has_body() and encoding.strip().lower() not in ("", "identity"):
        raise UnsupportedMediaType(
            "The body must be sent uncompressed (Content-Encoding: identity, or no Content-Encoding); this request "
            f"said Content-Encoding: {encoding[:40]}.", {"content_encoding": encoding[:40]})


def require_json_body() -> None:
    """A request that carries a body must say it is JSON in UTF-8; anything else is a 415 naming the header."""
    has_body = _has_body()
    charset = request.mimetype_params.get("charset", "utf-8")
    if has_body and request.is_json and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"The body must be JSON in UTF-8; this request said charset={charset[:40]}.",
                                   {"charset": charset[:40]})
    if has_body and not request.is_json:
        raise UnsupportedMediaType(
            f"The body must be JSON, sent with the header Content-Type: application/json "
            f"(this request said {request.mimetype or 'nothing'}).", {"content_type": request.mimetype or ""})


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


def describe_messages(messages: Any) -> str:
    """Validation messages as one clause: 'field: message; field: message'."""
    return "; ".join(line.rstrip(".") for line in _flatten(messages))


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
            message = f"Invalid request: {describe_messages(messages)}."
            return error_response(400, message, details, data.get("headers"))
        if error.code == 413:
            return error_response(413, "The request body is too large; send less than the MaxBodyBytes setting "
                                       "allows.", {"max_body_bytes": request.max_content_length})
        if error.code == 404:
            return error_response(404, f"No such endpoint: {request.method} {request.path}. "
                                       "See /api/v0/openapi.json for the API.")
        if error.code == 405:
            allowed = sorted(error.valid_methods or [])  # type: ignore[attr-defined]
            return error_response(405, f"{request.method} is not allowed on {request.path}.",
                                  {"allowed": allowed}, {"Allow": ", ".join(allowed)})
        if error.code and error.code >= 500:
            log.error("server error on %s %s", request.method, logs.route_pattern(request), exc_info=error)
            return error_response(error.code, "Internal error; the server logged the details.")
        return error_response(error.code or 500, error.description or error.name, getattr(error, "details", None))


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
    """Set g.user_id from a Mattermost bearer token, the host's headers or the backstage sign-in, or refuse with 401."""
    bearer_user = _bearer_user()
    if bearer_user:
        # The token was verified by Mattermost itself, so neither the host secret nor the
        # Mattermost-User-ID header (which a direct caller could forge) is consulted.
        g.user_id = bearer_user
        return
    if USER_HEADER not in request.headers and SECRET_HEADER not in request.headers:
        # The backstage page's development sign-in (a signed cookie), when it is on.
        from plugin.backstage import session_user

        signed_in = session_user()
        if signed_in:
            g.user_id = signed_in
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


def admins_only(blp: Blueprint, components: Any, refusal: str) -> None:
    """Let only system admins past the blueprint's routes (no one else's body is even read); refusal says why."""

    @blp.before_request
    def _authenticate() -> None:
        authenticate(components.settings.current.host_secret)
        if not components.host.is_system_admin(g.user_id):
            raise PermissionDenied(refusal)


def init_app(app: Flask, components: Any) -> Api:
    """Register the API blueprints and the error handlers on app."""
    from plugin.api import egress, incidents, playbooks, reports, retrospectives, settings, telemetry, webhooks

    app.config.setdefault("API_TITLE", "Incident Response")
    app.config.setdefault("API_VERSION", "v0")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v0")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = Api(app, spec_kwargs={"info": {"description": STATUS_RULES}, "components": {"securitySchemes": {
        "MattermostUserId": {"type": "apiKey", "in": "header", "name": USER_HEADER},
        "MattermostToken": {"type": "http", "scheme": "bearer"}}}})

    @app.before_request
    def _limit_body() -> None:
        # Read per request: MaxBodyBytes may change at run time.
        limit_body(components.settings.current.max_body_bytes)
        refuse_encoded_body()

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        return error_response(error.status, error.message, error.details)

    def _database_unavailable(error: Exception) -> Any:
        log.warning("the database could not answer %s %s", request.method, logs.route_pattern(request),
                    exc_info=error)
        if request.method in ("GET", "HEAD", "OPTIONS"):
            message = "The database could not be reached; try again in a moment."
        else:  # a commit cut short may or may not have been made
            message = ("The database could not be reached, so the change may not have been saved: check, then "
                       "try again in a moment.")
        return error_response(503, message, {}, {"Retry-After": str(RETRY_AFTER_SECONDS)})

    for kind in UNAVAILABLE:
        app.register_error_handler(kind, _database_unavailable)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if isinstance(error, HTTPException):
            return api.handle_http_exception(error)
        log.error("unhandled error on %s %s", request.method, logs.route_pattern(request), exc_info=error)
        return error_response(500, "Internal error; the server logged the details.")

    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, _id_parameter)
    for name, converter in (("stage", StageConverter), ("task", TaskConverter)):
        app.url_map.converters[name] = converter
        api.register_converter(converter, _number_parameter)
    api.ma_plugin.converter.add_attribute_function(document_details)
    # Registered first, so the routes refer to these components with their body rules.
    for schema in _schemas_with_body_rules():
        api.spec.components.schema(schema.__name__.removesuffix("Schema"), dict(schema.body_rules), schema=schema)
    for module in (incidents, retrospectives, playbooks, settings, telemetry, reports, webhooks, egress):
        api.register_blueprint(module.create_blueprint(components))
    document_severity_levels(api.spec.components.schemas, components.settings.current.severity_levels)
    components.settings.subscribe(
        lambda _old, new: document_severity_levels(api.spec.components.schemas, new.severity_levels))
    return api


def _schemas_with_body_rules() -> list[type]:
    """Request schemas that declare rules over the whole body."""
    from plugin.api import schemas

    return [value for value in vars(schemas).values()
            if isinstance(value, type) and value.__module__ == schemas.__name__ and getattr(value, "body_rules", None)]
