"""The webhook API: admins register, list, change and delete webhooks; the secret is shown once."""
from __future__ import annotations

import itertools
import logging

import pytest
import sqlalchemy as sa

from plugin.store.tables import webhook_deliveries
from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.webhooks.conftest import register, start_incident
from tests.webhooks.receiver import wait_until

URL = "https://hooks.example.com/incidents"


def test_created_webhook_returns_a_generated_secret_once_and_never_again(hclient):
    created = register(hclient, URL, ["incident_created", "incident_ended"])
    assert len(created["secret"]) >= 32 and created["events"] == ["incident_created", "incident_ended"]
    assert created["team_id"] == "" and created["creator_user_id"] == ADMIN
    fetched = hclient.get(f"/api/v0/webhooks/{created['id']}", headers=as_user(ADMIN))
    assert fetched.status_code == 200 and "secret" not in fetched.get_json()
    listed = hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()
    assert listed["total_count"] == 1 and "secret" not in listed["items"][0]
    assert created["secret"] not in fetched.get_data(as_text=True) + str(listed)


def test_created_webhook_keeps_the_secret_given_and_answers_with_its_location(hclient):
    response = hclient.post("/api/v0/webhooks", headers=as_user(ADMIN), json={
        "url": URL, "events": ["*"], "secret": "s" * 20, "team_id": TEAM})
    assert response.status_code == 201 and response.get_json()["secret"] == "s" * 20
    assert response.headers["Location"].endswith(f"/api/v0/webhooks/{response.get_json()['id']}")
    assert response.get_json()["team_id"] == TEAM


def test_the_secret_never_reaches_the_logs(hclient, caplog):
    with caplog.at_level(logging.DEBUG):
        created = register(hclient, URL)
        hclient.patch(f"/api/v0/webhooks/{created['id']}", headers=as_user(ADMIN), json={"secret": "t" * 24})
    assert created["secret"] not in caplog.text and "t" * 24 not in caplog.text


@pytest.mark.parametrize("method,path", [("GET", ""), ("POST", ""), ("GET", "/aaaaaaaaaaaaaaaaaaaaaaaaaa"),
                                         ("DELETE", "/aaaaaaaaaaaaaaaaaaaaaaaaaa")])
def test_webhooks_are_for_system_admins_only(hclient, method, path):
    response = hclient.open(f"/api/v0/webhooks{path}", method=method, headers=as_user(ALICE),
                            json={"url": URL, "events": ["*"]} if method == "POST" else None)
    assert response.status_code == 403 and "system admins" in response.get_json()["error"]
    assert hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 0


@pytest.mark.parametrize("body,field", [
    ({"url": URL, "events": ["incident_exploded"]}, "events"),
    ({"url": URL, "events": []}, "events"),
    ({"url": URL}, "events"),
    ({"url": "ftp://hooks.example.com/x", "events": ["*"]}, "https"),
    ({"url": "http://hooks.example.com/x", "events": ["*"]}, "WebhookHttpHosts"),
    ({"url": "https://user:pw@hooks.example.com/x", "events": ["*"]}, "password"),
    ({"url": "https://nowhere.invalid/x", "events": ["*"]}, "could not be resolved"),
    ({"url": "https://bücher.example/x", "events": ["*"]}, "xn--"),
    ({"url": URL, "events": ["*"], "secret": "short"}, "secret"),
    ({"url": URL, "events": ["*"], "team_id": "nope"}, "team_id"),
    ({"url": URL, "events": ["*"], "id": "a" * 26}, "id"),
])
def test_bad_webhook_is_refused_with_a_400_naming_what_to_fix_and_nothing_is_saved(hclient, body, field):
    response = hclient.post("/api/v0/webhooks", headers=as_user(ADMIN), json=body)
    assert response.status_code == 400 and field in response.get_json()["error"] + str(response.get_json()["details"])
    assert hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 0


def test_patch_changes_url_events_and_team_and_delete_removes_the_webhook(hclient):
    created = register(hclient, URL)
    path = f"/api/v0/webhooks/{created['id']}"
    changed = hclient.patch(path, headers=as_user(ADMIN), json={
        "url": "https://hooks.example.com/other", "events": ["note"], "team_id": TEAM})
    assert changed.status_code == 200
    assert changed.get_json()["url"].endswith("/other") and changed.get_json()["events"] == ["note"]
    assert changed.get_json()["team_id"] == TEAM and "secret" not in changed.get_json()
    assert hclient.patch(path, headers=as_user(ADMIN), json={"events": ["nope"]}).status_code == 400
    assert hclient.get(path, headers=as_user(ADMIN)).get_json()["events"] == ["note"]
    assert hclient.delete(path, headers=as_user(ADMIN)).status_code == 204
    assert hclient.get(path, headers=as_user(ADMIN)).status_code == 404
    assert hclient.delete(path, headers=as_user(ADMIN)).status_code == 404


def test_star_with_other_event_types_is_stored_as_star_alone(hclient):
    assert register(hclient, URL, ["note", "*"])["events"] == ["*"]


def test_webhook_list_pages_oldest_first(hclient, happ):
    ticks = itertools.count(1_700_000_000_000)
    happ.extensions["incident"].webhooks.clock = lambda: next(ticks)  # no two in one millisecond
    ids = [register(hclient, URL)["id"] for _ in range(3)]
    first = hclient.get("/api/v0/webhooks?per_page=2", headers=as_user(ADMIN)).get_json()
    second = hclient.get("/api/v0/webhooks?per_page=2&page=1", headers=as_user(ADMIN)).get_json()
    assert first["total_count"] == 3 and first["has_more"] and not second["has_more"]
    assert [item["id"] for item in first["items"] + second["items"]] == ids


def test_deliveries_list_each_attempt_and_a_pending_delivery_cannot_be_redelivered(hclient, happ):
    happ.extensions["incident"].webhook_sender.stop(5)  # nothing is sent: the delivery stays pending
    created = register(hclient, URL, ["incident_created"])
    incident = start_incident(hclient)
    page = hclient.get(f"/api/v0/webhooks/{created['id']}/deliveries", headers=as_user(ADMIN)).get_json()
    assert page["total_count"] == 1
    (delivery,) = page["items"]
    assert delivery["status"] == "pending" and delivery["incident_id"] == incident["id"]
    assert delivery["event_type"] == "incident_created" and delivery["attempts"] == 0
    assert delivery["attempt_log"] == [] and delivery["last_response_code"] is None
    again = hclient.post(f"/api/v0/webhooks/{created['id']}/deliveries/{delivery['id']}/redeliver",
                         headers=as_user(ADMIN))
    assert again.status_code == 409 and "already waiting" in again.get_json()["error"]
    missing = hclient.post(f"/api/v0/webhooks/{created['id']}/deliveries/{'b' * 26}/redeliver",
                           headers=as_user(ADMIN))
    assert missing.status_code == 404


def test_webhook_of_one_team_gets_only_that_teams_incidents(hclient, happ):
    happ.extensions["incident"].webhook_sender.stop(5)
    mine = register(hclient, URL, ["incident_created"], team_id=TEAM)
    other = register(hclient, URL, ["incident_created"], team_id="z" * 26)
    start_incident(hclient)
    count = {hook["id"]: hclient.get(f"/api/v0/webhooks/{hook['id']}/deliveries", headers=as_user(ADMIN))
             .get_json()["total_count"] for hook in (mine, other)}
    assert count == {mine["id"]: 1, other["id"]: 0}


def test_only_the_event_types_a_webhook_names_write_deliveries(hclient, happ):
    happ.extensions["incident"].webhook_sender.stop(5)
    hook = register(hclient, URL, ["incident_ended"])
    incident = start_incident(hclient)
    path = f"/api/v0/webhooks/{hook['id']}/deliveries"
    assert hclient.get(path, headers=as_user(ADMIN)).get_json()["total_count"] == 0
    assert hclient.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ADMIN)).status_code == 200
    items = hclient.get(path, headers=as_user(ADMIN)).get_json()["items"]
    assert [item["event_type"] for item in items] == ["incident_ended"]


def test_a_refused_change_writes_no_delivery(hclient, happ):
    happ.extensions["incident"].webhook_sender.stop(5)
    hook = register(hclient, URL)
    incident = start_incident(hclient)
    path = f"/api/v0/webhooks/{hook['id']}/deliveries"
    before = hclient.get(path, headers=as_user(ADMIN)).get_json()["total_count"]
    assert hclient.put(f"/api/v0/incidents/{incident['id']}/restart", headers=as_user(ADMIN)).status_code == 409
    assert hclient.get(path, headers=as_user(ADMIN)).get_json()["total_count"] == before == 1


def test_deleting_a_webhook_deletes_its_deliveries(hclient, happ, db):
    happ.extensions["incident"].webhook_sender.stop(5)
    hook = register(hclient, URL)
    start_incident(hclient)
    assert hclient.delete(f"/api/v0/webhooks/{hook['id']}", headers=as_user(ADMIN)).status_code == 204
    with db.read_engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(webhook_deliveries)).scalar_one() == 0


def test_openapi_document_lists_the_webhook_and_egress_paths(hclient):
    paths = hclient.get("/api/v0/openapi.json").get_json()["paths"]
    assert {"/api/v0/webhooks", "/api/v0/webhooks/{webhook_id}", "/api/v0/webhooks/{webhook_id}/deliveries",
            "/api/v0/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", "/api/v0/egress"} <= set(paths)


def test_sender_stops_waking_once_the_app_stops(happ):
    sender = happ.extensions["incident"].webhook_sender
    sender.wake()
    wait_until(lambda: sender.running, timeout=5)
    assert sender.stop(5) and not sender.running
