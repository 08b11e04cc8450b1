"""The switches end to end: an admin's PUT /api/v0/settings and the Mattermost server's diagnostics setting."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from plugin.app import create_app
from plugin.chat.mattermost import MattermostChatHost
from plugin.telemetry.dispatcher import RudderSender
from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.fakes.mattermost import FakeMattermost
from tests.telemetry.conftest import FAST
from tests.telemetry.dataplane import wait_until
from tests.telemetry.lifecycle import drive_every_mutation


def _put(client, **changes: Any) -> None:
    response = client.put("/api/v0/settings", headers=as_user(ADMIN), json=changes)
    assert response.status_code == 200, response.json


def test_an_admin_switching_telemetry_off_through_the_api_deletes_unsent_events_and_sends_nothing(
        tclient, tcomponents, dataplane):
    dataplane.stop()
    drive_every_mutation(tclient, tcomponents)
    assert tcomponents.telemetry.outbox.pending_count() == 11
    _put(tclient, EnableTelemetry=False)
    # At once: the PUT itself deleted them, before any poll.
    assert tcomponents.telemetry.outbox.pending_count() == 0
    dataplane.start()
    drive_every_mutation(tclient, tcomponents)
    assert tcomponents.telemetry.outbox.pending_count() == 0
    report = tclient.get("/api/v0/telemetry", headers=as_user(ADMIN)).json
    assert (report["enabled"], report["deleted"], report["sent"]) == (False, 11, 0)
    tcomponents.telemetry.stop(2.0)
    assert dataplane.requests == []


def test_an_admin_switching_telemetry_back_on_through_the_api_sends_only_new_events(tclient, tcomponents,
                                                                                      dataplane):
    _put(tclient, EnableTelemetry=False)
    drive_every_mutation(tclient, tcomponents)
    _put(tclient, EnableTelemetry=True)
    assert tclient.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE}).status_code == 201
    wait_until(lambda: dataplane.delivered())
    tcomponents.telemetry.stop(2.0)
    assert [m["properties"]["Action"] for m in dataplane.delivered()] == ["create"]
    assert tclient.get("/api/v0/telemetry", headers=as_user(ADMIN)).json["enabled"] is True


@pytest.mark.parametrize("switch", [{"EnableTelemetry": False}, {"RudderWriteKey": ""}, {"RudderDataPlaneUrl": ""},
                                    {"ServerDiagnosticsEnabled": False}], ids=lambda switch: next(iter(switch)))
def test_an_off_switch_saved_through_one_process_stops_another_process_at_once(telemetry_settings, dataplane,
                                                                                 switch):
    apps = [create_app(telemetry_settings, migrate_db=False, telemetry_options=FAST) for _ in range(2)]
    one, other = (application.extensions["incident"] for application in apps)
    try:
        dataplane.stop()
        _Track(other)()
        assert other.telemetry.outbox.pending_count() == 1
        _put(apps[0].test_client(), **switch)
        assert other.telemetry.outbox.pending_count() == 0  # deleted by the change itself
        # The other process has handled no request since: its own settings are stale.
        drive_every_mutation(apps[1].test_client(), other)
        _Track(other)()
        assert other.telemetry.outbox.pending_count() == 0
        dataplane.start()
        other.telemetry.stop(2.0)
        assert dataplane.requests == []
        assert one.telemetry.report()["deleted"] == 1
    finally:
        for components in (one, other):
            components.telemetry.stop(1.0)
            components.db.dispose()


def test_switching_off_while_a_request_hangs_lets_only_that_request_through_and_deletes_the_rest(telemetry_settings, dataplane):
    application = create_app(telemetry_settings, migrate_db=False, telemetry_options={**FAST, "batch_size": 2})
    application.config["TESTING"] = True
    components = application.extensions["incident"]
    client = application.test_client()
    try:
        dataplane.stop()
        for _ in range(3):
            drive_every_mutation(client, components)
        dataplane.hang()
        dataplane.start()
        wait_until(lambda: dataplane.hanging and components.telemetry.outbox.pending_count() == 33
                   and len(dataplane.requests) == 0 and components.telemetry.dispatcher.running)
        _put(client, EnableTelemetry=False)
        dataplane.release()
        components.telemetry.stop(5.0)
        # At most the one request already in flight got through; the rest were deleted.
        assert len(dataplane.requests) <= 1
        assert components.telemetry.outbox.pending_count() == 0
    finally:
        components.telemetry.stop(1.0)
        components.db.dispose()


def test_switching_off_returns_only_after_a_post_this_process_had_already_decided(telemetry_settings, dataplane):
    entered, release = threading.Event(), threading.Event()

    class HeldSender(RudderSender):
        """Holds its post after the dispatcher's last look at the switches, until released."""

        def send_batch(self, messages: list[dict[str, Any]]) -> None:
            entered.set()
            release.wait(10)
            super().send_batch(messages)

    application = create_app(telemetry_settings, migrate_db=False,
                             telemetry_options={**FAST, "sender_factory": HeldSender})
    components = application.extensions["incident"]
    switched = threading.Event()
    live = components.settings
    switch_off = threading.Thread(target=lambda: (live.replace(live.current.replace(EnableTelemetry=False)),
                                                  switched.set()))
    try:
        _Track(components)()
        assert entered.wait(10)
        switch_off.start()
        assert not switched.wait(0.3)  # the post under way ends first
        release.set()
        assert switched.wait(10)
        # That post went out before the switch returned; nothing goes out afterwards.
        assert len(dataplane.delivered()) == 1
        _Track(components)()
        components.telemetry.stop(2.0)
        assert len(dataplane.requests) == 1
    finally:
        release.set()
        if switch_off.is_alive():
            switch_off.join(10)
        components.telemetry.stop(1.0)
        components.db.dispose()


class _Track:
    """Records one playbook event directly through the port (no chat-side authentication needed)."""

    def __init__(self, components: Any):
        self.components = components

    def __call__(self) -> None:
        from tests.telemetry.test_delivery import record_playbook
        record_playbook(self.components, "create")


@pytest.fixture
def mattermost() -> Iterator[FakeMattermost]:
    fake = FakeMattermost().start()
    yield fake
    fake.stop()


@pytest.fixture
def mm_components(telemetry_settings, mattermost) -> Iterator[Any]:
    # facts_ttl=0: every switch check asks the fake, so a change there counts at once.
    host = MattermostChatHost(lambda: mattermost.url, lambda: mattermost.bot_token, facts_ttl=0.0, retries=0)
    application = create_app(telemetry_settings, host=host, migrate_db=False, telemetry_options=FAST)
    components = application.extensions["incident"]
    yield components
    components.telemetry.stop(2.0)
    components.db.dispose()


def test_mattermost_diagnostics_switched_off_as_seen_by_one_process_stop_another_that_has_not_looked(
        mm_components, telemetry_settings, mattermost, dataplane):
    # The other process asked Mattermost a moment ago and will not ask again for minutes.
    stale = MattermostChatHost(lambda: mattermost.url, lambda: mattermost.bot_token, facts_ttl=300.0, retries=0)
    other = create_app(telemetry_settings, host=stale, migrate_db=False, telemetry_options=FAST).extensions["incident"]
    try:
        dataplane.stop()
        _Track(other)()
        mattermost.state.config["DiagnosticsEnabled"] = "false"
        _Track(mm_components)()  # this process sees it: saved for every process
        wait_until(lambda: not mm_components.telemetry.outbox.switch().telemetry_on)
        assert mm_components.telemetry.outbox.pending_count() == 0
        _Track(other)()
        assert other.telemetry.outbox.pending_count() == 0
        dataplane.start()
        other.telemetry.stop(2.0)
        assert dataplane.requests == []
        # Saved by a thread of its own, whose change returns once every process's lease on the version ran out.
        wait_until(lambda: mm_components.settings.current["ServerDiagnosticsEnabled"] is False)
    finally:
        other.telemetry.stop(1.0)
        other.db.dispose()


def test_mattermost_diagnostics_switched_off_flip_the_database_switch_when_the_environment_fixes_the_setting(
        settings, dataplane, mattermost):
    from plugin.settings import load_settings
    environ = {"INCIDENT_DATABASE_URL": settings.database_url, "INCIDENT_DATA_DIR": str(settings.data_dir),
               "INCIDENT_SERVER_DIAGNOSTICS_ENABLED": "true", "INCIDENT_RUDDER_WRITE_KEY": "k",
               "INCIDENT_RUDDER_DATA_PLANE_URL": dataplane.url, "INCIDENT_REMINDER_SCAN_SECONDS": "0"}
    host = MattermostChatHost(lambda: mattermost.url, lambda: mattermost.bot_token, facts_ttl=0.0, retries=0)
    components = create_app(load_settings(environ=environ), host=host, migrate_db=False,
                            telemetry_options=FAST).extensions["incident"]
    try:
        dataplane.stop()
        _Track(components)()
        mattermost.state.config["DiagnosticsEnabled"] = "false"
        _Track(components)()
        wait_until(lambda: not components.telemetry.outbox.switch().telemetry_on)
        assert components.telemetry.outbox.pending_count() == 0
        mattermost.state.config["DiagnosticsEnabled"] = "true"
        components.host.server_facts()
        wait_until(lambda: components.telemetry.outbox.switch().telemetry_on)
    finally:
        components.telemetry.stop(1.0)
        components.db.dispose()


def test_mattermost_diagnostics_on_sends_with_its_diagnostic_id_and_version(mm_components, mattermost, dataplane):
    _Track(mm_components)()
    [message] = wait_until(lambda: dataplane.delivered())
    assert message["userId"] == mattermost.state.config["DiagnosticId"]
    assert message["properties"]["serverVersion"] == "9.11.0"


def test_mattermost_diagnostics_switched_off_stops_recording_and_deletes_unsent_events(mm_components, mattermost,
                                                                                        dataplane):
    track = _Track(mm_components)
    dataplane.stop()
    track()
    assert mm_components.telemetry.outbox.pending_count() == 1
    mattermost.state.config["DiagnosticsEnabled"] = "false"
    track()
    wait_until(lambda: mm_components.telemetry.outbox.pending_count() == 0)
    assert mm_components.telemetry.report()["reasons"] == ["the chat server's diagnostics are off"]
    assert mm_components.telemetry.report()["deleted"] == 1
    dataplane.start()
    track()
    mm_components.telemetry.stop(2.0)
    assert dataplane.requests == []
