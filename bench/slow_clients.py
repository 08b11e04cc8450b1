"""/healthz with and without 50 slow clients on the real server.

    python3 dev.py run python bench/slow_clients.py [--seconds 5] [--label NAME]

Starts ``incident-plugin serve`` (the worker count for two cores, 4 threads each) on
a fresh SQLite file (the database plays no part in /healthz) and measures /healthz
twice: alone, then while 100 slow clients are connected: 50 that sent a create's
headers and part of its body and 50 that sent part of their headers (slowloris),
each sending one more byte every 2 s, so that none falls silent long enough to be
closed during the measurement. Each measurement is 8 client threads sending
/healthz for ``--seconds``, every request on a new connection (a new client
arriving, which any worker may take) with a 3 s timeout: requests per second, p50,
p99, max and failures. Then the slow clients stop sending, and the bench reports
how long the server took to close them (``serve --client-timeout``, default 10 s).
Writes ``bench/results/slow-clients[-LABEL].json``. See bench/README.md.
"""
from __future__ import annotations

import argparse
import http.client
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import WORKERS_FOR_TWO_CORES, machine, save_results, server  # noqa: E402

SLOW = 50  # slow clients of each kind
TRICKLE_SECONDS = 2.0
REQUEST_TIMEOUT = 3.0
USER = "benchuser0000000000000000a"


def measure(port: int, seconds: float, threads: int = 8) -> dict[str, Any]:
    """/healthz from several threads, a new connection per request, for ``seconds``."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
            finally:
                connection.close()
            with lock:
                if ok:
                    latencies.append((time.perf_counter() - started) * 1000)
                else:
                    failures[0] += 1

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ordered = sorted(latencies) or [0.0]

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 2)

    return {"answered": len(latencies), "failed": failures[0], "rps": round(len(latencies) / seconds, 1),
            "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": round(ordered[-1], 2)}


class SlowClients:
    """100 connections that each send part of a request, then one byte every TRICKLE_SECONDS until stopped."""

    def __init__(self, port: int, stack: ExitStack):
        body_head = (f"POST /api/v0/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nMattermost-User-ID: {USER}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n").encode()
        self.sockets: list[socket.socket] = []
        for n in range(2 * SLOW):
            sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
            sock.sendall(body_head + b'{"name": "slow' if n < SLOW else b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            self.sockets.append(sock)
        self.stopped = threading.Event()
        self.cut_while_trickling = 0
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.thread.start()

    def _trickle(self) -> None:
        live = list(self.sockets)
        while not self.stopped.wait(TRICKLE_SECONDS):
            for sock in list(live):
                try:
                    sock.sendall(b"a")
                except OSError:
                    live.remove(sock)
                    self.cut_while_trickling += 1

    def stop(self) -> float | None:
        """Stop sending; the seconds until the server closed (or answered 408 on) every one; None if it did not within 120 s."""
        self.stopped.set()
        self.thread.join()
        since = time.monotonic()
        open_ = 0
        with selectors.DefaultSelector() as selector:
            for sock in self.sockets:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            last = 0.0
            while selector.get_map() and time.monotonic() - since < 120:
                for key, _ in selector.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if not data or data.startswith(b"HTTP/1.1 408"):
                        selector.unregister(key.fileobj)
                        last = time.monotonic() - since
            open_ = len(selector.get_map())
        return round(last, 1) if not open_ else None


def main(argv: list[str] | None = None) -> int:
    """Measure and write bench/results/slow-clients[-LABEL].json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each measurement")
    parser.add_argument("--workers", type=int, default=WORKERS_FOR_TWO_CORES)
    parser.add_argument("--label", default="", help="suffix of the results file")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="incident-bench-slow-"))
    results: dict[str, Any] = {"slow_clients": 2 * SLOW, "request_timeout_s": REQUEST_TIMEOUT,
                               "server_workers": args.workers, "server_threads": 4, "seconds": args.seconds}
    try:
        with server(f"sqlite:///{workdir / 'incidents.db'}", workdir, args.workers) as port:
            measure(port, 1.0)  # warm up
            results["healthz_alone"] = measure(port, args.seconds)
            print(f"alone:             {results['healthz_alone']}", flush=True)
            with ExitStack() as stack:
                slow = SlowClients(port, stack)
                time.sleep(1.0)  # every slow client has sent its first bytes
                results["healthz_with_slow_clients"] = measure(port, args.seconds)
                print(f"with {2 * SLOW} slow clients: {results['healthz_with_slow_clients']}", flush=True)
                results["slow_clients_cut_while_trickling"] = slow.cut_while_trickling
                results["seconds_until_silent_slow_clients_closed"] = slow.stop()
                print(f"silent slow clients all closed after {results['seconds_until_silent_slow_clients_closed']} s",
                      flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["machine"] = machine()
    save_results("slow-clients" + (f"-{args.label}" if args.label else ""), results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
