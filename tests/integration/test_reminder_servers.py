"""Reminders fire once per due time with two real servers of two workers each on one PostgreSQL.

Each server runs its own reminder scanner in every worker, scanning every 0.2 s, so
four scanners race for every due reminder. The posts go to the local chat host,
whose posts live in the same database, where the test counts them.
"""
from __future__ import annotations

import time
from collections import Counter

import pytest
import sqlalchemy as sa

from plugin.app import create_app
from plugin.model import now_ms
from plugin.settings import load_settings
from plugin.store.tables import chat_posts, incident_reminders
from tests.conftest import ALICE, TEAM, as_user, new_postgres_database
from tests.integration.test_server import clean_env, serve

INCIDENTS = 12
REMINDER = "please post a status update"


def _incidents_with_reminders(url: str, tmp_path) -> dict[str, str]:
    """Start incidents with an hourly reminder through the API in process; return channel id: incident id."""
    app = create_app(load_settings(environ={"INCIDENT_DATABASE_URL": url, "INCIDENT_DATA_DIR": str(tmp_path),
                                            "INCIDENT_REMINDER_SCAN_SECONDS": "0"}))
    client = app.test_client()
    channels = {}
    for number in range(INCIDENTS):
        incident = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
            "name": f"outage {number}", "team_id": TEAM, "commander_user_id": ALICE}).json
        assert client.post(f"/api/v0/incidents/{incident['id']}/reminder", headers=as_user(ALICE),
                           json={"seconds": 3600}).status_code == 200
        channels[incident["channel_id"]] = incident["id"]
    app.extensions["incident"].db.dispose()
    return channels


def _make_all_due(engine: sa.Engine) -> None:
    """Every reminder came due a minute ago: the clock moved on past them."""
    with engine.begin() as connection:
        connection.execute(sa.update(incident_reminders).values(due_at=now_ms() - 60_000))


def _reminders_per_channel(engine: sa.Engine) -> Counter:
    with engine.connect() as connection:
        rows = connection.execute(sa.select(chat_posts.c.channel_id)
                                  .where(chat_posts.c.message.contains(REMINDER))).scalars()
        return Counter(rows)


def _wait_for(engine: sa.Engine, channels: dict[str, str], each: int) -> Counter:
    """Wait until every channel has `each` reminders, then a dozen scans more; return the counts."""
    deadline = time.monotonic() + 60
    while not all(_reminders_per_channel(engine)[channel] >= each for channel in channels):
        assert time.monotonic() < deadline, f"reminders never came: {_reminders_per_channel(engine)}"
        time.sleep(0.1)
    time.sleep(2.5)  # any scanner that would post a due time twice has had a dozen chances
    return _reminders_per_channel(engine)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_servers_post_each_due_reminder_once_including_those_due_while_both_were_down(tmp_path):
    with new_postgres_database("incident_reminders") as url:
        channels = _incidents_with_reminders(url, tmp_path / "setup")
        engine = sa.create_engine(url)
        try:
            _make_all_due(engine)  # came due while no server ran
            envs = [clean_env(tmp_path / name, INCIDENT_DATABASE_URL=url, INCIDENT_REMINDER_SCAN_SECONDS="0.2")
                    for name in ("a", "b")]
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
            with serve(tmp_path / "a", envs[0], workers=2), serve(tmp_path / "b", envs[1], workers=2):
                assert _wait_for(engine, channels, 1) == Counter({channel: 1 for channel in channels})
                _make_all_due(engine)  # the next due time, with all four scanners running
                assert _wait_for(engine, channels, 2) == Counter({channel: 2 for channel in channels})
                with engine.connect() as connection:
                    due = connection.execute(sa.select(incident_reminders.c.due_at)).scalars().all()
                # Each fired late, once: the next is a whole period after the firing, not after the old due time.
                assert len(due) == INCIDENTS and all(at > now_ms() + 3_500_000 for at in due)
        finally:
            engine.dispose()
