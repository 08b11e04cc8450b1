"""A stand-in for the plugin's launcher: its `POST /commands/execute`, which runs a slash command as a user."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer


class FakeLauncher(LoopbackServer):
    """Records each call (the secret it carried and its body) and answers 200, or as told with ``answer``."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.calls: list[dict[str, Any]] = []
        self.reply: tuple[int, dict[str, Any]] = (200, {"text": "", "response_type": "ephemeral"})
        self._together: threading.Barrier | None = None
        #: Called while a call is under way, before it is answered.
        self.meanwhile: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, status: int, body: dict[str, Any]) -> None:
        """Answer every later call with this status and JSON body."""
        self.reply = (status, body)

    def answer_together(self, calls: int) -> None:
        """Hold each later call until ``calls`` of them are in, so that they are all under way at once."""
        self._together = threading.Barrier(calls, timeout=10)

    def handle_post(self, request: BaseHTTPRequestHandler) -> None:
        body = json.loads(request.rfile.read(int(request.headers.get("Content-Length", "0"))) or b"null")
        if self._together is not None:
            self._together.wait()
        if self.meanwhile is not None:
            self.meanwhile()
        with self._lock:
            self.calls.append({"path": request.path, "secret": request.headers.get("X-Host-Secret"), "body": body})
            status, reply = self.reply
        if request.path != "/commands/execute":
            status, reply = 404, {"error": "not found"}
        elif request.headers.get("X-Host-Secret") != self.secret:
            status, reply = 401, {"error": "missing or wrong X-Host-Secret"}
        data = json.dumps(reply).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
