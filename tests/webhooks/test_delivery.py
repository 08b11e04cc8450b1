"""Deliveries reach a loopback receiver signed, retried, in order, and once per delivery id."""
from __future__ import annotations

import dataclasses
import time

import pytest

from tests.conftest import ADMIN, as_user
from tests.webhooks.conftest import fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import Receiver, wait_until


def _deliveries(client, hook_id):
    return client.get(f"/api/v0/webhooks/{hook_id}/deliveries", headers=as_user(ADMIN)).get_json()["items"]


def _hook(client, receiver, events=("*",)):
    created = register(client, receiver.url(), events)
    receiver.secret = created["secret"]
    return created


def test_receiver_verifies_the_signature_and_gets_the_entry_with_its_incident(hclient, receiver):
    hook = _hook(hclient, receiver, ["incident_created"])
    incident = start_incident(hclient)
    wait_until(lambda: len(receiver.processed) == 1)
    (request,) = receiver.requests
    assert request.signed and request.status == 200 and request.path == "/hook"
    assert request.headers["X-Incident-Event"] == "incident_created"
    assert request.headers["X-Incident-Delivery"] == request.body["id"]
    assert request.headers["Content-Type"] == "application/json"
    assert request.body["event_type"] == "incident_created" and request.body["incident"]["id"] == incident["id"]
    assert request.body["incident"]["name"] == "db is down" and "started the incident" in request.body["entry"]["summary"]
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["status"] == "delivered")
    (delivery,) = _deliveries(hclient, hook["id"])
    assert delivery["id"] == request.body["id"] and delivery["attempts"] == 1
    assert delivery["last_response_code"] == 200 and delivery["attempt_log"][0]["error"] == ""


def test_a_signature_made_with_another_secret_does_not_verify(hclient, receiver):
    _hook(hclient, receiver, ["incident_created"])
    receiver.secret = "not-the-webhooks-secret-at-all"
    start_incident(hclient)
    wait_until(lambda: len(receiver.requests) >= 1)
    assert not receiver.requests[0].signed and receiver.processed == {}


def test_delivery_is_retried_after_a_500_with_the_same_id_and_body(hclient, receiver):
    hook = _hook(hclient, receiver, ["incident_created"])
    receiver.fail_next(500, 502)
    start_incident(hclient)
    wait_until(lambda: len(receiver.processed) == 1)
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["status"] == "delivered")
    assert [request.status for request in receiver.requests] == [500, 502, 200]
    assert len({request.headers["X-Incident-Delivery"] for request in receiver.requests}) == 1
    assert len({request.raw for request in receiver.requests}) == 1
    (delivery,) = _deliveries(hclient, hook["id"])
    assert [attempt["response_code"] for attempt in delivery["attempt_log"]] == [500, 502, 200]
    assert delivery["attempt_log"][0]["error"] == "HTTP 500"


def test_delivery_waits_out_a_receiver_that_is_down_and_arrives_once_it_is_back(hclient, receiver):
    hook = _hook(hclient, receiver, ["incident_created"])
    receiver.stop()
    start_incident(hclient)
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["attempts"] >= 2)
    (delivery,) = _deliveries(hclient, hook["id"])
    assert delivery["status"] == "pending" and delivery["attempt_log"][0]["response_code"] is None
    assert "not reached" in delivery["attempt_log"][0]["error"]
    receiver.start()
    wait_until(lambda: len(receiver.processed) == 1)
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["status"] == "delivered")


def test_a_4xx_answer_is_final_and_not_retried(hclient, receiver):
    hook = _hook(hclient, receiver, ["incident_created"])
    receiver.fail_next(410)
    start_incident(hclient)
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["status"] == "failed")
    time.sleep(0.3)  # many backoffs of the tests' settings: a retry would have come by now
    assert [request.status for request in receiver.requests] == [410]
    assert _deliveries(hclient, hook["id"])[0]["attempt_log"][0]["error"] == "HTTP 410"


def test_a_429_waits_for_its_retry_after(hclient, receiver):
    _hook(hclient, receiver, ["incident_created"])
    receiver.fail_next(429, headers={"Retry-After": "1"})
    start_incident(hclient)
    wait_until(lambda: len(receiver.processed) == 1)
    first, second = receiver.requests
    # The tests' backoff is 50 ms: only the Retry-After explains a second's wait.
    assert first.status == 429 and second.status == 200 and second.at - first.at >= 0.9


def test_delivery_gives_up_when_the_retry_time_has_passed(settings, names, receiver):
    application = make_app(fast(settings, WebhookRetrySeconds=1), names)
    try:
        client = application.test_client()
        hook = _hook(client, receiver, ["incident_created"])
        receiver.fail_next(*[500] * 1000)
        start_incident(client)
        wait_until(lambda: _deliveries(client, hook["id"])[0]["status"] == "failed", timeout=15)
        (delivery,) = _deliveries(client, hook["id"])
        assert "gave up" in delivery["attempt_log"][-1]["error"] and delivery["attempts"] >= 2
        assert delivery["finished_at"] - delivery["create_at"] < 5000
    finally:
        stop(application)


def test_deliveries_of_one_incident_arrive_in_timeline_order_even_when_the_first_is_retried(hclient, receiver):
    _hook(hclient, receiver)
    receiver.fail_next(500, 500, 500)
    incident = start_incident(hclient)
    path = f"/api/v0/incidents/{incident['id']}"
    assert hclient.patch(path, headers=as_user(ADMIN), json={"active_stage": 1}).status_code == 200
    assert hclient.put(f"{path}/end", headers=as_user(ADMIN)).status_code == 200
    assert hclient.put(f"{path}/restart", headers=as_user(ADMIN)).status_code == 200
    wait_until(lambda: len(receiver.processed) == 4)
    assert [body["event_type"] for body in receiver.processed.values()] == [
        "incident_created", "stage_changed", "incident_ended", "incident_restarted"]
    # Nothing of the incident came before its first entry was through.
    assert [request.body["event_type"] for request in receiver.requests[:4]] == ["incident_created"] * 4


def test_a_hanging_receiver_does_not_delay_another(settings, names, receiver):
    # Leases of 30 s let a post wait 10 s for its answer: a sender that posted one delivery
    # after another would hold the healthy receiver's deliveries behind the hanging one's.
    application = make_app(dataclasses.replace(fast(settings), webhook_lease_seconds=30.0), names)
    slow = Receiver().start()
    slow.delay = 12.0
    try:
        client = application.test_client()
        _hook(client, slow, ["incident_created"])
        _hook(client, receiver, ["incident_created"])
        started = time.monotonic()
        for number in range(5):
            start_incident(client, f"outage {number}")
        wait_until(lambda: len(receiver.processed) == 5, timeout=10)
        assert time.monotonic() - started < 6 and slow.arrivals >= 1 and not slow.processed
    finally:
        stop(application)
        slow.stop()


def test_redelivery_sends_the_same_delivery_again_and_a_deduplicating_receiver_processes_it_once(hclient, receiver):
    hook = _hook(hclient, receiver, ["incident_created"])
    start_incident(hclient)
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["status"] == "delivered")
    (delivery,) = _deliveries(hclient, hook["id"])
    again = hclient.post(f"/api/v0/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver",
                         headers=as_user(ADMIN))
    assert again.status_code == 200 and again.get_json()["status"] == "pending"
    wait_until(lambda: len(receiver.requests) == 2)
    first, second = receiver.requests
    assert first.headers["X-Incident-Delivery"] == second.headers["X-Incident-Delivery"] == delivery["id"]
    assert first.raw == second.raw and second.signed and list(receiver.processed) == [delivery["id"]]
    wait_until(lambda: _deliveries(hclient, hook["id"])[0]["attempts"] == 2)


@pytest.mark.parametrize("events,expected", [(["note"], ["note"]), (["*"], ["incident_created", "note"])])
def test_a_note_is_delivered_to_webhooks_that_want_notes(hclient, receiver, events, expected):
    _hook(hclient, receiver, events)
    incident = start_incident(hclient)
    assert hclient.post(f"/api/v0/incidents/{incident['id']}/timeline", headers=as_user(ADMIN),
                        json={"summary": "paged the DBA"}).status_code == 201
    wait_until(lambda: len(receiver.processed) == len(expected))
    assert [body["event_type"] for body in receiver.processed.values()] == expected
    assert list(receiver.processed.values())[-1]["entry"]["summary"] == "paged the DBA"
