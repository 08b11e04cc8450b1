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

import logging
from collections.abc import Callable

from plugin import background

log = logging.getLogger(__name__)


class ReminderScanner(background.BackgroundThread):
    """Calls ``send_due`` at once and then every ``interval`` seconds, in a daemon thread, until stopped."""

    def __init__(self, send_due: Callable[[], int], interval: float):
        super().__init__("reminder-scanner")
        self.send_due = send_due
        self.interval = interval

    def start(self) -> None:
        """Start the thread (after fork, never at import); an interval of 0 or less starts nothing."""
        if self.interval > 0:
            super().start()

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
    background.stop_all(ReminderScanner, timeout)
