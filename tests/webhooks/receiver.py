"""A loopback webhook receiver: real HTTP, signatures checked with the code docs/webhooks.md shows, scriptable answers."""
from __future__ import annotations

import json
import re
import ssl
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.loopback import LoopbackServer, wait_until

__all__ = ["DOCS", "Receiver", "Received", "documented_verify", "wait_until"]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


def documented_verify() -> Any:
    """The ``verify`` function exactly as docs/webhooks.md prints it."""
    (code,) = re.findall(r"### Checking the signature\n\n```python\n(.*?)```", DOCS.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # noqa: S102 - the page's own example, run as printed
    return namespace["verify"]


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes
    body: dict[str, Any]
    status: int
    signed: bool
    at: float


class Receiver(LoopbackServer):
    """Answers POSTs with 200, or with scripted statuses; can be down, or slow; de-duplicates by delivery id."""

    def __init__(self, secret: str = "", tls: ssl.SSLContext | None = None) -> None:
        super().__init__(tls)
        self.secret = secret
        self.requests: list[Received] = []
        self.processed: dict[str, dict[str, Any]] = {}  # delivery id -> body, processed once
        self.delay = 0.0
        self.arrivals = 0  # requests whose body was read, answered or not yet
        self._verify = documented_verify()

    def url(self, path: str = "/hook") -> str:
        """The receiver's URL (the same across stop/start)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        with self._lock:
            self.arrivals += 1
        if self.delay:
            time.sleep(self.delay)
        headers = dict(request.headers.items())
        signed = bool(self.secret) and self._verify(self.secret, request.headers, raw)
        with self._lock:
            status, extra = self.next_answer()
            if not signed:
                status = 401
            body = json.loads(raw)
            self.requests.append(Received(request.path, headers, raw, body, status, signed, time.monotonic()))
            if 200 <= status < 300:
                self.processed.setdefault(headers["X-Incident-Delivery"], body)
        request.send_response(status)
        for name, value in extra.items():
            request.send_header(name, value)
        request.send_header("Content-Length", "2")
        request.end_headers()
        request.wfile.write(b"ok")

    def answered(self, status: int = 200) -> list[Received]:
        """The requests answered with this status, in arrival order."""
        with self._lock:
            return [request for request in self.requests if request.status == status]

