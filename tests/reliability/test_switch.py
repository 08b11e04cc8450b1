"""Run-time switches on the real multi-worker server: off is off at once, everywhere, and every
setting applies on every worker before the change returns."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from plugin.store import normalise_url
from plugin.store.tables import telemetry_outbox
from tests.conftest import ADMIN, ALICE, TEAM, _truncate_all, as_user
from tests.integration.test_server import clean_env
from tests.integration.test_server import serve as served
from tests.telemetry.dataplane import DataPlane, wait_until

CLI = str(Path(sys.executable).with_name("incident-plugin"))
SECRET = "switch-host-secret-0123456789abcdef"


def _env(tmp_path: Path, name: str, database_url: str, plane: DataPlane) -> dict[str, str]:
    """A server's environment: its own data directory, the shared database, telemetry in a config file
    (so that every switch can be changed at run time)."""
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps({"RudderWriteKey": plane.write_key, "RudderDataPlaneUrl": plane.url}))
    env = clean_env(tmp_path / name, INCIDENT_DATABASE_URL=database_url, INCIDENT_ADMIN_USER_IDS=ADMIN,
                    INCIDENT_CONFIG=str(config))
    return env


def serve(tmp_path: Path, env: dict[str, str], workers: int = 3) -> Any:
    """The real server with several workers of two threads (see tests/integration/test_server.py)."""
    return served(tmp_path, env, workers=workers, options=("--threads", "2"))


def _status(base: str, path: str, headers: dict[str, str] | None = None) -> int:
    # A fresh connection each time, so that requests spread over the workers.
    try:
        return httpx.get(base + path, headers=headers or {}, timeout=10).status_code
    except httpx.HTTPError:
        return 0


def _put_settings(base: str, changes: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    response = httpx.put(f"{base}/api/v0/settings", headers={**as_user(ADMIN), **(headers or {})},
                         json=changes, timeout=30)
    assert response.status_code == 200, response.text


def _report(base: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = httpx.get(f"{base}/api/v0/telemetry", headers={**as_user(ADMIN), **(headers or {})}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


class Load:
    """Threads that start incidents (each one event) on some servers until stopped."""

    def __init__(self, bases: list[str], threads_each: int = 2):
        self.stop_event = threading.Event()
        self.created = 0
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(base,), daemon=True)
                        for base in bases for _ in range(threads_each)]

    def _run(self, base: str) -> None:
        with httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            while not self.stop_event.is_set():
                try:
                    response = client.post(f"{base}/api/v0/incidents", headers=as_user(ALICE), json={
                        "name": "outage", "team_id": TEAM, "commander_user_id": ALICE})
                except httpx.HTTPError:
                    continue
                if response.status_code == 201:
                    with self._lock:
                        self.created += 1

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(15)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _recorded_after(plane: DataPlane, moment_ms: int, until_ms: int | None = None) -> list[dict[str, Any]]:
    return [message for message in plane.delivered()
            if message["properties"]["eventTimeStamp"] > moment_ms
            and (until_ms is None or message["properties"]["eventTimeStamp"] < until_ms)]


def _pending(database_url: str) -> int:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(telemetry_outbox)).scalar_one()
    finally:
        engine.dispose()


@pytest.fixture
def plane() -> Iterator[DataPlane]:
    data_plane = DataPlane().start()
    yield data_plane
    data_plane.release()
    data_plane.stop()


def _recorded_since(database_url: str, moment_ms: int) -> int:
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.connect() as connection:
            return connection.execute(sa.select(sa.func.count()).select_from(telemetry_outbox)
                                      .where(telemetry_outbox.c.recorded_at > moment_ms)).scalar_one()
    finally:
        engine.dispose()


def _switch_off_under_load(plane: DataPlane, database_url: str, put_base: str, load_bases: list[str]) -> None:
    """Under load on load_bases, switch telemetry off through put_base: no event recorded after the PUT
    returned is stored or reaches the data plane, and at most the batches on the wire at that moment
    arrive after it."""
    with Load(load_bases):
        wait_until(lambda: len(plane.delivered()) >= 20, timeout=60)
        _put_settings(put_base, {"EnableTelemetry": False})
        off_ms, off_at = _now_ms(), time.monotonic()
        stored = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # mutations go on, on every worker
            stored.append(_recorded_since(database_url, off_ms))
            time.sleep(0.05)
    time.sleep(2.5)  # more than a dispatcher's poll
    assert set(stored) == {0}
    assert _recorded_after(plane, off_ms) == []
    # One dispatcher per server may have had a batch on its way.
    assert len([request for request in plane.requests if request.at > off_at]) <= len(load_bases)
    report = _report(put_base)
    assert report["enabled"] is False and report["pending"] == 0


@pytest.mark.slow
def test_switching_telemetry_off_under_load_on_several_workers_sends_nothing_recorded_after_the_put_returned(
        tmp_path, database_url, plane):
    with serve(tmp_path, _env(tmp_path, "one", database_url, plane)) as base:
        _switch_off_under_load(plane, database_url, base, [base])


@pytest.mark.slow
@pytest.mark.postgres
def test_switching_telemetry_off_on_one_of_two_servers_sharing_postgresql_stops_both(tmp_path, postgres_url, plane):
    _truncate_all(postgres_url)
    with serve(tmp_path, _env(tmp_path, "one", postgres_url, plane), workers=2) as one, \
            serve(tmp_path, _env(tmp_path, "two", postgres_url, plane), workers=2) as two:
        _switch_off_under_load(plane, postgres_url, one, [one, two])
        assert _report(two)["enabled"] is False


@pytest.mark.slow
def test_events_recorded_while_telemetry_was_off_are_never_sent_after_it_is_switched_back_on(
        tmp_path, database_url, plane):
    with serve(tmp_path, _env(tmp_path, "one", database_url, plane)) as base:
        with Load([base]):
            wait_until(lambda: len(plane.delivered()) >= 10, timeout=60)
            _put_settings(base, {"EnableTelemetry": False})
            off_ms = _now_ms()
            time.sleep(1.0)  # mutations while off, on every worker
            on_ms = _now_ms()
            _put_settings(base, {"EnableTelemetry": True})
            time.sleep(1.0)
        wait_until(lambda: _report(base)["pending"] == 0, timeout=30, interval=0.2)
        time.sleep(1.5)  # a poll of every dispatcher after the outbox emptied
        assert _recorded_after(plane, off_ms, on_ms) == []
        assert _recorded_after(plane, on_ms), "telemetry works again once switched back on"


@pytest.mark.slow
def test_switching_telemetry_off_from_the_shell_deletes_the_events_an_idle_server_could_not_send(
        tmp_path, database_url, plane):
    plane.stop()  # down: the events wait
    env = _env(tmp_path, "one", database_url, plane)
    with serve(tmp_path, env, workers=2) as base:
        with httpx.Client(timeout=10) as client:
            for _ in range(30):
                assert client.post(f"{base}/api/v0/incidents", headers=as_user(ALICE), json={
                    "name": "outage", "team_id": TEAM, "commander_user_id": ALICE}).status_code == 201
        assert _pending(database_url) == 30
        # No request reaches the server from here until the data plane is back.
        result = subprocess.run([CLI, "settings", "set", "EnableTelemetry", "false"], env=env,
                                capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert _pending(database_url) == 0
        plane.start()
        time.sleep(3.0)  # dispatcher polls with the data plane up
        assert plane.requests == []
        report = _report(base)
        assert (report["enabled"], report["deleted"], report["sent"]) == (False, 30, 0)


@pytest.mark.slow
def test_a_host_secret_set_through_the_api_is_required_by_every_worker_as_soon_as_the_put_returns(
        tmp_path, database_url, plane):
    with serve(tmp_path, _env(tmp_path, "one", database_url, plane)) as base:
        path = f"/api/v0/incidents?team_id={TEAM}"
        # Every worker has served requests under the settings without a secret.
        assert all(_status(base, path, as_user(ALICE)) == 200 for _ in range(30))
        _put_settings(base, {"HostSecret": SECRET})
        statuses = [_status(base, path, as_user(ALICE)) for _ in range(60)]
        assert statuses == [401] * 60
        assert _status(base, path, {**as_user(ALICE), "X-Host-Secret": SECRET}) == 200
