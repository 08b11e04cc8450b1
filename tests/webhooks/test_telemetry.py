"""Webhook telemetry: create and delete events and a daily count of deliveries; never a URL or a secret."""
from __future__ import annotations

import json

import pytest

from plugin.store.webhooks import DeliveryQueue
from plugin.webhooks.sender import DAY_MS, WebhookSender
from plugin.webhooks.service import deliveries_counted
from tests.conftest import ADMIN, as_user
from tests.telemetry.dataplane import DataPlane
from tests.webhooks.conftest import fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import wait_until


@pytest.fixture
def plane():
    found = DataPlane().start()
    yield found
    found.stop()


@pytest.fixture
def tapp(settings, names, plane):
    application = make_app(fast(settings, RudderWriteKey=plane.write_key, RudderDataPlaneUrl=plane.url), names)
    yield application
    application.extensions["incident"].telemetry.stop(5)
    stop(application)


def _webhook_events(plane, *actions):
    return [message for message in plane.delivered()
            if message["event"] == "webhook" and message["properties"]["Action"] in actions]


def test_creating_and_deleting_a_webhook_records_its_id_and_counts_but_never_its_url_or_secret(tapp, plane):
    client = tapp.test_client()
    hook = register(client, "https://hooks.example.com/very-private-path", ["note", "incident_ended"], team_id="t" * 26)
    assert client.delete(f"/api/v0/webhooks/{hook['id']}", headers=as_user(ADMIN)).status_code == 204
    wait_until(lambda: len(_webhook_events(plane, "create", "delete")) == 2)
    create, delete = (message["properties"] for message in _webhook_events(plane, "create", "delete"))
    assert create["Action"] == "create" and create["WebhookID"] == hook["id"] and create["NumEventTypes"] == 2
    assert create["AllEventTypes"] is False and create["OneTeam"] is True and create["UserActualID"] == ADMIN
    assert delete["Action"] == "delete" and delete["WebhookID"] == hook["id"]
    sent = json.dumps(plane.delivered())
    assert "very-private-path" not in sent and "hooks.example.com" not in sent and hook["secret"] not in sent


def test_the_previous_days_deliveries_are_counted_once_however_many_processes_report(tapp, plane, receiver,
                                                                                    hook_settings, names):
    client = tapp.test_client()
    hook = register(client, receiver.url(), ["incident_created"])
    receiver.secret = hook["secret"]
    receiver.fail_next(404)
    start_incident(client, "one")
    start_incident(client, "two")
    components = tapp.extensions["incident"]
    path = f"/api/v0/webhooks/{hook['id']}/deliveries"
    wait_until(lambda: {item["status"] for item in client.get(path, headers=as_user(ADMIN)).get_json()["items"]}
               == {"delivered", "failed"})
    items = client.get(path, headers=as_user(ADMIN)).get_json()["items"]
    tomorrow = (max(item["finished_at"] for item in items) // DAY_MS + 1) * DAY_MS + 1000
    senders = [WebhookSender(DeliveryQueue(components.db), lambda: hook_settings, resolve=names,
                             clock=lambda: tomorrow / 1000,
                             daily_row=lambda counts: components.telemetry.row(deliveries_counted(counts)))
               for _ in range(3)]
    assert [sender.report_previous_day() for sender in senders] == [True, False, False]
    # The app's own sender reported the day before at its start; this is the one of the test's day.
    wait_until(lambda: any(message["properties"]["NumDelivered"] for message in _webhook_events(plane, "deliveries")))
    daily = _webhook_events(plane, "deliveries")[-1]["properties"]
    assert (daily["NumDelivered"], daily["NumFailed"], daily["NumWebhooks"]) == (1, 1, 1)
