"""docs/webhooks.md: its receiver code checks the server's signatures, and the page names every setting it uses."""
from __future__ import annotations

import time

from plugin.model import TIMELINE_EVENT_TYPES
from plugin.webhooks.rules import signature
from tests.webhooks.receiver import DOCS, documented_verify

SECRET = "a-secret-of-the-admins-own"
BODY = b'{"id":"d0000000000000000000000000","event_type":"note"}'


def _headers(timestamp: int, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {"X-Incident-Timestamp": str(timestamp), "X-Incident-Signature": signature(secret, str(timestamp), body)}


def test_documented_receiver_accepts_the_servers_signature():
    assert documented_verify()(SECRET, _headers(int(time.time())), BODY)


def test_documented_receiver_refuses_a_changed_body_another_secret_an_old_timestamp_or_no_signature():
    verify = documented_verify()
    now = int(time.time())
    assert not verify(SECRET, _headers(now), BODY.replace(b"note", b"nope"))
    assert not verify(SECRET, _headers(now, secret="another-secret-entirely"), BODY)
    assert not verify(SECRET, _headers(now - 3600), BODY)
    assert not verify(SECRET, {}, BODY)
    assert not verify(SECRET, {"X-Incident-Timestamp": "soon", "X-Incident-Signature": "sha256=00"}, BODY)


def test_docs_name_the_webhook_settings_headers_and_every_timeline_event_type():
    page = DOCS.read_text()
    for name in (*(f"`{kind}`" for kind in TIMELINE_EVENT_TYPES), "WebhookAllowPrivateAddresses", "WebhookHttpHosts", "WebhookRetrySeconds", "X-Incident-Event",
                 "X-Incident-Delivery", "X-Incident-Timestamp", "X-Incident-Signature", "GET /api/v0/egress"):
        assert name in page, name
