"""Benchmark the real server: ratios measured in one run, on SQLite and/or PostgreSQL.

    python3 dev.py run python bench/run.py --db both [--seconds 5] [--profile]

For each database this starts ``incident-plugin serve`` (gunicorn, the worker count
for two cores) on a free loopback port against a fresh database (a temporary SQLite
file, or a PostgreSQL database it creates and drops on 127.0.0.1:5432) with
telemetry on and a loopback data plane up (a create writes its outbox event, which
the server sends, as the issue's definition of a create has it), drives it
from separate load processes (8 keep-alive connections, fixed duration), prints a
table and writes ``bench/results/<db>.json``. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import threading
import urllib.parse
import urllib.request
from contextlib import ExitStack, contextmanager
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.loadgen import LoadResult, build_request, load_pool, run_load  # noqa: E402
from plugin.model import new_id  # noqa: E402
from plugin.store import normalise_url  # noqa: E402
from plugin.store.incidents import checklists_to_json  # noqa: E402
from plugin.store.tables import chat_channel_members, chat_channels, incidents, timeline_events  # noqa: E402

PG_ADMIN_URL = os.environ.get("INCIDENT_BENCH_POSTGRES_URL", "postgresql+psycopg://incident:incident@127.0.0.1:5432/postgres")
RESULTS = ROOT / "bench" / "results"
WORKERS_FOR_TWO_CORES = 2 * 2 + 1
SECTIONS = ("efficiency", "slash", "telemetry", "scale")
USER = "benchuser0000000000000000a"
TEAMS = [f"team{n:03d}".ljust(26, "0") for n in range(100)]
HOT_TEAM = TEAMS[0]
HOT_TEAM_SIZE = 250
# Incidents of the listed team that ended (after one stage change each), for the statistics' time per stage.
HOT_TEAM_ENDED = 50
SCALE_SIZES = (1_000, 100_000)
TARGETS = {"fetch_vs_healthz": (">=", 0.4), "create_vs_healthz": (">=", 0.15),
           "scale_list_p50": ("<=", 1.5), "scale_list_p99": ("<=", 1.5),
           "scale_fetch_p50": ("<=", 1.5), "scale_fetch_p99": ("<=", 1.5),
           "scale_stats_p50": ("<=", 1.5), "scale_stats_p99": ("<=", 1.5),
           "slash_info_p99_ms": ("<", 50.0), "slash_stage_next_p99_ms": ("<", 50.0),
           "telemetry_throughput_on_vs_off": (">=", 0.85), "telemetry_p99_down_vs_up": ("<=", 1.1)}
SLASH_TOKEN = "benchslashtoken" + "0" * 11
MANY_STAGES = [{"title": f"Stage {n + 1}", "items": []} for n in range(50)]  # the API allows 50
# Incidents for `stage next`: 49 moves each, more than a fast host's run sends (18,458 commands seen).
STAGED_INCIDENTS = 600
TWO_STAGES = [
    {"title": "Triage", "items": [{"title": "Page the on-call"}, {"title": "Open a status page"},
                                  {"title": "Find the owner"}]},
    {"title": "Resolve", "items": [{"title": "Roll back", "command": "/deploy rollback"},
                                   {"title": "Write the timeline"}]},
]


def free_port() -> int:
    """A port the kernel just handed out on loopback (free at that moment)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----- databases ---------------------------------------------------------------------------
@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A new, empty database URL; removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'incidents.db'}"
        return
    name = f"incident_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(normalise_url(PG_ADMIN_URL)).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def db_version(engine: sa.Engine) -> str:
    """The database server's version string."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return "SQLite " + connection.exec_driver_sql("select sqlite_version()").scalar_one()
        return connection.exec_driver_sql("show server_version").scalar_one().join(("PostgreSQL ", ""))


def settle(engine: sa.Engine) -> None:
    """Bring a freshly bulk-loaded database to the steady state of one that grew over time.

    Statistics refreshed, and the background work a bulk load triggers (autovacuum,
    checkpoint of the write-ahead log) done now, so it does not compete with the
    measurement for the same two cores.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("ANALYZE")
            connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        else:
            connection.exec_driver_sql("VACUUM ANALYZE")
            connection.exec_driver_sql("CHECKPOINT")


def seed(engine: sa.Engine, count: int, start: int, rng: random.Random) -> list[str]:
    """Insert `count` incidents across 100 teams with SQL in bulk; return ids the bench user may fetch.

    Team 0 (the listed team) holds the same HOT_TEAM_SIZE active incidents at every
    size, so the page and what its user may see are the same, and the same
    HOT_TEAM_ENDED ended ones, each with a stage change on its timeline, for the
    statistics; the rest of the table (1,000 or 100,000 in all) spreads evenly over
    the other 99 teams. The figure thus shows what other teams' incidents cost a team's reads.
    Half the incidents are public; the bench user is in every fifth channel of team 0.
    """
    checklists = checklists_to_json_template()
    rows, channels, members, fetchable, entries = [], [], [], [], []
    now = int(time.time() * 1000)
    hot = HOT_TEAM_SIZE + HOT_TEAM_ENDED
    for n in range(start, start + count):
        team = HOT_TEAM if n < hot else TEAMS[1 + n % (len(TEAMS) - 1)]
        incident_id, channel_id = new_id(), new_id()
        active = n < HOT_TEAM_SIZE or (n >= hot and rng.random() < 0.6)
        rows.append({"id": incident_id, "name": f"incident {n}", "description": "seeded", "is_active": active,
                     "commander_user_id": USER, "team_id": team, "channel_id": channel_id, "post_id": "",
                     "public": n % 2 == 0, "create_at": now - n * 1000, "end_at": 0 if active else now,
                     "active_stage": 0, "checklists": checklists, "version": 0})
        if HOT_TEAM_SIZE <= n < hot:
            entries.append({"id": new_id(), "incident_id": incident_id, "event_type": "stage_changed",
                            "event_at": now - n * 1000 + 400, "create_at": now - n * 1000 + 400,
                            "subject_user_id": "", "creator_user_id": USER, "summary": "seeded stage change",
                            "details": {"from_stage": 0, "to_stage": 1}, "post_id": "", "deleted": False,
                            "deleted_at": 0, "deleted_by": ""})
        channels.append({"id": channel_id, "team_id": team, "name": f"incident-{n}", "display_name": f"incident {n}",
                         "type": "O" if n % 2 == 0 else "P", "create_at": now})
        # Every channel has its team's responder; the bench user is in every fifth
        # channel of the listed team only (people belong to a bounded number of channels).
        members.append({"channel_id": channel_id, "user_id": f"member{team[4:7]}".ljust(26, "0")})
        if team == HOT_TEAM and n % 5 == 0:
            members.append({"channel_id": channel_id, "user_id": USER})
            fetchable.append(incident_id)
    with engine.begin() as connection:
        for table, values in ((incidents, rows), (chat_channels, channels), (chat_channel_members, members),
                              (timeline_events, entries)):
            for chunk in range(0, len(values), 5000):
                connection.execute(table.insert(), values[chunk:chunk + 5000])
    return fetchable


def checklists_to_json_template() -> list[dict[str, Any]]:
    """The stages and tasks every seeded incident carries (two stages, five tasks)."""
    from plugin.model import Checklist, ChecklistItem

    return checklists_to_json([Checklist(new_id(), stage["title"], [
        ChecklistItem(new_id(), item["title"], command=item.get("command", "")) for item in stage["items"]])
        for stage in TWO_STAGES])


# ----- the server --------------------------------------------------------------------------
@contextmanager
def server(database_url: str, workdir: Path, workers: int, extra_env: dict[str, str] | None = None,
           threads: int = 4) -> Iterator[int]:
    """Run `incident-plugin serve` on a free loopback port until the block ends."""
    port = free_port()
    env = {**os.environ, "INCIDENT_DATABASE_URL": database_url, "INCIDENT_DATA_DIR": str(workdir),
           "INCIDENT_SLASH_COMMAND_TOKEN": SLASH_TOKEN, **(extra_env or {})}
    log = open(workdir / "server.log", "wb")
    command = [str(Path(sys.executable).with_name("incident-plugin")), "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--threads", str(threads)]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}; see {workdir / 'server.log'}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not answer /healthz within 60 s") from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class DataPlane:
    """A loopback stand-in for a RudderStack data plane: answers every POST with 200 and counts them."""

    def __init__(self) -> None:
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as a real data plane; see CountingDataPlane in bench/delivery.py

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with counter.lock:
                    counter.requests += 1
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.requests = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "DataPlane":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def telemetry_on(data_plane_url: str) -> dict[str, str]:
    """A server's environment with telemetry on, sending to data_plane_url."""
    return {"INCIDENT_ENABLE_TELEMETRY": "true", "INCIDENT_SERVER_DIAGNOSTICS_ENABLED": "true",
            "INCIDENT_RUDDER_WRITE_KEY": "benchwritekey", "INCIDENT_RUDDER_DATA_PLANE_URL": data_plane_url}


def slash_request(channel_id: str, text: str) -> bytes:
    """One /incident command as Mattermost sends it: a form body and `Authorization: Token`."""
    form = urllib.parse.urlencode({
        "token": SLASH_TOKEN, "team_id": HOT_TEAM, "team_domain": "bench", "channel_id": channel_id,
        "channel_name": "incident", "user_id": USER, "user_name": "bench.user", "command": "/incident",
        "text": text, "trigger_id": "t", "response_url": "http://127.0.0.1:9/hook"}).encode()
    return build_request("POST", "/command", {"Authorization": f"Token {SLASH_TOKEN}"}, form,
                         content_type="application/x-www-form-urlencoded")


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    """One JSON request as the bench user."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Mattermost-User-ID": USER, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# ----- CPU time per request ----------------------------------------------------------------
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU time a process has used so far (/proc/<pid>/stat), or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def processes_in(folder: Path) -> list[int]:
    """The processes working in folder: a server started by :func:`server` and its workers."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class CpuMeter:
    """CPU time per request of a server's processes and of its PostgreSQL backends (Linux's /proc).

    The load generator's share is not counted. On SQLite the database works inside
    the server's processes, so its share is part of the server's.
    """

    def __init__(self, workdir: Path, database_url: str):
        self.workdir = workdir
        self.database = None
        if not database_url.startswith("sqlite"):
            self.database = sa.engine.make_url(normalise_url(database_url)).database
        # The backends are listed from the admin database, so this connection is not among them.
        self._admin = None if self.database is None else sa.create_engine(normalise_url(PG_ADMIN_URL), pool_size=1)
        self.spent: dict[str, list[float]] = {}  # name: [server seconds, database seconds, requests]

    def close(self) -> None:
        """Close the connection that lists the backends."""
        if self._admin is not None:
            self._admin.dispose()

    def _backends(self) -> list[int]:
        if self._admin is None:
            return []
        with self._admin.connect() as connection:
            return [row[0] for row in connection.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": self.database})]

    def snapshot(self) -> dict[str, dict[int, float]]:
        """CPU seconds so far of each server process and each database backend."""
        groups = {"server": processes_in(self.workdir), "database": self._backends()}
        return {group: {pid: cpu for pid in pids if (cpu := process_cpu_seconds(pid)) is not None}
                for group, pids in groups.items()}

    def add(self, name: str, before: dict[str, dict[int, float]], after: dict[str, dict[int, float]],
            requests: int) -> None:
        """Count what was spent between two snapshots on requests of name (a backend that is new counts whole)."""
        totals = self.spent.setdefault(name, [0.0, 0.0, 0])
        for index, group in enumerate(("server", "database")):
            totals[index] += sum(cpu - before[group].get(pid, 0.0) for pid, cpu in after[group].items())
        totals[2] += requests

    def per_request(self, name: str) -> dict[str, float | None]:
        """Milliseconds of CPU per request of name: the server's and the database's (None on SQLite)."""
        server, database, requests = self.spent.get(name, (0.0, 0.0, 0))
        if not requests:
            return {"server_cpu_ms": None, "database_cpu_ms": None}
        return {"server_cpu_ms": round(server / requests * 1000, 3),
                "database_cpu_ms": None if self.database is None else round(database / requests * 1000, 3)}


# ----- measurements ------------------------------------------------------------------------
def summary(result: LoadResult) -> dict[str, Any]:
    """The figures kept for one endpoint."""
    return {"requests": result.requests, "rps": round(result.rps, 1), "p50_ms": round(result.percentile(0.5), 2),
            "p99_ms": round(result.percentile(0.99), 2), "statuses": {str(k): v for k, v in result.statuses.items()}}


def warm(port: int, requests: list[bytes], args: argparse.Namespace) -> None:
    """Load briefly and forget the result (pools, caches and prepared statements fill up)."""
    run_load(port, requests, concurrency=args.concurrency, seconds=min(1.0, args.seconds),
             processes=args.processes, pool=args.pool)


def measure(port: int, requests: list[bytes], args: argparse.Namespace, *, warm_up: bool = True) -> LoadResult:
    """Warm up briefly, then load for the configured duration."""
    if warm_up:
        warm(port, requests, args)
    return run_load(port, requests, concurrency=args.concurrency, seconds=args.seconds, processes=args.processes,
                    pool=args.pool)


def bench_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every selected measurement on one database, as a JSON-ready dict."""
    workdir = Path(tempfile.mkdtemp(prefix=f"incident-bench-{kind}-"))
    results: dict[str, Any] = {"endpoints": {}, "scale": {}, "ratios": {}}
    try:
        if {"efficiency", "slash"} & args.sections:
            # Telemetry on, its data plane up: each create (and each slash change) writes
            # its outbox event and the server's dispatcher sends it, as in production.
            with DataPlane() as plane, fresh_database(kind, workdir) as url, \
                    server(url, workdir, args.workers, telemetry_on(plane.url), args.threads) as port:
                engine = sa.create_engine(normalise_url(url))
                results["database"] = db_version(engine)
                engine.dispose()
                print(f"[{kind}] server on 127.0.0.1:{port} ({args.workers} workers), {results['database']}",
                      flush=True)
                if "efficiency" in args.sections:
                    meter = CpuMeter(workdir, url)
                    try:
                        efficiency(port, args, kind, results, meter)
                    finally:
                        meter.close()
                if "slash" in args.sections:
                    results["slash"] = slash(port, args, kind)
                    results["ratios"]["slash_info_p99_ms"] = results["slash"]["info"]["p99_ms"]
                    results["ratios"]["slash_stage_next_p99_ms"] = results["slash"]["stage_next"]["p99_ms"]
                if args.profile:
                    results["profile"] = profile(url, workdir, kind)
                results["data_plane_requests_received"] = plane.requests
        if "telemetry" in args.sections:
            results["telemetry"] = telemetry_overhead(kind, args, workdir)
            results["ratios"]["telemetry_throughput_on_vs_off"] = results["telemetry"]["throughput_on_vs_off"]
            results["ratios"]["telemetry_p99_down_vs_up"] = results["telemetry"]["p99_down_vs_up"]
        if "scale" in args.sections:
            results["scale"] = scale(kind, args, workdir)
            small, large = (results["scale"][str(size)] for size in args.scale_sizes)
            for key, label in (("list_active_page_100", "list"), ("fetch_one", "fetch"), ("stats", "stats")):
                for q in ("p50", "p99"):
                    results["ratios"][f"scale_{label}_{q}"] = round(large[key][f"{q}_ms"] / small[key][f"{q}_ms"], 3)
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median over rounds of one round's ratio: a round disturbed by anything else on the machine does not decide it.

    With one more denominator than numerators, each round's numerator was measured
    between two denominators, and is divided by their mean (the machine's speed
    drifts within seconds, so the measurements on both sides describe it best).
    """
    if len(denominators) == len(numerators) + 1:
        denominators = [(a + b) / 2 for a, b in zip(denominators, denominators[1:])]
    return round(statistics.median(n / d for n, d in zip(numerators, denominators)), 3)


def efficiency(port: int, args: argparse.Namespace, kind: str, results: dict[str, Any], meter: CpuMeter) -> None:
    """healthz, fetch one incident, create one incident; in rounds so drift hits all alike.

    Each endpoint's CPU time per request (server, database) is measured too: the
    ratios are ratios of CPU costs on this CPU-bound machine, and these say where
    each cost lies.
    """
    user = {"Mattermost-User-ID": USER}
    ids = [api(port, "POST", "/api/v0/incidents", {
        "name": f"fetch {n}", "team_id": HOT_TEAM, "commander_user_id": USER, "checklists": TWO_STAGES,
    })["id"] for n in range(20)]
    # Distinct names, as real incidents mostly have: a repeated name costs the local
    # host a second channel insert (the name is taken; a suffix is added).
    create_bodies = [json.dumps({"name": f"bench incident {secrets.token_hex(4)}",
                                 "description": "created under load", "team_id": HOT_TEAM,
                                 "commander_user_id": USER, "checklists": TWO_STAGES}).encode()
                     for _ in range(20_000)]
    endpoints = {
        "healthz": [build_request("GET", "/healthz")],
        "fetch": [build_request("GET", f"/api/v0/incidents/{i}", user) for i in ids],
        "create": [build_request("POST", "/api/v0/incidents", user, body) for body in create_bodies],
    }
    totals = {name: LoadResult() for name in endpoints}
    rates: dict[str, list[float]] = {name: [] for name in endpoints}
    for round_ in range(args.rounds):
        for name, requests in endpoints.items():
            if round_ == 0:
                warm(port, requests, args)
            before = meter.snapshot()
            part = measure(port, requests, args, warm_up=False)
            meter.add(name, before, meter.snapshot(), part.requests)
            totals[name].merge_sequential(part)
            rates[name].append(part.rps)
            print(f"[{kind}] round {round_ + 1} {name}: {part.rps:.0f} req/s", flush=True)
    # A last /healthz: every round's fetch and create now lie between two of them.
    before = meter.snapshot()
    part = measure(port, endpoints["healthz"], args, warm_up=False)
    meter.add("healthz", before, meter.snapshot(), part.requests)
    totals["healthz"].merge_sequential(part)
    rates["healthz"].append(part.rps)
    for name, total in totals.items():
        results["endpoints"][name] = {**summary(total), **meter.per_request(name),
                                      "round_rps": [round(rate, 1) for rate in rates[name]]}
    results["ratios"]["fetch_vs_healthz"] = median_ratio(rates["fetch"], rates["healthz"])
    results["ratios"]["create_vs_healthz"] = median_ratio(rates["create"], rates["healthz"])
    # The same from all rounds' requests together: where it is far from the median, the rounds disagreed.
    results["ratios_of_totals"] = {f"{name}_vs_healthz": round(totals[name].rps / totals["healthz"].rps, 3)
                                   for name in ("fetch", "create")}


def slash(port: int, args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """p50/p99 of `/incident info` and `/incident stage next` through POST /command.

    `stage next` runs in channels of incidents with 50 stages and no tasks, so each
    command moves a stage (a real mutation with its event and post); there are
    enough of them (``STAGED_INCIDENTS`` x 49 moves) for every command of a run on a
    fast host, since a command at the last stage only answers. The count of stages
    actually moved is reported beside it, and a warning printed if any command found
    its incident at the last stage.
    """
    info_channels = [api(port, "POST", "/api/v0/incidents", {
        "name": f"slash info {n}", "team_id": HOT_TEAM, "commander_user_id": USER, "checklists": TWO_STAGES,
    })["channel_id"] for n in range(20)]
    staged = [api(port, "POST", "/api/v0/incidents", {
        "name": f"slash stage {n}", "team_id": HOT_TEAM, "commander_user_id": USER, "checklists": MANY_STAGES,
    }) for n in range(STAGED_INCIDENTS)]
    commands = {"info": [slash_request(c, "info") for c in info_channels],
                "stage_next": [slash_request(i["channel_id"], "stage next") for i in staged]}
    totals = {name: LoadResult() for name in commands}
    for round_ in range(args.rounds):
        for name, requests in commands.items():
            part = measure(port, requests, args, warm_up=round_ == 0)
            totals[name].merge_sequential(part)
        print(f"[{kind}] slash round {round_ + 1}: info p99 {totals['info'].percentile(0.99):.1f} ms, "
              f"stage next p99 {totals['stage_next'].percentile(0.99):.1f} ms", flush=True)
    moved = sum(api(port, "GET", f"/api/v0/incidents/{i['id']}")["active_stage"] for i in staged)
    out = {name: summary(total) for name, total in totals.items()}
    out["stage_next"]["stages_moved"] = moved
    if moved < out["stage_next"]["requests"]:
        print(f"[{kind}] only {moved} of {out['stage_next']['requests']} stage commands moved a stage: "
              "the others found their incident at its last stage (raise STAGED_INCIDENTS)", flush=True)
    return out


def telemetry_overhead(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Create throughput with telemetry off, on (data plane up) and on with the data plane down.

    Three servers on three fresh databases; rounds alternate between them so the
    machine's drift falls on all three. "Down" points at a loopback port nobody
    listens on (connection refused), so the dispatcher keeps failing and backing off.
    """
    user = {"Mattermost-User-ID": USER}
    bodies = [build_request("POST", "/api/v0/incidents", user, json.dumps({
        "name": f"telemetry {secrets.token_hex(4)}", "team_id": HOT_TEAM, "commander_user_id": USER,
        "checklists": TWO_STAGES}).encode()) for _ in range(20_000)]
    with ExitStack() as stack:
        plane = stack.enter_context(DataPlane())
        configs = {"off": {"INCIDENT_ENABLE_TELEMETRY": "false"}, "up": telemetry_on(plane.url),
                   "down": telemetry_on(f"http://127.0.0.1:{free_port()}")}
        ports = {}
        for name, extra in configs.items():
            folder = workdir / f"telemetry-{name}"
            folder.mkdir()
            url = stack.enter_context(fresh_database(kind, folder))
            ports[name] = stack.enter_context(server(url, folder, args.workers, extra, args.threads))
        totals = {name: LoadResult() for name in configs}
        rates: dict[str, list[float]] = {name: [] for name in configs}
        names = list(ports)
        for round_ in range(args.rounds):
            # Rotate the order: a server's dispatcher may still be sending its round's events
            # during the next round, so no configuration always follows the same one.
            for name in names[round_ % 3:] + names[:round_ % 3]:
                part = measure(ports[name], bodies, args, warm_up=round_ == 0)
                totals[name].merge_sequential(part)
                rates[name].append(part.rps)
            print(f"[{kind}] telemetry round {round_ + 1}: " + ", ".join(
                f"{name} {total.rps:.0f} req/s" for name, total in totals.items()), flush=True)
        received = plane.requests
    out: dict[str, Any] = {name: {**summary(total), "round_rps": [round(rate, 1) for rate in rates[name]]}
                           for name, total in totals.items()}
    out["data_plane_requests_received"] = received
    out["throughput_on_vs_off"] = median_ratio(rates["up"], rates["off"])
    out["throughput_on_vs_off_of_totals"] = round(totals["up"].rps / totals["off"].rps, 3)
    out["p99_down_vs_up"] = round(totals["down"].percentile(0.99) / totals["up"].percentile(0.99), 3)
    return out


def scale(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """List a team's active incidents, fetch one and ask for the team's statistics (the default window: the
    last 90 days), with 1,000 and with 100,000 stored (``--scale-sizes``).

    Two fresh databases, each with its own server, are seeded with SQL in bulk; the
    measurements then alternate between the two in short rounds, so the machine's
    drift falls on both sizes alike.
    """
    user = {"Mattermost-User-ID": USER}
    listing = [build_request("GET", f"/api/v0/incidents?team_id={HOT_TEAM}&status=active&per_page=100", user)]
    stats = [build_request("GET", f"/api/v0/stats?team_id={HOT_TEAM}", user)]
    names = ("list_active_page_100", "fetch_one", "stats")
    with ExitStack() as stack:
        targets: dict[int, tuple[int, list[bytes]]] = {}
        for size in args.scale_sizes:
            folder = workdir / f"scale-{size}"
            folder.mkdir()
            url = stack.enter_context(fresh_database(kind, folder))
            port = stack.enter_context(server(url, folder, args.workers, threads=args.threads))
            engine = sa.create_engine(normalise_url(url))
            started = time.perf_counter()
            fetchable = seed(engine, size, 0, random.Random(6))
            settle(engine)
            engine.dispose()
            print(f"[{kind}] seeded {size:,} incidents in {time.perf_counter() - started:.1f}s", flush=True)
            page = api(port, "GET", f"/api/v0/incidents?team_id={HOT_TEAM}&status=active&per_page=100")
            assert len(page["items"]) == 100, "the listed team's first page must be full"
            figures = api(port, "GET", f"/api/v0/stats?team_id={HOT_TEAM}")
            assert figures["ended"] > 0 and figures["stages"], "the statistics must count ended incidents' stages"
            targets[size] = (port, [build_request("GET", f"/api/v0/incidents/{i}", user) for i in fetchable[:20]])
        totals = {(size, name): LoadResult() for size in targets for name in names}
        for round_ in range(args.rounds):
            for name in names:
                for size, (port, fetch) in targets.items():
                    requests = {"list_active_page_100": listing, "stats": stats}.get(name, fetch)
                    totals[size, name].merge_sequential(measure(port, requests, args, warm_up=round_ == 0))
            print(f"[{kind}] scale round {round_ + 1} done", flush=True)
    return {str(size): {name: summary(totals[size, name]) for name in names} for size in targets}


def profile(url: str, workdir: Path, kind: str) -> str:
    """Profile fetch and create in-process with pyinstrument; write the report next to the results."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                        "pyinstrument"], check=True)
        from pyinstrument import Profiler
    from plugin.app import create_app
    from plugin.settings import load_settings

    app = create_app(load_settings(environ={"INCIDENT_DATABASE_URL": url, "INCIDENT_DATA_DIR": str(workdir)}))
    client = app.test_client()
    headers = {"Mattermost-User-ID": USER}
    body = {"name": "profiled", "team_id": HOT_TEAM, "commander_user_id": USER, "checklists": TWO_STAGES}
    incident_id = client.post("/api/v0/incidents", json=body, headers=headers).json["id"]
    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(500):
            client.get(f"/api/v0/incidents/{incident_id}", headers=headers)
        for n in range(200):
            client.post("/api/v0/incidents", json={**body, "name": f"profiled {n}"}, headers=headers)
    app.extensions["incident"].db.dispose()
    path = RESULTS / f"profile-{kind}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return str(path.relative_to(ROOT))


# ----- report ------------------------------------------------------------------------------
def cpu_times() -> list[int]:
    """The machine's CPU time counters (/proc/stat: user nice system idle iowait irq softirq steal), or []."""
    try:
        return [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return []


def steal_percent(before: list[int], after: list[int]) -> float | None:
    """Of the CPU time that passed between two readings, the percentage the hypervisor gave to others."""
    if len(before) < 8 or len(after) < 8 or sum(after) <= sum(before):
        return None
    return round(100 * (after[7] - before[7]) / (sum(after) - sum(before)), 1)


def save_results(name: str, results: dict[str, Any]) -> None:
    """Stamp results with the time of measurement and write bench/results/<name>.json."""
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory": memory, "python": platform.python_version(),
            "platform": platform.platform()}


def table(kind: str, results: dict[str, Any]) -> str:
    """The printed summary of one database's run."""
    steal = results.get("machine", {}).get("steal_percent")
    lines = [f"\n{kind}: {results.get('database', '')}" + ("" if steal is None else f" (CPU time stolen: {steal}%)"),
             f"{'figure':<32}{'value':>10}  {'target':<8}{'ok':>4}"]
    for name, value in results["ratios"].items():
        op, target = TARGETS[name]
        ok = {">=": value >= target, "<=": value <= target, "<": value < target}[op]
        lines.append(f"{name:<32}{value:>10.3f}  {op}{target:<6}{'yes' if ok else 'NO':>4}")
    lines.append(f"{'endpoint':<32}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}  CPU ms per request: server, database")
    for name, figures in results["endpoints"].items():
        cpu = "  ".join("-" if figures.get(key) is None else f"{figures[key]:.3f}"
                        for key in ("server_cpu_ms", "database_cpu_ms"))
        lines.append(f"{name:<32}{figures['rps']:>10.0f}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}  {cpu}")
    for name, figures in [*(("slash " + k, v) for k, v in results.get("slash", {}).items()),
                          *(("telemetry " + k, v) for k, v in results.get("telemetry", {}).items()
                            if isinstance(v, dict))]:
        lines.append(f"{name:<32}{figures['rps']:>10.0f}{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}")
    for size, figures in results["scale"].items():
        for name, values in figures.items():
            lines.append(f"{name + ' @' + size:<32}{values['rps']:>10.0f}{values['p50_ms']:>10.2f}"
                         f"{values['p99_ms']:>10.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write bench/results/<db>.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=1.5, help="duration of each measurement")
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds of healthz/fetch/create: short alternating slices share the machine's drift")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--workers", type=int, default=WORKERS_FOR_TWO_CORES)
    parser.add_argument("--threads", type=int, default=4, help="request threads per server worker")
    parser.add_argument("--no-scale", action="store_true", help="skip the 1,000 vs 100,000 comparison")
    parser.add_argument("--scale-sizes", default=",".join(map(str, SCALE_SIZES)),
                        help="the two incident counts scale compares (a smaller pair is a quick check that the "
                             f"section runs; its results are printed, not written; at least "
                             f"{HOT_TEAM_SIZE + HOT_TEAM_ENDED + 100} each)")
    parser.add_argument("--no-telemetry", action="store_true", help="skip the telemetry overhead comparison")
    parser.add_argument("--only", default="", help=f"comma-separated sections to run, of {', '.join(SECTIONS)} "
                        "(a partial run writes bench/results/<db>-<sections>.json)")
    parser.add_argument("--profile", action="store_true", help="also profile fetch and create (pyinstrument)")
    args = parser.parse_args(argv)
    try:
        args.scale_sizes = tuple(int(size) for size in args.scale_sizes.split(","))
    except ValueError:
        parser.error("--scale-sizes takes two whole numbers, e.g. 1000,100000")
    if len(args.scale_sizes) != 2 or min(args.scale_sizes) < HOT_TEAM_SIZE + HOT_TEAM_ENDED + 100:
        parser.error(f"--scale-sizes takes two numbers of at least {HOT_TEAM_SIZE + HOT_TEAM_ENDED + 100}")
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if only - set(SECTIONS):
        parser.error(f"--only takes sections of {', '.join(SECTIONS)}")
    args.sections = (only or set(SECTIONS)) - ({"scale"} if args.no_scale else set()) - (
        {"telemetry"} if args.no_telemetry else set())
    suffix = "" if args.sections == set(SECTIONS) else "-" + "-".join(n for n in SECTIONS if n in args.sections)
    RESULTS.mkdir(parents=True, exist_ok=True)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    failed = False
    for kind in kinds:
        started, counters = time.perf_counter(), cpu_times()
        with load_pool(args.processes) as args.pool:
            results = bench_database(kind, args)
        # Time stolen by other guests of a virtual machine's host slows rounds at random.
        results["machine"] = {**machine(), "steal_percent": steal_percent(counters, cpu_times())}
        results["settings"] = {"seconds": args.seconds, "rounds": args.rounds, "concurrency": args.concurrency,
                               "load_processes": args.processes, "server_workers": args.workers,
                               "server_threads": args.threads,
                               # efficiency and slash: telemetry on, loopback data plane up
                               "telemetry_during_efficiency_and_slash": "on"}
        results["wall_seconds"] = round(time.perf_counter() - started, 1)
        if args.scale_sizes == SCALE_SIZES or "scale" not in args.sections:
            save_results(f"{kind}{suffix}", results)
        else:
            print(f"[{kind}] scale sizes {args.scale_sizes} are not the figure's: results not written", flush=True)
        print(table(kind, results), flush=True)
        errors = {s: n for figures in [*results["endpoints"].values(), *results.get("slash", {}).values(),
                                       *(v for v in results.get("telemetry", {}).values() if isinstance(v, dict)),
                                       *(v for f in results["scale"].values() for v in f.values())]
                  for s, n in figures["statuses"].items() if not s.startswith("2")}
        if errors:
            print(f"[{kind}] non-2xx answers under load: {errors}", flush=True)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
