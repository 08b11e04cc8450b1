"""Several senders (as in several workers and servers) racing for the same deliveries post each exactly once."""
from __future__ import annotations

import threading

from plugin.store import Database
from plugin.store.webhooks import DeliveryQueue
from plugin.webhooks.sender import WebhookSender
from tests.conftest import ADMIN, as_user
from tests.threads import run_in_threads
from tests.webhooks.conftest import register, start_incident
from tests.webhooks.receiver import wait_until

INCIDENTS = 24


def test_senders_racing_for_the_same_deliveries_post_each_exactly_once(happ, hclient, receiver, database_url,
                                                                        hook_settings, names):
    happ.extensions["incident"].webhook_sender.stop(5)  # the deliveries wait for the racing senders
    hook = register(hclient, receiver.url(), ["incident_created", "incident_ended"])
    receiver.secret = hook["secret"]
    for number in range(INCIDENTS):
        incident = start_incident(hclient, f"outage {number}")
        assert hclient.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ADMIN)).status_code == 200
    # Each sender on a database of its own, as a process of its own would be.
    databases = [Database(database_url) for _ in range(4)]
    senders = [WebhookSender(DeliveryQueue(db), lambda: hook_settings, resolve=names, poll_interval=0.005,
                             threads=4, per_webhook=4) for db in databases]
    try:
        for sender in senders:
            sender.start()
        wait_until(lambda: len(receiver.processed) == 2 * INCIDENTS, timeout=30)
    finally:
        for sender in senders:
            sender.stop(5)
        for db in databases:
            db.dispose()
    ids = [request.headers["X-Incident-Delivery"] for request in receiver.requests]
    assert len(ids) == len(set(ids)) == 2 * INCIDENTS, "a delivery was posted twice"
    for incident_id in {body["incident"]["id"] for body in receiver.processed.values()}:
        kinds = [body["event_type"] for body in receiver.processed.values() if body["incident"]["id"] == incident_id]
        assert kinds == ["incident_created", "incident_ended"]


def test_claims_made_at_once_on_one_delivery_give_it_to_one_sender(happ, hclient, database_url):
    happ.extensions["incident"].webhook_sender.stop(5)
    register(hclient, "https://hooks.example.com/x", ["incident_created"])
    for number in range(8):
        start_incident(hclient, f"outage {number}")
    databases = [Database(database_url) for _ in range(6)]
    queues = [DeliveryQueue(db) for db in databases]
    seqs = [seq for seq, _ in queues[0].due(2 ** 62, 100)]
    assert len(seqs) == 8
    taken: list[list[int]] = [[] for _ in queues]
    barrier = threading.Barrier(len(queues))

    def claim(number: int) -> None:
        barrier.wait(10)
        taken[number] = [claimed.seq for claimed in queues[number].claim(seqs, 2 ** 62 - 1, 60_000)]

    try:
        run_in_threads(claim, len(queues), timeout=30, what="claims")
    finally:
        for db in databases:
            db.dispose()
    everything = [seq for claimed in taken for seq in claimed]
    assert sorted(everything) == sorted(seqs), "every delivery claimed once, none twice"
