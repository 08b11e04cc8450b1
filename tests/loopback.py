"""A real HTTP server on 127.0.0.1 for tests to post to, with answers they can script."""
from __future__ import annotations

import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _QuietServer(ThreadingHTTPServer):
    """A client that gave up waiting leaves a broken pipe behind: expected here, not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class LoopbackServer:
    """Serves POSTs with ``handle_post`` in a thread of its own; keeps its port across stop and start.

    ``fail_next`` queues statuses (and headers) that ``next_answer`` hands out before 200 again.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = 0
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        """Answer one POST (read its body from ``request.rfile``, answer with ``request.send_response``)."""
        raise NotImplementedError

    def start(self) -> Any:
        """Listen (on a fresh port the first time, on the same port after a stop); return self."""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                server.handle_post(self)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", self.port), Handler)
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
        """Answer the next requests with these statuses (e.g. 429, 500) and headers, then 200 again."""
        with self._lock:
            self.script.extend((status, dict(headers or {})) for status in statuses)

    def next_answer(self) -> tuple[int, dict[str, str]]:
        """The status and headers of the next answer (call with the lock held)."""
        return self.script.popleft() if self.script else (200, {})


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll predicate until it is truthy and return its value; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
