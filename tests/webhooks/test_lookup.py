"""Host lookups within the attempt's deadline, and each checked address tried in turn until one connects."""
from __future__ import annotations

import dataclasses
import socket
import threading
import time
from typing import Any

import httpx
import pytest

from plugin.settings import load_settings
from plugin.store.webhooks import DELIVERED, PENDING, Claimed, Outcome
from plugin.webhooks.sender import WebhookSender
from tests.conftest import ADMIN, as_user
from tests.webhooks.conftest import PUBLIC, certificate, Names, fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import Receiver, wait_until

PAYLOAD = '{"event_type":"note","event_at":1,"incident":{},"entry":{}}'
SECRET = "s" * 32
# Loopback addresses nothing listens on at the receivers' ports: connecting to them is refused.
DEAD = ["::1", "127.0.0.2"]


class SlowNames(Names):
    """Names whose lookups of the hosts in ``hang`` block until ``released`` is set (or ``bound`` seconds)."""

    def __init__(self, bound: float = 10.0) -> None:
        super().__init__()
        self.hang: set[str] = set()
        self.delay = 0.0
        self.bound = bound
        self.released = threading.Event()

    def __call__(self, host: str, port: int) -> list[str]:
        if host in self.hang:
            self.released.wait(self.bound)
        time.sleep(self.delay)
        return super().__call__(host, port)


def _settings(**values: Any) -> Any:
    base = load_settings(environ={"INCIDENT_REMINDER_SCAN_SECONDS": "0"})
    values = {"WebhookAllowPrivateAddresses": True, "WebhookHttpHosts": "hooks.example.com", **values}
    # A lease of 3 s: each attempt has 1.5 s, lookup included.
    return dataclasses.replace(base.replace(**values), webhook_backoff_seconds=1.0, webhook_lease_seconds=3.0)


def _names(*addresses: str) -> SlowNames:
    names = SlowNames()
    names.table["hooks.example.com"] = list(addresses)
    return names


def _attempt(names: Names, url: str, transport: httpx.BaseTransport | None = None,
             settings: Any = None) -> tuple[Outcome, float]:
    """One attempt of a sender with this resolver; its outcome and how long it took."""
    sender = WebhookSender(None, lambda: settings or _settings(), transport=transport, resolve=names)
    claimed = Claimed(seq=1, id="d" * 26, webhook_id="w" * 26, incident_id="i" * 26, event_type="note",
                      payload=PAYLOAD, attempts=0, window_at=int(time.time() * 1000), url=url, secret=SECRET,
                      token="t", lease_until=0)
    started = time.monotonic()
    outcome = sender.attempt(claimed)
    return outcome, time.monotonic() - started


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _deliveries(client: Any, hook_id: str) -> list[dict[str, Any]]:
    return client.get(f"/api/v0/webhooks/{hook_id}/deliveries?per_page=50",
                      headers=as_user(ADMIN)).get_json()["items"]


# ----- the lookup counts against the attempt's deadline ----------------------------------------


def test_a_host_lookup_that_hangs_fails_the_attempt_at_its_deadline_with_a_content_free_reason():
    names = _names("127.0.0.2")
    names.hang.add("hooks.example.com")
    try:
        outcome, took = _attempt(names, f"http://hooks.example.com:{_closed_port()}/hook")
    finally:
        names.released.set()
    assert 1.4 <= took < 2.5, took  # the deadline is 1.5 s, well inside the 3 s lease
    assert (outcome.status, outcome.response_code) == (PENDING, None)
    assert outcome.error == "timed out (host lookup took over 1.5 s)"


def test_a_slow_lookup_leaves_only_the_rest_of_the_deadline_for_the_exchange():
    # A receiver that accepts and never answers: only the deadline ends the attempt.
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        names = _names("127.0.0.1")
        names.delay = 2.5
        # A lease of 6 s: 3 s for the attempt, of which the exchange alone would take 2 s (one read).
        outcome, took = _attempt(names, f"http://hooks.example.com:{listener.getsockname()[1]}/hook",
                                 settings=dataclasses.replace(_settings(), webhook_lease_seconds=6.0))
    finally:
        listener.close()
    assert took < 3.7, took
    assert outcome.status == PENDING and outcome.error.startswith("timed out")


def test_a_delivery_whose_lookups_hang_is_retried_without_holding_a_thread_past_its_lease(settings, receiver):
    names = SlowNames()
    names.table["slow.example"] = ["127.0.0.1"]
    application = make_app(fast(settings, WebhookHttpHosts="slow.example"), names)  # lease 2 s: 1 s per attempt
    try:
        client = application.test_client()
        hook = register(client, f"http://slow.example:{receiver.port}/hook", ["incident_created"])
        receiver.secret = hook["secret"]
        names.hang.add("slow.example")  # the DNS server dies after the webhook was saved
        start_incident(client)
        wait_until(lambda: _deliveries(client, hook["id"])[0]["attempts"] >= 2, timeout=15)
        names.hang.clear()
        names.released.set()
        wait_until(lambda: _deliveries(client, hook["id"])[0]["status"] == "delivered", timeout=15)
        (delivery,) = _deliveries(client, hook["id"])
        *failed, last = delivery["attempt_log"]
        assert len(failed) >= 2 and last["response_code"] == 200 and last["error"] == ""
        assert {(attempt["response_code"], attempt["error"]) for attempt in failed} == {
            (None, "timed out (host lookup took over 1 s)")}
        # Every attempt ended inside its lease and was recorded: none was taken over while it hung.
        assert all(attempt["duration_ms"] < 2000 for attempt in delivery["attempt_log"])
        assert delivery["attempts"] == len(delivery["attempt_log"])
        assert len(receiver.requests) == 1 and len(receiver.processed) == 1
    finally:
        names.released.set()
        stop(application)


# ----- each checked address in turn ------------------------------------------------------------


@pytest.mark.parametrize("dead", DEAD)
def test_a_host_whose_first_address_is_dead_gets_every_delivery_at_the_next_in_order_and_once(settings, receiver,
                                                                                              dead):
    names = Names()
    names.table["multi.example"] = [dead, "127.0.0.1"]
    application = make_app(fast(settings, WebhookHttpHosts="multi.example"), names)
    try:
        client = application.test_client()
        hook = register(client, f"http://multi.example:{receiver.port}/hook")
        receiver.secret = hook["secret"]
        incident = start_incident(client)
        path = f"/api/v0/incidents/{incident['id']}"
        assert client.patch(path, headers=as_user(ADMIN), json={"active_stage": 1}).status_code == 200
        assert client.put(f"{path}/end", headers=as_user(ADMIN)).status_code == 200
        assert client.put(f"{path}/restart", headers=as_user(ADMIN)).status_code == 200
        wait_until(lambda: all(item["status"] == "delivered" for item in _deliveries(client, hook["id"])))
        assert [request.body["event_type"] for request in receiver.requests] == [
            "incident_created", "stage_changed", "incident_ended", "incident_restarted"]
        assert len(receiver.processed) == 4 and all(request.signed for request in receiver.requests)
        assert {request.headers["Host"] for request in receiver.requests} == {f"multi.example:{receiver.port}"}
        assert [item["attempts"] for item in _deliveries(client, hook["id"])] == [1, 1, 1, 1]
    finally:
        stop(application)


def test_an_attempt_to_a_host_whose_addresses_are_all_dead_fails_naming_how_many_were_tried():
    outcome, took = _attempt(_names(*DEAD), f"http://hooks.example.com:{_closed_port()}/hook")
    assert took < 1.5
    assert (outcome.status, outcome.response_code) == (PENDING, None)
    assert outcome.error == "not reached at any of 2 addresses (ConnectError)"


def test_an_address_that_does_not_connect_in_time_is_passed_over_for_the_next():
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "192.0.2.1":
            raise httpx.ConnectTimeout("no answer to the SYN", request=request)
        return httpx.Response(204)

    outcome, _ = _attempt(_names("192.0.2.1", "198.51.100.7"), "https://hooks.example.com/hook",
                          transport=httpx.MockTransport(answer))
    assert seen == ["192.0.2.1", "198.51.100.7"] and outcome.status == DELIVERED


def test_a_name_with_a_private_address_after_a_public_one_is_refused_before_any_is_tried():
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200))
    outcome, _ = _attempt(_names(PUBLIC, "10.0.0.1"), "https://hooks.example.com/hook", transport=transport,
                          settings=_settings(WebhookAllowPrivateAddresses=False))
    assert outcome.status == PENDING and outcome.error.startswith("refused:") and "10.0.0.1" in outcome.error
    assert seen == []


@pytest.mark.parametrize("dead", DEAD)
def test_https_past_a_dead_address_carries_the_urls_host_and_verifies_its_certificate(tmp_path, dead):
    server_context, client_context = certificate(tmp_path, "hooks.example.com")
    receiver = Receiver(secret=SECRET, tls=server_context).start()
    try:
        outcome, _ = _attempt(_names(dead, "127.0.0.1"), f"https://hooks.example.com:{receiver.port}/hook",
                              transport=httpx.HTTPTransport(verify=client_context))
        assert outcome.status == DELIVERED, outcome.error
        (request,) = receiver.requests
        assert request.signed and request.headers["Host"] == f"hooks.example.com:{receiver.port}"
    finally:
        receiver.stop()


def test_an_address_that_connected_but_failed_its_tls_check_is_not_followed_by_the_next(tmp_path):
    # The first address answers with a certificate for another name; the second would take anything.
    server_context, client_context = certificate(tmp_path, "other.example.com")
    wrong = Receiver(secret=SECRET, tls=server_context).start()
    other = socket.create_server(("127.0.0.2", wrong.port))
    other.settimeout(0.5)
    try:
        outcome, _ = _attempt(_names("127.0.0.1", "127.0.0.2"), f"https://hooks.example.com:{wrong.port}/hook",
                              transport=httpx.HTTPTransport(verify=client_context))
        assert outcome.status == PENDING and outcome.error == "not reached (ConnectError)"
        with pytest.raises(TimeoutError):
            other.accept()
        assert wrong.requests == []
    finally:
        other.close()
        wrong.stop()
