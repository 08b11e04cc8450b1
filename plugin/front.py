"""The HTTP front of ``incident-plugin serve``: gunicorn runs the processes, waitress reads the requests.

gunicorn's threaded worker reads a request on the thread that then runs it, so a
client that sends part of a request and waits holds a thread, and a few dozen such
clients stall every worker. Here each gunicorn worker serves its share of the
listening socket with waitress instead (used through ``waitress.create_server``, as
gunicorn's own tornado worker hosts tornado): waitress's I/O thread reads every
request whole, headers and body (a large body spooled to a temporary file), before
one of the ``--threads`` application threads sees it. A slow client then costs a
socket, not a thread; a connection that sends nothing for ``--client-timeout`` seconds
while its request is incomplete (or while it idles between requests) is closed; a
body over the largest ``MaxBodyBytes`` any setting allows is refused with 413 before
it is buffered, and the application refuses anything over the ``MaxBodyBytes`` in
force with 413 too (``plugin.api.limit_body``). gunicorn keeps what it is good at:
the master, the worker count, restarts of dead workers, the heartbeat timeout and
the exit hooks.

A request for ``/healthz`` (the launcher's liveness probe) goes ahead of the requests
waiting for a thread: under overload the queue can hold many seconds of work, and a probe
behind it would make the launcher kill a server that is only busy. It still runs on
one of the same threads, so a worker whose every thread is stuck does not answer it.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from gunicorn.workers.base import Worker
from waitress import create_server
from waitress.task import ThreadedTaskDispatcher

# Seconds a connection may stay silent while its request is incomplete, or idle
# between requests, before it is closed (serve's --client-timeout).
CLIENT_TIMEOUT = 10
# The largest MaxBodyBytes the settings accept. waitress refuses a body over it
# (plus room for the chunk lines of a chunked body, which it counts too) with 413
# before buffering it; the application applies the MaxBodyBytes in force.
MAX_BODY_BYTES_CEILING = 64 * 1024 * 1024
CHUNK_FRAMING_ALLOWANCE = 1024 * 1024
# Connections one worker keeps open at once; waitress stops accepting beyond it
# (another worker or the listen backlog takes the next). Slow clients cost a socket
# each, so this is generous.
CONNECTION_LIMIT = 1000
# The application's liveness route, which the launcher probes.
LIVENESS_PATH = "/healthz"


class LivenessFirstDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """waitress's request threads, with a liveness probe put ahead of the requests already waiting."""

    def add_task(self, task: Any) -> None:
        """Queue a connection's next request: a probe of LIVENESS_PATH first, any other last."""
        if not _asks_liveness(task):
            super().add_task(task)
            return
        with self.lock:
            self.queue.appendleft(task)
            self.queue_cv.notify()


def _asks_liveness(task: Any) -> bool:
    """Whether the request a waitress connection will serve next is GET LIVENESS_PATH."""
    # waitress queues a connection (its channel) with its requests in order; it calls
    # add_task holding the channel's requests lock, so the first one stays put.
    requests = getattr(task, "requests", None)
    if not requests:
        return False
    first = requests[0]
    return (first.error is None and getattr(first, "command", "") == "GET"
            and getattr(first, "path", "") == LIVENESS_PATH)


class WaitressWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker that serves its WSGI app with waitress on the shared listening sockets."""

    client_timeout = CLIENT_TIMEOUT
    stopped = False

    @staticmethod
    def stopping() -> None:
        """Called once as the worker begins to stop (at SIGTERM, before its requests are given time to finish)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        """gunicorn's SIGTERM handler: the worker leaves its loop at the next look; stopping() runs now."""
        super().handle_exit(sig, frame)
        self._begin_stopping()

    def _begin_stopping(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.stopping()

    def run(self) -> None:
        """Serve until gunicorn asks this worker to stop, then let the requests being served finish."""
        # waitress takes socket objects; each is a duplicate of gunicorn's listening
        # socket, so closing it here leaves the master's intact.
        sockets = [socket.socket(fileno=os.dup(listener.fileno())) for listener in self.sockets]
        # waitress names the raw request path in its INFO lines (a client gone mid-answer),
        # and a path can carry text a user typed: warnings and worse only.
        logging.getLogger("waitress").setLevel(logging.WARNING)
        server = create_server(
            self.wsgi, sockets=sockets, threads=self.cfg.threads, ident="incident-response",
            channel_timeout=self.client_timeout, cleanup_interval=1, connection_limit=CONNECTION_LIMIT,
            backlog=self.cfg.backlog,
            max_request_body_size=MAX_BODY_BYTES_CEILING + CHUNK_FRAMING_ALLOWANCE, asyncore_loop_timeout=1,
            # poll(), not select(): a worker may hold more than 1,024 descriptors.
            asyncore_use_poll=True)
        _put_liveness_first(server, self.cfg.threads)
        loop = threading.Thread(target=server.run, name="waitress", daemon=True)
        loop.start()
        parent = self.ppid
        while self.alive and loop.is_alive():
            self.notify()
            if os.getppid() != parent:
                self.log.info("Parent changed, shutting down: %s", self)
                break
            time.sleep(0.5)
        self._stop(server)

    def _stop(self, server: Any) -> None:
        # Stop taking connections (the other workers, or the next master, take them),
        # then give the requests already read graceful_timeout to finish.
        for listener in _listeners(server):
            listener.accepting = False
        self._begin_stopping()  # for a worker leaving without SIGTERM too (its master gone)
        server.task_dispatcher.shutdown(cancel_pending=False, timeout=self.cfg.graceful_timeout)
        # Their answers are written by the I/O thread: a moment to send them.
        time.sleep(0.2)


def _put_liveness_first(server: Any, threads: int) -> None:
    """Give a waitress server, before it runs, request threads that take liveness probes first."""
    # create_server takes a dispatcher only through an argument kept for waitress's own
    # tests, so its servers' dispatcher is swapped before any connection is accepted and
    # the idle threads of the one it made are stopped.
    dispatcher = LivenessFirstDispatcher()
    dispatcher.set_thread_count(threads)
    made = server.task_dispatcher
    for each in (server, *_listeners(server)):
        each.task_dispatcher = dispatcher
    made.shutdown(cancel_pending=False, timeout=1)


def _listeners(server: Any) -> list[Any]:
    """The listening dispatchers of a waitress server (one, or several behind a MultiSocketServer)."""
    if hasattr(server, "map"):
        return [d for d in server.map.values() if getattr(d, "accepting", False)]
    return [server]


def server_options(host: str, port: int, workers: int, threads: int, client_timeout: int = CLIENT_TIMEOUT,
                   stopping: Callable[[], None] = WaitressWorker.stopping) -> dict[str, Any]:
    """The gunicorn options of ``serve``: its listening address, process count and worker class.

    ``stopping`` runs in each worker as it begins to stop (WaitressWorker.stopping).
    """
    worker = type("WaitressWorker", (WaitressWorker,), {"client_timeout": client_timeout,
                                                        "stopping": staticmethod(stopping)})
    return {
        "bind": f"{host}:{port}", "workers": workers, "threads": threads, "worker_class": worker,
        # A worker that misses its heartbeat this long is replaced; graceful_timeout
        # bounds how long a stopping worker waits for the requests it is serving.
        "timeout": 60, "graceful_timeout": 20,
    }
