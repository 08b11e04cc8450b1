"""What the server's logs may say: ids, counts, states, route patterns and error types, never what someone typed.

Names, descriptions, task texts, usernames, search terms and raw paths stay out of
every log line at every level:

- the access line names the route's pattern (``/api/v0/incidents/<incident_id>``),
  not the path that was asked for, and never the query string;
- an exception is logged with its type and traceback, without its message: the
  message of a database or chat host error can quote the values of the statement
  or request that failed;
- gunicorn's own error log keeps the kind of a malformed request and drops the
  request line, header or URI it would quote;
- the SQLAlchemy engines are created with ``hide_parameters`` (plugin.store.database).
"""
from __future__ import annotations

import logging
import re
import traceback
from types import TracebackType
from typing import Any

UNMATCHED = "-"
# gunicorn's "Invalid request from ip=...: <kind>: <the request line or header, quoted>".
_INVALID_REQUEST = re.compile(r"^(Invalid request from ip=\S+: [^:'\"]*)")


def route_pattern(request: Any) -> str:
    """The URL rule a Flask request matched, converters left out (``/x/<int:n>`` -> ``/x/<n>``), or "-"."""
    rule = getattr(request, "url_rule", None)
    if rule is None:
        return UNMATCHED
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"<\1>", rule.rule)


def bare_traceback(error: BaseException) -> str:
    """The traceback of error and of the exceptions it was raised from, with types but no messages."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for exc in reversed(chain):
        if parts:
            parts.append("\nwhich led to:\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exc.__traceback__))
        kind = type(exc)
        parts.append(f"{kind.__module__}.{kind.__qualname__} (message not logged: it may quote input)\n")
    return "".join(parts).rstrip("\n")


class NoTypedText(logging.Filter):
    """Rewrites a record so that it carries nothing a user typed (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc_info: tuple[type[BaseException], BaseException, TracebackType | None] | None = \
            record.exc_info if isinstance(record.exc_info, tuple) else None
        if exc_info and exc_info[1] is not None:
            # Formatters use exc_text when it is set, instead of formatting exc_info.
            record.exc_text = bare_traceback(exc_info[1])
        if record.name == "gunicorn.error":
            _gunicorn(record)
        return True


def _gunicorn(record: logging.LogRecord) -> None:
    message = str(record.msg)
    if message.startswith("Error handling request"):
        record.msg, record.args = "Error handling a request (its URI is not logged)", ()
        return
    match = _INVALID_REQUEST.match(message)
    if match:
        record.msg, record.args = match.group(1).rstrip() + " (the request is not logged)", ()


_FILTER = NoTypedText()


def install() -> None:
    """Put the filter on every logger of this package loaded so far and on gunicorn's error log.

    A logger's filters see only what is logged through that logger itself, so each
    one gets it; call this once everything that logs has been imported (the app
    factory and the CLI do). Adding it again changes nothing.
    """
    names = [name for name in list(logging.root.manager.loggerDict)
             if name == "plugin" or name.startswith("plugin.")]
    for name in [*names, "gunicorn.error"]:
        logging.getLogger(name).addFilter(_FILTER)


def has_filter(logger: logging.Logger) -> bool:
    """True when logger's records pass through the filter."""
    return _FILTER in logger.filters
