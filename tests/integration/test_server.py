"""`incident-plugin serve` and `migrate` for real: a subprocess on an ephemeral loopback port."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from plugin.store.migrate import MIGRATIONS
from tests.conftest import ALICE, TEAM, uid
from tests.threads import run_in_threads

CLI = str(Path(sys.executable).with_name("incident-plugin"))
LISTENING = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")
STARTUP_SECONDS = 60


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment less any INCIDENT_* setting of the machine, with a temp data dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    return {**env, "INCIDENT_DATA_DIR": str(tmp_path / "data"), **extra}


class Server:
    """`incident-plugin serve` (of so many worker processes, with more serve options) on port 0, started
    in its own process session so that kill() reaches the master and every worker at once.

    The constructor returns once every worker has booted and the server answers /healthz; `base` is
    its URL. The log goes to a file in tmp_path; a failed start shows it.
    """

    def __init__(self, tmp_path: Path, env: dict[str, str], *, workers: int = 1, options: Sequence[str] = ()) -> None:
        self.log_path = log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [CLI, "serve", "--host", "127.0.0.1", "--port", "0", "--workers", str(workers), *options],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
        try:
            self.base = _wait_until_served(self.process, log_path, workers)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, as a supervisor stops it; kill() if it has not exited within 30 seconds."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9 of the master and every worker at once: the server ends without running any shutdown code."""
        with suppress(ProcessLookupError):  # every process of the session has already exited
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _wait_until_served(process: subprocess.Popen, log_path: Path, workers: int) -> str:
    """The server's base URL, once its log names the port, every worker has booted and it answers /healthz."""
    deadline = time.monotonic() + STARTUP_SECONDS
    port = None
    while port is None:
        assert process.poll() is None, log_path.read_bytes().decode(errors="replace")
        assert time.monotonic() < deadline, "server did not start: " + log_path.read_text()
        match = LISTENING.search(log_path.read_bytes())
        port = int(match.group(1)) if match else None
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    while log_path.read_bytes().count(b"Booting worker") < workers \
            or call(base, "GET", "/healthz", user=None)[0] != 200:
        assert time.monotonic() < deadline, "server never answered /healthz"
        time.sleep(0.05)
    return base


@contextmanager
def serve(tmp_path: Path, env: dict[str, str], *, workers: int = 1, options: Sequence[str] = ()) -> Iterator[str]:
    """Run a Server until the block ends (then stop it); yield its base URL."""
    server = Server(tmp_path, env, workers=workers, options=options)
    try:
        yield server.base
    finally:
        server.stop()


def call(base: str, method: str, path: str, body=None, user: str | None = ALICE) -> tuple[int, dict]:
    """One JSON request; returns (status, body). Connection errors count as status 0."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **({"Mattermost-User-ID": user} if user else {})}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except (ConnectionError, urllib.error.URLError):
        return 0, {}


@pytest.mark.slow
def test_served_incident_moves_stage_ends_restarts_and_survives_a_server_restart(tmp_path, database_url):
    # SQLite: the default file in the data directory; PostgreSQL: the test run's database.
    env = clean_env(tmp_path, **({} if database_url.startswith("sqlite") else {"INCIDENT_DATABASE_URL": database_url}))
    with serve(tmp_path, env) as base:
        status, incident = call(base, "POST", "/api/v0/incidents", {
            "name": "served", "team_id": TEAM, "commander_user_id": ALICE,
            "checklists": [{"title": "Triage", "items": [{"title": "look"}]}, {"title": "Fix"}]})
        assert status == 201 and incident["active_stage_title"] == "Triage"
        path = f"/api/v0/incidents/{incident['id']}"
        assert call(base, "PATCH", path, {"active_stage": 1})[1]["active_stage_title"] == "Fix"
        status, ended = call(base, "PUT", path + "/end")
        assert status == 200 and ended["is_active"] is False
        status, restarted = call(base, "PUT", path + "/restart")
        assert status == 200 and restarted["is_active"] is True and restarted["end_at"] == 0
    assert (tmp_path / "data" / "incidents.db").exists() == database_url.startswith("sqlite")
    with serve(tmp_path, env) as base:
        status, page = call(base, "GET", f"/api/v0/incidents?team_id={TEAM}")
        assert status == 200 and page["total_count"] == 1
        (listed,) = page["items"]
        assert listed["id"] == incident["id"] and listed["active_stage"] == 1 and listed["is_active"] is True


def test_serve_on_all_interfaces_without_a_host_secret_refuses_to_start_with_exit_code_2(tmp_path):
    result = subprocess.run([CLI, "serve", "--host", "0.0.0.0", "--port", "0"], env=clean_env(tmp_path),
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without a host secret" in result.stderr
    assert "HostSecret" in result.stderr and "INCIDENT_HOST_SECRET" in result.stderr
    # The database is opened (a secret saved with `settings set` counts), but no
    # worker ever started: no access line, no listening socket.
    assert "Listening at" not in result.stderr and "Booting worker" not in result.stderr


def test_migrate_reports_the_newest_revision(tmp_path):
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    result = subprocess.run([CLI, "migrate"], env=clean_env(tmp_path), capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at revision {head}"
    again = subprocess.run([CLI, "migrate"], env=clean_env(tmp_path), capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() == f"database at revision {head}"


def test_served_api_refuses_a_forged_user_header_without_the_host_secret(tmp_path):
    secret = "chat-host-secret-0123456789abcdef"
    with serve(tmp_path, clean_env(tmp_path, INCIDENT_HOST_SECRET=secret)) as base:
        body = {"name": "forged", "team_id": TEAM, "commander_user_id": ALICE}
        status, error = call(base, "POST", "/api/v0/incidents", body)
        assert status == 401 and set(error) == {"error", "details"} and "X-Host-Secret" in error["error"]
        request = urllib.request.Request(f"{base}/api/v0/incidents?team_id={TEAM}", headers={
            "Mattermost-User-ID": ALICE, "X-Host-Secret": secret})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["total_count"] == 0, "the refused request created nothing"


@pytest.mark.slow
def test_served_workers_adding_the_same_person_at_once_answer_added_once(tmp_path, database_url):
    env = clean_env(tmp_path, **({} if database_url.startswith("sqlite") else {"INCIDENT_DATABASE_URL": database_url}))
    with serve(tmp_path, env, workers=2) as base:
        incident = call(base, "POST", "/api/v0/incidents", {"name": "crowded", "team_id": TEAM,
                                                          "commander_user_id": ALICE})[1]
        for round_ in range(3):  # each round a new person, added by eight requests at once
            newcomer = uid(f"rival{round_}")
            answers: list[tuple[int, dict]] = []
            run_in_threads(lambda _number: answers.append(call(
                base, "POST", f"/api/v0/incidents/{incident['id']}/members", {"user_ids": [newcomer]})), 8, 60)
            assert sorted(answers, key=lambda answer: answer[1].get("added", [])) == (
                [(200, {"added": [], "already_members": [newcomer]})] * 7
                + [(200, {"added": [newcomer], "already_members": []})])
        status, entries = call(base, "GET", f"/api/v0/incidents/{incident['id']}/timeline?event_type=members_added")
        assert status == 200 and len(entries) == 3
