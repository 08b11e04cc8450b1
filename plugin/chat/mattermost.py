"""The chat host port over a real Mattermost server's REST API v4, as a bot.

Client choice: plain ``httpx`` (already a dependency). The port needs about a
dozen endpoints; a hand-written call per endpoint keeps the status-code handling
(404 means "not a member", 400 "name taken" means "add a suffix") next to the
decision it drives, and one ``_call`` owns timeouts, retries and error mapping.
The generated ``mattermostautodriver`` would add aiohttp and hundreds of unused
methods, and raise its own exception classes that we would translate anyway.

Behaviour:
- Every call has a timeout (connect 3 s, each read 5 s by default), so a slash
  command answers well within Mattermost's 30 s limit in most failure cases.
- Retries (at most ``retries`` extra attempts) on 429 and 502/503/504, waiting the
  ``Retry-After`` seconds (capped) or a short back-off, and on connection
  failures where the request never reached the server. A 500 or a read timeout is
  not retried for POSTs, since the server may have acted on it (a second post
  would be a duplicate); reads are retried on those too.
- When Mattermost stays unreachable or refuses the bot, :class:`HostUnavailable`
  carries a message for the person who ran the command.
- Short-lived caches: user records (roles, username) 60 s; username -> id 60 s;
  positive channel and team membership answers 15 s ("not a member" is never
  cached, so a member added in Mattermost counts at once); a user's channel ids 15 s; verified personal
  tokens 60 s (keyed by a hash, never the token). Server facts are re-read every
  ``facts_ttl`` seconds (5 minutes) and listeners hear when they change.
- Memberships and channel ids are cached under ``memberships_version`` as read
  before Mattermost was asked, and trusted only while it stays the same: a leave
  reported by the launcher raises it (``plugin.membership``), so someone removed
  from a channel or team loses access at once in every process, not 15 s later.
- Site URL and bot token are read from the live settings on every call.
"""
from __future__ import annotations

import hashlib
import re
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from plugin.chat import ServerFacts
from plugin.errors import BadInput, HostUnavailable

log = logging.getLogger(__name__)

CHANNEL_EXISTS_ID = "store.sql_channel.save_channel.exists.app_error"
RETRY_STATUSES = {429, 502, 503, 504}
MAX_RETRY_WAIT = 5.0
# How long a task's slash command may take: Mattermost waits this long for a command's own server too.
RUN_COMMAND_TIMEOUT = 30.0
_NAMED_PATH = re.compile(r"/(username|name)/[^/?]+")


def _path_segment(name: str) -> bool:
    """True when a name typed by someone can stand as the last segment of a path: not empty, and not "." or "..",
    which an HTTP client resolves to another path (/users/username/.. is /users, a list of everyone)."""
    return name not in ("", ".", "..")


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when its body is something else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class _TTLCache:
    """A tiny thread-safe cache whose entries expire after ttl seconds, or once the version moves.

    An entry is stored with the version read before its value was fetched
    (``version()`` then ``put(..., version=...)``), and a lookup under any other
    version misses: a value fetched while the version moved is never trusted later.
    """

    def __init__(self, ttl: float, clock: Callable[[], float], version: Callable[[], int] = lambda: 0):
        self.ttl = ttl
        self.clock = clock
        self.version = version
        self._data: dict[Any, tuple[float, int, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, Any]:
        """(True, value) when fresh and stored under the version now in force, else (False, None)."""
        version = self.version()
        with self._lock:
            entry = self._data.get(key)
            if entry and entry[0] > self.clock() and entry[1] == version:
                return True, entry[2]
            self._data.pop(key, None)
            return False, None

    def put(self, key: Any, value: Any, version: int | None = None) -> None:
        """Store a value until ttl seconds from now, under version (by default the one in force now)."""
        version = self.version() if version is None else version
        with self._lock:
            if len(self._data) > 10_000:
                self._data.clear()
            self._data[key] = (self.clock() + self.ttl, version, value)

    def drop(self, predicate: Callable[[Any], bool]) -> None:
        """Forget every key the predicate accepts."""
        with self._lock:
            for key in [key for key in self._data if predicate(key)]:
                del self._data[key]


class MattermostChatHost:
    """The chat host port implemented against a Mattermost server's REST API v4."""

    shares_database = False  # a remote server: never part of our transactions

    def __init__(self, site_url: Callable[[], str], bot_token: Callable[[], str], *,
                 timeout: float = 5.0, retries: int = 3, facts_ttl: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None, memberships_version: Callable[[], int] = lambda: 0,
                 launcher_url: Callable[[], str] = lambda: "", launcher_secret: Callable[[], str] = lambda: ""):
        self._site_url = site_url
        self._bot_token = bot_token
        # The plugin's launcher, which runs slash commands as a user through Mattermost's plugin API.
        self._launcher_url = launcher_url
        self._launcher_secret = launcher_secret
        self.retries = retries
        self.facts_ttl = facts_ttl
        self.clock = clock
        self.sleep = sleep
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
                                    transport=transport, follow_redirects=False)
        self._users = _TTLCache(60, clock)
        self._usernames = _TTLCache(60, clock)
        self._membership = _TTLCache(15, clock, memberships_version)
        self._channel_ids = _TTLCache(15, clock, memberships_version)
        self._tokens = _TTLCache(60, clock)
        self._facts: ServerFacts | None = None
        self._facts_at = float("-inf")
        self._facts_lock = threading.Lock()
        self._facts_listeners: list[Callable[[ServerFacts | None, ServerFacts], None]] = []

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # ----- the one place HTTP happens -------------------------------------------------------
    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None,
              token: str | None = None, ok: tuple[int, ...] = (200, 201),
              passthrough: tuple[int, ...] = ()) -> httpx.Response:
        """Call the API; return a response whose status is in ok or passthrough, else raise HostUnavailable."""
        base = self._site_url().rstrip("/")
        url = f"{base}/api/v4{path}"
        headers = {"Authorization": f"Bearer {token if token is not None else self._bot_token()}",
                   "Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
        idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        response: httpx.Response | None = None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.request(method, url, json=json, params=params, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never reached the server: safe to try again for any method.
                if last:
                    raise HostUnavailable(f"Mattermost at {base} cannot be reached ({type(exc).__name__}); "
                                          "nothing was changed. Try again in a minute or ask an admin to "
                                          "check the MattermostSiteUrl setting.") from None
                self.sleep(self._backoff(attempt))
                continue
            except httpx.HTTPError as exc:
                if last or not idempotent:
                    raise HostUnavailable(f"Mattermost at {base} did not answer in time ({type(exc).__name__}). "
                                          "Try again in a minute.") from None
                self.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if status in ok or status in passthrough:
                return response
            retryable = status in RETRY_STATUSES or (status >= 500 and idempotent)
            if retryable and not last:
                self.sleep(self._retry_after(response, attempt))
                continue
            break
        assert response is not None
        raise self._refusal(method, path, response)

    def _backoff(self, attempt: int) -> float:
        return min(MAX_RETRY_WAIT, 0.2 * (2 ** attempt))

    def _retry_after(self, response: httpx.Response, attempt: int) -> float:
        header = response.headers.get("Retry-After", "")
        try:
            return max(0.0, min(MAX_RETRY_WAIT, float(header)))
        except ValueError:
            return self._backoff(attempt)

    def _refusal(self, method: str, path: str, response: httpx.Response) -> HostUnavailable:
        status = response.status_code
        try:
            body = response.json()
            server_message = str(body.get("message", "")) if isinstance(body, dict) else ""
        except ValueError:
            server_message = ""
        # Ids in paths are not personal, but usernames and channel names are: mask them.
        log.warning("Mattermost answered %s to %s %s", status, method, _NAMED_PATH.sub(r"/\1/*", path))
        if status == 401:
            text = "Mattermost rejected the bot token; an admin must check the MattermostBotToken setting."
        elif status == 403:
            text = ("Mattermost did not allow the bot to do this; an admin must give the bot account the "
                    "needed permissions (or add it to the team or channel).")
        elif status == 429:
            text = "Mattermost is rate-limiting requests right now; try again in a minute."
        elif status >= 500:
            text = "Mattermost is having trouble right now; try again in a minute."
        else:
            text = "Mattermost refused the request."
        details = {"status": status}
        if server_message:
            details["mattermost_message"] = server_message[:200]
        return HostUnavailable(text, details)

    # ----- users ------------------------------------------------------------------------------
    def _user(self, user_id: str) -> dict[str, Any] | None:
        found, user = self._users.get(user_id)
        if found:
            return user
        response = self._call("GET", f"/users/{user_id}", passthrough=(400, 404))
        user = response.json() if response.status_code == 200 else None
        self._users.put(user_id, user)
        if user:
            self._usernames.put(user.get("username", ""), user_id)
        return user

    def is_system_admin(self, user_id: str) -> bool:
        """True when the user's roles include system_admin."""
        user = self._user(user_id)
        return bool(user) and "system_admin" in str(user.get("roles", "")).split()

    def find_user_by_username(self, username: str) -> str | None:
        """GET /users/username/{name}: the id, or None on 404."""
        username = username.lstrip("@").lower()
        if not _path_segment(username):
            return None
        found, user_id = self._usernames.get(username)
        if found:
            return user_id
        response = self._call("GET", f"/users/username/{quote(username, safe='')}",
                              passthrough=(400, 404))
        user_id = _json_object(response).get("id") if response.status_code == 200 else None
        self._usernames.put(username, user_id)
        return user_id

    def mention(self, user_id: str) -> str:
        """@username, or @user_id when Mattermost cannot say."""
        try:
            user = self._user(user_id)
        except HostUnavailable:
            user = None
        return f"@{user['username']}" if user and user.get("username") else f"@{user_id}"

    def note_user(self, user_id: str, username: str) -> None:
        """Warm the username cache with a name Mattermost itself sent us."""
        if user_id and username:
            self._usernames.put(username.lower(), user_id)

    def user_for_token(self, token: str) -> str | None:
        """The id of the user a personal Mattermost token belongs to (None when Mattermost rejects it)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        found, user_id = self._tokens.get(key)
        if found:
            return user_id
        response = self._call("GET", "/users/me", token=token, passthrough=(401, 403))
        user_id = response.json().get("id") if response.status_code == 200 else None
        self._tokens.put(key, user_id)
        return user_id

    # ----- membership -------------------------------------------------------------------------
    def _member(self, kind: str, path: str, key: tuple[str, str]) -> bool:
        version = self._membership.version()  # before asking: a leave reported meanwhile outdates the answer
        found, answer = self._membership.get((kind, *key))
        if found:
            return answer
        # 404: not a member (or no such user or channel); 403: the bot cannot see it, so we cannot
        # vouch for the membership either.
        response = self._call("GET", path, passthrough=(400, 403, 404))
        # Mattermost keeps someone who left a team as a member with delete_at set.
        answer = response.status_code == 200 and not _json_object(response).get("delete_at")
        if answer:
            # Only "yes" is cached: someone just added in Mattermost must count at once.
            self._membership.put((kind, *key), answer, version)
        return answer

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        """GET /teams/{team}/members/{user}: 200 yes (unless deleted: the user left), 404/403 no."""
        return self._member("team", f"/teams/{team_id}/members/{user_id}", (team_id, user_id))

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        """GET /channels/{channel}/members/{user}: 200 yes, 404/403 no."""
        return self._member("channel", f"/channels/{channel_id}/members/{user_id}", (channel_id, user_id))

    def can_post(self, channel_id: str, user_id: str) -> bool:
        """Channel members and system admins may post."""
        return self.is_channel_member(channel_id, user_id) or self.is_system_admin(user_id)

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        """GET /users/{user}/teams/{team}/channels (for each of the user's teams when none given)."""
        version = self._channel_ids.version()  # before asking, as for memberships
        found, ids = self._channel_ids.get((user_id, team_id))
        if found:
            return ids
        if team_id:
            team_ids = [team_id]
        else:
            # 403 here means the bot lacks the System Admin role: a clear refusal, not an empty list.
            teams = self._call("GET", f"/users/{user_id}/teams", passthrough=(404,))
            team_ids = [team["id"] for team in teams.json()] if teams.status_code == 200 else []
        channel_ids: set[str] = set()
        for team in team_ids:
            response = self._call("GET", f"/users/{user_id}/teams/{team}/channels", passthrough=(404,))
            if response.status_code == 200:
                channel_ids.update(channel["id"] for channel in response.json())
        ids = frozenset(channel_ids)
        self._channel_ids.put((user_id, team_id), ids, version)
        return ids

    # ----- channels and posts -----------------------------------------------------------------
    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                       purpose: str = "", member_ids: Sequence[str] = ()) -> str:
        """POST /channels (on 'name already exists' retry with a random suffix), then add the members."""
        name = slug[:64]
        for _ in range(5):
            response = self._call("POST", "/channels", json={
                "team_id": team_id, "name": name, "display_name": display_name[:64],
                "type": "O" if public else "P", "purpose": purpose[:250]}, ok=(201,), passthrough=(400,))
            if response.status_code == 201:
                channel_id = response.json()["id"]
                self._channel_ids.drop(lambda key: True)
                # Mattermost has no call that creates a channel with members: one call each.
                for user_id in dict.fromkeys(member_ids):
                    self.add_channel_member(channel_id, user_id)
                return channel_id
            if not self._name_taken(response):
                raise self._refusal("POST", "/channels", response)
            # Incident names repeat; channel names must not: add a short random suffix.
            name = f"{slug[:57]}-{secrets.token_hex(3)}"
        raise HostUnavailable("Mattermost kept refusing the channel name; try a different incident name.")

    @staticmethod
    def _name_taken(response: httpx.Response) -> bool:
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and (body.get("id") == CHANNEL_EXISTS_ID or
                                           "already exists" in str(body.get("message", "")))

    def add_channel_member(self, channel_id: str, user_id: str) -> bool:
        """POST /channels/{channel}/members; True, as Mattermost answers 201 for existing members too."""
        self._call("POST", f"/channels/{channel_id}/members", json={"user_id": user_id}, ok=(200, 201))
        self._membership.drop(lambda key: key == ("channel", channel_id, user_id))
        self._channel_ids.drop(lambda key: key[0] == user_id)
        return True

    def post(self, channel_id: str, message: str) -> str:
        """POST /posts as the bot; return the post id."""
        response = self._call("POST", "/posts", json={"channel_id": channel_id, "message": message}, ok=(201,))
        return response.json()["id"]

    def run_command(self, user_id: str, team_id: str, channel_id: str, command: str) -> None:
        """Have the plugin's launcher run the command as the user (the REST API would run it as the bot)."""
        launcher = self._launcher_url().rstrip("/")
        if not launcher:
            raise BadInput("Running a task's command needs incident-response inside Mattermost as a plugin: "
                           "through the REST API alone it would run as the bot, not as you.")
        try:
            response = self._client.post(f"{launcher}/commands/execute", json={
                "user_id": user_id, "team_id": team_id, "channel_id": channel_id, "command": command},
                headers={"X-Host-Secret": self._launcher_secret()}, timeout=RUN_COMMAND_TIMEOUT)
        except httpx.HTTPError as exc:
            log.warning("could not reach the launcher to run a command (%s)", type(exc).__name__)
            raise HostUnavailable("The command could not be run just now; try again in a moment.") from None
        if response.status_code == 200:
            return
        if response.status_code == 422:
            reason = _error_text(response) or "it gave no reason"
            raise BadInput(f"Mattermost did not run the command: {reason}", {"refused_because": reason})
        log.warning("the launcher refused to run a command: status %s", response.status_code)
        raise HostUnavailable("The command could not be run just now; try again in a moment.")

    def find_channel_by_name(self, team_id: str, name: str) -> str | None:
        """GET /teams/{team}/channels/name/{name}: the id, or None."""
        name = name.lstrip("~").lower()
        if not _path_segment(name):
            return None
        response = self._call("GET", f"/teams/{team_id}/channels/name/{quote(name, safe='')}",
                              passthrough=(400, 403, 404))
        return _json_object(response).get("id") if response.status_code == 200 else None

    def channel_name(self, channel_id: str) -> str | None:
        """GET /channels/{channel}: its name, or None."""
        response = self._call("GET", f"/channels/{channel_id}", passthrough=(400, 403, 404))
        return response.json().get("name") if response.status_code == 200 else None

    # ----- server facts -----------------------------------------------------------------------
    def subscribe_facts(self, listener: Callable[[ServerFacts | None, ServerFacts], None]) -> None:
        """Call listener(old, new) whenever a refresh finds the server facts changed."""
        self._facts_listeners.append(listener)

    def server_facts(self) -> ServerFacts:
        """The cached facts, re-read once they are facts_ttl seconds old."""
        with self._facts_lock:
            if self._facts is not None and self.clock() - self._facts_at < self.facts_ttl:
                return self._facts
        return self.refresh_server_facts()

    def refresh_server_facts(self) -> ServerFacts:
        """Re-read the facts now; keep the last known ones if Mattermost cannot be reached."""
        try:
            response = self._call("GET", "/config/client", params={"format": "old"})
            config = response.json()
        except (HostUnavailable, ValueError):
            with self._facts_lock:
                if self._facts is not None:
                    self._facts_at = self.clock()
                    return self._facts
            raise
        facts = ServerFacts(
            diagnostic_id=str(config.get("DiagnosticId", "")), version=str(config.get("Version", "")),
            diagnostics_enabled=str(config.get("DiagnosticsEnabled", "false")).lower() == "true")
        with self._facts_lock:
            old, self._facts, self._facts_at = self._facts, facts, self.clock()
        if old != facts:
            if old is not None:
                log.info("Mattermost server facts changed: version %s -> %s, diagnostics %s -> %s",
                         old.version, facts.version, old.diagnostics_enabled, facts.diagnostics_enabled)
            for listener in list(self._facts_listeners):
                try:
                    listener(old, facts)
                except Exception:  # noqa: BLE001 - one listener must not stop the others
                    log.exception("server facts listener failed")
        return facts


def _error_text(response: httpx.Response) -> str:
    """The error an answer gives, one line, at most 300 characters; "" when it gives none."""
    error = _json_object(response).get("error")
    return " ".join(error.split())[:300] if isinstance(error, str) else ""
