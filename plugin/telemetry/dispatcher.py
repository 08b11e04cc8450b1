"""The dispatcher: one background thread per process that sends the outbox to RudderStack.

Why not the SDK's own queue: its consumer thread dies in a forked worker, its
``flush()`` can wait forever on a dead data plane, and queued events vanish at
exit. Here the outbox is the queue: the SDK's client runs in ``sync_mode`` (one
bounded HTTP request per event, no thread, no internal queue), an event is marked
delivered only after the data plane answered 200, failures back off
exponentially, and stopping waits a bounded time.
"""
from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from plugin.telemetry.outbox import Outbox, OutboxEvent

log = logging.getLogger(__name__)

_RUNNING: "weakref.WeakSet[Dispatcher]" = weakref.WeakSet()
# Seconds for connecting and again for reading the answer (requests applies it to each).
SEND_TIMEOUT = 5.0
_ATEXIT_REGISTERED = False


@dataclass(frozen=True)
class Destination:
    """Where events go: the data plane URL and the write key of its source."""

    data_plane_url: str
    write_key: str


class RudderSender:
    """Sends one event with the real ``rudder-sdk-python`` client, synchronously and bounded."""

    def __init__(self, destination: Destination, timeout: float = SEND_TIMEOUT):
        # Imported here, not at module import: the SDK loads .env files when imported,
        # and a host given explicitly below means a .env can never redirect events.
        from rudderstack.analytics.client import Client

        self.destination = destination
        self.client = Client(destination.write_key, host=destination.data_plane_url, sync_mode=True,
                             max_retries=1, timeout=timeout, gzip=True, max_queue_size=1)

    def send(self, event: OutboxEvent) -> dict[str, Any]:
        """Post the event; return the message exactly as sent. Raises when the data plane did not answer 200."""
        _ok, message = self.client.track(
            user_id=event.properties["diagnosticID"], event=event.event, properties=dict(event.properties),
            context={"ip": "0.0.0.0"}, anonymous_id=None, message_id=event.message_id,
            timestamp=datetime.fromtimestamp(event.recorded_at / 1000, tz=timezone.utc))
        return message


def describe_error(error: BaseException) -> str:
    """A short, content-free description of a delivery failure for admins and logs."""
    status = getattr(error, "status", None)
    if status is not None:
        return f"data plane answered HTTP {status}"
    return f"could not reach the data plane ({type(error).__name__})"


class Dispatcher:
    """Claims pending outbox events and sends them, in a daemon thread, until stopped."""

    def __init__(self, outbox: Outbox, destination: Callable[[], Destination | None], *,
                 on_disabled: Callable[[], None] = lambda: None,
                 sender_factory: Callable[[Destination], Any] = RudderSender,
                 poll_interval: float = 1.0, batch_size: int = 50, lease_ms: int = 20_000,
                 backoff_base: float = 1.0, backoff_max: float = 60.0):
        self.outbox = outbox
        self.destination = destination
        self.on_disabled = on_disabled
        self.sender_factory = sender_factory
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.lease_ms = lease_ms
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.failures = 0
        self._sender: Any = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Is the thread alive?"""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (once per process; call after fork, never at import)."""
        global _ATEXIT_REGISTERED
        with self._lock:
            if self.running or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="telemetry-dispatcher", daemon=True)
            self._thread.start()
            _RUNNING.add(self)
            if not _ATEXIT_REGISTERED:
                atexit.register(stop_all)
                _ATEXIT_REGISTERED = True

    def nudge(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Try once more to deliver what is pending, then stop; wait at most timeout seconds.

        Returns True when the thread ended in time. Events not delivered stay in the
        outbox for the next process.
        """
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # ----- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            delay = self._safe_cycle()
            if delay > 0:
                self._wake.wait(delay)
            self._wake.clear()
        # A last bounded attempt: whatever the caller of stop() waits for.
        if self.failures == 0:
            while self._safe_cycle() == 0:
                pass

    def _safe_cycle(self) -> float:
        try:
            return self.cycle()
        except Exception as exc:  # noqa: BLE001 - the thread must outlive any database hiccup
            log.warning("telemetry dispatcher: cycle failed (%s)", type(exc).__name__)
            self.failures += 1
            return self._backoff()

    def _backoff(self) -> float:
        # Full jitter: several processes that failed together do not retry together.
        return random.uniform(self.backoff_base / 2, min(self.backoff_max, self.backoff_base * 2 ** self.failures))

    def _sender_for(self, destination: Destination) -> Any:
        if self._sender is None or self._sender.destination != destination:
            self._sender = self.sender_factory(destination)
        return self._sender

    def cycle(self) -> float:
        """Send one batch; return how long to wait before the next (0: more is waiting)."""
        destination = self.destination()
        if destination is None:
            self.on_disabled()
            self._sender = None
            return self.poll_interval
        token, events = self.outbox.claim(self.batch_size, self.lease_ms)
        if not events:
            self.failures = 0
            return self.poll_interval
        sender = self._sender_for(destination)
        sent: list[tuple[int, dict[str, Any]]] = []
        error: BaseException | None = None
        # Stop while a whole send still fits in the lease: past it, another process may
        # take the same events. The lease is short so that a crashed process's claim
        # delays its events by seconds, not minutes.
        send_by = time.monotonic() + self.lease_ms / 1000 - 2 * SEND_TIMEOUT - 1
        try:
            for event in events:
                # Switching telemetry off stops traffic between two events, not after the batch.
                if self.destination() != destination or (sent and time.monotonic() > send_by):
                    break
                try:
                    sent.append((event.seq, sender.send(event)))
                except Exception as exc:  # noqa: BLE001 - any failure means: not delivered, try later
                    error = exc
                    break
        finally:
            self.outbox.mark_sent(sent)
            self.outbox.release(token)
        if error is not None:
            self.failures += 1
            message = describe_error(error)
            log.warning("telemetry: delivery failed, %d event(s) wait in the outbox: %s",
                        len(events) - len(sent), message)
            self.outbox.record_error(message)
            return self._backoff()
        self.failures = 0
        return 0 if len(events) == self.batch_size else self.poll_interval


def stop_all(timeout: float = 5.0) -> None:
    """Stop every dispatcher of this process, sharing one bounded wait (atexit, gunicorn worker_exit)."""
    deadline = time.monotonic() + timeout
    for dispatcher in list(_RUNNING):
        dispatcher.stop(max(0.0, deadline - time.monotonic()))
