"""Saving a webhook: its host's lookup has a time limit, and lookups that hang hold a bounded number of threads."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from plugin.settings import Settings
from plugin.store.saved_settings import read_version
from plugin.webhooks.service import SAVE_LOOKUP_SECONDS, SAVE_LOOKUP_THREADS
from tests.conftest import ADMIN, as_user
from tests.threads import run_in_threads
from tests.webhooks.conftest import Names, make_app, register, stop
from tests.webhooks.receiver import DOCS

HUNG = "hung.example"
URL = "https://hooks.example.com/incidents"
# The save's lookup limit for these tests: short, so that a test waits moments for it.
LIMIT = 0.3
REFUSED = f"The host {HUNG} could not be resolved within 0.3 s: check the name, or try again when its DNS answers."


class HangingNames(Names):
    """Names whose lookups of HUNG block until ``released`` is set (at most ``bound`` s), counted as they run."""

    def __init__(self, bound: float = 20.0) -> None:
        super().__init__()
        self.table[HUNG] = ["93.184.215.14"]
        self.bound = bound
        self.released = threading.Event()
        self.calls = 0
        self.waiting = 0
        self.most_waiting = 0
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        if host == HUNG:
            with self._lock:
                self.calls += 1
                self.waiting += 1
                self.most_waiting = max(self.most_waiting, self.waiting)
            try:
                self.released.wait(self.bound)
            finally:
                with self._lock:
                    self.waiting -= 1
        return super().__call__(host, port)


@pytest.fixture
def names() -> Iterator[HangingNames]:
    found = HangingNames()
    yield found
    found.released.set()


@pytest.fixture
def happ(hook_settings: Settings, names: HangingNames) -> Iterator[Any]:
    application = make_app(hook_settings, names, save_lookup_seconds=LIMIT)
    yield application
    names.released.set()
    stop(application)


def _version(db: Any) -> int:
    with db.read_engine.connect() as connection:
        return read_version(connection)


def _post(client: Any, url: str) -> tuple[Any, float]:
    started = time.monotonic()
    response = client.post("/api/v0/webhooks", headers=as_user(ADMIN), json={"url": url, "events": ["*"]})
    return response, time.monotonic() - started


def test_a_save_whose_host_lookup_hangs_is_refused_at_the_limit_and_stores_nothing(hclient, names, db, caplog):
    before = _version(db)
    with caplog.at_level(logging.DEBUG):
        response, took = _post(hclient, f"https://{HUNG}/hook?token=abc")
    assert response.status_code == 400
    assert response.get_json() == {"error": REFUSED, "details": {"field": "url"}}
    assert LIMIT <= took < LIMIT + 3, took
    assert names.calls == 1
    assert hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 0
    assert _version(db) == before
    assert HUNG not in caplog.text and "token=abc" not in caplog.text


def test_a_url_change_whose_host_lookup_hangs_is_refused_at_the_limit_and_keeps_the_old_url(hclient, names, db):
    hook = register(hclient, URL)
    path = f"/api/v0/webhooks/{hook['id']}"
    before, kept = _version(db), hclient.get(path, headers=as_user(ADMIN)).get_json()
    started = time.monotonic()
    response = hclient.patch(path, headers=as_user(ADMIN), json={"url": f"https://{HUNG}/hook", "events": ["note"]})
    took = time.monotonic() - started
    assert response.status_code == 400
    assert response.get_json() == {"error": REFUSED, "details": {"field": "url"}}
    assert LIMIT <= took < LIMIT + 3, took
    assert hclient.get(path, headers=as_user(ADMIN)).get_json() == kept
    assert kept["url"] == URL and _version(db) == before


def test_saves_at_once_against_a_hanging_resolver_all_answer_in_time_and_hold_only_the_pool(happ, names):
    saves = 3 * SAVE_LOOKUP_THREADS
    answers: list[tuple[int, str, float]] = [(0, "", 0.0)] * saves

    def save(number: int) -> None:
        response, took = _post(happ.test_client(), f"https://{HUNG}/hook/{number}")
        answers[number] = (response.status_code, response.get_json()["error"], took)

    run_in_threads(save, saves, timeout=LIMIT + 10, what="saves")
    assert {(status, error) for status, error, _ in answers} == {(400, REFUSED)}
    assert max(took for _, _, took in answers) < LIMIT + 5, answers
    # The first lookups hold the pool's threads; the rest waited in its queue and never ran.
    assert names.calls == names.most_waiting == SAVE_LOOKUP_THREADS
    client = happ.test_client()
    assert client.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 0


def test_a_save_answered_once_the_dns_answers_again_is_stored(hclient, names):
    response, _ = _post(hclient, f"https://{HUNG}/hook")
    assert response.status_code == 400
    names.released.set()
    response, _ = _post(hclient, f"https://{HUNG}/hook")
    assert response.status_code == 201, response.get_json()
    assert hclient.get("/api/v0/webhooks", headers=as_user(ADMIN)).get_json()["total_count"] == 1


def test_the_docs_give_the_limit_a_save_lookup_has():
    assert f"A save's host lookup has {SAVE_LOOKUP_SECONDS:g} s" in DOCS.read_text()
