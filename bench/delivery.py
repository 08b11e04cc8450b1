"""Benchmark telemetry delivery: drain a 50,000-event outbox backlog to a loopback data plane.

    python3 dev.py run python bench/delivery.py --db sqlite|postgresql|both [--events 50000]
                                                [--batch-size 500] [--profile]

For each database: a fresh database (a temporary SQLite file, or a PostgreSQL
database created and dropped on 127.0.0.1:5432), migrated, its outbox seeded with
a backlog by bulk insert; then the real dispatcher (real rudder-sdk-python) sends
it to a fast loopback data plane that gunzips every ``/v1/batch`` request, counts
each messageId and answers 200. Prints events/s and the time to drain, checks that
every event arrived exactly once, and writes ``bench/results/delivery-<db>.json``.
``--profile`` runs the dispatcher's cycles in the main thread under cProfile and
prints the top functions.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import gzip
import json
import os
import platform
import pstats
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

import plugin  # noqa: E402
from plugin.store import Database, migrate  # noqa: E402
from plugin.store.tables import telemetry_outbox  # noqa: E402
from plugin.telemetry.dispatcher import Destination, Dispatcher  # noqa: E402
from plugin.model import now_ms  # noqa: E402
from plugin.telemetry.outbox import Outbox  # noqa: E402
from bench.run import fresh_database  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_EVENTS_PER_SECOND = 5_000
WRITE_KEY = "bench-write-key"
DIAGNOSTIC_ID = "benchdiagnostic0000000000a"


# ----- a fast loopback data plane ------------------------------------------------------------
class CountingDataPlane:
    """Gunzips each /v1/batch request, counts every messageId, answers exactly 200."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.lock = threading.Lock()
        plane = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's requests session expects
            # TCP_NODELAY, as RudderStack's server (Go) sets it: without it, http.server's
            # separate writes of headers and body wait for the client's delayed ACK, and
            # every request took 40 ms longer than the dispatcher needs.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                ids = [message["messageId"] for message in json.loads(raw)["batch"]]
                with plane.lock:
                    plane.counts.update(ids)
                    plane.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening."""
        self.server.shutdown()
        self.server.server_close()


# ----- databases ---------------------------------------------------------------------------
def db_version(db: Database) -> str:
    """The database server's version string."""
    with db.read_engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            return "SQLite " + connection.exec_driver_sql("select sqlite_version()").scalar_one()
        return "PostgreSQL " + connection.exec_driver_sql("show server_version").scalar_one()


def seed(db: Database, count: int) -> set[str]:
    """Bulk-insert count pending events shaped like real ones; return their message ids."""
    started = now_ms()
    actions = ["create", "end", "restart", "change_commander", "change_stage"]
    ids: set[str] = set()
    rows = []
    for n in range(count):
        message_id = str(uuid.uuid4())
        ids.add(message_id)
        recorded_at = started + n
        rows.append({
            "message_id": message_id, "event": "incident", "recorded_at": recorded_at,
            "properties": {
                "Action": actions[n % len(actions)], "incidentID": f"{n:026d}", "IsActive": True,
                "CommanderUserID": "commander00000000000000000", "TeamID": f"team{n % 100:03d}".ljust(26, "0"),
                "CreatedAt": recorded_at, "PostID": "", "NumChecklists": 2, "TotalChecklistItems": 5,
                "ActiveStage": n % 2, "UserActualID": "actor0000000000000000000000"[:26],
                "diagnosticID": DIAGNOSTIC_ID, "serverVersion": "9.11.0", "pluginVersion": plugin.__version__,
                "eventTimeStamp": recorded_at},
        })
    with db.write_engine.begin() as connection:
        for start in range(0, count, 5_000):
            connection.execute(sa.insert(telemetry_outbox), rows[start:start + 5_000])
    if db.write_engine.dialect.name == "postgresql":
        with db.read_engine.connect() as connection:  # autocommit: VACUUM runs outside a transaction
            connection.exec_driver_sql("VACUUM ANALYZE telemetry_outbox")
    return ids


# ----- one run -----------------------------------------------------------------------------
def run(kind: str, events: int, batch_size: int, profile: bool) -> dict[str, Any]:
    """Seed, drain, verify; return the result."""
    plane = CountingDataPlane()
    try:
        with tempfile.TemporaryDirectory(prefix="incident-delivery-") as workdir, \
                fresh_database(kind, Path(workdir)) as url:
            db = Database(url)
            try:
                migrate(db)
                version = db_version(db)
                seeded = time.perf_counter()
                ids = seed(db, events)
                seed_seconds = time.perf_counter() - seeded
                outbox = Outbox(db)
                destination = Destination(plane.url, WRITE_KEY)
                dispatcher = Dispatcher(outbox, lambda: destination, poll_interval=0.05, batch_size=batch_size)
                started = time.perf_counter()
                if profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    while outbox.pending_count():
                        dispatcher.cycle()
                    profiler.disable()
                else:
                    dispatcher.start()
                    # Poll the data plane, not the database: the measurement must not compete for its lock.
                    deadline = time.monotonic() + 600
                    while len(plane.counts) < events and time.monotonic() < deadline:
                        time.sleep(0.01)
                delivered_seconds = time.perf_counter() - started
                dispatcher.stop(10.0)
                drained_seconds = time.perf_counter() - started
                pending = outbox.pending_count()
                counters = outbox.counters()
            finally:
                db.dispose()
    finally:
        plane.stop()
    duplicates = sum(count - 1 for count in plane.counts.values() if count > 1)
    exactly_once = set(plane.counts) == ids and duplicates == 0 and pending == 0
    result = {
        "db": kind, "db_version": version, "events": events, "batch_size": batch_size,
        "requests": plane.requests, "seed_seconds": round(seed_seconds, 3),
        "deliver_seconds": round(delivered_seconds, 3), "drain_seconds": round(drained_seconds, 3),
        "events_per_second": round(events / delivered_seconds, 1),
        "target_events_per_second": TARGET_EVENTS_PER_SECOND,
        "meets_target": events / delivered_seconds >= TARGET_EVENTS_PER_SECOND,
        "delivered_distinct": len(plane.counts), "duplicates": duplicates, "missing": len(ids - set(plane.counts)),
        "pending_after": pending, "sent_counter": counters["sent"], "exactly_once": exactly_once,
        "profiled": profile,
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
    }
    if profile:
        stats = pstats.Stats(profiler).sort_stats("cumulative")
        stats.print_stats(30)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the delivery benchmark on the chosen databases; exit 1 if an event was lost or duplicated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--profile", action="store_true", help="run the cycles under cProfile (slower)")
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    RESULTS.mkdir(parents=True, exist_ok=True)
    ok = True
    print(f"{'db':<11} {'events':>7} {'batch':>5} {'requests':>8} {'events/s':>9} {'drain s':>8} "
          f"{'target':>7} {'exactly once':>12}")
    for kind in kinds:
        result = run(kind, args.events, args.batch_size, args.profile)
        if not args.profile:
            (RESULTS / f"delivery-{kind}.json").write_text(json.dumps(result, indent=2) + "\n")
        ok = ok and result["exactly_once"]
        print(f"{kind:<11} {result['events']:>7} {result['batch_size']:>5} {result['requests']:>8} "
              f"{result['events_per_second']:>9.0f} {result['drain_seconds']:>8.2f} "
              f"{'met' if result['meets_target'] else 'MISSED':>7} {str(result['exactly_once']):>12}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
