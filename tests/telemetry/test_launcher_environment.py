"""The launcher hands over the environment of a coming restart: the telemetry switch follows it at once."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugin.launcher import ENVIRONMENT_PATH
from plugin.settings import Settings
from tests.conftest import ALICE, TEAM, as_user
from tests.telemetry.conftest import make_app
from tests.telemetry.dataplane import DataPlane, wait_until

SECRET = "launcher-secret-0123456789"


@pytest.fixture
def apps(telemetry_settings: Settings) -> Iterator[list[Any]]:
    """Two apps on one database with telemetry on, as two worker processes of the plugin's server."""
    applications = [make_app(telemetry_settings.replace(HostSecret=SECRET)) for _ in range(2)]
    yield applications
    for application in applications:
        components = application.extensions["incident"]
        components.telemetry.stop(1.0)
        components.db.dispose()


def environment(plane: DataPlane, **variables: str) -> dict[str, str]:
    """The INCIDENT_* variables the launcher would start the server with."""
    return {"INCIDENT_RUDDER_WRITE_KEY": plane.write_key, "INCIDENT_RUDDER_DATA_PLANE_URL": plane.url,
            "INCIDENT_ENABLE_TELEMETRY": "true", "INCIDENT_SERVER_DIAGNOSTICS_ENABLED": "true",
            "INCIDENT_HOST_SECRET": SECRET, **variables}


def hand_over(application: Any, body: Any, secret: str = SECRET) -> Any:
    return application.test_client().post(ENVIRONMENT_PATH, json=body, headers={"X-Host-Secret": secret})


def start_incident(application: Any) -> None:
    response = application.test_client().post("/api/v0/incidents", headers={**as_user(ALICE), "X-Host-Secret": SECRET},
                                              json={"name": "db down", "team_id": TEAM, "commander_user_id": ALICE})
    assert response.status_code == 201, response.json


def outbox(application: Any) -> Any:
    return application.extensions["incident"].telemetry.outbox


@pytest.mark.parametrize("variables", [{"INCIDENT_ENABLE_TELEMETRY": "false"},
                                       {"INCIDENT_SERVER_DIAGNOSTICS_ENABLED": "false"},
                                       {"INCIDENT_RUDDER_WRITE_KEY": ""}],
                         ids=["EnableTelemetry", "ServerDiagnosticsEnabled", "RudderWriteKey"])
def test_a_coming_environment_with_telemetry_off_deletes_waiting_events_and_silences_every_process_at_once(
        apps, dataplane, variables):
    here, there = apps
    dataplane.stop()
    start_incident(there)
    assert outbox(there).pending_count() == 1
    response = hand_over(here, {"environment": environment(dataplane, **variables)})
    assert response.status_code == 204, response.json
    # Before any restart: the other process still runs with its old settings, and records and sends nothing.
    assert outbox(there).pending_count() == 0 and not outbox(there).switch().telemetry_on
    start_incident(there)
    assert outbox(there).pending_count() == 0
    dataplane.start()
    there.extensions["incident"].telemetry.stop(2.0)
    assert dataplane.requests == []
    assert here.extensions["incident"].telemetry.report()["deleted"] == 1


def test_a_coming_environment_with_telemetry_on_again_sends_only_what_is_recorded_after_it(apps, dataplane):
    here, there = apps
    dataplane.stop()
    start_incident(there)
    assert hand_over(here, {"environment": environment(dataplane, INCIDENT_ENABLE_TELEMETRY="false")}
                     ).status_code == 204
    assert hand_over(here, {"environment": environment(dataplane)}).status_code == 204
    assert outbox(there).switch().telemetry_on
    dataplane.start()
    start_incident(there)
    wait_until(lambda: dataplane.delivered())
    there.extensions["incident"].telemetry.stop(2.0)
    assert [message["properties"]["Action"] for message in dataplane.delivered()] == ["create"]


def test_the_same_environment_again_changes_nothing(apps, dataplane):
    here, _there = apps
    before = outbox(here).switch()
    assert hand_over(here, {"environment": environment(dataplane)}).status_code == 204
    assert outbox(here).switch() == before


@pytest.mark.parametrize("secret", ["", "not-the-secret"], ids=["missing", "wrong"])
def test_a_hand_over_without_the_launchers_secret_is_refused_and_changes_nothing(apps, dataplane, secret):
    here, _there = apps
    response = hand_over(here, {"environment": environment(dataplane, INCIDENT_ENABLE_TELEMETRY="false")}, secret)
    assert response.status_code == 401 and "X-Host-Secret" in response.json["error"]
    assert outbox(here).switch().telemetry_on


@pytest.mark.parametrize("body", [
    [],
    {"environment": {"PATH": "/usr/bin"}},
    {"environment": {"INCIDENT_ENABLE_TELEMETRY": False}},
    {"environment": {}, "also": 1},
    {"environment": {"INCIDENT_MAX_BODY_BYTES": "a lot", "INCIDENT_ENABLE_TELEMETRY": "false"}},
], ids=["not an object", "not an INCIDENT_ variable", "not text", "unknown field", "invalid setting"])
def test_a_malformed_hand_over_is_a_400_and_changes_nothing(apps, dataplane, body):
    here, _there = apps
    response = hand_over(here, body)
    assert response.status_code == 400 and response.json["error"]
    assert outbox(here).switch().telemetry_on


def test_a_hand_over_not_sent_as_json_is_a_415(apps):
    here, _there = apps
    response = here.test_client().post(ENVIRONMENT_PATH, data="environment=x", headers={"X-Host-Secret": SECRET},
                                       content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
