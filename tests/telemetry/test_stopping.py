"""A stopping process sends no more telemetry: what waits is left to the next process.

A server being stopped can no longer be told of a telemetry switch turned off in the
meantime (the launcher hands new settings only to a running server), so whatever it
still sent would go out against the admin's choice.
"""
from __future__ import annotations

import sqlalchemy as sa

from plugin.store.tables import telemetry_outbox
from tests.conftest import ALICE, TEAM, as_user
from tests.telemetry.conftest import make_app
from tests.telemetry.dataplane import wait_until


def _pending(components) -> int:
    with components.db.read_engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(telemetry_outbox)).scalar_one()


def _message_ids(components) -> set[str]:
    with components.db.read_engine.connect() as connection:
        return set(connection.execute(sa.select(telemetry_outbox.c.message_id)).scalars())


def _start_incidents(client, count: int) -> None:
    for _ in range(count):
        response = client.post("/api/v0/incidents", headers=as_user(ALICE),
                               json={"name": "db down", "team_id": TEAM, "commander_user_id": ALICE})
        assert response.status_code == 201, response.json


def _post_hangs(components, dataplane, count: int) -> None:
    """Wait until the data plane holds the dispatcher's post number count unanswered."""
    wait_until(lambda: (components.telemetry.dispatcher.nudge(), dataplane.arrived == count)[1])


def test_a_stopped_dispatcher_sends_nothing_of_what_waits_and_the_next_process_sends_it_once(
        telemetry_settings, dataplane):
    first = make_app(telemetry_settings, poll_interval=30)
    one = first.extensions["incident"]
    try:
        dataplane.hang()
        _start_incidents(first.test_client(), 1)
        _post_hangs(one, dataplane, 1)  # the dispatcher is busy with the first event
        _start_incidents(first.test_client(), 3)
        one.telemetry.dispatcher.stop(0)  # as a worker told to stop does: at once, without waiting
        dataplane.release()
        assert one.telemetry.stop(5.0)
        assert dataplane.arrived == 1 and len(dataplane.delivered()) == 1 and _pending(one) == 3
    finally:
        dataplane.release()
        one.telemetry.stop(1.0)
        one.db.dispose()
    second = make_app(telemetry_settings)
    two = second.extensions["incident"]
    try:
        two.telemetry.start()
        wait_until(lambda: len(dataplane.delivered()) == 4 and _pending(two) == 0)
        assert len(set(dataplane.delivered_ids())) == 4
    finally:
        two.telemetry.stop(1.0)
        two.db.dispose()


def test_a_dispatcher_stopped_during_a_post_makes_no_further_post_of_its_batch(telemetry_settings, dataplane):
    """A batch refused with 400 is split and sent again in halves: not once the process is stopping."""
    recorder = make_app(telemetry_settings)
    recording = recorder.extensions["incident"]
    try:
        dataplane.stop()  # down: the three events wait in the outbox
        _start_incidents(recorder.test_client(), 3)
    finally:
        recording.telemetry.stop(1.0)
        recording.db.dispose()
    dataplane.start()
    dataplane.refuse(*_message_ids(recording))
    dataplane.hang()
    sender = make_app(telemetry_settings, poll_interval=30)
    components = sender.extensions["incident"]
    try:
        components.telemetry.start()
        _post_hangs(components, dataplane, 1)  # the three events, in one batch
        components.telemetry.dispatcher.stop(0)
        dataplane.release()
        assert components.telemetry.stop(5.0)
        assert dataplane.arrived == 1 and [len(r.body["batch"]) for r in dataplane.requests] == [3]
        assert _pending(components) == 3  # neither sent nor refused: the next process tries them
    finally:
        dataplane.release()
        components.telemetry.stop(1.0)
        components.db.dispose()
