"""Domain errors: the only failures the service layer raises on purpose.

Each error carries a message written for the person who made the request: it says
what is wrong and, where it can, how to fix it. The HTTP layer maps each class to
one status code and one JSON shape (``{"error": message, "details": {...}}``); the
slash command shows ``chat``, the same message as chat Markdown, as an ephemeral reply.
The message is plain text: a web page shows it as it is. An error quoting people's text
gives ``chat`` too, with that text escaped (``plugin.markdown.chat_inline``); any other
may use chat Markdown an API reader still reads at a glance, such as `code`.
"""
from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a message for the caller plus optional structured details."""

    status = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, chat: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.chat = message if chat is None else chat


class BadInput(DomainError):
    """The request is well-formed but asks for something impossible (e.g. a stage that does not exist)."""

    status = 400


class UnsupportedMediaType(DomainError):
    """A request body in a format the endpoint does not read (it reads JSON)."""

    status = 415


class Unauthorized(DomainError):
    """The caller did not say who they are (no or malformed user id, wrong host secret)."""

    status = 401


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    status = 403


class NotFound(DomainError):
    """The thing named does not exist (or the caller may not know that it does)."""

    status = 404


class InvalidState(DomainError):
    """The thing exists but its state forbids the change (ending an ended incident)."""

    status = 409


class PreconditionFailed(DomainError):
    """The caller asked for the change only at a version of the thing that is no longer current (If-Match)."""

    status = 412


class HostUnavailable(DomainError):
    """The chat host could not be reached or refused a call we need."""

    status = 502


class ConcurrentUpdate(InvalidState):
    """Another writer committed a change to the same incident first (retried by the service)."""

    def __init__(self, message: str = "The incident was changed by someone else at the same time; try again.",
                 details: dict[str, Any] | None = None):
        super().__init__(message, details)
