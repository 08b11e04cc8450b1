"""A daemon thread of a server process that runs until stopped: the telemetry dispatcher, the reminder scanner."""
from __future__ import annotations

import atexit
import threading
import time
import weakref

# Every background thread started in this process, stopped together by kind at exit.
_RUNNING: "weakref.WeakSet[BackgroundThread]" = weakref.WeakSet()
_AT_EXIT: set[type["BackgroundThread"]] = set()


class BackgroundThread:
    """Starts ``_run`` in a daemon thread once (after fork, never at import) and stops it on request.

    ``_run`` loops until ``_stopping`` is set, sleeping on ``_wake`` so that a stop
    (or a nudge) ends its wait at once.
    """

    def __init__(self, name: str):
        self.name = name
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Is the thread alive?"""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread unless it runs or was stopped; its kind is stopped at the process's exit."""
        if self.running:  # callers may start it on every event: the common case takes no lock
            return
        with self._lock:
            if self.running or self._stopping.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            _RUNNING.add(self)
            kind = type(self)
            if kind not in _AT_EXIT:
                atexit.register(stop_all, kind)
                _AT_EXIT.add(kind)

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to stop and wait at most timeout seconds; True when it ended in time."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError


def stop_all(kind: type[BackgroundThread], timeout: float = 5.0) -> None:
    """Stop every thread of this kind in this process, sharing one bounded wait (atexit, gunicorn worker_exit)."""
    deadline = time.monotonic() + timeout
    for thread in [thread for thread in list(_RUNNING) if isinstance(thread, kind)]:
        thread.stop(max(0.0, deadline - time.monotonic()))
