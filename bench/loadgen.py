"""A small HTTP/1.1 load generator: keep-alive connections, fixed concurrency, fixed duration.

The load runs in separate processes (never in the server's), each an asyncio loop
driving its share of the connections over raw sockets, so the generator's own
overhead stays small and the same for every endpoint measured in one run.
"""
from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.pool
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What one measured endpoint did under load."""

    requests: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        """Completed requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        """Latency at the given fraction (0.5 = median), in milliseconds."""
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def merge_sequential(self, other: "LoadResult") -> None:
        """Add a later measurement of the same endpoint (durations add up)."""
        seconds = self.seconds + other.seconds
        self.merge(other)
        self.seconds = seconds

    def merge(self, other: "LoadResult") -> None:
        """Add another process's share to this result."""
        self.requests += other.requests
        self.seconds = max(self.seconds, other.seconds)
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count
        self.latencies_ms.extend(other.latencies_ms)


def build_request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
                  content_type: str = "application/json") -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: keep-alive"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    if body or method in {"POST", "PUT", "PATCH"}:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def _connection(port: int, requests: list[bytes], offset: int, start_at: float, deadline: float,
                      result: LoadResult) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    index = offset
    # Every connection of every process starts at the same wall-clock instant.
    await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        while time.time() < deadline:
            payload = requests[index % len(requests)]
            index += 1
            started = time.perf_counter()
            writer.write(payload)
            status, close = await _read_response(reader)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _run(port: int, requests: list[bytes], connections: int, first: int, start_at: float,
               seconds: float) -> LoadResult:
    result = LoadResult()
    deadline = start_at + seconds
    await asyncio.gather(*(_connection(port, requests, (first + n) * 7919, start_at, deadline, result)
                           for n in range(connections)))
    result.seconds = time.time() - start_at
    return result


def _process_main(args: tuple[int, list[bytes], int, int, float, float]) -> LoadResult:
    return asyncio.run(_run(*args))


def load_pool(processes: int = 2) -> multiprocessing.pool.Pool:
    """Processes for run_load, started once so that each measurement starts at once."""
    return multiprocessing.get_context("spawn").Pool(processes)


def run_load(port: int, requests: list[bytes], *, concurrency: int = 8, seconds: float = 5.0,
             processes: int = 2, pool: multiprocessing.pool.Pool | None = None) -> LoadResult:
    """Send requests (cycled) over `concurrency` keep-alive connections for `seconds`."""
    shares = [concurrency // processes + (1 if n < concurrency % processes else 0) for n in range(processes)]
    jobs = []
    first = 0
    # Handing the requests to the processes takes a moment: start every clock after it.
    start_at = time.time() + (0.3 if pool else 1.0)
    for share in shares:
        jobs.append((port, requests, share, first, start_at, seconds))
        first += share
    if pool is None:
        with load_pool(len(jobs)) as own:
            parts = own.map(_process_main, jobs)
    else:
        parts = pool.map(_process_main, jobs, chunksize=1)
    total = LoadResult()
    for part in parts:
        total.merge(part)
    return total
