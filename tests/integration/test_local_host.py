"""The local host inside the service's transaction, and what it remembers.

With the local host, an incident, its channel and members, its event and its bot
post are one write transaction: they commit together or not at all.
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from plugin.service import NewChecklist, NewIncident
from plugin.store.outbox import SqlOutboxRepository
from plugin.store.tables import chat_channel_members, chat_channels, chat_posts, incidents, telemetry_outbox
from tests.conftest import ALICE, BOB, TEAM

TABLES = (incidents, chat_channels, chat_channel_members, chat_posts, telemetry_outbox)


def _counts(db) -> dict[str, int]:
    with db.read_engine.connect() as connection:
        return {table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in TABLES}


def _new(name: str = "db is down") -> NewIncident:
    return NewIncident(name=name, team_id=TEAM, commander_user_id=BOB,
                       checklists=[NewChecklist("Triage"), NewChecklist("Fix")])


@pytest.fixture
def write_transactions(components):
    """How many write transactions start on the database (BEGIN on the write engine)."""
    started: list[int] = []

    def count(connection: sa.Connection) -> None:
        # On PostgreSQL reads share the engine but run in autocommit: not transactions.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            started.append(1)

    sa.event.listen(components.db.write_engine, "begin", count)
    yield started
    sa.event.remove(components.db.write_engine, "begin", count)


def test_creating_an_incident_writes_everything_in_one_transaction(components, write_transactions):
    assert components.host.shares_database
    before = _counts(components.db)
    incident = components.service.create_incident(ALICE, _new())
    assert len(write_transactions) == 1
    after = _counts(components.db)
    assert {name: after[name] - before[name] for name in after} == {
        "incidents": 1, "chat_channels": 1, "chat_channel_members": 2, "chat_posts": 1,
        "telemetry_outbox": 0 if not components.telemetry.switches().enabled else 1}
    assert components.host.posts(incident.channel_id) == [
        f"This incident was started by @{ALICE}; the commander is @{BOB}."]


def _event_fails_to_be_stored(monkeypatch) -> None:
    """The outbox's write, the last of a commit, fails after the incident, channel and post were written."""
    def broken(*_args, **_kwargs):
        raise RuntimeError("the event could not be recorded")

    monkeypatch.setattr(SqlOutboxRepository, "flush", broken)


def test_a_failure_after_the_channel_leaves_no_incident_channel_member_or_post(components, monkeypatch):
    before = _counts(components.db)
    _event_fails_to_be_stored(monkeypatch)
    with pytest.raises(RuntimeError):
        components.service.create_incident(ALICE, _new())
    assert _counts(components.db) == before


def test_a_stage_change_and_its_post_roll_back_together(components, monkeypatch, write_transactions):
    incident = components.service.create_incident(ALICE, _new())
    write_transactions.clear()
    moved = components.service.set_active_stage(ALICE, incident.id, 1).incident
    assert moved.active_stage == 1 and len(write_transactions) == 1
    assert components.host.posts(incident.channel_id)[-1] == (
        f"@{ALICE} changed the active stage from **Triage** to **Fix**.")
    posts = components.host.posts(incident.channel_id)
    _event_fails_to_be_stored(monkeypatch)
    with pytest.raises(RuntimeError):
        components.service.set_active_stage(ALICE, incident.id, 0)
    assert components.host.posts(incident.channel_id) == posts
    assert components.service.get_incident(ALICE, incident.id).active_stage == 1


def test_a_taken_channel_name_gets_a_suffix_and_everything_else_is_written_once(components):
    # The taken name fails the create's statement (PostgreSQL) or the channel's insert
    # (SQLite); it is retried with a suffix, and nothing of the failed try remains.
    first = components.service.create_incident(ALICE, _new("same name"))
    before = _counts(components.db)
    second = components.service.create_incident(ALICE, _new("same name"))
    third = components.service.create_incident(ALICE, _new("same name"))
    names = [components.host.channel(i.channel_id)["name"] for i in (first, second, third)]
    assert names[0] == "same-name"
    for name in names[1:]:
        assert name.startswith("same-name-") and len(name) == len("same-name-") + 6
    assert len(set(names)) == 3
    after = _counts(components.db)
    assert {name: after[name] - before[name] for name in after} == {
        "incidents": 2, "chat_channels": 2, "chat_channel_members": 4, "chat_posts": 2,
        "telemetry_outbox": 0 if not components.telemetry.switches().enabled else 2}
    assert components.host.posts(second.channel_id) and components.host.posts(third.channel_id)


def test_membership_is_remembered_only_once_it_is_true(components):
    host = components.host
    channel = host.create_channel(TEAM, "room", "Room", public=False, member_ids=[ALICE])
    assert host.is_channel_member(channel, ALICE)
    # A "no" is asked again each time: the user may have been added since.
    assert not host.is_channel_member(channel, BOB)
    host.add_channel_member(channel, BOB)
    assert host.is_channel_member(channel, BOB)


def test_membership_added_by_another_process_is_seen(components, db):
    # Another server process (here: a second host on the same database) adds the
    # member; this process had been told "no" before and must not keep that answer.
    from plugin.chat.local import LocalChatHost

    other = LocalChatHost(db, lambda: frozenset())
    host = components.host
    channel = host.create_channel(TEAM, "room", "Room", public=False, member_ids=[ALICE])
    assert not host.is_channel_member(channel, BOB)
    other.add_channel_member(channel, BOB)
    assert host.is_channel_member(channel, BOB)


def test_a_rename_shows_at_once_in_this_process_and_the_old_name_is_let_go(components):
    host = components.host
    host.note_user(ALICE, "alice")
    assert host.mention(ALICE) == "@alice"
    host.note_user(ALICE, "alice2")
    assert host.mention(ALICE) == "@alice2"
    # The name "alice2" moves to Bob: Alice is no longer mentioned by it.
    host.note_user(BOB, "alice2")
    assert host.mention(BOB) == "@alice2"
    assert host.mention(ALICE) == f"@{ALICE}"
    assert host.find_user_by_username("alice2") == BOB


def test_a_rename_by_another_process_shows_once_the_remembered_name_expires(components, db, monkeypatch):
    import time

    from plugin.chat.local import USERNAME_TTL_SECONDS, LocalChatHost

    host, other = components.host, LocalChatHost(db, lambda: frozenset())
    host.note_user(ALICE, "alice")
    other.note_user(ALICE, "alicia")
    assert host.mention(ALICE) == "@alice"  # remembered for USERNAME_TTL_SECONDS
    later = time.monotonic() + USERNAME_TTL_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert host.mention(ALICE) == "@alicia"


def test_a_user_first_named_by_another_process_is_mentioned_by_name_once_the_answer_expires(
        components, db, monkeypatch):
    import time

    from plugin.chat.local import USERNAME_TTL_SECONDS, LocalChatHost

    host, other = components.host, LocalChatHost(db, lambda: frozenset())
    assert host.mention(BOB) == f"@{BOB}"
    other.note_user(BOB, "bob")
    later = time.monotonic() + USERNAME_TTL_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert host.mention(BOB) == "@bob"
    host.note_user(BOB, "bobby")  # this process: at once
    assert host.mention(BOB) == "@bobby"


@pytest.mark.parametrize("count", [1, 3, 8, 9, 12])
def test_a_channel_gets_every_member_it_is_created_with_once(components, count):
    # Up to eight go in one statement, more in several; repeated ids count once.
    users = [f"member{n:02d}".ljust(26, "0") for n in range(count)]
    channel = components.host.create_channel(TEAM, f"room-{count}", "Room", public=False,
                                             member_ids=[*users, users[0]])
    with components.db.read_engine.connect() as connection:
        stored = connection.execute(sa.select(chat_channel_members.c.user_id)
                                    .where(chat_channel_members.c.channel_id == channel)).scalars().all()
    assert sorted(stored) == users
