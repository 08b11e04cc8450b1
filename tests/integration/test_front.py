"""serve's worker class under gunicorn, with WSGI apps that take their time: stopping is graceful, and a liveness
probe is answered ahead of waiting requests by a worker that is busy, but not by one whose every thread is stuck."""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

LISTENING = re.compile(rb"Listening at: http://127\.0\.0\.1:(\d+)")

# gunicorn with serve's options and an app that answers after a second and a half.
SERVER = textwrap.dedent("""
    import os
    import time
    from gunicorn.app.base import BaseApplication
    from plugin.front import server_options

    def app(environ, start_response):
        time.sleep(1.5)
        os.write(1, b"answering\\n")  # one write: both workers share the log
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    def stopping():
        os.write(1, b"stopping\\n")

    class Server(BaseApplication):
        def load_config(self):
            options = {**server_options("127.0.0.1", 0, 2, 2, stopping=stopping), "control_socket_disable": True}
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()
""")


def test_a_request_being_served_when_the_server_is_told_to_stop_is_answered_before_it_exits(tmp_path: Path):
    """And each worker's stopping hook runs once, as it is told to stop, before that request is answered."""
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", SERVER], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not (match := LISTENING.search(log_path.read_bytes())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        time.sleep(1.0)  # the workers are up
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=10)
        connection.request("GET", "/")
        time.sleep(0.5)  # the app is working on it
        process.send_signal(signal.SIGTERM)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"done")
        assert process.wait(timeout=30) == 0
        lines = [line for line in log_path.read_text().splitlines() if line in ("stopping", "answering")]
        assert lines == ["stopping", "stopping", "answering"], log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# gunicorn with serve's options, two workers of two threads, and an app whose /slow takes 0.4 s, whose /stuck
# never ends within a test (it leaves a file named after its process first) and whose /healthz answers at once.
QUEUEING_SERVER = textwrap.dedent("""
    import os, sys, time, uuid
    from gunicorn.app.base import BaseApplication
    from plugin.front import server_options

    MARKS = sys.argv[1]

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/slow":
            time.sleep(0.4)
        elif path == "/stuck":
            open(os.path.join(MARKS, f"{os.getpid()}-{uuid.uuid4().hex}"), "w").close()
            time.sleep(120)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    class Server(BaseApplication):
        def load_config(self):
            for key, value in {**server_options("127.0.0.1", 0, 2, 2), "control_socket_disable": True}.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Server().run()
""")
WORKERS, THREADS = 2, 2


@contextmanager
def queueing_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """QUEUEING_SERVER on a free port, killed with all its workers at the end; yields its port and marks folder."""
    marks = tmp_path / "marks"
    marks.mkdir()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", QUEUEING_SERVER, str(marks)], stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (match := LISTENING.search(log_path.read_bytes())) \
                or log_path.read_bytes().count(b"Booting worker") < WORKERS:
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        time.sleep(0.5)  # the workers are serving
        yield int(match.group(1)), marks
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def send(port: int, path: str, stack: ExitStack) -> socket.socket:
    """A new connection that has sent GET path; its answer is left to read."""
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def probe(port: int, timeout: float) -> float | None:
    """GET /healthz on a new connection, as the launcher probes: the seconds it took, or None without an answer."""
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"/healthz")
        return time.monotonic() - started
    except TimeoutError:
        return None
    finally:
        connection.close()


def test_a_liveness_probe_is_answered_ahead_of_the_requests_waiting_for_a_busy_worker(tmp_path: Path):
    with queueing_server(tmp_path) as (port, _), ExitStack() as stack:
        # 60 requests of 0.4 s on 2 x 2 threads: about six seconds of queue, however the workers share them.
        waiting = [send(port, "/slow", stack) for _ in range(60)]
        time.sleep(0.5)  # every worker's threads are busy and its queue full
        with ThreadPoolExecutor(6) as pool:
            took = list(pool.map(lambda _: probe(port, 10), range(6)))
        # Each probe waits for one request being served, at most, not for the queue.
        assert all(seconds is not None and seconds < 2.0 for seconds in took), took
        for sock in waiting:  # and every busy request is still answered
            assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")


def test_a_liveness_probe_gets_no_answer_from_a_server_whose_every_thread_is_stuck(tmp_path: Path):
    with queueing_server(tmp_path) as (port, marks), ExitStack() as stack:
        deadline = time.monotonic() + 20
        stuck: dict[str, int] = {}
        # More stuck requests until each worker's every thread holds one (the workers share the accepts).
        while len(stuck) < WORKERS or min(stuck.values()) < THREADS:
            assert time.monotonic() < deadline, stuck
            send(port, "/stuck", stack)
            time.sleep(0.1)
            stuck = {}
            for mark in os.listdir(marks):
                pid = mark.split("-")[0]
                stuck[pid] = stuck.get(pid, 0) + 1
        with ThreadPoolExecutor(2) as pool:
            took = list(pool.map(lambda _: probe(port, 3), range(2)))
        assert took == [None, None]
