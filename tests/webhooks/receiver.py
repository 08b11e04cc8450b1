"""A loopback webhook receiver: real HTTP, signatures checked with the code docs/webhooks.md shows, scriptable answers."""
from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


class _QuietServer(ThreadingHTTPServer):
    """A sender that gave up waiting leaves a broken pipe behind: expected here, not worth a traceback."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Receiver:
    """Answers POSTs with 200, or with scripted statuses; can be down, or slow; de-duplicates by delivery id."""

    def __init__(self, secret: str = "", tls: ssl.SSLContext | None = None) -> None:
        self.secret = secret
        self.tls = tls
        self.port = 0
        self.requests: list[Received] = []
        self.processed: dict[str, dict[str, Any]] = {}  # delivery id -> body, processed once
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.delay = 0.0
        self.arrivals = 0  # requests whose body was read, answered or not yet
        self._verify = documented_verify()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hook") -> str:
        """The receiver's URL (the same across stop/start)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def start(self) -> "Receiver":
        """Listen (on a fresh port the first time, on the same port after a stop)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.arrivals += 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                headers = dict(self.headers.items())
                signed = bool(receiver.secret) and receiver._verify(receiver.secret, self.headers, raw)
                with receiver._lock:
                    status, extra = receiver.script.popleft() if receiver.script else (200, {})
                    if not signed:
                        status = 401
                    body = json.loads(raw)
                    receiver.requests.append(Received(self.path, headers, raw, body, status, signed, time.monotonic()))
                    if 200 <= status < 300:
                        receiver.processed.setdefault(headers["X-Incident-Delivery"], body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Go down: connections are refused until start() again."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """Answer the next requests with these statuses (and headers), then 200 again."""
        with self._lock:
            self.script.extend((status, dict(headers or {})) for status in statuses)

    def answered(self, status: int = 200) -> list[Received]:
        """The requests answered with this status, in arrival order."""
        with self._lock:
            return [request for request in self.requests if request.status == status]


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll condition until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)
