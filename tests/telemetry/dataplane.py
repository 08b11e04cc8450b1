"""A loopback RudderStack data plane double: real HTTP, Basic-auth write key, gzip, scriptable failures."""
from __future__ import annotations

import base64
import gzip
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the data plane saw it."""

    path: str
    write_key: str
    content_encoding: str
    raw: bytes
    body: dict[str, Any]
    status: int
    at: float = 0.0


class DataPlane:
    """Answers ``POST /v1/batch`` with exactly 200, or with scripted statuses; can be down or hang."""

    def __init__(self) -> None:
        self.port = 0
        # A key of its own: a server of an earlier test still flushing to a port the
        # system has since given to this data plane is told 401 and kept apart.
        self.write_key = f"test-write-key-{secrets.token_hex(4)}"
        self.requests: list[Received] = []
        self.strangers: list[Received] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.poison: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._hang = threading.Event()
        self._release = threading.Event()

    @property
    def url(self) -> str:
        """Base URL of the data plane (stays the same across stop/start)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "DataPlane":
        """Listen (on a fresh ephemeral port the first time, on the same port after a stop)."""
        plane = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if plane._hang.is_set():
                    plane._release.wait(30)
                encoding = self.headers.get("Content-Encoding", "")
                data = gzip.decompress(raw) if encoding == "gzip" else raw
                auth = self.headers.get("Authorization", "")
                key = ""
                if auth.startswith("Basic "):
                    key = base64.b64decode(auth[6:]).decode().rsplit(":", 1)[0]
                body_json = json.loads(data)
                ids = {message.get("messageId") for message in body_json.get("batch", [])}
                if key != plane.write_key:
                    with plane._lock:
                        plane.strangers.append(Received(self.path, key, encoding, data, body_json, 401,
                                                        time.monotonic()))
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with plane._lock:
                    status, headers = plane.script.popleft() if plane.script else (200, {})
                    if status == 200 and ids & plane.poison:
                        status = 400
                    plane.requests.append(Received(self.path, key, encoding, data, body_json, status,
                                                   time.monotonic()))
                body = b"OK" if status == 200 else json.dumps({"code": "scripted", "message": "no"}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Go down: connections are refused until start() is called again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def hanging(self) -> bool:
        """Is the data plane holding requests unanswered?"""
        return self._hang.is_set()

    def hang(self) -> None:
        """Accept requests but answer none until release()."""
        self._release.clear()
        self._hang.set()

    def release(self) -> None:
        """Answer the requests held by hang()."""
        self._hang.clear()
        self._release.set()

    def fail_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next requests with these statuses (e.g. 429, 500) and headers, then 200 again."""
        with self._lock:
            self.script.extend((status, dict(headers or {})) for status in statuses)

    def refuse(self, *message_ids: str) -> None:
        """Answer 400 to every batch holding one of these messages (a poison event)."""
        with self._lock:
            self.poison.update(message_ids)

    def delivered(self) -> list[dict[str, Any]]:
        """Every message of every batch answered 200, in arrival order."""
        with self._lock:
            return [message for request in self.requests if request.status == 200
                    for message in request.body["batch"]]

    def delivered_ids(self) -> list[str]:
        """The messageId of every delivered message (repeats included)."""
        return [message["messageId"] for message in self.delivered()]

    def all_bytes(self) -> bytes:
        """Every byte of every request body received (gunzipped), delivered or not."""
        with self._lock:
            return b"".join(request.raw for request in self.requests)


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll predicate until it is truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
