"""A real Mattermost server for the end-to-end tests: start, stop, and a small REST v4 client."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PLUGIN_READY = 2  # PluginStateRunning in GET /plugins/statuses


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class MattermostServer:
    """One Mattermost process on its own PostgreSQL database and folders, configured by MM_* variables."""

    binary: Path
    database_url: str
    home: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The site URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server's console output goes."""
        return self.home / "mattermost.log"

    def environment(self) -> dict[str, str]:
        """The variables the server runs with: a clean environment, no secrets of the test runner."""
        for folder in ("data", "plugins", "client/plugins", "logs"):
            (self.home / folder).mkdir(parents=True, exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "MM_CONFIG": str(self.home / "config.json"),
            "MM_SQLSETTINGS_DRIVERNAME": "postgres",
            "MM_SQLSETTINGS_DATASOURCE": self.database_url,
            "MM_SERVICESETTINGS_LISTENADDRESS": f"127.0.0.1:{self.port}",
            "MM_SERVICESETTINGS_SITEURL": self.url,
            "MM_SERVICESETTINGS_ENABLESECURITYFIXALERT": "false",
            # Mattermost's defaults, stated: the plugin's bot and its token need neither.
            "MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS": "false",
            "MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION": "false",
            "MM_SERVICESETTINGS_ENABLELOCALMODE": "false",
            "MM_PLUGINSETTINGS_ENABLE": "true",
            "MM_PLUGINSETTINGS_ENABLEUPLOADS": "true",
            "MM_PLUGINSETTINGS_REQUIREPLUGINSIGNATURE": "false",
            "MM_PLUGINSETTINGS_ENABLEHEALTHCHECK": "true",
            "MM_PLUGINSETTINGS_DIRECTORY": str(self.home / "plugins"),
            "MM_PLUGINSETTINGS_CLIENTDIRECTORY": str(self.home / "client" / "plugins"),
            "MM_PLUGINSETTINGS_ENABLEMARKETPLACE": "false",
            "MM_PLUGINSETTINGS_ENABLEREMOTEMARKETPLACE": "false",
            "MM_PLUGINSETTINGS_AUTOMATICPREPACKAGEDPLUGINS": "false",
            "MM_FILESETTINGS_DIRECTORY": str(self.home / "data"),
            "MM_LOGSETTINGS_ENABLEFILE": "false",
            # Diagnostics stay switchable through the API (the tests turn them off); Sentry never starts.
            "MM_LOGSETTINGS_ENABLESENTRY": "false",
            "MM_LOGSETTINGS_FILELOCATION": str(self.home / "logs"),
            "MM_LOGSETTINGS_CONSOLELEVEL": "INFO",
            "MM_LOGSETTINGS_CONSOLEJSON": "true",
            "MM_NOTIFICATIONLOGSETTINGS_ENABLEFILE": "false",
            "MM_NOTIFICATIONLOGSETTINGS_FILELOCATION": str(self.home / "logs"),
            "MM_ANNOUNCEMENTSETTINGS_ADMINNOTICESENABLED": "false",
            "MM_ANNOUNCEMENTSETTINGS_USERNOTICESENABLED": "false",
            "MM_EMAILSETTINGS_SENDEMAILNOTIFICATIONS": "false",
            "MM_RATELIMITSETTINGS_ENABLE": "false",
            # A change sent with the session cookie must carry the CSRF token, not just X-Requested-With.
            "MM_SERVICESETTINGS_EXPERIMENTALSTRICTCSRFENFORCEMENT": "true",
            # A secret in Mattermost's own environment: the plugin's child must never see it.
            "MM_E2E_CANARY": "canary-not-for-plugins",
            **self.extra_env,
        }

    def start(self, timeout: float = 300.0) -> None:
        """Start the server (its own process group) and wait until it answers /system/ping."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(self.binary)], cwd=self.home, env=self.environment(),
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Mattermost exited with {self.process.returncode}; see {self.log_path}:\n"
                                   + self.log_tail())
            try:
                if httpx.get(f"{self.url}/api/v4/system/ping", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"Mattermost did not answer within {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """Stop the server and everything in its process group (plugins included)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Client:
    """REST v4 as one user (or anonymously): every call has a timeout and returns the response."""

    def __init__(self, url: str, token: str = ""):
        self.url = url
        self.token = token
        headers = {"X-Requested-With": "XMLHttpRequest"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.http = httpx.Client(base_url=url, headers=headers, timeout=60)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call /api/v4{path}."""
        return self.http.request(method, f"/api/v4{path}", **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call /api/v4{path}, fail on an error status, return the JSON body."""
        response = self.api(method, path, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def plugin(self, plugin_id: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call /plugins/<id>{path} (the plugin's own routes, through Mattermost)."""
        return self.http.request(method, f"/plugins/{plugin_id}{path}", **kwargs)

    def command(self, channel_id: str, text: str, team_id: str = "") -> httpx.Response:
        """Run a slash command as this user: POST /commands/execute."""
        body = {"channel_id": channel_id, "command": text}
        if team_id:
            body["team_id"] = team_id
        return self.api("POST", "/commands/execute", json=body)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()


def password_for(username: str) -> str:
    """The password create_user gives a user (a test that logs in again needs it)."""
    return f"Pw-{username}-12345!"


def create_user(admin: Client | None, url: str, username: str) -> tuple[str, str]:
    """Create a user (the first one becomes system admin) and log in; return (user id, session token)."""
    anonymous = Client(url)
    try:
        password = password_for(username)
        creator = admin or anonymous
        user = creator.ok("POST", "/users", json={"email": f"{username}@example.com", "username": username,
                                                   "password": password})
        login = anonymous.api("POST", "/users/login", json={"login_id": username, "password": password})
        assert login.status_code == 200, login.text
        return user["id"], login.headers["Token"]
    finally:
        anonymous.close()


def wait_for_plugin_state(admin: Client, plugin_id: str, state: int, timeout: float = 300.0) -> dict[str, Any]:
    """Poll GET /plugins/statuses until the plugin reaches state (2 running, 0 not running)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        statuses = admin.ok("GET", "/plugins/statuses")
        last = next((status for status in statuses if status["plugin_id"] == plugin_id), {})
        if last.get("state") == state or (state == 0 and not last):
            return last
        if last.get("state") in (3, 4) and state == PLUGIN_READY:  # failed to start / stopped after failures
            raise AssertionError(f"plugin {plugin_id} failed to start: {last}")
        time.sleep(1)
    raise AssertionError(f"plugin {plugin_id} did not reach state {state} in {timeout:.0f} s: {last}")
