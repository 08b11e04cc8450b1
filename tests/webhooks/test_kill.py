"""kill -9 of a real multi-worker server mid-delivery: the delivery is sent again after a restart, once processed."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.conftest import ADMIN, TEAM, as_user
from tests.integration.test_server import Server, clean_env
from tests.webhooks.receiver import Receiver, wait_until

LEASE_SECONDS = 4
THREADS = ("--threads", "2")


@pytest.mark.slow
def test_server_killed_mid_delivery_sends_it_again_after_restart_and_the_receiver_processes_it_once(
        database_url, tmp_path):
    receiver = Receiver().start()
    receiver.delay = 1.0  # the answer comes after the server is dead
    env = clean_env(tmp_path, INCIDENT_DATABASE_URL=database_url, INCIDENT_ADMIN_USER_IDS=ADMIN,
                    INCIDENT_WEBHOOK_ALLOW_PRIVATE_ADDRESSES="true", INCIDENT_WEBHOOK_HTTP_HOSTS="127.0.0.1",
                    INCIDENT_WEBHOOK_LEASE_SECONDS=str(LEASE_SECONDS), INCIDENT_WEBHOOK_BACKOFF_SECONDS="0.05",
                    INCIDENT_REMINDER_SCAN_SECONDS="0")
    server = Server(tmp_path, env, workers=2, options=THREADS)
    try:
        base = f"{server.base}/api/v0"
        hook = httpx.post(f"{base}/webhooks", headers=as_user(ADMIN), timeout=10,
                          json={"url": receiver.url(), "events": ["incident_created"]}).json()
        receiver.secret = hook["secret"]
        assert httpx.post(f"{base}/incidents", headers=as_user(ADMIN), timeout=10, json={
            "name": "outage", "team_id": TEAM, "commander_user_id": ADMIN}).status_code == 201
        wait_until(lambda: receiver.arrivals == 1, timeout=15)
    finally:
        server.kill()
    killed_at = time.monotonic()
    wait_until(lambda: len(receiver.processed) == 1, timeout=10)  # processed, but the answer went nowhere
    receiver.delay = 0
    server = Server(tmp_path, env, workers=2, options=THREADS)
    try:
        wait_until(lambda: len(receiver.requests) == 2, timeout=LEASE_SECONDS + 30)
        # Not before the killed sender's lease ran out: never two senders on one delivery at once.
        assert receiver.requests[1].at - killed_at >= LEASE_SECONDS - 1.5
        first, second = receiver.requests
        assert first.headers["X-Incident-Delivery"] == second.headers["X-Incident-Delivery"]
        assert first.raw == second.raw and second.signed and len(receiver.processed) == 1
        path = f"{server.base}/api/v0/webhooks/{hook['id']}/deliveries"
        wait_until(lambda: httpx.get(path, headers=as_user(ADMIN), timeout=5).json()["items"][0]["status"]
                   == "delivered", timeout=10)
        (delivery,) = httpx.get(path, headers=as_user(ADMIN), timeout=5).json()["items"]
        assert delivery["attempts"] == 1 and json.loads(first.raw)["id"] == delivery["id"]
    finally:
        server.stop()
        receiver.stop()
