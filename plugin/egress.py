"""One record of what leaves the server: per destination host, telemetry batches, webhook deliveries, chat calls.

Every outgoing HTTP request goes through a ``CountingTransport`` (an ``httpx``
transport wrapped around the real one) that adds one to an in-memory count of its
kind, day and destination host, with a failure and a short content-free error when
it got no answer or an error status. No body, path or header is kept. Each process
adds its counts to the ``egress`` table every few seconds from a background thread,
started by the first request it counts, in one upsert per flush; so recording costs
a dictionary update per request, and ``GET /api/v0/egress`` shows every process's
requests up to the last few seconds.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from plugin import background
from plugin.store import egress as store

log = logging.getLogger(__name__)

KINDS = ("telemetry", "webhook", "chat")
FLUSH_SECONDS = 5.0


class _RequestLineFilter(logging.Filter):
    """Shortens the URLs in httpx's log lines to scheme, host and port: paths and queries may hold tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(f"{arg.scheme}://{arg.netloc.decode('ascii', 'replace')}"
                                if isinstance(arg, httpx.URL) else arg for arg in record.args)
        return True


_REQUEST_LINE_FILTER = _RequestLineFilter()


def hide_request_paths() -> None:
    """Keep paths and query strings of outgoing requests out of the logs (idempotent)."""
    logging.getLogger("httpx").addFilter(_REQUEST_LINE_FILTER)


class EgressRecorder:
    """Counts outgoing requests in memory and adds them to the database now and then (thread-safe)."""

    def __init__(self, db: Any, *, clock: Callable[[], float] = time.time, flush_seconds: float = FLUSH_SECONDS):
        self.db = db
        self.clock = clock
        hide_request_paths()
        self._lock = threading.Lock()
        self._counts: dict[tuple[int, str, str], dict[str, Any]] = {}
        self._flusher = _Flusher(self, flush_seconds)

    def record(self, kind: str, host: str, error: str | None = None) -> None:
        """Count one request of this kind to host; error (content-free) when it failed."""
        now = int(self.clock() * 1000)
        key = (now // store.DAY_MS, host[:255].lower(), kind)
        with self._lock:
            row = self._counts.get(key)
            if row is None:
                row = self._counts[key] = {"day": key[0], "host": key[1], "kind": kind, "requests": 0,
                                           "failures": 0, "last_at": 0, "last_error": "", "last_error_at": 0}
            row["requests"] += 1
            row["last_at"] = now
            if error is not None:
                row["failures"] += 1
                row["last_error"], row["last_error_at"] = error[:300], now
        self._flusher.start()

    def flush(self) -> int:
        """Add the counts kept so far to the database (kept for the next flush if that fails); return how many rows."""
        with self._lock:
            counts, self._counts = self._counts, {}
        try:
            store.add_counts(self.db, list(counts.values()))
        except Exception:
            with self._lock:
                for key, row in counts.items():
                    self._merge(key, row)
            raise
        return len(counts)

    def _merge(self, key: tuple[int, str, str], row: dict[str, Any]) -> None:
        mine = self._counts.setdefault(key, dict(row, requests=0, failures=0, last_error_at=0))
        mine["requests"] += row["requests"]
        mine["failures"] += row["failures"]
        mine["last_at"] = max(mine["last_at"], row["last_at"])
        if row["last_error_at"] > mine["last_error_at"]:
            mine["last_error"], mine["last_error_at"] = row["last_error"], row["last_error_at"]

    def report(self, days: int) -> dict[str, Any]:
        """What left the server in the last days (today included), per host and kind, after this process's flush."""
        self.flush()
        since = int(self.clock() * 1000) // store.DAY_MS - (days - 1)
        return {"days": days, "since": since * store.DAY_MS, "items": store.read_since(self.db, since)}

    def transport(self, kind: str, inner: httpx.BaseTransport | None = None) -> "CountingTransport":
        """An httpx transport that counts each request as this kind."""
        return CountingTransport(self, kind, inner or httpx.HTTPTransport())

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the flushing thread after a last flush."""
        return self._flusher.stop(timeout)


class _Flusher(background.BackgroundThread):
    """Flushes a recorder every few seconds, and once more when stopped.

    A flush with nothing to add ends the thread: a process that sends nothing keeps
    no thread for it, and the next request counted starts one again.
    """

    def __init__(self, recorder: EgressRecorder, interval: float):
        super().__init__("egress-flusher")
        self.recorder = recorder
        self.interval = interval

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            try:
                flushed = self.recorder.flush()
            except Exception as exc:  # noqa: BLE001 - kept for the next flush
                log.warning("egress: could not save the counts of outgoing requests (%s)", type(exc).__name__)
                flushed = 1
            if self._stopping.is_set() or not flushed:
                return


class CountingTransport(httpx.BaseTransport):
    """Wraps a transport: counts each request by the host it names (its Host header) and its outcome."""

    def __init__(self, recorder: EgressRecorder, kind: str, inner: httpx.BaseTransport):
        self.recorder = recorder
        self.kind = kind
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.headers.get("Host") or request.url.host
        try:
            response = self.inner.handle_request(request)
        except httpx.TimeoutException as exc:
            self.recorder.record(self.kind, host, f"timed out ({type(exc).__name__})")
            raise
        except httpx.HTTPError as exc:
            self.recorder.record(self.kind, host, f"not reached ({type(exc).__name__})")
            raise
        status = response.status_code
        self.recorder.record(self.kind, host, f"HTTP {status}" if status >= 400 else None)
        return response

    def close(self) -> None:
        self.inner.close()


def stop_all(timeout: float = 5.0) -> None:
    """Flush and stop every egress flusher of this process (gunicorn worker_exit)."""
    background.stop_all(_Flusher, timeout)
