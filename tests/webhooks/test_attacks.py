"""Webhooks under attack: a careless or hostile admin's URLs, a hostile DNS answer, a hostile receiver."""
from __future__ import annotations

import dataclasses
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from plugin.settings import load_settings
from plugin.store.webhooks import DELIVERED, FAILED, PENDING, Claimed
from plugin.webhooks.rules import URL_MAX, address_problem, system_resolver
from plugin.webhooks.sender import WebhookSender
from tests.conftest import ADMIN, as_user
from tests.webhooks.conftest import PUBLIC, certificate, Names, fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import Receiver, wait_until

# ----- address forms that hide a private address ----------------------------------------------


@pytest.mark.parametrize("address,inside", [
    ("::127.0.0.1", "127.0.0.1"), ("::10.0.0.1", "10.0.0.1"),  # IPv4-compatible (deprecated)
    ("64:ff9b::7f00:1", "127.0.0.1"), ("64:ff9b::10.1.2.3", "10.1.2.3"),  # NAT64 well-known prefix
    ("2002:7f00:1::", "127.0.0.1"), ("2002:a00:1::1", "10.0.0.1"),  # 6to4
    ("::ffff:0:7f00:1", "127.0.0.1"),  # IPv4-translated (SIIT)
    ("::ffff:7f00:1", "127.0.0.1"),  # IPv4-mapped, written in hex
])
def test_ipv6_addresses_that_embed_a_private_ipv4_address_are_refused(address, inside):
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and inside in problem


def test_local_use_nat64_addresses_are_refused():
    assert address_problem(ipaddress.ip_address("64:ff9b:1::a00:1")) is not None


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_nat64_and_6to4_addresses_of_a_public_ipv4_address_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.fixture
def strict(settings: object, names: Names) -> Iterator[object]:
    """An app with the default rules: no private addresses, no plain http."""
    application = make_app(fast(settings, WebhookAllowPrivateAddresses=False, WebhookHttpHosts=""), names)
    yield application
    stop(application)


def _create(client: object, url: str, **more: object) -> object:
    return client.post("/api/v0/webhooks", headers=as_user(ADMIN), json={"url": url, "events": ["*"], **more})


def _nothing_saved(client: object) -> bool:
    return client.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 0


@pytest.mark.parametrize("url", [
    "https://[::ffff:127.0.0.1]/x", "https://[::ffff:7f00:1]/x", "https://[::127.0.0.1]/x",
    "https://[64:ff9b::a00:1]/x", "https://[2002:a00:1::]/x", "https://[2002:7f00:1::]:8443/x",
    "https://0.0.0.0/x", "https://[::]/x", "https://LOCALHOST/x", "https://localhost./x",
])
def test_webhook_to_a_disguised_private_address_is_refused_at_save_naming_the_setting(strict, names, url):
    names.table["localhost."] = ["127.0.0.1"]
    response = _create(strict.test_client(), url)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["details"] == {"field": "url"}
    assert "WebhookAllowPrivateAddresses" in response.get_json()["error"]
    assert _nothing_saved(strict.test_client())


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "0x7f000001", "017700000001"])
def test_the_systems_resolver_turns_short_ipv4_spellings_into_loopback(host):
    assert system_resolver(host, 443) == ["127.0.0.1"]


@pytest.mark.parametrize("host", ["2130706433", "0177.0.0.1", "0x7f.1", "127.1", "8.8.8.010", "1.2.3.4."])
def test_ipv4_addresses_not_written_as_four_decimal_numbers_are_refused_even_when_private_ones_are_allowed(
        hclient, host):
    response = _create(hclient, f"https://{host}/x")
    assert response.status_code == 400 and response.get_json()["details"] == {"field": "url"}
    assert "four decimal numbers" in response.get_json()["error"]
    assert _nothing_saved(hclient)


@pytest.mark.parametrize("url", ["https://[fe80::1%25eth0]/x", "https://[::1%25lo]:8443/x"])
def test_ipv6_zone_ids_are_refused_even_when_private_addresses_are_allowed(hclient, url):
    response = _create(hclient, url)
    assert response.status_code == 400 and "zone" in response.get_json()["error"]
    assert _nothing_saved(hclient)


def test_an_idn_host_is_taken_in_its_ascii_form_and_its_addresses_are_checked(strict, names):
    assert "xn--" in _create(strict.test_client(), "https://bücher.example/x").get_json()["error"]
    names.table["xn--bcher-kva.example"] = ["10.9.8.7"]
    assert "10.9.8.7 is a private address" in _create(strict.test_client(),
                                                       "https://xn--bcher-kva.example/x").get_json()["error"]
    names.table["xn--bcher-kva.example"] = [PUBLIC]
    assert _create(strict.test_client(), "https://XN--BCHER-KVA.example/x").status_code == 201


# ----- one attempt of the sender, against real sockets on 127.0.0.1 ---------------------------

NOW = 1_733_000_000.0
PAYLOAD = '{"event_type":"note","event_at":1,"incident":{},"entry":{}}'


def _settings(**values: object) -> object:
    base = load_settings(environ={"INCIDENT_REMINDER_SCAN_SECONDS": "0"})
    values = {"WebhookAllowPrivateAddresses": True, "WebhookHttpHosts": "hooks.example.com", **values}
    return dataclasses.replace(base.replace(**values), webhook_backoff_seconds=1.0, webhook_lease_seconds=3.0)


def _claimed(url: str) -> Claimed:
    return Claimed(seq=1, id="d" * 26, webhook_id="w" * 26, incident_id="i" * 26, event_type="note",
                   payload=PAYLOAD, attempts=0, window_at=int(NOW * 1000), url=url, secret="s" * 32,
                   token="t", lease_until=0)


def _sender(names: Names, settings: object = None, transport: httpx.BaseTransport | None = None) -> WebhookSender:
    return WebhookSender(None, lambda: settings or _settings(), transport=transport, resolve=names,
                         clock=lambda: NOW)


class RawServer:
    """A TCP server on 127.0.0.1 that reads one request head and then runs ``answer(connection)``."""

    def __init__(self, answer: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.closed_by_client = threading.Event()
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(connection,), daemon=True).start()

    def _one(self, connection: socket.socket) -> None:
        connection.settimeout(20)
        try:
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                head += chunk
            self.requests += 1
            self.answer(connection)
        except OSError:
            self.closed_by_client.set()
        finally:
            connection.close()

    def send(self, connection: socket.socket, data: bytes) -> None:
        connection.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None) -> RawServer:
        servers.append(RawServer(answer, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _loopback_names() -> Names:
    names = Names()
    names.table["hooks.example.com"] = ["127.0.0.1"]
    return names


def _timed_attempt(sender: WebhookSender, url: str) -> tuple[object, float]:
    started = time.monotonic()
    outcome = sender.attempt(_claimed(url))
    return outcome, time.monotonic() - started


def test_an_endless_response_body_is_not_read_and_the_delivery_counts_as_delivered(raw):
    def endless(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(100_000):  # bounded: at most about 6 GB, ended long before by the client closing
            server.send(connection, b"10000\r\n" + b"x" * 0x10000 + b"\r\n")

    server = raw(endless)
    outcome, took = _timed_attempt(_sender(_loopback_names()), f"http://hooks.example.com:{server.port}/hook")
    assert outcome.status == DELIVERED and outcome.response_code == 200 and took < 5
    assert server.closed_by_client.wait(10)
    assert server.sent < 64 * 1024 * 1024


def test_a_response_that_trickles_its_head_is_cut_off_in_bounded_time_and_retried(raw):
    def trickle(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\n")
        for _ in range(150):  # bounded: 30 s of one header byte every 0.2 s, each inside the read timeout
            server.send(connection, b"X")
            time.sleep(0.2)

    server = raw(trickle)
    outcome, took = _timed_attempt(_sender(_loopback_names()), f"http://hooks.example.com:{server.port}/hook")
    assert took < 5, took
    assert outcome.status == PENDING and outcome.response_code is None and "timed out" in outcome.error


def test_a_huge_response_header_is_an_error_that_is_retried_without_reading_it_all(raw):
    def huge(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\nX-Big: ")
        for _ in range(1024):  # bounded: 64 MB at most
            server.send(connection, b"y" * 65536)

    server = raw(huge)
    outcome, took = _timed_attempt(_sender(_loopback_names()), f"http://hooks.example.com:{server.port}/hook")
    assert outcome.status == PENDING and outcome.response_code is None and took < 5
    assert "yyyy" not in outcome.error and len(outcome.error) < 100
    assert server.sent < 64 * 1024 * 1024


def test_a_redirect_to_loopback_is_not_followed_and_the_delivery_fails(raw):
    inner = Receiver().start()
    try:
        def redirect(connection: socket.socket) -> None:
            server.send(connection, f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {inner.url()}\r\n"
                                    "Content-Length: 0\r\n\r\n".encode())

        server = raw(redirect)
        outcome, _ = _timed_attempt(_sender(_loopback_names()), f"http://hooks.example.com:{server.port}/hook")
        assert (outcome.status, outcome.response_code, outcome.error) == (FAILED, 307, "HTTP 307")
        time.sleep(0.2)
        assert server.requests == 1 and inner.arrivals == 0
    finally:
        inner.stop()


@pytest.fixture
def wrong_certificate(tmp_path):
    return certificate(tmp_path, "other.example.com")


def test_a_response_that_trickles_its_head_over_tls_is_cut_off_in_bounded_time(raw, tmp_path):
    server_context, client_context = certificate(tmp_path, "hooks.example.com")

    def trickle(connection: socket.socket) -> None:
        server.send(connection, b"HTTP/1.1 200 OK\r\n")
        for _ in range(150):  # bounded: 30 s of one header byte every 0.2 s
            server.send(connection, b"X")
            time.sleep(0.2)

    server = raw(trickle, server_context)
    sender = _sender(_loopback_names(), transport=httpx.HTTPTransport(verify=client_context))
    outcome, took = _timed_attempt(sender, f"https://hooks.example.com:{server.port}/hook")
    assert server.requests == 1 and took < 5, took
    assert outcome.status == PENDING and "timed out" in outcome.error


def test_tls_with_a_certificate_for_another_name_is_refused_and_recorded_without_its_content(raw,
                                                                                           wrong_certificate):
    server_context, client_context = wrong_certificate
    server = raw(lambda connection: server.send(connection, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
                 server_context)
    sender = _sender(_loopback_names(), transport=httpx.HTTPTransport(verify=client_context))
    outcome, took = _timed_attempt(sender, f"https://hooks.example.com:{server.port}/hook")
    assert outcome.status == PENDING and outcome.response_code is None and took < 5
    assert outcome.error == "not reached (ConnectError)" and server.requests == 0


@pytest.mark.parametrize("address", ["::ffff:127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::127.0.0.1"])
def test_a_name_that_moves_to_a_disguised_loopback_address_is_refused_at_send(address):
    names = Names()
    names.table["hooks.example.com"] = [address]
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200))
    sender = _sender(names, _settings(WebhookAllowPrivateAddresses=False), transport)
    outcome = sender.attempt(_claimed("https://hooks.example.com/hook"))
    assert outcome.status == PENDING and outcome.error.startswith("refused:") and seen == []


# ----- a hostile receiver beside a healthy one, through the whole app ------------------------


def test_a_hostile_receiver_fails_its_own_delivery_and_the_healthy_webhook_beside_it_is_still_delivered(
        settings, raw):
    names = _loopback_names()
    healthy = Receiver().start()

    def hostile(connection: socket.socket) -> None:
        server.send(connection, f"HTTP/1.1 302 Found\r\nLocation: {healthy.url('/stolen')}\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n".encode())
        for _ in range(100_000):
            server.send(connection, b"10000\r\n" + b"x" * 0x10000 + b"\r\n")

    server = raw(hostile)
    application = make_app(fast(settings, WebhookHttpHosts="hooks.example.com,127.0.0.1"), names)
    try:
        client = application.test_client()
        bad = register(client, f"http://hooks.example.com:{server.port}/hook", ["incident_created"])
        good = register(client, healthy.url(), ["incident_created"])
        healthy.secret = good["secret"]
        start_incident(client)
        wait_until(lambda: len(healthy.processed) == 1)
        path = f"/api/v0/webhooks/{bad['id']}/deliveries"
        wait_until(lambda: client.get(path, headers=as_user(ADMIN)).get_json()["items"][0]["status"] == "failed")
        (delivery,) = client.get(path, headers=as_user(ADMIN)).get_json()["items"]
        assert delivery["last_response_code"] == 302 and delivery["attempts"] == 1
        assert [request.path for request in healthy.requests] == ["/hook"]
    finally:
        stop(application)
        healthy.stop()


# ----- credentials and secrets ------------------------------------------------------------


def test_a_url_with_credentials_is_refused_without_repeating_them(hclient):
    response = _create(hclient, "https://user:hunter2hunter2@hooks.example.com/x")
    assert response.status_code == 400 and response.get_json()["details"] == {"field": "url"}
    assert "hunter2" not in response.get_data(as_text=True) and _nothing_saved(hclient)


def test_a_token_in_the_query_string_never_reaches_logs_errors_or_the_egress_report(hclient, receiver, caplog):
    with caplog.at_level(logging.DEBUG):
        hook = register(hclient, receiver.url("/hook?token=tok-zebra-42"), ["incident_created"])
        receiver.secret = hook["secret"]
        receiver.fail_next(500)
        start_incident(hclient)
        wait_until(lambda: len(receiver.processed) == 1)
        path = f"/api/v0/webhooks/{hook['id']}/deliveries"
        deliveries = hclient.get(path, headers=as_user(ADMIN)).get_data(as_text=True)
        egress = hclient.get("/api/v0/egress", headers=as_user(ADMIN)).get_data(as_text=True)
    assert receiver.requests[-1].path == "/hook?token=tok-zebra-42"
    assert "HTTP 500" in deliveries and f"127.0.0.1:{receiver.port}" in egress
    for text in (deliveries, egress, caplog.text):
        assert "tok-zebra-42" not in text and "/hook" not in text and hook["secret"] not in text


def test_the_secret_appears_in_the_create_answer_only(hclient, receiver, caplog):
    with caplog.at_level(logging.DEBUG):
        hook = register(hclient, receiver.url(), ["incident_created"], secret="S3cret-Zebra-9999")
        receiver.secret = hook["secret"]
        start_incident(hclient)
        wait_until(lambda: len(receiver.processed) == 1)
        base = f"/api/v0/webhooks/{hook['id']}"
        (delivery,) = hclient.get(f"{base}/deliveries", headers=as_user(ADMIN)).get_json()["items"]
        answers = [hclient.get(base, headers=as_user(ADMIN)), hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)),
                   hclient.patch(base, headers=as_user(ADMIN), json={"events": ["*"]}),
                   hclient.patch(base, headers=as_user(ADMIN), json={"secret": "S3cret-Zebra-9999 "}),
                   hclient.get(f"{base}/deliveries", headers=as_user(ADMIN)),
                   hclient.post(f"{base}/deliveries/{delivery['id']}/redeliver", headers=as_user(ADMIN)),
                   hclient.get("/api/v0/egress", headers=as_user(ADMIN))]
    assert hook["secret"] == "S3cret-Zebra-9999"
    for answer in answers:
        assert "Zebra" not in answer.get_data(as_text=True)
    assert "Zebra" not in caplog.text


# ----- bad admin input ------------------------------------------------------------------------

HOOK = "https://hooks.example.com/in"


@pytest.mark.parametrize("body,field", [
    ({"url": "javascript:alert(1)", "events": ["*"]}, "url"),
    ({"url": "file:///etc/passwd", "events": ["*"]}, "url"),
    ({"url": "gopher://hooks.example.com/x", "events": ["*"]}, "url"),
    ({"url": "https:///nohost", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/" + "a" * URL_MAX, "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/a b", "events": ["*"]}, "url"),
    ({"url": " https://hooks.example.com/in", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/in\n", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/a\r\nX-Evil: 1", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/a\tb", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/a\x7fb", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com/a\u00a0b", "events": ["*"]}, "url"),
    ({"url": "https://hooks.example.com:99999/x", "events": ["*"]}, "url"),
    ({"url": 7, "events": ["*"]}, "url"),
    ({"url": HOOK, "events": []}, "events"),
    ({"url": HOOK, "events": "*"}, "events"),
    ({"url": HOOK, "events": ["incident_created", "launch_missiles"]}, "events"),
    ({"url": HOOK, "events": [None]}, "events"),
    ({"url": HOOK, "events": ["*"], "team_id": "../../etc"}, "team_id"),
    ({"url": HOOK, "events": ["*"], "team_id": "A" * 26}, "team_id"),
    ({"url": HOOK, "events": ["*"], "team_id": 5}, "team_id"),
    ({"url": HOOK, "events": ["*"], "secret": "s" * 15}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": "s" * 129}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": "s" * 15 + "\x01"}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": "s" * 15 + "é"}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": " " + "s" * 20}, "secret"),
    ({"url": HOOK, "events": ["*"], "secret": ""}, "secret"),
])
def test_bad_input_on_create_and_patch_is_a_400_naming_the_field_and_saves_nothing(hclient, body, field):
    response = hclient.post("/api/v0/webhooks", headers=as_user(ADMIN), json=body)
    assert response.status_code == 400, response.get_json()
    answer = response.get_json()
    assert field in answer["error"] + str(answer["details"])
    assert _nothing_saved(hclient)
    hook = register(hclient, HOOK, ["note"])
    path = f"/api/v0/webhooks/{hook['id']}"
    change = {name: value for name, value in body.items() if name == field}
    patched = hclient.patch(path, headers=as_user(ADMIN), json=change)
    assert patched.status_code == 400, patched.get_json()
    assert field in patched.get_json()["error"] + str(patched.get_json()["details"])
    kept = hclient.get(path, headers=as_user(ADMIN)).get_json()
    assert (kept["url"], kept["events"], kept["team_id"], kept["update_at"]) == (HOOK, ["note"], "", hook["update_at"])


def test_patch_of_a_deleted_webhook_is_a_404(hclient):
    hook = register(hclient, HOOK)
    path = f"/api/v0/webhooks/{hook['id']}"
    assert hclient.delete(path, headers=as_user(ADMIN)).status_code == 204
    response = hclient.patch(path, headers=as_user(ADMIN), json={"events": ["note"]})
    assert response.status_code == 404 and hook["id"] in response.get_json()["error"]
    assert _nothing_saved(hclient)


def test_redeliver_of_another_webhooks_delivery_is_a_404_and_changes_nothing(hclient, happ):
    happ.extensions["incident"].webhook_sender.stop(5)
    mine, other = register(hclient, HOOK, ["incident_created"]), register(hclient, HOOK, ["incident_ended"])
    start_incident(hclient)
    (delivery,) = hclient.get(f"/api/v0/webhooks/{mine['id']}/deliveries", headers=as_user(ADMIN)).get_json()["items"]
    response = hclient.post(f"/api/v0/webhooks/{other['id']}/deliveries/{delivery['id']}/redeliver",
                            headers=as_user(ADMIN))
    assert response.status_code == 404 and delivery["id"] in response.get_json()["error"]
    assert hclient.get(f"/api/v0/webhooks/{other['id']}/deliveries",
                       headers=as_user(ADMIN)).get_json()["total_count"] == 0
    (after,) = hclient.get(f"/api/v0/webhooks/{mine['id']}/deliveries", headers=as_user(ADMIN)).get_json()["items"]
    assert after == delivery
