"""A protocol-faithful fake Mattermost server on loopback, and a slash command client.

``FakeMattermost`` is a real HTTP server (``ThreadingHTTPServer`` on 127.0.0.1,
port 0) implementing the REST API v4 endpoints the adapter calls, with
Mattermost's status codes and error body ``{"id", "message", "detailed_error",
"request_id", "status_code"}``: 401 for a bad token, 403 when the caller lacks
permission, 404 for unknown users, channels and memberships, 400 for a taken
channel name. Faults (any status, with ``Retry-After``) can be injected per
route, and everything posted or created is recorded.

``send_slash_command`` sends a command the way Mattermost's server does
(``app/command.go``): form-encoded fields, repeated mention fields paired by
index, ``Accept: application/json`` and ``Authorization: Token <token>``.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import httpx

from plugin.model import new_id

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


@dataclass
class Fault:
    """An injected answer for matching requests."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class Post:
    """A post as the fake recorded it."""

    id: str
    channel_id: str
    user_id: str
    message: str


@dataclass
class State:
    """Everything the fake server knows."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    teams: dict[str, dict[str, Any]] = field(default_factory=dict)
    team_members: set[tuple[str, str]] = field(default_factory=set)
    # Mattermost keeps who left a team as a member row with delete_at set.
    former_team_members: dict[tuple[str, str], int] = field(default_factory=dict)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    channel_members: set[tuple[str, str]] = field(default_factory=set)
    posts: list[Post] = field(default_factory=list)
    hook_posts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=lambda: {
        "Version": "9.11.0", "DiagnosticId": new_id(), "TelemetryId": "", "DiagnosticsEnabled": "true",
        "SiteName": "Mattermost"})


class MattermostError(Exception):
    """An API error in Mattermost's shape."""

    def __init__(self, status: int, error_id: str, message: str):
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


def _not_found(what: str) -> MattermostError:
    return MattermostError(404, f"app.{what}.missing.app_error", f"Unable to find the existing {what}.")


FORBIDDEN = MattermostError(403, "api.context.permissions.app_error", "You do not have the appropriate permissions.")


class FakeMattermost:
    """A Mattermost server as far as the incident backend can tell."""

    def __init__(self) -> None:
        self.state = State()
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        # Bots are created as System Admins in the setup docs: reading others' memberships needs it.
        self.bot_id = self.add_user("incident-bot", roles="system_user system_admin")
        self.bot_token = self.token_for(self.bot_id)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # ----- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The site URL, e.g. http://127.0.0.1:54321."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeMattermost":
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()

    # ----- arranging the world ------------------------------------------------------------------
    def add_user(self, username: str, roles: str = "system_user") -> str:
        """Create a user; return its id."""
        with self.lock:
            user_id = new_id()
            self.state.users[user_id] = {"id": user_id, "username": username, "roles": roles,
                                         "email": f"{username}@example.com", "delete_at": 0}
            return user_id

    def token_for(self, user_id: str) -> str:
        """Issue a personal access token for a user."""
        with self.lock:
            token = secrets.token_hex(13)
            self.state.tokens[token] = user_id
            return token

    def add_team(self, name: str, members: list[str] = ()) -> str:
        """Create a team with these members (the bot always joins); return its id."""
        with self.lock:
            team_id = new_id()
            self.state.teams[team_id] = {"id": team_id, "name": name, "display_name": name}
            for user_id in [self.bot_id, *members]:
                self.state.team_members.add((team_id, user_id))
            return team_id

    def add_channel(self, team_id: str, name: str, members: list[str] = (), *, private: bool = False) -> str:
        """Create a channel with these members; return its id."""
        with self.lock:
            channel_id = new_id()
            self.state.channels[channel_id] = {"id": channel_id, "team_id": team_id, "name": name,
                                               "display_name": name, "type": "P" if private else "O",
                                               "purpose": "", "creator_id": ""}
            for user_id in members:
                self.state.channel_members.add((channel_id, user_id))
            return channel_id

    def join(self, channel_id: str, user_id: str) -> None:
        """Make a user a member of a channel."""
        with self.lock:
            self.state.channel_members.add((channel_id, user_id))

    def leave(self, channel_id: str, user_id: str) -> None:
        """Take a user out of a channel, as a removal in Mattermost does (no hook fires here)."""
        with self.lock:
            self.state.channel_members.discard((channel_id, user_id))

    def leave_team(self, team_id: str, user_id: str) -> None:
        """Take a user out of a team and, as Mattermost does, out of its channels (the member row stays, deleted)."""
        with self.lock:
            if (team_id, user_id) in self.state.team_members:
                self.state.team_members.discard((team_id, user_id))
                self.state.former_team_members[(team_id, user_id)] = int(time.time() * 1000)
            for channel_id, channel in self.state.channels.items():
                if channel["team_id"] == team_id:
                    self.state.channel_members.discard((channel_id, user_id))

    def inject(self, method: str, path: str, status: int, *, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next `times` requests matching method and path regex with status."""
        with self.lock:
            self.faults.append(Fault(method, re.compile(path), status, times, retry_after))

    def posts_in(self, channel_id: str) -> list[str]:
        """Messages posted in a channel, oldest first."""
        with self.lock:
            return [post.message for post in self.state.posts if post.channel_id == channel_id]

    def channel_named(self, team_id: str, name: str) -> dict[str, Any] | None:
        """A channel by team and name."""
        with self.lock:
            return next((c for c in self.state.channels.values()
                         if c["team_id"] == team_id and c["name"] == name), None)

    # ----- the slash command, as the server sends it ---------------------------------------------
    def run_command(self, backend_url: str, command_token: str, *, user_id: str, channel_id: str,
                    text: str) -> httpx.Response:
        """Send `/incident text` from this user in this channel, like Mattermost does."""
        with self.lock:
            channel = self.state.channels[channel_id]
            team = self.state.teams[channel["team_id"]]
            username = self.state.users[user_id]["username"]
            mentions = [(name, u["id"]) for name in re.findall(r"@([a-z0-9._-]+)", text)
                        for u in self.state.users.values() if u["username"] == name]
            channel_mentions = [(name, c["id"]) for name in re.findall(r"~([a-z0-9_-]+)", text)
                                for c in self.state.channels.values()
                                if c["name"] == name and c["team_id"] == team["id"]]
        return send_slash_command(
            backend_url, command_token, user_id=user_id, user_name=username, team_id=team["id"],
            team_domain=team["name"], channel_id=channel_id, channel_name=channel["name"], text=text,
            response_url=f"{self.url}/hooks/commands/{new_id()}", mentions=mentions,
            channel_mentions=channel_mentions)

    # ----- the HTTP side ------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # As Mattermost (Go's net/http sets TCP_NODELAY): with keep-alive, http.server's
            # separate writes of headers and body would otherwise wait for the client's
            # delayed ACK, about 40 ms per request.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, error_id: str, message: str, headers: dict[str, str] | None = None):
                self._send(status, {"id": error_id, "message": message, "detailed_error": "",
                                    "request_id": new_id(), "status_code": status}, headers)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                path, query = parts.path, parse_qs(parts.query)
                with fake.lock:
                    fake.state.requests.append((method, path))
                    fault = next((f for f in fake.faults if f.method == method and f.path.search(path)), None)
                    if fault:
                        fault.times -= 1
                        if fault.times <= 0:
                            fake.faults.remove(fault)
                if fault:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    return self._error(fault.status, "api.injected.app_error", "Injected failure.", headers)
                if path.startswith("/hooks/commands/") and method == "POST":
                    with fake.lock:
                        fake.state.hook_posts.append(json.loads(raw or b"{}"))
                    return self._send(200, {})
                token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                with fake.lock:
                    me = fake.state.tokens.get(token)
                if not me:
                    return self._error(401, "api.context.session_expired.app_error",
                                       "Invalid or expired session, please login again.")
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._error(400, "api.context.invalid_body_param.app_error", "Invalid or missing body.")
                try:
                    with fake.lock:
                        status, result = fake._route(method, path, query, body, me)
                except MattermostError as error:
                    return self._error(error.status, error.error_id, error.message)
                self._send(status, result)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        return Handler

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any, me: str) -> tuple[int, Any]:
        s = self.state
        segments = [unquote(part) for part in path.strip("/").split("/")]
        if segments[:2] != ["api", "v4"]:
            raise MattermostError(404, "api.context.404.app_error", "Sorry, we could not find the page.")
        route = segments[2:]
        admin = "system_admin" in s.users[me]["roles"].split()

        def user(user_id: str) -> dict[str, Any]:
            if user_id not in s.users:
                raise _not_found("user")
            return s.users[user_id]

        def channel(channel_id: str) -> dict[str, Any]:
            if channel_id not in s.channels:
                raise _not_found("channel")
            return s.channels[channel_id]

        def can_read(ch: dict[str, Any]) -> bool:
            if admin or (ch["id"], me) in s.channel_members:
                return True
            return ch["type"] == "O" and (ch["team_id"], me) in s.team_members

        match (method, route):
            case ("GET", ["config", "client"]):
                if query.get("format") != ["old"]:
                    raise MattermostError(501, "api.config.client.old_format.app_error",
                                          "New format for the client configuration is not supported yet.")
                return 200, dict(s.config)
            case ("GET", ["users", "me"]):
                return 200, user(me)
            case ("GET", ["users"]):
                # Mattermost lists users here, the way a path ending in /users/username/.. reaches it.
                return 200, list(s.users.values())
            case ("GET", ["teams", team_id, "channels"]):
                return 200, [c for c in s.channels.values() if c["team_id"] == team_id and c["type"] == "O"]
            case ("GET", ["users", "username", name]):
                found = next((u for u in s.users.values() if u["username"] == name.lower()), None)
                if not found:
                    raise _not_found("user")
                return 200, found
            case ("GET", ["users", user_id, "teams"]):
                user(user_id)
                if user_id != me and not admin:
                    raise FORBIDDEN
                return 200, [t for t in s.teams.values() if (t["id"], user_id) in s.team_members]
            case ("GET", ["users", user_id, "teams", team_id, "channels"]):
                user(user_id)
                if user_id != me and not admin:
                    raise FORBIDDEN
                return 200, [c for c in s.channels.values()
                             if c["team_id"] == team_id and (c["id"], user_id) in s.channel_members]
            case ("GET", ["users", user_id]):
                return 200, user(user_id)
            case ("GET", ["teams", team_id, "members", user_id]):
                if (team_id, me) not in s.team_members and not admin:
                    raise FORBIDDEN
                deleted = s.former_team_members.get((team_id, user_id), 0)
                if (team_id, user_id) not in s.team_members and not deleted:
                    raise _not_found("team_member")
                return 200, {"team_id": team_id, "user_id": user_id, "roles": "team_user", "delete_at": deleted}
            case ("GET", ["teams", team_id, "channels", "name", name]):
                found = next((c for c in s.channels.values() if c["team_id"] == team_id and c["name"] == name), None)
                if not found or not can_read(found):
                    raise _not_found("channel")
                return 200, found
            case ("POST", ["channels"]):
                body = body if isinstance(body, dict) else {}
                team_id, name = body.get("team_id", ""), body.get("name", "")
                if (team_id, me) not in s.team_members:
                    raise FORBIDDEN
                if body.get("type") not in ("O", "P") or not CHANNEL_NAME.match(name or ""):
                    raise MattermostError(400, "model.channel.is_valid.2_or_more.app_error",
                                          "Name must be 2 or more lowercase alphanumeric characters.")
                if not 1 <= len(body.get("display_name", "")) <= 64:
                    raise MattermostError(400, "model.channel.is_valid.display_name.app_error",
                                          "Invalid display name.")
                if self.channel_named(team_id, name):
                    raise MattermostError(400, "store.sql_channel.save_channel.exists.app_error",
                                          "A channel with that name already exists on the same team.")
                channel_id = new_id()
                s.channels[channel_id] = {"id": channel_id, "team_id": team_id, "name": name,
                                          "display_name": body["display_name"], "type": body["type"],
                                          "purpose": body.get("purpose", ""), "creator_id": me}
                s.channel_members.add((channel_id, me))
                return 201, s.channels[channel_id]
            case ("GET", ["channels", channel_id]):
                found = channel(channel_id)
                if not can_read(found):
                    raise FORBIDDEN
                return 200, found
            case ("POST", ["channels", channel_id, "members"]):
                found = channel(channel_id)
                user_id = (body or {}).get("user_id", "")
                user(user_id)
                if not admin and (channel_id, me) not in s.channel_members and found["type"] == "P":
                    raise FORBIDDEN
                if (found["team_id"], user_id) not in s.team_members:
                    raise MattermostError(403, "api.channel.add_user.to.channel.failed.app_error",
                                          "Failed to add user to channel: not a member of the team.")
                s.channel_members.add((channel_id, user_id))
                return 201, {"channel_id": channel_id, "user_id": user_id, "roles": "channel_user"}
            case ("GET", ["channels", channel_id, "members", user_id]):
                found = channel(channel_id)
                if not can_read(found):
                    raise FORBIDDEN
                if (channel_id, user_id) not in s.channel_members:
                    raise _not_found("channel_member")
                return 200, {"channel_id": channel_id, "user_id": user_id, "roles": "channel_user"}
            case ("POST", ["posts"]):
                body = body if isinstance(body, dict) else {}
                found = channel(body.get("channel_id", ""))
                if not admin and (found["id"], me) not in s.channel_members:
                    raise FORBIDDEN
                post = Post(new_id(), found["id"], me, str(body.get("message", "")))
                s.posts.append(post)
                return 201, {"id": post.id, "channel_id": post.channel_id, "user_id": me, "message": post.message}
        raise MattermostError(404, "api.context.404.app_error", "Sorry, we could not find the page.")


def send_slash_command(backend_url: str, token: str, *, user_id: str, user_name: str, team_id: str,
                       channel_id: str, text: str, team_domain: str = "team", channel_name: str = "town-square",
                       response_url: str = "", mentions: list[tuple[str, str]] = (),
                       channel_mentions: list[tuple[str, str]] = (), method: str = "POST",
                       timeout: float = 30.0, site_url: str | None = None) -> httpx.Response:
    """Send one `/incident` command to the backend exactly as a Mattermost server does (``site_url``: as the
    plugin's launcher does, which adds Mattermost's site URL)."""
    fields: list[tuple[str, str]] = [
        ("channel_id", channel_id), ("channel_name", channel_name), ("command", "/incident"),
        ("response_url", response_url), ("team_domain", team_domain), ("team_id", team_id),
        ("text", text), ("token", token), ("trigger_id", new_id()), ("user_id", user_id),
        ("user_name", user_name), ("root_id", "")]
    if site_url is not None:
        fields.append(("site_url", site_url))
    for name, mention_id in mentions:
        fields += [("user_mentions", name), ("user_mentions_ids", mention_id)]
    for name, mention_id in channel_mentions:
        fields += [("channel_mentions", name), ("channel_mentions_ids", mention_id)]
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    url = backend_url.rstrip("/") + "/command"
    with httpx.Client(timeout=timeout) as client:
        if method == "GET":
            return client.get(f"{url}?{urlencode(fields)}", headers=headers)
        return client.post(url, content=urlencode(fields).encode(),
                           headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
