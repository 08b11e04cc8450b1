"""Data plane faults, driven through the real SDK against the loopback double: every good event arrives once."""
from __future__ import annotations

import sqlalchemy as sa

from plugin.store.tables import telemetry_outbox
from plugin.telemetry.dispatcher import parse_retry_after
from tests.conftest import ADMIN, ALICE, TEAM, as_user
from tests.telemetry.conftest import make_app
from tests.telemetry.dataplane import wait_until
from tests.telemetry.lifecycle import drive_every_mutation


def _ids(components) -> list[str]:
    with components.db.read_engine.connect() as connection:
        return list(connection.execute(sa.select(telemetry_outbox.c.message_id)
                                       .order_by(telemetry_outbox.c.seq)).scalars())


def _backlog(client, components, dataplane, rounds: int = 2) -> list[str]:
    """With the data plane down, record rounds x 11 events; return their message ids in order."""
    dataplane.stop()
    for _ in range(rounds):
        drive_every_mutation(client, components)
    return _ids(components)


def test_a_backlog_goes_out_as_one_gzipped_batch_request_per_claim(tclient, tcomponents, dataplane):
    ids = _backlog(tclient, tcomponents, dataplane)
    dataplane.start()
    wait_until(lambda: tcomponents.telemetry.outbox.pending_count() == 0 and len(dataplane.delivered()) == 22)
    # One request for the backlog; a cycle that had claimed events just before the data
    # plane came up (all but the last few recorded, or only the first few) may send
    # those in a request of their own, before or after the rest.
    sizes = [len(request.body["batch"]) for request in dataplane.requests]
    assert len(sizes) <= 2 and sum(sizes) == 22 and max(sizes) >= 11, sizes
    assert all(request.content_encoding == "gzip" for request in dataplane.requests)
    assert dataplane.delivered_ids() == ids


def test_batches_never_exceed_the_batch_size(telemetry_settings, dataplane):
    application = make_app(telemetry_settings, batch_size=5)
    components = application.extensions["incident"]
    try:
        ids = _backlog(application.test_client(), components, dataplane)
        dataplane.start()
        wait_until(lambda: len(dataplane.delivered()) == 22)
        assert [len(r.body["batch"]) for r in dataplane.requests] == [5, 5, 5, 5, 2]
        assert dataplane.delivered_ids() == ids
    finally:
        components.telemetry.stop(2.0)
        components.db.dispose()


def test_a_429_with_retry_after_waits_that_long_then_delivers_each_event_once(tclient, tcomponents, dataplane):
    ids = _backlog(tclient, tcomponents, dataplane, rounds=1)
    # The test backoff is at most 0.2 s: a retry sooner than 1 s would ignore Retry-After.
    dataplane.fail_next(429, headers={"Retry-After": "1"})
    dataplane.start()
    wait_until(lambda: len(dataplane.delivered()) == 11)
    refused, retried = dataplane.requests[0], dataplane.requests[1]
    assert refused.status == 429 and retried.status == 200
    assert retried.at - refused.at >= 0.95
    assert dataplane.delivered_ids() == ids
    assert tcomponents.telemetry.report()["last_error"]["error"] == "data plane answered HTTP 429"


def test_a_huge_retry_after_is_bounded(telemetry_settings, dataplane):
    application = make_app(telemetry_settings, retry_after_max=0.3)
    components = application.extensions["incident"]
    try:
        _backlog(application.test_client(), components, dataplane, rounds=1)
        dataplane.fail_next(429, headers={"Retry-After": "86400"})
        dataplane.start()
        wait_until(lambda: len(dataplane.delivered()) == 11, timeout=5.0)
    finally:
        components.telemetry.stop(2.0)
        components.db.dispose()


def test_500s_back_off_then_the_backlog_is_delivered_once_when_the_data_plane_recovers(tclient, tcomponents,
                                                                                          dataplane):
    ids = _backlog(tclient, tcomponents, dataplane)
    dataplane.fail_next(500, 500, 502)
    dataplane.start()
    wait_until(lambda: len(dataplane.delivered()) == 22)
    assert [r.status for r in dataplane.requests] == [500, 500, 502, 200]
    assert dataplane.delivered_ids() == ids
    wait_until(lambda: tcomponents.telemetry.report()["pending"] == 0)
    report = tcomponents.telemetry.report()
    assert (report["sent"], report["rejected"]) == (22, 0)


def test_a_poison_event_is_rejected_while_the_good_events_around_it_are_delivered_once(tclient, tcomponents,
                                                                                           dataplane):
    ids = _backlog(tclient, tcomponents, dataplane)
    poison = ids[13]
    dataplane.refuse(poison)
    dataplane.start()
    good = [i for i in ids if i != poison]
    wait_until(lambda: len(dataplane.delivered()) == 21)
    wait_until(lambda: tcomponents.telemetry.report()["pending"] == 0)
    # The refusal is noted just after the batch's marks, in its own transaction.
    wait_until(lambda: "refused" in ((tcomponents.telemetry.report()["last_error"] or {}).get("error", "")))
    assert sorted(dataplane.delivered_ids()) == sorted(good)
    report = tclient.get("/api/v0/telemetry", headers=as_user(ADMIN)).json
    assert (report["sent"], report["rejected"], report["pending"]) == (21, 1, 0)
    assert [m["messageId"] for m in report["recent_rejected"]] == [poison]
    assert report["recent_rejected"][0]["event"] in {"incident", "tasks"}
    assert "refused 1 event" in report["last_error"]["error"]


def test_a_rejected_event_is_never_retried_and_blocks_nothing_recorded_later(tclient, tcomponents, dataplane):
    ids = _backlog(tclient, tcomponents, dataplane, rounds=1)
    dataplane.refuse(ids[0], ids[-1])
    dataplane.start()
    wait_until(lambda: tcomponents.telemetry.report()["rejected"] == 2)
    tries = sum(1 for r in dataplane.requests if any(m["messageId"] == ids[0] for m in r.body["batch"]))
    tclient.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE})
    wait_until(lambda: len(dataplane.delivered()) == 10)
    tcomponents.telemetry.stop(2.0)
    assert sum(1 for r in dataplane.requests if any(m["messageId"] == ids[0] for m in r.body["batch"])) == tries
    assert len(set(dataplane.delivered_ids())) == len(dataplane.delivered_ids()) == 10
    assert tcomponents.telemetry.report()["pending"] == 0


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
