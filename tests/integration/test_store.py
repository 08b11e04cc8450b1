"""The SQL store: migrations, index use for listing, and the unit of work's all-or-nothing commit."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from plugin.errors import ConcurrentUpdate, NotFound
from plugin.events import Announcement, IncidentEvent
from plugin.model import Checklist, ChecklistItem, Incident, IncidentFilter, Playbook, TimelineEntry, new_id
from plugin.store import migrate
from plugin.store.incidents import SqlIncidentRepository
from plugin.store.migrate import current_revision
from plugin.store.tables import chat_posts, incidents, telemetry_outbox
from plugin.store.timeline import SqlTimelineRepository
from plugin.telemetry import OutboxRow
from tests.conftest import TEAM


def test_migrations_reach_head_and_running_them_again_changes_nothing(db):
    head = current_revision(db)
    assert head is not None
    migrate(db)
    assert current_revision(db) == head
    tables = set(sa.inspect(db.read_engine).get_table_names())
    assert {"incidents", "chat_channels", "chat_channel_members", "chat_posts", "chat_users"} <= tables


def _plan(db, statement) -> str:
    compiled = statement.compile(dialect=db.read_engine.dialect, compile_kwargs={"literal_binds": True})
    with db.read_engine.connect() as connection:
        if db.dialect == "sqlite":
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
            return " ".join(str(row[-1]) for row in rows)
        connection.exec_driver_sql("SET enable_seqscan = off")
        return " ".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}").all())


def test_listing_a_teams_active_incidents_uses_the_team_index(db):
    # The cost of a team's list must not grow with other teams' incidents: the
    # query has to start from an index led by team_id, never a full scan.
    count, page = SqlIncidentRepository.list_statements(IncidentFilter(team_id=TEAM, status="active"))
    for statement in (count, page):
        plan = _plan(db, statement)
        assert "ix_incidents_team_" in plan, plan
        assert "Seq Scan" not in plan and "SCAN incidents " not in plan + " ", plan


def _incident(**changes):
    values = dict(id=new_id(), name="db down", description="é ✓", team_id=TEAM, commander_user_id="a" * 26,
                  channel_id=new_id(), create_at=1, public=True, active_stage=0,
                  checklists=[Checklist(new_id(), "Triage", [ChecklistItem(id=new_id(), title="page", command="/x")])])
    return Incident(**{**values, **changes})


def _stored(db) -> Incident:
    incident = _incident()
    with db.unit_of_work() as uow:
        uow.incidents.add(incident)
        uow.commit()
    return incident


def _count(db, table: sa.Table) -> int:
    with db.read_engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_incidents_round_trip_with_their_types(db):
    incident = _stored(db)
    with db.unit_of_work(write=False) as uow:
        by_id = uow.incidents.get(incident.id)
        by_channel = uow.incidents.get_by_channel(incident.channel_id)
        assert uow.incidents.get("z" * 26) is None
    assert by_id == by_channel == incident
    assert by_id.public is True and by_id.is_active is True  # booleans, not SQLite's 1
    assert by_id.checklists[0].items[0].command == "/x"


def test_a_unit_of_work_writes_nothing_before_commit_and_nothing_without_it(db):
    incident = _incident()
    with db.unit_of_work(local_chat=True) as uow:
        uow.incidents.add(incident)
        uow.outbox.add(OutboxRow("incident", {"n": 1}, 1, 100))
        uow.add_event(Announcement(incident.channel_id, "hello"))
        assert _count(db, incidents) == 0
    assert (_count(db, incidents), _count(db, telemetry_outbox), _count(db, chat_posts)) == (0, 0, 0)
    with db.unit_of_work(local_chat=True) as uow:
        uow.incidents.add(incident)
        uow.outbox.add(OutboxRow("incident", {"n": 1}, 1, 100))
        uow.add_event(Announcement(incident.channel_id, "hello"))
        assert uow.commit() == []  # the local host's post was written, none left to send
    assert (_count(db, incidents), _count(db, telemetry_outbox), _count(db, chat_posts)) == (1, 1, 1)


def test_a_unit_of_work_for_a_remote_host_hands_its_posts_back(db):
    with db.unit_of_work() as uow:
        uow.add_event(Announcement("c" * 26, "hello"))
        assert uow.commit() == [Announcement("c" * 26, "hello")]
    assert _count(db, chat_posts) == 0


def test_a_write_that_fails_at_commit_undoes_the_writes_before_it(db):
    taken = Playbook(id=new_id(), title="p", team_id=TEAM)
    with db.unit_of_work() as uow:
        uow.playbooks.add(taken)
        uow.commit()
    for _ in range(3):  # the pooled connection stays usable
        with pytest.raises(sa.exc.IntegrityError):
            with db.unit_of_work() as uow:
                uow.incidents.add(_incident())  # written first, then undone
                uow.playbooks.add(Playbook(id=taken.id, title="again", team_id=TEAM))
                uow.commit()
    assert _count(db, incidents) == 0
    _stored(db)
    assert _count(db, incidents) == 1


def test_a_save_at_a_version_that_moved_on_writes_nothing_of_its_unit_of_work(db):
    incident = _stored(db)
    with db.unit_of_work() as uow:
        fresh = uow.incidents.get(incident.id)
        fresh.name = "fresh"
        uow.incidents.save(fresh)
        uow.commit()
    assert fresh.version == 1
    with pytest.raises(ConcurrentUpdate):
        with db.unit_of_work() as uow:
            incident.name = "stale"
            uow.incidents.save(incident)  # read at version 0
            uow.outbox.add(OutboxRow("incident", {"n": 1}, 1, 100))
            uow.commit()
    with db.unit_of_work(write=False) as uow:
        assert uow.incidents.get(incident.id).name == "fresh"
    assert _count(db, telemetry_outbox) == 0


def test_reads_of_a_writing_unit_of_work_hold_no_lock_until_commit(db):
    incident = _stored(db)

    def other_change() -> None:
        with db.unit_of_work() as uow:
            moved = uow.incidents.get(incident.id)
            moved.name = "other"
            uow.incidents.save(moved)
            uow.commit()

    with db.unit_of_work() as uow:
        mine = uow.incidents.get(incident.id)
        # Another writer of the same row gets through between this read and this commit.
        other = threading.Thread(target=other_change)
        other.start()
        other.join(timeout=10)
        assert not other.is_alive(), "a read of a writing unit of work held a lock"
        mine.name = "mine"
        uow.incidents.save(mine)
        with pytest.raises(ConcurrentUpdate):
            uow.commit()
    with db.unit_of_work(write=False) as uow:
        assert uow.incidents.get(incident.id).name == "other"


def test_reads_leave_no_transaction_open(db):
    _stored(db)
    with db.unit_of_work(write=False) as uow:
        assert uow.incidents.list(IncidentFilter(per_page=5))[0] == 1
        if db.dialect == "postgresql":
            connection = uow.incidents.connection
            assert connection.exec_driver_sql("SELECT now() = statement_timestamp()").scalar_one() is True


def test_a_settings_change_that_returned_is_read_by_another_server_at_its_next_request(db, database_url):
    from plugin.store.database import Database

    other = Database(database_url)  # a second server on the same database
    try:
        before = other.settings_version()
        with db.unit_of_work() as uow:
            uow.saved_settings.advance()
            uow.commit()
        # No sleep here: the change returned only once every process's lease on the version it read had run out.
        assert other.settings_version() == before + 1
    finally:
        other.dispose()


def test_the_settings_version_is_read_again_only_once_its_lease_has_run_out(database_url):
    from plugin.store.database import SETTINGS_LEASE_SECONDS, Database

    clock = [1000.0]
    db = Database(database_url, monotonic=lambda: clock[0])
    try:
        seen = _statements(db)
        db.settings_version()
        clock[0] += SETTINGS_LEASE_SECONDS / 2
        db.settings_version()
        assert len(seen) == 1
        clock[0] += SETTINGS_LEASE_SECONDS
        db.settings_version()
        assert len(seen) == 2
    finally:
        db.dispose()


# ----- the timeline -----------------------------------------------------------------------------
def test_migrations_make_the_timeline_table_with_an_index_led_by_the_incident(db):
    indexes = sa.inspect(db.read_engine).get_indexes("timeline_events")
    assert any(index["column_names"][0] == "incident_id" for index in indexes), indexes


def test_reading_an_incidents_timeline_uses_the_incident_index(db):
    for statement in (SqlTimelineRepository.list_statement("i" * 26),
                      SqlTimelineRepository.list_statement("i" * 26, ["note"], last=20)):
        plan = _plan(db, statement)
        assert "ix_timeline_events_incident" in plan, plan
        assert "Seq Scan" not in plan and "SCAN timeline_events " not in plan + " ", plan


def _statements(db) -> list[str]:
    """The SQL every connection of the database runs from now on (a listener, not a stand-in)."""
    seen: list[str] = []
    # On PostgreSQL the writing engine is a variant of the reading one and shares its listeners.
    for engine in ([db.read_engine, db.write_engine] if db.dialect == "sqlite" else [db.read_engine]):
        sa.event.listen(engine, "before_cursor_execute",
                        lambda _c, _cursor, statement, *_: seen.append(" ".join(statement.split())))
    return seen


def test_a_commit_writes_all_its_entries_with_one_insert_in_their_order(db):
    incident = _incident(active_stage=-1, checklists=[])
    events = [IncidentEvent("create", incident, "a" * 26), IncidentEvent("end", incident, "a" * 26),
              IncidentEvent("restart", incident, "a" * 26)]
    seen = _statements(db)
    with db.unit_of_work() as uow:
        uow.incidents.add(incident)
        for event in events:
            uow.add_event(event)
        uow.commit()
    writes = [statement for statement in seen if "timeline_events" in statement]
    assert len(writes) == 1 and writes[0].startswith("INSERT INTO timeline_events"), writes
    with db.unit_of_work(write=False) as uow:
        assert [e.event_type for e in uow.timeline.list(incident.id)] == [
            "incident_created", "incident_ended", "incident_restarted"]


def test_an_entry_is_written_only_with_its_change_in_one_transaction(db):
    incident = _incident()
    with db.unit_of_work() as uow:
        uow.incidents.add(incident)
        uow.commit()
    stale = _incident(id=incident.id, version=0)
    with db.unit_of_work() as uow:
        uow.incidents.save(_incident(id=incident.id))
        uow.commit()  # the incident moves on to version 1
    with db.unit_of_work() as uow, pytest.raises(ConcurrentUpdate):
        uow.incidents.save(stale)
        uow.add_event(IncidentEvent("end", stale, "a" * 26))
        uow.commit()
    with db.unit_of_work() as uow:
        uow.add_event(IncidentEvent("end", incident, "a" * 26))  # never committed
    with db.unit_of_work(write=False) as uow:
        assert uow.timeline.list(incident.id) == []


def test_deleting_an_entry_twice_at_once_keeps_the_first_deletion(db):
    entry = TimelineEntry.note(new_id(), "i" * 26, "a" * 26, "a note", 10)
    with db.unit_of_work() as uow:
        uow.timeline.add(entry)
        uow.commit()
    first, second = db.unit_of_work(), db.unit_of_work()
    with first, second:
        one, two = first.timeline.get("i" * 26, entry.id), second.timeline.get("i" * 26, entry.id)
        one.delete("b" * 26, 20)
        two.delete("c" * 26, 30)
        first.timeline.delete(one)
        second.timeline.delete(two)
        first.commit()
        with pytest.raises(NotFound, match="deleted already"):
            second.commit()
    with db.unit_of_work(write=False) as uow:
        kept = uow.timeline.get("i" * 26, entry.id)
    assert (kept.deleted, kept.deleted_by, kept.deleted_at) == (True, "b" * 26, 20)
