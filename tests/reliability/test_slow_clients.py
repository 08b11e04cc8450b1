"""Slow clients and oversize bodies against the real `incident-plugin serve`, with several workers.

Clients that send part of a request and wait must not hold up anyone else, and are
cut off after the server's client timeout; a body over MaxBodyBytes is refused with
413 however it is framed. Timing here is a generous bound (every request answered
within 2 s); the latency figures belong to bench/slow_clients.py.
"""
from __future__ import annotations

import http.client
import json
import selectors
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.conftest import ALICE, TEAM
from tests.integration.test_server import clean_env, serve

CLIENT_TIMEOUT = 2  # seconds: --client-timeout given to the server under test
MAX_BODY = 4096  # MaxBodyBytes of the server under test
SLOW = 50  # connections of each kind of slow client
ANSWER_WITHIN = 2.0  # seconds: the generous bound on every other client's request


@contextmanager
def served(tmp_path: Path, database_url: str) -> Iterator[int]:
    """Run `incident-plugin serve` with three workers on a free loopback port; yield the port."""
    env = clean_env(tmp_path, INCIDENT_DATABASE_URL=database_url, INCIDENT_MAX_BODY_BYTES=str(MAX_BODY))
    options = ("--threads", "2", "--client-timeout", str(CLIENT_TIMEOUT))
    with serve(tmp_path, env, workers=3, options=options) as base:
        yield int(base.rsplit(":", 1)[1])


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            chunked: bool = False, timeout: float = 10.0) -> tuple[int, dict]:
    """One request on a new connection; (status, JSON body), or (0, {}) when the server did not answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        all_headers = {"Mattermost-User-ID": ALICE, "Content-Type": "application/json", **(headers or {})}
        if chunked:
            # A body sent in pieces with Transfer-Encoding: chunked and no Content-Length.
            pieces = [body[i:i + 1000] for i in range(0, len(body or b""), 1000)]
            connection.request(method, path, body=iter(pieces), headers=all_headers, encode_chunked=True)
        else:
            connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except OSError:
        return 0, {}
    finally:
        connection.close()


def incident_body(size: int) -> bytes:
    """A valid JSON create body of exactly ``size`` bytes (padded with the whitespace JSON allows)."""
    body = json.dumps({"name": "padded", "team_id": TEAM, "commander_user_id": ALICE}).encode()
    assert len(body) <= size
    return body + b" " * (size - len(body))


def listed(port: int) -> int:
    """How many incidents the team has."""
    status, page = request(port, "GET", f"/api/v0/incidents?team_id={TEAM}")
    assert status == 200
    return page["total_count"]


def open_slow_bodies(port: int, stack: ExitStack, count: int) -> list[socket.socket]:
    """Connections that send a create's headers and part of its body, then wait."""
    head = (f"POST /api/v0/incidents HTTP/1.1\r\nHost: 127.0.0.1\r\nMattermost-User-ID: {ALICE}\r\n"
            "Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n").encode()
    return [_open(port, stack, head + b'{"name": "slo') for _ in range(count)]


def open_slowloris(port: int, stack: ExitStack, count: int) -> list[socket.socket]:
    """Connections that send part of a request's headers, then wait."""
    return [_open(port, stack, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(count)]


def _open(port: int, stack: ExitStack, data: bytes) -> socket.socket:
    sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
    sock.sendall(data)
    return sock


def seconds_until_cut_off(sockets: list[socket.socket], since: float, limit: float) -> list[float]:
    """For each socket, seconds from ``since`` until the server closed it or answered 408 (inf if neither)."""
    cut = {sock: float("inf") for sock in sockets}
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map() and time.monotonic() - since < limit:
            for key, _ in selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(4096)  # type: ignore[union-attr]
                except OSError:
                    data = b""  # reset: cut off too
                if not data or data.startswith(b"HTTP/1.1 408"):
                    cut[key.fileobj] = time.monotonic() - since  # type: ignore[index]
                    selector.unregister(key.fileobj)
    return list(cut.values())


@pytest.mark.slow
def test_fifty_slow_uploads_and_fifty_slowloris_connections_stall_no_other_client_and_are_cut_off(
        tmp_path, database_url):
    with served(tmp_path, database_url) as port:
        status, incident = request(port, "POST", "/api/v0/incidents", incident_body(200))
        assert status == 201
        with ExitStack() as stack:
            opened = time.monotonic()
            slow = open_slow_bodies(port, stack, SLOW) + open_slowloris(port, stack, SLOW)
            durations, statuses = [], []
            for n in range(40):
                path = "/healthz" if n % 2 else f"/api/v0/incidents/{incident['id']}"
                started = time.monotonic()
                statuses.append(request(port, "GET", path, timeout=ANSWER_WITHIN + 3)[0])
                durations.append(time.monotonic() - started)
            assert statuses == [200] * 40, "every other client is answered while the slow ones wait"
            assert max(durations) < ANSWER_WITHIN, f"slowest answer took {max(durations):.2f} s"
            # Silent for CLIENT_TIMEOUT, each is closed (or answered 408) within a
            # second or two of maintenance rounds after it.
            cut_off = seconds_until_cut_off(slow, opened, limit=CLIENT_TIMEOUT + 10)
            assert max(cut_off) <= CLIENT_TIMEOUT + 5, f"{sum(t == float('inf') for t in cut_off)} still open"
        assert listed(port) == 1, "no slow upload created anything"


@pytest.mark.slow
def test_body_over_max_body_bytes_is_refused_with_413_and_creates_nothing_and_one_at_the_limit_is_accepted(
        tmp_path, database_url):
    with served(tmp_path, database_url) as port:
        for chunked in (False, True):
            for size in (MAX_BODY + 1, 5 * MAX_BODY):
                status, error = request(port, "POST", "/api/v0/incidents", incident_body(size), chunked=chunked)
                assert status == 413 and set(error) == {"error", "details"}, (chunked, size, status, error)
                assert error["details"]["max_body_bytes"] == MAX_BODY
        assert listed(port) == 0
        for chunked in (False, True):
            status, incident = request(port, "POST", "/api/v0/incidents", incident_body(MAX_BODY), chunked=chunked)
            assert status == 201 and incident["name"] == "padded", (chunked, status, incident)
        assert listed(port) == 2


def test_the_fronts_body_ceiling_admits_the_largest_max_body_bytes_the_settings_accept():
    from plugin.front import MAX_BODY_BYTES_CEILING
    from plugin.settings import SettingsError, load_settings

    assert load_settings(environ={"INCIDENT_MAX_BODY_BYTES": str(MAX_BODY_BYTES_CEILING)}).max_body_bytes \
        == MAX_BODY_BYTES_CEILING
    with pytest.raises(SettingsError):
        load_settings(environ={"INCIDENT_MAX_BODY_BYTES": str(MAX_BODY_BYTES_CEILING + 1)})
