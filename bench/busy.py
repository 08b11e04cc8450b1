"""Does the launcher's liveness probe get through while the server is overloaded?

    python3 dev.py run python bench/busy.py [--db both] [--clients 8,64,256,1000] [--seconds 30]

For each database (a temporary SQLite file, a PostgreSQL database created and dropped
on 127.0.0.1:5432) this seeds ``--incidents`` incidents in bulk (as bench/run.py's
scale section: the listed team holds 250 active and 50 ended ones, the rest spread over
99 teams), starts ``incident-plugin serve`` (``--workers`` x ``--threads``, telemetry on
with a loopback data plane) and, for each client count N, loads it for ``--seconds``
with N keep-alive connections (bench/loadgen.py, two processes) that each cycle through
expensive requests: a create with two stages and five tasks (in another team), the listed team's first
page of 100 active incidents, and the team's statistics over ten years (the dearest
read: every incident of the window, with its severity and its stage changes). Meanwhile
a thread probes ``GET /healthz`` as the launcher does: a new connection each time, a 5 s
timeout, one probe every ``--probe-interval`` seconds. Per N it reports the probes'
latency (p50, p99, max; a probe that timed out counts as 5 s), how many took over 5 s,
the longest run of them in a row and how long that run lasted, and the load's throughput.
The launcher kills the server after six failed probes in a row, ten seconds apart: a run
of failures lasting a minute. Writes ``bench/results/busy[-LABEL].json``. See
bench/README.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.loadgen import build_request, load_pool, run_load  # noqa: E402
from bench.run import (HOT_TEAM, TEAMS, TWO_STAGES, USER, WORKERS_FOR_TWO_CORES, DataPlane, api,  # noqa: E402
                       cpu_times, db_version, fresh_database, machine, save_results, seed, server, settle,
                       steal_percent, telemetry_on)
from plugin.store import normalise_url  # noqa: E402

PROBE_TIMEOUT = 5.0  # the launcher's (server/watchdog.go)
TEN_YEARS_MS = 10 * 365 * 24 * 3600 * 1000
# Creates go to another team than the one listed and counted, so the reads cost the same at every client count.
CREATED_TEAM = TEAMS[1]


class Prober:
    """Probes /healthz on a fresh connection every `interval` seconds until stopped, as the launcher's watchdog."""

    def __init__(self, port: int, interval: float):
        self.port, self.interval = port, interval
        self.probes: list[tuple[float, float | None]] = []  # (start, seconds or None when it failed)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Prober":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self.stopped.wait(max(0.0, next_at - time.monotonic())):
            started = time.monotonic()
            next_at = started + self.interval
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=PROBE_TIMEOUT)
            try:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                response.read()
                took: float | None = time.monotonic() - started
                if response.status != 200:
                    took = None
            except OSError:
                took = None
            finally:
                connection.close()
            self.probes.append((started, took))

    def summary(self) -> dict[str, Any]:
        """The probes' figures; a failed probe (timeout, refusal, not 200) counts as PROBE_TIMEOUT."""
        seconds = [PROBE_TIMEOUT if took is None else took for _, took in self.probes]
        ordered = sorted(seconds) or [0.0]

        def at(fraction: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

        # The launcher counts failures in a row: the longest such run, and how long it lasted.
        longest, longest_seconds, run_start, run = 0, 0.0, 0.0, 0
        for started, took in self.probes:
            failed = took is None or took > PROBE_TIMEOUT
            if not failed:
                run = 0
                continue
            run_start = started if run == 0 else run_start
            run += 1
            if run > longest:
                longest, longest_seconds = run, started + PROBE_TIMEOUT - run_start
        return {"probes": len(seconds), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
                "over_5s": sum(1 for took in seconds if took >= PROBE_TIMEOUT),
                "failed": sum(1 for _, took in self.probes if took is None),
                "longest_run_over_5s": longest, "longest_run_over_5s_seconds": round(longest_seconds, 1)}


def requests_for(stats_from: int) -> list[bytes]:
    """Create, list a page of 100, team statistics: one after another, distinct names for the creates."""
    user = {"Mattermost-User-ID": USER}
    listing = build_request("GET", f"/api/v0/incidents?team_id={HOT_TEAM}&status=active&per_page=100", user)
    stats = build_request("GET", f"/api/v0/stats?team_id={HOT_TEAM}&from={stats_from}", user)
    out = []
    for _ in range(4000):
        body = json.dumps({"name": f"busy incident {secrets.token_hex(4)}", "description": "created under load",
                           "team_id": CREATED_TEAM, "commander_user_id": USER, "checklists": TWO_STAGES}).encode()
        out += [build_request("POST", "/api/v0/incidents", user, body), listing, stats]
    return out


def single_costs(port: int, stats_from: int, repeat: int = 10) -> dict[str, float]:
    """Median milliseconds of each request alone on the idle server (which read is dearest)."""
    fetch_id = api(port, "GET", f"/api/v0/incidents?team_id={HOT_TEAM}&status=active&per_page=1")["items"][0]["id"]
    paths = {"list_active_page_100": f"/api/v0/incidents?team_id={HOT_TEAM}&status=active&per_page=100",
             "stats_90_days": f"/api/v0/stats?team_id={HOT_TEAM}",
             "stats_10_years": f"/api/v0/stats?team_id={HOT_TEAM}&from={stats_from}",
             "report_md": f"/api/v0/incidents/{fetch_id}/report.md",
             "fetch_one": f"/api/v0/incidents/{fetch_id}"}
    out = {}
    for name, path in paths.items():
        times = []
        for _ in range(repeat):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            connection.request("GET", path, headers={"Mattermost-User-ID": USER})
            response = connection.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            connection.close()
            assert response.status == 200, (name, response.status)
        out[name] = round(sorted(times)[len(times) // 2], 2)
    return out


def bench_database(kind: str, args: argparse.Namespace, pool: Any) -> dict[str, Any]:
    """Every client count on one database."""
    workdir = Path(tempfile.mkdtemp(prefix=f"incident-bench-busy-{kind}-"))
    results: dict[str, Any] = {"levels": {}}
    try:
        with DataPlane() as plane, fresh_database(kind, workdir) as url:
            engine = sa.create_engine(normalise_url(url))
            with server(url, workdir, args.workers, telemetry_on(plane.url), args.threads) as port:
                results["database"] = db_version(engine)
                started = time.perf_counter()
                seed(engine, args.incidents, 0, random.Random(6))
                settle(engine)
                print(f"[{kind}] {results['database']}; seeded {args.incidents:,} incidents in "
                      f"{time.perf_counter() - started:.1f}s; server {args.workers} x {args.threads}", flush=True)
                stats_from = int(time.time() * 1000) - TEN_YEARS_MS
                results["alone_ms"] = single_costs(port, stats_from)
                print(f"[{kind}] alone, median ms: {results['alone_ms']}", flush=True)
                requests = requests_for(stats_from)
                for clients in args.clients:
                    try:
                        with Prober(port, args.probe_interval) as prober:
                            load = run_load(port, requests, concurrency=clients, seconds=args.seconds,
                                            processes=args.processes, pool=pool)
                    except OSError as error:  # the machine refused this many connections
                        results["levels"][str(clients)] = {"refused": str(error)}
                        print(f"[{kind}] N={clients}: refused ({error})", flush=True)
                        break
                    level = {"probe": prober.summary(),
                             "load": {"requests": load.requests, "rps": round(load.rps, 1),
                                      "p50_ms": round(load.percentile(0.5), 1),
                                      "p99_ms": round(load.percentile(0.99), 1),
                                      "statuses": {str(k): v for k, v in sorted(load.statuses.items())}}}
                    results["levels"][str(clients)] = level
                    print(f"[{kind}] N={clients}: probe {level['probe']}; load {level['load']}", flush=True)
                    time.sleep(args.pause)  # the queue drains before the next level
            engine.dispose()
        results["data_plane_requests_received"] = plane.requests
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Measure and write bench/results/busy[-LABEL].json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--clients", default="8,64,256,1000", help="comma-separated client counts, in order")
    parser.add_argument("--seconds", type=float, default=30.0, help="load duration per client count")
    parser.add_argument("--probe-interval", type=float, default=1.5, help="seconds between two /healthz probes")
    parser.add_argument("--incidents", type=int, default=3000, help="incidents seeded before the load")
    parser.add_argument("--workers", type=int, default=WORKERS_FOR_TWO_CORES, help="server workers (serve's)")
    parser.add_argument("--threads", type=int, default=4, help="request threads per worker (serve's)")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between two client counts")
    parser.add_argument("--label", default="", help="suffix of the results file")
    args = parser.parse_args(argv)
    args.clients = [int(n) for n in args.clients.split(",")]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    out: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k not in {"db", "label"}},
                           "probe_timeout_s": PROBE_TIMEOUT}
    started, counters = time.perf_counter(), cpu_times()
    with load_pool(args.processes) as pool:
        for kind in kinds:
            out[kind] = bench_database(kind, args, pool)
    out["machine"] = {**machine(), "steal_percent": steal_percent(counters, cpu_times())}
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    save_results("busy" + (f"-{args.label}" if args.label else ""), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
