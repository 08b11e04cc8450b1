"""One attempt of the sender against a scripted transport: what it sends, where, and what comes next."""
from __future__ import annotations

import dataclasses

import httpx
import pytest

from plugin.settings import load_settings
from plugin.store.webhooks import DELIVERED, FAILED, PENDING, Claimed
from plugin.webhooks.rules import body, signature
from plugin.webhooks.sender import WebhookSender
from tests.webhooks.conftest import PUBLIC, Names

NOW = 1_733_000_000.0
PAYLOAD = '{"event_type":"note","event_at":1,"incident":{},"entry":{}}'


def _settings(**values):
    base = load_settings(environ={"INCIDENT_REMINDER_SCAN_SECONDS": "0"})
    return dataclasses.replace(base.replace(**values), webhook_backoff_seconds=2.0)


def _delivery(url="https://hooks.example.com:8443/in?k=v", attempts=0, window_at=int(NOW * 1000)):
    return Claimed(seq=1, id="d" * 26, webhook_id="w" * 26, incident_id="i" * 26, event_type="note",
                   payload=PAYLOAD, attempts=attempts, window_at=window_at, url=url, secret="s" * 32,
                   token="t", lease_until=0)


def _sender(answer, settings=None):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    sender = WebhookSender(None, lambda: settings or _settings(), transport=httpx.MockTransport(handler),
                           resolve=Names(), clock=lambda: NOW)
    return sender, seen


def test_attempt_posts_the_signed_body_to_the_checked_address_with_the_urls_host_and_server_name():
    sender, seen = _sender(lambda _request: httpx.Response(204))
    outcome = sender.attempt(_delivery())
    (request,) = seen
    assert outcome.status == DELIVERED and outcome.response_code == 204 and outcome.error == ""
    assert str(request.url) == f"https://{PUBLIC}:8443/in?k=v"
    assert request.headers["Host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.content == body("d" * 26, PAYLOAD)
    assert request.headers["X-Incident-Timestamp"] == str(int(NOW))
    assert request.headers["X-Incident-Signature"] == signature("s" * 32, str(int(NOW)), request.content)
    assert request.headers["X-Incident-Event"] == "note" and request.headers["X-Incident-Delivery"] == "d" * 26


@pytest.mark.parametrize("status,expected", [(500, PENDING), (502, PENDING), (503, PENDING), (429, PENDING), (408, FAILED),
                                             (301, FAILED), (400, FAILED), (401, FAILED), (404, FAILED)])
def test_5xx_and_429_are_retried_and_other_answers_are_final(status, expected):
    sender, _ = _sender(lambda _request: httpx.Response(status))
    outcome = sender.attempt(_delivery())
    assert (outcome.status, outcome.response_code, outcome.error) == (expected, status, f"HTTP {status}")


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_sets_the_next_attempt(status):
    sender, _ = _sender(lambda _request: httpx.Response(status, headers={"Retry-After": "120"}))
    outcome = sender.attempt(_delivery())
    assert outcome.status == PENDING and outcome.next_at == int(NOW * 1000) + 120_000


def test_backoff_doubles_per_attempt_within_jitter():
    sender, _ = _sender(lambda _request: httpx.Response(500))
    waits = [sender.attempt(_delivery(attempts=attempts)).next_at - int(NOW * 1000) for attempts in (0, 3)]
    assert 1000 <= waits[0] <= 2000 and 8000 <= waits[1] <= 16000


def test_a_retry_that_would_fall_past_the_retry_time_fails_the_delivery():
    sender, _ = _sender(lambda _request: httpx.Response(500), _settings(WebhookRetrySeconds=60))
    outcome = sender.attempt(_delivery(attempts=9, window_at=int(NOW * 1000) - 59_000))
    assert outcome.status == FAILED and "gave up after 10 attempts" in outcome.error


def test_connection_errors_and_timeouts_are_retried_without_a_response_code():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    def slow(request):
        raise httpx.ReadTimeout("slow", request=request)

    for answer, words in ((refuse, "not reached (ConnectError)"), (slow, "timed out (ReadTimeout)")):
        outcome = _sender(answer)[0].attempt(_delivery())
        assert (outcome.status, outcome.response_code, outcome.error) == (PENDING, None, words)


def test_a_url_that_breaks_the_rules_at_send_time_is_retried_and_nothing_is_sent():
    sender, seen = _sender(lambda _request: httpx.Response(200))
    outcome = sender.attempt(_delivery(url="http://hooks.example.com/in"))  # http, not an allowed host
    assert outcome.status == PENDING and "WebhookHttpHosts" in outcome.error and seen == []


def test_an_unexpected_failure_while_sending_is_recorded_and_retried():
    def broken(_request):
        raise UnicodeEncodeError("ascii", "é", 0, 1, "no")

    outcome = _sender(broken)[0].attempt(_delivery())
    assert (outcome.status, outcome.error) == (PENDING, "could not be sent (UnicodeEncodeError)")
