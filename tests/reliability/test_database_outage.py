"""The database cut off or refusing connections: 503 with Retry-After, an ephemeral slash reply, nothing half-saved.

Real PostgreSQL faults: every backend of the test database is terminated (as a
restart or a network cut does), or the database stops accepting connections.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa

import plugin.store.database as database_module
from tests.conftest import ADMIN, ALICE, TEAM, as_user, uid
from tests.integration.test_server import Server, clean_env
from tests.reliability.test_logs import CANARY, assert_nothing_typed_logged
from tests.telemetry.dataplane import DataPlane, wait_until

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)

TOKEN = "outagetoken000000000000000"


@pytest.fixture
def settled(components, monkeypatch):
    """No ping at checkout, and the settings version read once is trusted from then on.

    So the request under test meets the cut connection in its own statements, not in
    the settings check before it (which answers 503 on its own).
    """
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    frozen = components.db.monotonic()
    monkeypatch.setattr(components.db, "monotonic", lambda: frozen)
    return components


@contextmanager
def _maintenance(url: str) -> Iterator[tuple[sa.Connection, str]]:
    """A connection to the server's maintenance database, and the name of the test database."""
    engine = sa.create_engine(sa.make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        yield connection, sa.make_url(url).database


def _cut(connection: sa.Connection, name: str) -> None:
    connection.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name "
                               "AND usename = current_user AND pid <> pg_backend_pid()"), {"name": name})


def cut_every_connection(url: str) -> None:
    """Terminate every backend of this database, as a restart or a network cut would."""
    with _maintenance(url) as (connection, name):
        _cut(connection, name)


@contextmanager
def refusing_connections(url: str) -> Iterator[None]:
    """The database accepts no connection (and has none) until the block ends."""
    with _maintenance(url) as (connection, name):
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            _cut(connection, name)
            yield
        finally:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def start(client, name: str = "db is down") -> dict:
    response = client.post("/api/v0/incidents", json={"name": name, "team_id": TEAM, "commander_user_id": ALICE},
                           headers=as_user(ALICE))
    assert response.status_code == 201, response.json
    return response.json


def names(client) -> list[str]:
    response = client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE))
    assert response.status_code == 200, response.json
    return sorted(item["name"] for item in response.json["items"])


def test_a_read_on_a_cut_connection_answers_503_with_retry_after_and_the_next_read_works(
        client, settled, database_url, caplog):
    incident = start(client, f"{CANARY} name")
    cut_every_connection(database_url)
    caplog.set_level(logging.DEBUG)

    refused = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE))

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json == {"error": "The database could not be reached; try again in a moment.", "details": {}}
    assert_nothing_typed_logged(caplog)
    again = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE))
    assert again.status_code == 200 and again.json["name"] == f"{CANARY} name"


def test_a_change_on_a_cut_connection_answers_503_saves_nothing_and_its_retry_saves_it_once(
        client, settled, database_url):
    start(client, "first")
    cut_every_connection(database_url)

    refused = client.post("/api/v0/incidents", json={"name": "second", "team_id": TEAM, "commander_user_id": ALICE},
                          headers=as_user(ALICE))

    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json["error"] == ("The database could not be reached, so the change may not have been saved: "
                                     "check, then try again in a moment.")
    assert names(client) == ["first"]
    start(client, "second")
    assert names(client) == ["first", "second"]


def test_requests_while_the_database_refuses_connections_answer_503_and_work_again_after(
        client, settled, database_url):
    incident = start(client)
    with refusing_connections(database_url):
        one = f"/api/v0/incidents/{incident['id']}"
        for method, path in (("GET", one), ("PUT", f"{one}/end"), ("GET", f"/api/v0/incidents?team_id={TEAM}")):
            response = client.open(path, method=method, headers=as_user(ALICE))
            assert response.status_code == 503, (method, path, response.json)
            assert response.headers["Retry-After"] == "1"
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json["is_active"] is True
    assert client.put(f"/api/v0/incidents/{incident['id']}/end", headers=as_user(ALICE)).status_code == 200


def test_a_slash_command_on_a_cut_connection_says_so_in_an_ephemeral_reply_and_its_retry_works(
        client, settled, database_url, caplog):
    settled.settings.replace(settled.settings.current.replace(SlashCommandToken=TOKEN))
    form = {"token": TOKEN, "team_id": TEAM, "channel_id": uid("square"), "user_id": ALICE, "user_name": "alice",
            "text": f"start {CANARY} name"}
    client.post("/command", data={**form, "text": "list"})  # the caller is known; the pool is in use
    cut_every_connection(database_url)
    caplog.set_level(logging.DEBUG)

    refused = client.post("/command", data=form)

    assert refused.status_code == 200
    assert refused.json == {"response_type": "ephemeral", "text": (
        "The incident server could not reach its database, so this command may not have run: check, then "
        "try again in a moment.")}
    assert_nothing_typed_logged(caplog)
    assert names(client) == []
    assert "started" in client.post("/command", data=form).json["text"]
    assert names(client) == [f"{CANARY} name"]


def test_a_request_whose_settings_check_meets_a_database_refusing_connections_answers_503_with_retry_after(
        client, components, database_url, monkeypatch):
    ticks = itertools.count(int(components.db.monotonic()) + 1)
    monkeypatch.setattr(components.db, "monotonic", lambda: float(next(ticks)))  # every version read is stale
    incident = start(client)
    with refusing_connections(database_url):
        refused = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json["error"] == ("The server could not read its settings from the database; try again in a "
                                     "moment.")
    assert client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).status_code == 200


# ----- the real server: several workers, its background threads, telemetry ------------------------------
def _incidents_sent(plane: DataPlane) -> set[str]:
    return {message["properties"]["incidentID"] for message in plane.delivered()
            if message["properties"].get("incidentID")}


@pytest.mark.slow
def test_a_real_server_answers_503_through_an_outage_and_after_it_serves_and_sends_telemetry_again(
        database_url, tmp_path):
    dataplane = DataPlane().start()
    env = clean_env(tmp_path, INCIDENT_DATABASE_URL=database_url, INCIDENT_ADMIN_USER_IDS=ADMIN,
                    INCIDENT_RUDDER_WRITE_KEY=dataplane.write_key, INCIDENT_RUDDER_DATA_PLANE_URL=dataplane.url)
    server = Server(tmp_path, env, workers=2, options=("--threads", "2"))
    try:
        with httpx.Client(base_url=server.base, headers=as_user(ALICE), timeout=10) as http:
            body = {"name": f"{CANARY} name", "team_id": TEAM, "commander_user_id": ALICE}
            before = http.post("/api/v0/incidents", json=body).json()["id"]
            wait_until(lambda: before in _incidents_sent(dataplane), timeout=20)
            with refusing_connections(database_url):
                for _ in range(6):  # several requests, so that each worker meets the outage
                    assert http.get(f"/api/v0/incidents/{before}").status_code == 503
                    refused = http.post("/api/v0/incidents", json=body)
                    assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
                time.sleep(3)  # the dispatcher, the reminder scanner and the webhook sender meet it too
            # Every worker and every background thread works again, on fresh connections.
            wait_until(lambda: http.get(f"/api/v0/incidents/{before}").status_code == 200, timeout=20)
            after = http.post("/api/v0/incidents", json=body)
            assert after.status_code == 201
            wait_until(lambda: after.json()["id"] in _incidents_sent(dataplane), timeout=30)
            listed = http.get(f"/api/v0/incidents?team_id={TEAM}").json()
            assert sorted(item["id"] for item in listed["items"]) == sorted([before, after.json()["id"]])
    finally:
        server.stop()
        dataplane.stop()
    assert server.process.returncode == 0
    assert CANARY.encode() not in server.log_path.read_bytes()
