"""Schemathesis against /api/v0/openapi.json, in-process over WSGI, on SQLite and PostgreSQL.

Every operation of the published document gets valid and invalid generated
requests, with and without the user header. No answer may be a 5xx, every status
must be one the document lists for the operation, every 4xx must carry the one
error shape ``{"error": str, "details": object}``, and every answer passes all of
schemathesis's checks: what the document calls valid is accepted (or refused for
the incident's state, 409), what it calls invalid is refused, and each response
matches its documented schema, content type and headers.
Bounded: ``INCIDENT_FUZZ_EXAMPLES`` examples per operation and mode (default 12).

One rule the document cannot state: OpenAPI 3.0 has no keyword for property names,
so a free-form object (a note's details, a settings change) is documented as taking
any key, while a key holding a NUL is refused like all such text. Valid requests
with such a key are left out here; test_unstorable_text.py checks their refusal.
Nor can it relate two parameters, or a parameter to the clock: a statistics window
whose ``from`` is after its ``to`` (which defaults to now), or which is longer than the
service allows, is refused; such valid requests are left out too, and test_stats.py
checks their refusal.
"""
from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from plugin.api import USER_HEADER as USER_HEADER_NAME
from plugin.errors import BadInput
from plugin.model import now_ms
from plugin.reports import check_window
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ALICE

EXAMPLES = int(os.environ.get("INCIDENT_FUZZ_EXAMPLES", "12"))


def assert_one_error_shape(case, response) -> None:
    """No 5xx; every status is documented; every error answer is {"error": str, "details": object}."""
    label = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{label} answered {response.status_code}: {response.text[:500]}"
    documented = set(case.operation.definition.raw["responses"]) - {"default"}
    assert str(response.status_code) in documented, f"{label} answered undocumented {response.status_code}"
    if response.status_code >= 400:
        body = json.loads(response.text)
        assert set(body) == {"error", "details"}, f"{label}: {body}"
        assert isinstance(body["error"], str) and body["error"], f"{label}: {body}"
        assert isinstance(body["details"], dict), f"{label}: {body}"


def _has_nul_key(data) -> bool:
    """Whether any object in data has a key holding a NUL."""
    if isinstance(data, dict):
        return any("\x00" in str(key) or _has_nul_key(value) for key, value in data.items())
    if isinstance(data, list):
        return any(_has_nul_key(value) for value in data)
    return False


def _window_refused(case) -> bool:
    """Whether a statistics request's window is one the service refuses (out of order, or too long)."""
    if not case.formatted_path.endswith("/stats") or not isinstance(case.query, dict):
        return False
    given = {key: case.query.get(key) for key in ("from", "to")}
    try:
        window = {key: None if value is None else int(value) for key, value in given.items()}
    except (TypeError, ValueError):
        return False
    try:
        check_window(window["from"], window["to"], now_ms())
    except BadInput:
        return True
    return False


def operations(app):
    """Every operation of the app's published OpenAPI document."""
    schema = schemathesis.openapi.from_wsgi("/api/v0/openapi.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 10, "the OpenAPI document should list every incident route"
    return found


@pytest.mark.parametrize("with_user", [True, False], ids=["with-user-header", "without-user-header"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_requests_never_get_a_server_error_and_errors_have_one_shape(app, client, with_user, mode):
    start(client, checklists=TWO_STAGES)
    checked = 0
    for operation in operations(app):
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case) -> None:
            if mode is GenerationMode.POSITIVE:
                assume(not _has_nul_key(case.body) and not _window_refused(case))
            headers = dict(case.headers or {})
            headers.pop(USER_HEADER_NAME, None)
            if with_user:
                headers[USER_HEADER_NAME] = ALICE
            case.headers = headers
            response = case.call()
            assert_one_error_shape(case, response)
            case.validate_response(response)

        try:
            check()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (e.g. only a free-form path id).
            assert mode is GenerationMode.NEGATIVE
            continue
        checked += 1
    assert checked >= 6
