"""The webhook sender: one background thread per server process that posts the deliveries that are due.

Each cycle it looks (without a lock) for deliveries due, claims some in the database
(``plugin.store.webhooks.DeliveryQueue``: a lease set by compare-and-set, so no two
senders of any process or server hold one delivery at once, and a killed sender's
deliveries are taken again when its lease runs out) and hands each to a small pool
of threads that post them. A receiver that is slow or down holds at most
``per_webhook`` of this process's posting threads, each for at most an attempt's
deadline, and its failed deliveries wait their backoff out of the queue: the other
receivers' deliveries go on meanwhile.

Each post is signed (``X-Incident-Signature``, see ``plugin.webhooks.rules``) and
goes to an address checked just before it: the host name is resolved once, every
address is checked against the rules, and the request is made to the addresses
themselves, in the resolver's order, until one accepts the connection, with the
``Host`` header and the TLS server name (httpx's ``sni_hostname`` request extension,
against which the certificate is verified) set to the URL's host. An address that
accepted the connection is the last one tried, whatever follows (a TLS failure
included), so a request is sent at most once per attempt. No redirect is followed
and no proxy from the environment is used. The answer's body is never read, and each
attempt has one deadline, from the host lookup to the answer's head (``Deadline``):
the system resolver has no timeout of ours, and httpx's timeouts bound each read, so
a dead DNS server or a receiver trickling its answer a byte at a time would otherwise
hold a posting thread past its lease.

Outcomes: a 2xx delivers; a 429 or 503 waits for its Retry-After (at most
BACKOFF_MAX) or the backoff; other 5xx, timeouts (the lookup's too), connection
errors and refused addresses back off exponentially with jitter; any other status
is final (failed). A delivery still not delivered WebhookRetrySeconds after its
first attempt (or its redelivery) fails. Once a day one process records the
``webhook``/``deliveries`` telemetry event with the previous day's counts.
"""
from __future__ import annotations

import concurrent.futures
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from plugin import background
from plugin.egress import hide_request_paths
from plugin.settings import Settings
from plugin.store.webhooks import DELIVERED, FAILED, PENDING, Claimed, DeliveryQueue, Outcome
from plugin.telemetry.dispatcher import parse_retry_after
from plugin.webhooks.rules import (LookupTooSlow, Lookups, Refused, Resolver, body, parse_url, resolve_checked,
                                   signature, system_resolver)

log = logging.getLogger(__name__)

BACKOFF_MAX = 3600.0
RETRY_STATUSES = frozenset({429})
USER_AGENT = "incident-response-webhooks"
DAY_MS = 86_400_000
# Deliveries finished this long ago are deleted with their attempts.
KEEP_FINISHED_MS = 30 * DAY_MS


class WebhookSender(background.BackgroundThread):
    """Claims due deliveries and posts them from a pool of threads, until stopped."""

    def __init__(self, queue: DeliveryQueue, settings: Callable[[], Settings], *,
                 transport: httpx.BaseTransport | None = None, resolve: Resolver = system_resolver,
                 clock: Callable[[], float] = time.time, poll_interval: float = 1.0, threads: int = 8,
                 per_webhook: int = 2, daily_row: Callable[[dict[str, int]], Any] | None = None,
                 refresh: Callable[[], Any] = lambda: None):
        super().__init__("webhook-sender")
        hide_request_paths()
        self.queue = queue
        self.settings = settings
        self.clock = clock
        self.poll_interval = poll_interval
        self.threads = threads
        self.per_webhook = per_webhook
        self.daily_row = daily_row
        self.refresh = refresh
        self._transport = transport
        self._client: httpx.Client | None = None
        # Host lookups run here so that an attempt can stop waiting for one at its deadline.
        self._lookups = Lookups(resolve, 2 * threads, "webhook-lookup")
        self._inflight: dict[concurrent.futures.Future[None], str] = {}
        self._next_chores = 0.0

    def wake(self) -> None:
        """Start the thread if needed and look for due deliveries now."""
        self.start()
        self._wake.set()

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ----- the loop -------------------------------------------------------------------
    def _run(self) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="webhook-post")
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    self.cycle(pool)
                    self._chores()
                except Exception as exc:  # noqa: BLE001 - the thread must outlive any database hiccup
                    log.warning("webhook sender: cycle failed (%s)", type(exc).__name__)
                self._wake.wait(self.poll_interval)
        finally:
            # Posts under way get a moment to finish; one cut short is sent again once its lease ends.
            concurrent.futures.wait(list(self._inflight), timeout=2.0)
            pool.shutdown(wait=False, cancel_futures=True)
            self._lookups.shutdown()
            if self._client is not None:
                self._client.close()

    def _http(self) -> httpx.Client:
        """The HTTP client: no proxy from the environment, no redirects, timeouts well inside the lease."""
        if self._client is None:
            lease = self.settings().webhook_lease_seconds
            self._client = httpx.Client(transport=self._transport, trust_env=False, follow_redirects=False,
                                        timeout=httpx.Timeout(min(10.0, lease / 3), connect=min(5.0, lease / 4)))
        return self._client

    def cycle(self, pool: concurrent.futures.Executor) -> int:
        """Claim what this process has room for and hand it to the pool; return how many were claimed."""
        self._inflight = {future: hook for future, hook in self._inflight.items() if not future.done()}
        room = self.threads - len(self._inflight)
        if room <= 0:
            return 0
        now = self._now_ms()
        busy = Counter(self._inflight.values())
        chosen: list[int] = []
        for seq, webhook_id in self.queue.due(now, room * 4):
            if len(chosen) < room and busy[webhook_id] < self.per_webhook:
                busy[webhook_id] += 1
                chosen.append(seq)
        if not chosen:
            return 0
        self.refresh()
        claimed = self.queue.claim(chosen, now, int(self.settings().webhook_lease_seconds * 1000))
        for delivery in claimed:
            future = pool.submit(self._deliver, delivery)
            future.add_done_callback(lambda _future: self._wake.set())
            self._inflight[future] = delivery.webhook_id
        return len(claimed)

    def _chores(self) -> None:
        """Now and then: the daily telemetry count and the pruning of old deliveries."""
        if self.clock() < self._next_chores:
            return
        self._next_chores = self.clock() + 60.0
        self.report_previous_day()
        self.queue.prune(self._now_ms() - KEEP_FINISHED_MS)

    def report_previous_day(self) -> bool:
        """Record the previous UTC day's delivery counts in telemetry, unless some process did; True if this one did."""
        if self.daily_row is None:
            return False
        today = self._now_ms() // DAY_MS
        counts = self.queue.counts((today - 1) * DAY_MS, today * DAY_MS)
        return self.queue.report_day(today - 1, self.daily_row(counts))

    # ----- one attempt ----------------------------------------------------------------
    def _deliver(self, delivery: Claimed) -> None:
        try:
            outcome = self.attempt(delivery)
            if not self.queue.finish(delivery, outcome, self._now_ms()):
                log.info("webhook sender: delivery %s was taken over or removed during its attempt", delivery.id)
        except Exception as exc:  # noqa: BLE001 - the lease runs out and another attempt follows
            log.warning("webhook sender: could not record an attempt (%s)", type(exc).__name__)

    def attempt(self, delivery: Claimed) -> Outcome:
        """Post one delivery once and decide what comes next."""
        settings = self.settings()
        started = time.monotonic()
        code: int | None = None
        retry_after: float | None = None
        final = False
        try:
            code, retry_after = self._post(delivery, settings)
            error = "" if 200 <= code < 300 else f"HTTP {code}"
            final = not (code >= 500 or code in RETRY_STATUSES) and bool(error)
        except Refused as exc:
            error = f"refused: {exc}"
        except httpx.TimeoutException as exc:
            error = f"timed out ({type(exc).__name__})"
        except TooSlow as exc:
            error = f"timed out ({exc})"
        except NotReached as exc:
            error = f"not reached {exc}"
        except httpx.HTTPError as exc:
            error = f"not reached ({type(exc).__name__})"
        except Exception as exc:  # noqa: BLE001 - recorded and retried, never a silent loop of leases
            error = f"could not be sent ({type(exc).__name__})"
        duration = int((time.monotonic() - started) * 1000)
        now = self._now_ms()
        if not error:
            return Outcome(DELIVERED, now, code, "", duration)
        if final:
            return Outcome(FAILED, now, code, error, duration)
        wait = retry_after if retry_after is not None else self.backoff(delivery.attempts + 1, settings)
        next_at = now + int(min(wait, BACKOFF_MAX) * 1000)
        if next_at > delivery.window_at + int(settings["WebhookRetrySeconds"]) * 1000:
            return Outcome(FAILED, now, code, f"{error}; gave up after {delivery.attempts + 1} attempts", duration)
        return Outcome(PENDING, next_at, code, error, duration)

    @staticmethod
    def backoff(attempt: int, settings: Settings) -> float:
        """Seconds before the next attempt: doubling per attempt from the base, with jitter, at most BACKOFF_MAX."""
        ceiling = min(BACKOFF_MAX, settings.webhook_backoff_seconds * 2 ** min(attempt - 1, 30))
        return random.uniform(ceiling / 2, ceiling)

    def _post(self, delivery: Claimed, settings: Settings) -> tuple[int, float | None]:
        """Post to the checked addresses in turn until one connects; return the status and any Retry-After."""
        deadline = Deadline(min(30.0, settings.webhook_lease_seconds / 2))
        target = resolve_checked(parse_url(delivery.url, settings.webhook_http_hosts),
                                 bool(settings["WebhookAllowPrivateAddresses"]),
                                 lambda host, port: self._lookup(host, port, deadline))
        content = body(delivery.id, delivery.payload)
        timestamp = str(int(self.clock()))
        # A fresh connection per attempt ("Connection: close"), so that the deadline can cut it.
        headers = {"Host": target.host_header, "Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "Connection": "close",
                   "X-Incident-Event": delivery.event_type, "X-Incident-Delivery": delivery.id,
                   "X-Incident-Timestamp": timestamp,
                   "X-Incident-Signature": signature(delivery.secret, timestamp, content)}
        extensions: dict[str, Any] = {"trace": deadline.trace}
        if target.scheme == "https":
            extensions["sni_hostname"] = target.host
        missed: list[httpx.TransportError] = []
        for address in target.addresses:
            if deadline.remaining() <= 0:
                raise TooSlow(f"no address reached within {deadline.seconds:g} s")
            literal = f"[{address}]" if address.version == 6 else str(address)
            url = f"{target.scheme}://{literal}:{target.port}{target.path}"
            try:
                return self._exchange(url, content, headers, extensions, deadline)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if deadline.connected:
                    raise  # the address took the connection: the request may have gone, so no other is tried
                missed.append(exc)
        if len(missed) == 1:
            raise missed[0]
        kinds = ", ".join(dict.fromkeys(type(exc).__name__ for exc in missed))
        raise NotReached(f"at any of {len(missed)} addresses ({kinds})")

    def _lookup(self, host: str, port: int, deadline: "Deadline") -> Sequence[str]:
        """The resolver's answer, if it comes before the deadline; TooSlow otherwise."""
        try:
            return self._lookups.within(host, port, deadline.remaining())
        except LookupTooSlow:
            raise TooSlow(f"host lookup took over {deadline.seconds:g} s") from None

    def _exchange(self, url: str, content: bytes, headers: dict[str, str], extensions: dict[str, Any],
                  deadline: "Deadline") -> tuple[int, float | None]:
        """One request to one address, within what is left of the deadline."""
        left = deadline.remaining()
        timeout = httpx.Timeout(**{name: left if value is None else min(value, left)
                                   for name, value in self._http().timeout.as_dict().items()})
        try:
            with self._http().stream("POST", url, content=content, headers=headers, extensions=extensions,
                                     timeout=timeout) as response:
                # The answer's body is never read: only its status counts.
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
        except httpx.HTTPError:
            if deadline.expired:
                raise TooSlow(f"no answer within {deadline.seconds:g} s") from None
            raise
        finally:
            deadline.cancel()
        return status, retry_after


class TooSlow(Exception):
    """An attempt that ran past its deadline."""


class NotReached(Exception):
    """An attempt whose every address refused the connection or did not take it in time."""


class Deadline:
    """An attempt's time, from the host lookup on; shuts its connection down when the time is up.

    httpcore's documented ``trace`` request extension hands over the network stream once
    connected. The timer holds a duplicate of its socket: the original is taken over by
    the TLS layer, and the duplicate still shuts the same connection down, ending any
    read under way (the TLS handshake included).
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        #: Whether an address took the connection (after which no other is tried).
        self.connected = False
        self._end = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._socket: socket.socket | None = None

    def remaining(self) -> float:
        """Seconds left, zero once the time is up."""
        return max(0.0, self._end - time.monotonic())

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """The trace extension's callback: start the timer, for the time left, when the connection is made."""
        if event == "connection.connect_tcp.complete":
            with self._lock:
                if self._timer is None:
                    self.connected = True
                    self._socket = info["return_value"].get_extra_info("socket").dup()
                    self._timer = threading.Timer(self.remaining(), self._cut)
                    self._timer.daemon = True
                    self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if self._socket is not None:
                self.expired = True
                try:
                    self._socket.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the connection is gone already

    def cancel(self) -> None:
        """The exchange is over: no cut, and the duplicate is closed."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def stop_all(timeout: float = 5.0) -> None:
    """Stop every webhook sender of this process, sharing one bounded wait (gunicorn worker_exit)."""
    background.stop_all(WebhookSender, timeout)
