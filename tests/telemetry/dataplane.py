"""A loopback RudderStack data plane double: real HTTP, Basic-auth write key, gzip, scriptable failures."""
from __future__ import annotations

import base64
import gzip
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer, wait_until

__all__ = ["DataPlane", "Received", "wait_until"]


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


class DataPlane(LoopbackServer):
    """Answers ``POST /v1/batch`` with exactly 200, or with scripted statuses; can be down or hang."""

    def __init__(self) -> None:
        super().__init__()
        # A key of its own: a server of an earlier test still flushing to a port the
        # system has since given to this data plane is told 401 and kept apart.
        self.write_key = f"test-write-key-{secrets.token_hex(4)}"
        self.requests: list[Received] = []
        self.strangers: list[Received] = []
        self.poison: set[str] = set()
        self.arrived = 0  # requests read, answered or not (a hanging one counts at once)
        self._hang = threading.Event()
        self._release = threading.Event()

    @property
    def url(self) -> str:
        """Base URL of the data plane (stays the same across stop/start)."""
        return f"http://127.0.0.1:{self.port}"

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        with self._lock:
            self.arrived += 1
        if self._hang.is_set():
            self._release.wait(30)
        encoding = request.headers.get("Content-Encoding", "")
        data = gzip.decompress(raw) if encoding == "gzip" else raw
        auth = request.headers.get("Authorization", "")
        key = ""
        if auth.startswith("Basic "):
            key = base64.b64decode(auth[6:]).decode().rsplit(":", 1)[0]
        body_json = json.loads(data)
        ids = {message.get("messageId") for message in body_json.get("batch", [])}
        if key != self.write_key:
            with self._lock:
                self.strangers.append(Received(request.path, key, encoding, data, body_json, 401, time.monotonic()))
            request.send_response(401)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        with self._lock:
            status, headers = self.next_answer()
            if status == 200 and ids & self.poison:
                status = 400
            self.requests.append(Received(request.path, key, encoding, data, body_json, status, time.monotonic()))
        body = b"OK" if status == 200 else json.dumps({"code": "scripted", "message": "no"}).encode()
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

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

