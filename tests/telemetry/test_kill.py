"""kill -9 of the real server loses no committed event: the outbox delivers it after a restart."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from plugin.store import normalise_url
from plugin.store.tables import telemetry_outbox
from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.integration.test_server import Server, clean_env
from tests.telemetry.dataplane import DataPlane, wait_until


def _serve(database_url: str, tmp_path: Path, plane: DataPlane) -> Server:
    """A two-worker, two-thread server that sends to the data plane."""
    env = clean_env(tmp_path, INCIDENT_DATABASE_URL=database_url, INCIDENT_ADMIN_USER_IDS=ADMIN,
                    INCIDENT_RUDDER_WRITE_KEY=plane.write_key, INCIDENT_RUDDER_DATA_PLANE_URL=plane.url)
    return Server(tmp_path, env, workers=2, options=("--threads", "2"))


def _pending_ids(database_url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.select(telemetry_outbox.c.message_id)).scalars())
    finally:
        engine.dispose()


def _load(base: str, stop: threading.Event, acknowledged: list[int]) -> None:
    """Start incidents and add tasks until told to stop; count the changes the server acknowledged."""
    url = f"{base}/api/v0/incidents"
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            try:
                incident = client.post(url, headers=as_user(ALICE), json={
                    "name": "outage", "team_id": TEAM, "commander_user_id": ALICE})
                if incident.status_code == 201:
                    acknowledged.append(1)
                    added = client.post(f"{url}/{incident.json()['id']}/checklists/0/items",
                                        headers=as_user(ALICE), json={"title": "look"})
                    if added.status_code == 200:
                        acknowledged.append(1)
            except httpx.HTTPError:
                return  # the server is gone


@pytest.mark.slow
def test_kill_9_with_the_data_plane_down_then_restart_delivers_every_committed_event_once(
        database_url, tmp_path):
    plane = DataPlane().start()
    plane.stop()  # keep its port, refuse connections: the data plane is down
    server = _serve(database_url, tmp_path, plane)
    stop, acknowledged = threading.Event(), []
    load = threading.Thread(target=_load, args=(server.base, stop, acknowledged))
    load.start()
    try:
        wait_until(lambda: len(acknowledged) >= 20, timeout=30)
    finally:
        server.kill()  # mid-load
        stop.set()
        load.join(10)
    committed = _pending_ids(database_url)
    assert len(committed) >= len(acknowledged) and plane.requests == []
    plane.start()
    server = _serve(database_url, tmp_path, plane)
    try:
        # A claim the killed server held stays leased for at most the lease (20 s).
        wait_until(lambda: set(plane.delivered_ids()) == committed, timeout=45)
        wait_until(lambda: not _pending_ids(database_url), timeout=10)
        assert len(plane.delivered_ids()) == len(committed)
    finally:
        server.stop()
        plane.stop()


def _start_incidents(base: str, count: int) -> None:
    with httpx.Client(timeout=5) as client:
        for _ in range(count):
            assert client.post(f"{base}/api/v0/incidents", headers=as_user(ALICE), json={
                "name": "outage", "team_id": TEAM, "commander_user_id": ALICE}).status_code == 201


@pytest.mark.slow
def test_after_sigterm_a_server_sends_nothing_more_and_the_next_one_sends_what_waits(database_url, tmp_path):
    # A stopping server cannot be told of a telemetry switch turned off meanwhile (the
    # launcher hands settings to running servers only): it must send nothing more.
    plane = DataPlane().start()
    plane.hang()
    server = _serve(database_url, tmp_path, plane)
    try:
        _start_incidents(server.base, 1)
        wait_until(lambda: plane.arrived == 1)  # the sending worker waits for the data plane's answer
        _start_incidents(server.base, 3)
        os.killpg(server.process.pid, signal.SIGTERM)  # as the launcher stops it: every process at once
        time.sleep(0.3)
        plane.release()
        server.process.wait(timeout=30)
        assert plane.arrived == 1 and len(plane.delivered_ids()) == 1 and len(_pending_ids(database_url)) == 3
        server = _serve(database_url, tmp_path, plane)
        wait_until(lambda: len(plane.delivered_ids()) == 4 and not _pending_ids(database_url))
        assert len(set(plane.delivered_ids())) == 4
    finally:
        plane.release()
        server.stop()
        plane.stop()


@pytest.mark.slow
def test_sigterm_with_a_hanging_data_plane_exits_in_bounded_time_and_keeps_the_events(database_url, tmp_path):
    plane = DataPlane().start()
    plane.hang()
    server = _serve(database_url, tmp_path, plane)
    try:
        _start_incidents(server.base, 3)
        wait_until(lambda: len(_pending_ids(database_url)) == 3)
    finally:
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
        plane.release()
        plane.stop()
    assert took < 15 and len(_pending_ids(database_url)) == 3


@pytest.mark.slow
def test_two_servers_on_one_database_both_serve_and_no_event_is_sent_twice(database_url, tmp_path):
    plane = DataPlane().start()
    homes = [tmp_path / "server0", tmp_path / "server1"]  # a data directory each, as on two machines
    for home in homes:
        home.mkdir()
    servers = [_serve(database_url, home, plane) for home in homes]
    try:
        loads = [threading.Thread(target=_start_incidents, args=(server.base, 15)) for server in servers]
        for load in loads:
            load.start()
        for load in loads:
            load.join(60)
        # Every acknowledged create is one event; both servers' dispatchers claim from
        # the same outbox, and the data plane must see each messageId exactly once.
        wait_until(lambda: len(set(plane.delivered_ids())) == 30, timeout=30)
        wait_until(lambda: not _pending_ids(database_url), timeout=10)
        time.sleep(1.5)  # a double send would arrive within a dispatch cycle
        assert len(plane.delivered_ids()) == 30
    finally:
        for server in servers:
            server.stop()
        plane.stop()
