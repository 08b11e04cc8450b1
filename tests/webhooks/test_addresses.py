"""SSRF rules: which URLs and addresses webhooks may reach, checked when saved and again at connect time."""
from __future__ import annotations

import ipaddress

import httpx
import pytest

from plugin.webhooks.rules import Refused, address_problem, parse_url, resolve_checked, system_resolver
from tests.conftest import ADMIN, as_user
from tests.webhooks.conftest import PUBLIC, certificate, fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import Receiver, wait_until


@pytest.mark.parametrize("address,kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.9", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("fd00::5", "private"),
    ("100.64.0.1", "non-public"), ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"),
])
def test_non_public_addresses_are_named_for_what_they_are(address, kind):
    assert f"a {kind} address" in address_problem(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC, "2606:4700::6810:84e5", "8.8.8.8"])
def test_public_addresses_pass(address):
    assert address_problem(ipaddress.ip_address(address)) is None


def test_a_name_resolving_to_one_private_address_among_public_ones_is_refused_whole():
    target = parse_url("https://mixed.example.com/x", frozenset())
    with pytest.raises(Refused, match="10.0.0.7 is a private address"):
        resolve_checked(target, False, lambda _host, _port: [PUBLIC, "10.0.0.7"])
    assert len(resolve_checked(target, True, lambda _host, _port: [PUBLIC, "10.0.0.7"]).addresses) == 2


def test_localhost_through_the_systems_resolver_is_refused_unless_private_addresses_are_allowed():
    target = parse_url("https://localhost:8443/x", frozenset())
    with pytest.raises(Refused, match="loopback"):
        resolve_checked(target, False, system_resolver)
    assert all(address.is_loopback for address in resolve_checked(target, True, system_resolver).addresses)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "https://10.0.0.1/hook", "https://[::1]:8443/hook",
                                 "https://169.254.169.254/latest/meta-data", "https://localhost/hook"])
def test_webhook_to_a_private_address_is_refused_when_the_setting_is_off(settings, names, url):
    application = make_app(fast(settings, WebhookAllowPrivateAddresses=False, WebhookHttpHosts="127.0.0.1"), names)
    try:
        response = application.test_client().post("/api/v0/webhooks", headers=as_user(ADMIN),
                                                  json={"url": url, "events": ["*"]})
        assert response.status_code == 400 and "WebhookAllowPrivateAddresses" in response.get_json()["error"]
    finally:
        stop(application)


def test_a_private_address_refusal_reads_as_one_sentence_naming_the_host_and_the_address(settings, names):
    application = make_app(fast(settings, WebhookAllowPrivateAddresses=False, WebhookHttpHosts="127.0.0.1"), names)
    try:
        response = application.test_client().post("/api/v0/webhooks", headers=as_user(ADMIN),
                                                  json={"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        assert response.get_json()["error"] == ("Webhooks may not reach the host 127.0.0.1 unless the "
                                                "WebhookAllowPrivateAddresses setting is on: 127.0.0.1 is a "
                                                "loopback address.")
    finally:
        stop(application)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "https://10.0.0.1/hook", "https://localhost/hook"])
def test_webhook_to_a_private_address_is_allowed_when_the_setting_is_on(hclient, url):
    assert register(hclient, url)["url"] == url


def test_a_name_that_moves_to_loopback_after_the_check_is_refused_at_connect_time(settings, names, receiver):
    application = make_app(fast(settings, WebhookAllowPrivateAddresses=False,
                                WebhookHttpHosts="hooks.example.com"), names)
    try:
        client = application.test_client()
        hook = register(client, f"http://hooks.example.com:{receiver.port}/hook", ["incident_created"])
        receiver.secret = hook["secret"]
        names.table["hooks.example.com"] = ["127.0.0.1"]  # the DNS answer changes after the check
        start_incident(client)
        path = f"/api/v0/webhooks/{hook['id']}/deliveries"
        wait_until(lambda: client.get(path, headers=as_user(ADMIN)).get_json()["items"][0]["attempts"] >= 2)
        (delivery,) = client.get(path, headers=as_user(ADMIN)).get_json()["items"]
        assert delivery["status"] == "pending" and delivery["attempt_log"][0]["response_code"] is None
        assert "127.0.0.1 is a loopback address" in delivery["attempt_log"][0]["error"]
        assert receiver.requests == []
    finally:
        stop(application)


def test_delivery_connects_to_the_checked_address_with_the_urls_host_in_the_host_header(settings, names, receiver):
    application = make_app(fast(settings, WebhookHttpHosts="hooks.example.com"), names)
    try:
        client = application.test_client()
        names.table["hooks.example.com"] = ["127.0.0.1"]
        hook = register(client, f"http://hooks.example.com:{receiver.port}/hook?x=1", ["incident_created"])
        receiver.secret = hook["secret"]
        start_incident(client)
        wait_until(lambda: len(receiver.processed) == 1)
        (request,) = receiver.requests
        assert request.headers["Host"] == f"hooks.example.com:{receiver.port}" and request.path == "/hook?x=1"
    finally:
        stop(application)


@pytest.fixture
def tls(tmp_path):
    """A certificate for hooks.example.com only, and a client context that trusts it."""
    return certificate(tmp_path, "hooks.example.com")


def test_https_delivery_to_a_pinned_address_verifies_the_certificate_of_the_urls_host(settings, names, tls):
    server_context, client_context = tls
    receiver = Receiver(tls=server_context).start()
    names.table["hooks.example.com"] = ["127.0.0.1"]
    application = make_app(fast(settings), names, transport=httpx.HTTPTransport(verify=client_context))
    try:
        client = application.test_client()
        hook = register(client, f"https://hooks.example.com:{receiver.port}/hook", ["incident_created"])
        receiver.secret = hook["secret"]
        start_incident(client)
        wait_until(lambda: len(receiver.processed) == 1)
        assert receiver.requests[0].headers["Host"] == f"hooks.example.com:{receiver.port}"
    finally:
        stop(application)
        receiver.stop()
