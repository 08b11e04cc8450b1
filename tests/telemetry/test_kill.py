"""kill -9 of the real server loses no committed event: the outbox delivers it after a restart."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from plugin.store import normalise_url
from plugin.store.tables import telemetry_outbox
from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.telemetry.dataplane import DataPlane, wait_until


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(database_url: str, data_dir: Path, plane: DataPlane, port: int) -> subprocess.Popen:
    command = Path(sys.executable).parent / "incident-plugin"
    args = [str(command)] if command.exists() else [sys.executable, "-m", "plugin.cli"]
    env = {**os.environ, "INCIDENT_DATABASE_URL": database_url, "INCIDENT_ADMIN_USER_IDS": ADMIN,
           "INCIDENT_DATA_DIR": str(data_dir), "INCIDENT_RUDDER_WRITE_KEY": plane.write_key,
           "INCIDENT_RUDDER_DATA_PLANE_URL": plane.url}
    # Its own session, so that kill -9 reaches the master and every worker at once.
    server = subprocess.Popen([*args, "serve", "--port", str(port), "--workers", "2", "--threads", "2"],
                              env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_until(lambda: _healthy(port), timeout=30, interval=0.1)
    return server


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _kill9(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)


def _pending_ids(database_url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.select(telemetry_outbox.c.message_id)).scalars())
    finally:
        engine.dispose()


def _load(port: int, stop: threading.Event, acknowledged: list[int]) -> None:
    """Start incidents and add tasks until told to stop; count the changes the server acknowledged."""
    base = f"http://127.0.0.1:{port}/api/v0/incidents"
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            try:
                incident = client.post(base, headers=as_user(ALICE), json={
                    "name": "outage", "team_id": TEAM, "commander_user_id": ALICE})
                if incident.status_code == 201:
                    acknowledged.append(1)
                    added = client.post(f"{base}/{incident.json()['id']}/checklists/0/items",
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
    port = _free_port()
    server = _serve(database_url, tmp_path, plane, port)
    stop, acknowledged = threading.Event(), []
    load = threading.Thread(target=_load, args=(port, stop, acknowledged))
    load.start()
    try:
        wait_until(lambda: len(acknowledged) >= 20, timeout=30)
    finally:
        _kill9(server)  # mid-load
        stop.set()
        load.join(10)
    committed = _pending_ids(database_url)
    assert len(committed) >= len(acknowledged) and plane.requests == []
    plane.start()
    server = _serve(database_url, tmp_path, plane, _free_port())
    try:
        # A claim the killed server held stays leased for at most the lease (20 s).
        wait_until(lambda: set(plane.delivered_ids()) == committed, timeout=45)
        wait_until(lambda: not _pending_ids(database_url), timeout=10)
        assert len(plane.delivered_ids()) == len(committed)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        plane.stop()


def _start_incidents(port: int, count: int) -> None:
    with httpx.Client(timeout=5) as client:
        for _ in range(count):
            assert client.post(f"http://127.0.0.1:{port}/api/v0/incidents", headers=as_user(ALICE), json={
                "name": "outage", "team_id": TEAM, "commander_user_id": ALICE}).status_code == 201


@pytest.mark.slow
def test_sigterm_delivers_what_is_pending_before_the_server_exits(database_url, tmp_path):
    plane = DataPlane().start()
    port = _free_port()
    server = _serve(database_url, tmp_path, plane, port)
    try:
        _start_incidents(port, 3)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        plane.stop()
    assert len(set(plane.delivered_ids())) == 3 and not _pending_ids(database_url)


@pytest.mark.slow
def test_sigterm_with_a_hanging_data_plane_exits_in_bounded_time_and_keeps_the_events(database_url, tmp_path):
    plane = DataPlane().start()
    plane.hang()
    port = _free_port()
    server = _serve(database_url, tmp_path, plane, port)
    try:
        _start_incidents(port, 3)
        wait_until(lambda: len(_pending_ids(database_url)) == 3)
    finally:
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        took = time.monotonic() - started
        plane.release()
        plane.stop()
    assert took < 15 and len(_pending_ids(database_url)) == 3


@pytest.mark.slow
def test_two_servers_on_one_database_both_serve_and_no_event_is_sent_twice(database_url, tmp_path):
    plane = DataPlane().start()
    ports = [_free_port(), _free_port()]
    servers = [_serve(database_url, tmp_path / f"server{n}", plane, port) for n, port in enumerate(ports)]
    try:
        loads = [threading.Thread(target=_start_incidents, args=(port, 15)) for port in ports]
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
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(30)
        plane.stop()
