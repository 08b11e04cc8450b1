"""GET /api/v0/egress: per destination host, what left the server (telemetry, webhooks, chat calls), no content."""
from __future__ import annotations

from plugin.egress import EgressRecorder
from tests.conftest import ADMIN, ALICE, as_user
from tests.fakes.mattermost import FakeMattermost
from tests.telemetry.dataplane import DataPlane
from tests.webhooks.conftest import fast, make_app, register, start_incident, stop
from tests.webhooks.receiver import wait_until


def _report(client, user=ADMIN, query=""):
    response = client.get(f"/api/v0/egress{query}", headers=as_user(user))
    assert response.status_code == 200, response.get_json()
    return response


def _item(client, kind, host, user=ADMIN):
    found = [item for item in _report(client, user).get_json()["items"] if item["kind"] == kind and item["host"] == host]
    return found[0] if found else None


def test_webhook_attempts_are_counted_per_host_with_the_last_error_and_no_content(hclient, receiver):
    hook = register(hclient, receiver.url(), ["incident_created"])
    receiver.secret = hook["secret"]
    receiver.fail_next(500)
    start_incident(hclient, "secret project zebra")
    wait_until(lambda: len(receiver.processed) == 1)
    host = f"127.0.0.1:{receiver.port}"
    wait_until(lambda: (_item(hclient, "webhook", host) or {}).get("requests") == 2)
    item = _item(hclient, "webhook", host)
    assert item["failures"] == 1 and item["last_error"]["error"] == "HTTP 500" and item["last_at"] > 0
    text = _report(hclient).get_data(as_text=True)
    assert "zebra" not in text and "/hook" not in text and hook["secret"] not in text


def test_telemetry_batches_are_counted_per_data_plane_host(settings, names):
    plane = DataPlane().start()
    application = make_app(fast(settings, RudderWriteKey=plane.write_key, RudderDataPlaneUrl=plane.url), names)
    try:
        client = application.test_client()
        start_incident(client)
        wait_until(lambda: len(plane.delivered()) >= 1)
        host = f"127.0.0.1:{plane.port}"
        wait_until(lambda: _item(client, "telemetry", host) is not None)
        item = _item(client, "telemetry", host)
        assert item["requests"] >= 1 and item["failures"] == 0 and item["last_error"] is None
    finally:
        application.extensions["incident"].telemetry.stop(5)
        stop(application)
        plane.stop()


def test_chat_server_calls_are_counted_per_host(settings, names):
    fake = FakeMattermost().start()
    admin = fake.add_user("boss", roles="system_user system_admin")
    application = make_app(fast(settings, MattermostSiteUrl=fake.url, MattermostBotToken=fake.bot_token), names)
    try:
        client = application.test_client()
        host = fake.url.removeprefix("http://")
        # The request asks Mattermost whether its caller is a system admin: one chat call at least.
        wait_until(lambda: (_item(client, "chat", host, user=admin) or {}).get("requests", 0) >= 1)
    finally:
        stop(application)
        fake.stop()


def test_counts_of_several_processes_add_up_in_one_row_per_day_host_and_kind(db):
    clock = [1_733_000_000.0]
    recorders = [EgressRecorder(db, clock=lambda: clock[0]) for _ in range(3)]
    for number, recorder in enumerate(recorders):
        recorder.record("webhook", "hooks.example.com", None)
        recorder.record("webhook", "hooks.example.com", f"HTTP 50{number}")
        clock[0] += 1
    for recorder in recorders:
        recorder.flush()
        recorder.stop(5)
    # Only this host: on PostgreSQL another test's process may still be adding its own counts.
    (item,) = [item for item in recorders[0].report(1)["items"] if item["host"] == "hooks.example.com"]
    assert (item["requests"], item["failures"], item["last_error"]["error"]) == (6, 3, "HTTP 502")


def test_egress_is_for_system_admins_and_refuses_a_bad_day_count(hclient):
    response = hclient.get("/api/v0/egress", headers=as_user(ALICE))
    assert response.status_code == 403 and "system admins" in response.get_json()["error"]
    assert hclient.get("/api/v0/egress?days=0", headers=as_user(ADMIN)).status_code == 400
    assert hclient.get("/api/v0/egress?days=x", headers=as_user(ADMIN)).status_code == 400
    assert _report(hclient, query="?days=30").get_json()["days"] == 30
