"""The reminder scanner: one background thread per server process that posts the reminders come due.

Every few seconds it asks the incident service to send the reminders due by now.
Any number of scanners may run, in the workers of one server and in several servers
on one database: each due time is claimed in the database (a compare-and-set on the
reminder's due time, in the transaction that writes its post), so it is posted once
whichever scanner gets there first. Nothing is kept in memory between scans: a
server that was down finds what came due meanwhile at its first scan and posts it
then, once.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable

log = logging.getLogger(__name__)

_RUNNING: "weakref.WeakSet[ReminderScanner]" = weakref.WeakSet()
_ATEXIT_REGISTERED = False


class ReminderScanner:
    """Calls ``send_due`` at once and then every ``interval`` seconds, in a daemon thread, until stopped."""

    def __init__(self, send_due: Callable[[], int], interval: float):
        self.send_due = send_due
        self.interval = interval
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Is the thread alive?"""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (after fork, never at import); an interval of 0 or less starts nothing."""
        global _ATEXIT_REGISTERED
        if self.interval <= 0:
            return
        with self._lock:
            if self.running or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="reminder-scanner", daemon=True)
            self._thread.start()
            _RUNNING.add(self)
            if not _ATEXIT_REGISTERED:
                atexit.register(stop_all)
                _ATEXIT_REGISTERED = True

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop after the scan under way, if any; True when the thread ended within timeout seconds."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.send_due()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any database or host hiccup
                # The type only: a message could quote an incident's name.
                log.warning("reminder scanner: scan failed (%s); trying again at the next", type(exc).__name__)
            self._wake.wait(self.interval)


def stop_all(timeout: float = 5.0) -> None:
    """Stop every scanner of this process, sharing one bounded wait (atexit, gunicorn worker_exit)."""
    deadline = time.monotonic() + timeout
    for scanner in list(_RUNNING):
        scanner.stop(max(0.0, deadline - time.monotonic()))
