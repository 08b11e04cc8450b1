"""The dispatcher: one background thread per process that sends the outbox to RudderStack.

Why not the SDK's own queue (``Client`` without ``sync_mode``): its consumer
thread dies in a forked worker, its ``flush()`` can wait forever on a dead data
plane, and queued events vanish at exit. Why not ``Client(sync_mode=True)``: it
posts one HTTP request per event, a few hundred events a second at best. Here the
outbox is the queue and the SDK does the rest: its ``Client`` (with ``send=False``:
no thread, no queue, no request) defines each message (the outbox id as
``messageId``, the diagnostic id as ``userId``, no ``anonymousId``, ``context.ip``
0.0.0.0). Each claimed batch goes out as one gzipped ``/v1/batch`` request, in
the body, headers and authentication the SDK's ``request.post`` uses, sent with
httpx: ``request.post`` raises an error that keeps the status but not the
``Retry-After`` header, and the SDK offers no public way to see the response.
Events are marked delivered only when the data plane answered 200.

A message whose properties are all strings, whole numbers and booleans (what the
catalogue lets in) is built by ``RudderSender.message`` itself, in the SDK's own
shape and with its library constants: ``Client.track`` copies and type-checks every
value and serializes every message once more to check a 4 MB limit that a
catalogued event (under 1 KB) cannot reach. tests/telemetry/test_sender.py checks, for every catalogued event,
that both build the same message; anything else goes through ``Client.track``.

Faults: a 429 waits for its ``Retry-After`` (bounded); 5xx, other statuses and
connection errors back off exponentially with jitter; a 400 (or 413) refuses the
whole batch, so the batch is bisected until the good events are delivered and
each event still refused on its own is marked ``rejected``: counted, shown to
admins, never retried. A stopping process sends nothing more (``Dispatcher.stop``).

One process of a server sends (``Turn``): the workers of one server share a lock
file in its data directory, and the worker holding it dispatches while the others
only record. Batches are then as big as the server's whole traffic allows: each
batch costs two transactions, an HTTP request and an audit row whatever its size,
so five workers sending a fifth each cost nearly five times as much. A worker
that exits or dies lets go of the lock, and another takes over within a poll.
Two servers (each its own data directory) both dispatch; leases keep them apart.
"""
from __future__ import annotations

import email.utils
import gzip
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from plugin import background
from plugin.lockfile import LockFile
from plugin.telemetry.outbox import Outbox, OutboxEvent

log = logging.getLogger(__name__)

# Seconds for connecting and again for reading the answer (requests applies it to each).
SEND_TIMEOUT = 5.0
# A Retry-After is honoured up to this many seconds (a broken gateway must not park us for days).
RETRY_AFTER_MAX = 300.0
# Statuses that mean "this batch is refused", not "try again later": bisect to find the poison.
# 413 too: catalogued events are under 1 KB, so a batch of 500 is far below the gateway's
# ~4,000 KB limit, and should one ever exceed it, halving it until it fits is the cure.
REFUSED = frozenset({400, 413})
# Property values a message is built from directly; anything else goes through the SDK's clean().
_PLAIN = frozenset({str, int, bool})


@dataclass(frozen=True)
class Destination:
    """Where events go: the data plane URL and the write key of its source."""

    data_plane_url: str
    write_key: str


class DeliveryError(Exception):
    """The data plane did not take a batch: its HTTP status (None: not reached) and any Retry-After."""

    def __init__(self, status: int | None, retry_after: float | None = None, cause: str = ""):
        super().__init__(f"HTTP {status}" if status is not None else cause)
        self.status = status
        self.retry_after = retry_after
        self.cause = cause


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class RudderSender:
    """Builds messages with the real ``rudder-sdk-python`` client and posts batches as its ``request.post`` does."""

    def __init__(self, destination: Destination, timeout: float = SEND_TIMEOUT,
                 transport: httpx.BaseTransport | None = None):
        # Imported here, not at module import: the SDK loads .env files when imported,
        # and a host given explicitly below means a .env can never redirect events.
        from rudderstack.analytics.client import CHANNEL, Client
        from rudderstack.analytics.request import DatetimeSerializer
        from rudderstack.analytics.version import VERSION

        self.destination = destination
        self.timeout = timeout
        # send=False: the client only builds and checks messages; sync_mode: it starts no thread.
        self.client = Client(destination.write_key, host=destination.data_plane_url, send=False, sync_mode=True,
                             gzip=True, timeout=timeout, max_queue_size=1)
        self._version, self._channel, self._encoder = VERSION, CHANNEL, DatetimeSerializer
        self._url = destination.data_plane_url.rstrip("/") + "/v1/batch"
        self._http = httpx.Client(timeout=timeout, transport=transport, auth=(destination.write_key, ""), headers={
            "Content-Type": "application/json", "Content-Encoding": "gzip",
            "User-Agent": f"analytics-python/{VERSION}"})

    def message(self, event: OutboxEvent) -> dict[str, Any]:
        """The message for an event, exactly as the SDK would send it (raises when the SDK refuses it)."""
        properties = event.properties
        user_id = properties.get("diagnosticID")
        timestamp = datetime.fromtimestamp(event.recorded_at / 1000, tz=timezone.utc)
        if type(user_id) is str and type(event.event) is str and type(event.message_id) is str and all(  # noqa: E721
                type(value) in _PLAIN for value in properties.values()):
            # What Client.track makes of these values, in its key order (see the module's docstring).
            library = {"name": "analytics-python", "version": self._version}
            return {"integrations": {"All": True}, "anonymousId": None, "properties": dict(properties),
                    "timestamp": timestamp.isoformat(), "context": {"ip": "0.0.0.0", "library": library},
                    "userId": user_id, "type": "track", "event": event.event, "messageId": event.message_id,
                    "channel": self._channel}
        _ok, message = self.client.track(
            user_id=user_id, event=event.event, properties=dict(properties), context={"ip": "0.0.0.0"},
            anonymous_id=None, message_id=event.message_id, timestamp=timestamp)
        return message

    def send_batch(self, messages: list[dict[str, Any]]) -> None:
        """Post the messages as one gzipped /v1/batch request; raise DeliveryError unless the answer was 200."""
        body = {"batch": messages, "sentAt": datetime.now(timezone.utc).isoformat()}
        data = gzip.compress(json.dumps(body, cls=self._encoder).encode())
        try:
            response = self._http.post(self._url, content=data)
        except httpx.HTTPError as exc:
            raise DeliveryError(None, None, type(exc).__name__) from exc
        if response.status_code != 200:
            retry_after = (parse_retry_after(response.headers.get("Retry-After"))
                           if response.status_code == 429 else None)
            raise DeliveryError(response.status_code, retry_after, f"HTTP {response.status_code}")

    def close(self) -> None:
        """Close the HTTP connections this sender keeps."""
        self._http.close()


def describe_error(error: BaseException) -> str:
    """A short, content-free description of a delivery failure for admins and logs."""
    status = getattr(error, "status", None)
    if status is not None:
        return f"data plane answered HTTP {status}"
    cause = getattr(error, "cause", "") or type(error).__name__
    return f"could not reach the data plane ({cause})"


class Turn:
    """The right to dispatch, held by one process at a time: an ``flock`` on a file.

    Without a path every process holds it. A file that cannot be opened or locked
    (a read-only directory, a file system without locks) also lets every process
    send: leases still keep them from sending an event twice. The file is opened
    once per process (``LockFile``); a process that waits for the turn only retries
    the lock, and a forked child never holds its parent's turn.
    """

    def __init__(self, path: str | Path | None):
        self._file = None if path is None else LockFile(path)
        self._held_by = 0  # the pid of the process that holds the turn through this object

    def take(self) -> bool:
        """True when this process holds the turn (taking it if it is free)."""
        if self._file is None:
            return True
        if self._held_by == os.getpid():
            return True
        try:
            if not self._file.try_lock():
                return False
        except OSError as exc:
            return self._everyone_sends(f"cannot lock {self._file.path} ({exc})")
        self._held_by = os.getpid()
        return True

    def give_back(self) -> None:
        """Let another process take the turn."""
        self._held_by = 0
        if self._file is not None:
            self._file.close()

    def _everyone_sends(self, why: str) -> bool:
        log.warning("telemetry: %s; every process will send", why)
        self.give_back()
        self._file = None
        return True


class Dispatcher(background.BackgroundThread):
    """Claims pending outbox events and sends them in batches, in a daemon thread, until stopped."""

    def __init__(self, outbox: Outbox, destination: Callable[[], Destination | None], *,
                 on_disabled: Callable[[], None] = lambda: None,
                 refresh: Callable[[], Any] = lambda: None,
                 settings_version: Callable[[], int | None] = lambda: None,
                 sender_factory: Callable[[Destination], Any] = RudderSender,
                 poll_interval: float = 1.0, batch_size: int = 500, lease_ms: int = 20_000,
                 backoff_base: float = 1.0, backoff_max: float = 60.0, retry_after_max: float = RETRY_AFTER_MAX,
                 turn_file: str | Path | None = None):
        super().__init__("telemetry-dispatcher")
        self.outbox = outbox
        self.destination = destination
        self.on_disabled = on_disabled
        self.refresh = refresh
        self.settings_version = settings_version
        self.sender_factory = sender_factory
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.lease_ms = lease_ms
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.turn = Turn(turn_file)
        self.failures = 0
        self._more = False
        self._sender: Any = None
        # Held from the last look at the switches through the post it allowed (re-entrant: the
        # dispatcher's own look at the settings may tell listeners that wait here).
        self._posting = threading.RLock()

    def posts_ended(self, timeout: float) -> bool:
        """Wait at most timeout seconds for a post of this process that had passed its check to end.

        Called when telemetry goes off, so that a post decided just before does not reach
        the data plane after the switch has returned (a hanging data plane delays the
        switch by timeout at most). False: the post was still under way.
        """
        if not self._posting.acquire(timeout=timeout):
            return False
        self._posting.release()
        return True

    def nudge(self) -> None:
        """Look at the outbox now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Send nothing more (a post under way ends first); wait at most timeout seconds for the thread.

        Returns True when the thread ended in time. What waits stays in the outbox for
        the next process: a stopping server can no longer be told of a telemetry switch
        turned off meanwhile (the launcher hands settings to running servers only).
        """
        return super().stop(timeout)

    # ----- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                # Not our turn: another process of this server sends; look again after a poll.
                delay = self._safe_cycle() if self.turn.take() else self.poll_interval
                if delay > 0:
                    self._wake.wait(delay)
                self._wake.clear()
        finally:
            self.turn.give_back()

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
            old, self._sender = self._sender, self.sender_factory(destination)
            if old is not None and hasattr(old, "close"):
                old.close()
        return self._sender

    def cycle(self) -> float:
        """Send one claimed batch; return how long to wait before the next (0: more is waiting).

        The settings are brought up to date first (no request may come to an idle
        server), the claim is decided by the database's switch, and before each post
        the database must still hold the settings version the destination came from.
        """
        self.refresh()
        version = self.settings_version()
        destination = self.destination()
        if destination is None:
            self.on_disabled()
            self._sender = None
            return self.poll_interval
        # After a full batch more is almost surely waiting: skip the look before the write lock.
        token, events = self.outbox.claim(self.batch_size, self.lease_ms, look_first=not self._more,
                                          version=version)
        self._more = False
        if not events:
            self.failures = 0
            return self.poll_interval
        sender = self._sender_for(destination)
        sent: list[tuple[int, dict[str, Any]]] = []
        rejected: list[tuple[int, dict[str, Any]]] = []
        error: DeliveryError | None = None
        # Stop while a whole send still fits in the lease: past it, another process may
        # take the same events. The lease is short so that a crashed process's claim
        # delays its events by seconds, not minutes.
        send_by = time.monotonic() + self.lease_ms / 1000 - 2 * SEND_TIMEOUT - 1

        def may_send() -> bool:
            # Switching telemetry off (in any process), or stopping, ends traffic between two posts.
            return (not self._stopping.is_set() and self.destination() == destination
                    and self.outbox.may_send(version) and not ((sent or rejected) and time.monotonic() > send_by))

        def deliver(run: list[tuple[int, dict[str, Any]]]) -> bool:
            """Send run; bisect a refused one. False: stop this cycle (an error, or must not send)."""
            nonlocal error
            try:
                with self._posting:
                    if not may_send():
                        return False
                    sender.send_batch([message for _, message in run])
            except DeliveryError as exc:
                if exc.status not in REFUSED:
                    error = exc
                    return False
                if len(run) == 1:
                    rejected.append(run[0])
                    return True
                middle = len(run) // 2
                return deliver(run[:middle]) and deliver(run[middle:])
            sent.extend(run)
            return True

        try:
            messages: list[tuple[int, dict[str, Any]]] = []
            for event in events:
                try:
                    messages.append((event.seq, sender.message(event)))
                except (AssertionError, RuntimeError, TypeError, ValueError) as exc:
                    # The SDK refuses to build it (e.g. over its size limit): it never will.
                    log.warning("telemetry: the SDK refused event %d (%s)", event.seq, type(exc).__name__)
                    rejected.append((event.seq, {"messageId": event.message_id, "event": event.event}))
            if messages:
                deliver(messages)
        finally:
            self.outbox.finish(token, sent, rejected)
        if rejected:
            message = f"data plane refused {len(rejected)} event(s); they will not be sent again"
            log.warning("telemetry: %s", message)
            self.outbox.record_error(message)
        if error is not None:
            self.failures += 1
            message = describe_error(error)
            log.warning("telemetry: delivery failed, %d event(s) wait in the outbox: %s",
                        len(events) - len(sent) - len(rejected), message)
            self.outbox.record_error(message)
            if error.status == 429 and error.retry_after is not None:
                return min(self.retry_after_max, max(error.retry_after, self.backoff_base / 2))
            return self._backoff()
        self.failures = 0
        self._more = len(events) == self.batch_size
        return 0 if self._more else self.poll_interval


def stop_all(timeout: float = 5.0) -> None:
    """Stop every dispatcher of this process, sharing one bounded wait (atexit, gunicorn worker_exit)."""
    background.stop_all(Dispatcher, timeout)
