"""The SQL store: migrations, JSON round trips, and index use for listing."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from plugin.errors import ConcurrentUpdate
from plugin.model import Checklist, ChecklistItem, Incident, IncidentFilter, IncidentHead, new_id
from plugin.store import driver, migrate
from plugin.store.incidents import _INSERT, SqlIncidentRepository, _row_values
from plugin.store.migrate import current_revision
from plugin.store.tables import chat_channels, plugin_kv
from plugin.telemetry.outbox import Outbox
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


def _kv_keys(db) -> list[str]:
    with db.read_engine.connect() as connection:
        return sorted(connection.execute(sa.select(plugin_kv.c.key)).scalars())


def test_writes_at_commit_run_in_order_after_direct_statements_and_commit_together(db):
    ran: list[str] = []

    def write(key: str):
        def step(connection):
            ran.append(key)
            connection.execute(sa.insert(plugin_kv).values(key=key, value="v"))
        return step

    with db.unit_of_work() as uow:
        uow.write_at_commit(write("first"))
        uow.connection.execute(sa.insert(plugin_kv).values(key="direct", value="v"))
        uow.write_at_commit(write("second"))
        assert ran == []  # held for the commit

        uow.commit()
    assert ran == ["first", "second"]
    assert _kv_keys(db) == ["direct", "first", "second"]


def test_a_write_at_commit_that_fails_undoes_the_whole_transaction(db):
    with db.unit_of_work() as uow:
        uow.connection.execute(sa.insert(plugin_kv).values(key="taken", value="v"))
        uow.commit()
    # The duplicate key itself on SQLite; on PostgreSQL, depending on when the pipeline
    # reads the answers, it or the aborted transaction's refusal of what followed.
    # Several times: when the answers arrive varies, and each way must leave a clean connection.
    for _ in range(5):
        with pytest.raises(sa.exc.IntegrityError if db.dialect == "sqlite" else sa.exc.DBAPIError):
            with db.unit_of_work() as uow:
                uow.connection.execute(sa.insert(plugin_kv).values(key="direct", value="v"))
                uow.write_at_commit(lambda connection: connection.execute(
                    sa.insert(plugin_kv).values(key="taken", value="again")))
                uow.write_at_commit(lambda connection: connection.execute(
                    sa.insert(plugin_kv).values(key="after", value="v")))
                uow.commit()
    assert _kv_keys(db) == ["taken"]
    # The pooled connection is healthy afterwards.
    with db.unit_of_work() as uow:
        uow.write_at_commit(lambda connection: connection.execute(sa.insert(plugin_kv).values(key="next", value="v")))
        uow.commit()
    assert _kv_keys(db) == ["next", "taken"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_writer_takes_the_write_lock_at_its_first_statement_not_before(db):
    other_done = threading.Event()

    def other_writer(key: str) -> None:
        with db.unit_of_work() as uow:
            uow.connection.execute(sa.insert(plugin_kv).values(key=key, value="v"))
            uow.commit()
        other_done.set()

    with db.unit_of_work() as uow:
        uow.write_at_commit(lambda connection: connection.execute(sa.insert(plugin_kv).values(key="mine", value="v")))
        thread = threading.Thread(target=other_writer, args=("before",))
        thread.start()
        # Nothing executed yet: the other writer is not kept waiting.
        assert other_done.wait(10)
        uow.connection.execute(sa.select(plugin_kv.c.key)).all()  # the first statement: our turn begins
        other_done.clear()
        thread = threading.Thread(target=other_writer, args=("after",))
        thread.start()
        assert not other_done.wait(0.5)  # now it waits for our commit
        uow.commit()
    assert other_done.wait(10)
    thread.join()
    assert _kv_keys(db) == ["after", "before", "mine"]


def test_driver_level_writes_at_commit_are_part_of_the_transaction(db):
    def raw_insert(key: str):
        def step(connection):
            cursor = connection.connection.dbapi_connection.cursor()
            marker = "%s" if db.dialect == "postgresql" else "?"
            cursor.execute(f"INSERT INTO plugin_kv (key, value) VALUES ({marker}, 'v')", (key,))
            cursor.close()
        return step

    with db.unit_of_work() as uow:
        uow.write_at_commit(raw_insert("kept"))
        uow.commit()
    with db.unit_of_work() as uow:
        uow.write_at_commit(raw_insert("undone"))
        uow.write_at_commit(lambda connection: connection.execute(sa.insert(plugin_kv).values(key="kept", value="x")))
        with pytest.raises(sa.exc.DBAPIError):
            uow.commit()
    assert _kv_keys(db) == ["kept"]


def test_a_write_is_invisible_until_commit_and_reads_leave_no_transaction_open(db):
    with db.unit_of_work() as uow:
        uow.connection.execute(sa.insert(plugin_kv).values(key="pending", value="v"))
        assert _kv_keys(db) == []  # another connection does not see it yet
        uow.commit()
    assert _kv_keys(db) == ["pending"]
    with db.unit_of_work(write=False) as uow:
        uow.connection.execute(sa.select(plugin_kv.c.key)).all()
        if db.dialect == "postgresql":
            assert uow.connection.exec_driver_sql("SELECT now() = statement_timestamp()").scalar_one() is True


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


def test_incidents_round_trip_through_the_driver_path_with_their_types(db):
    incident = _stored(db)
    with db.unit_of_work(write=False) as uow:
        by_id = uow.incidents.get(incident.id)
        by_channel = uow.incidents.get_by_channel(incident.channel_id)
        assert uow.incidents.get("z" * 26) is None
    assert by_id == by_channel == incident
    assert by_id.public is True and by_id.is_active is True  # booleans, not SQLite's 1
    assert by_id.checklists[0].items[0].command == "/x"


def test_driver_errors_are_sqlalchemys_and_leave_the_pooled_connection_usable(db):
    incident = _stored(db)
    for _ in range(3):
        with pytest.raises(sa.exc.IntegrityError if db.dialect == "sqlite" else sa.exc.DBAPIError):
            with db.unit_of_work() as uow:
                uow.incidents.add(_incident(id=incident.id))
                uow.commit()
        # A direct statement (not one waiting for the commit) fails as IntegrityError on both.
        with pytest.raises(sa.exc.IntegrityError):
            with db.unit_of_work() as uow:
                uow.incidents.get(incident.id, for_update=True)
                moved = uow.incidents.get(incident.id)
                moved.id = "y" * 26
                moved.channel_id = incident.channel_id
                driver.execute(uow.connection, _INSERT, _row_values(moved), begin=True)
    with db.unit_of_work() as uow:
        stored = uow.incidents.get(incident.id, for_update=True)
        stored.name = "renamed"
        uow.incidents.save(stored)
        uow.commit()
    with db.unit_of_work(write=False) as uow:
        assert uow.incidents.get(incident.id).name == "renamed"


def test_a_stale_save_through_the_driver_path_is_refused(db):
    incident = _stored(db)
    stale = _incident(**{**incident.__dict__, "name": "stale"})
    with db.unit_of_work() as uow:
        fresh = uow.incidents.get(incident.id)
        fresh.name = "fresh"
        uow.incidents.save(fresh)
        uow.commit()
    with pytest.raises(ConcurrentUpdate):
        with db.unit_of_work() as uow:
            uow.incidents.save(stale)  # read outside this transaction, at version 0
            uow.commit()
    with db.unit_of_work(write=False) as uow:
        assert uow.incidents.get(incident.id).name == "fresh"


def test_a_locked_incident_is_saved_once_per_transaction(db):
    incident = _stored(db)
    with db.unit_of_work() as uow:
        locked = uow.incidents.get(incident.id, for_update=True)
        locked.name = "first"
        uow.incidents.save(locked)
        locked.name = "second"
        if db.dialect == "postgresql":
            # Its save waits for the commit, joined with the others into one statement,
            # where a second save would change nothing: refused instead of lost.
            with pytest.raises(RuntimeError, match="already saved in this transaction"):
                uow.incidents.save(locked)
        else:
            # SQLite locks the database, not rows: each save runs at once, checked by version.
            uow.incidents.save(locked)
            uow.commit()
    with db.unit_of_work(write=False) as uow:
        stored = uow.incidents.get(incident.id)
    if db.dialect == "postgresql":
        assert (stored.name, stored.version) == (incident.name, incident.version)
    else:
        assert (stored.name, stored.version) == ("second", incident.version + 2)


def test_a_change_that_leaves_the_stages_as_read_does_not_write_them_again(db, driver_statements):
    incident = _incident(checklists=[Checklist(new_id(), "Triage", [ChecklistItem(id=new_id(), title="page")]),
                                     Checklist(new_id(), "Resolve", [])])
    with db.unit_of_work() as uow:
        uow.incidents.add(incident)
        uow.commit()

    def change(apply) -> str:
        driver_statements.clear()
        with db.unit_of_work() as uow:
            locked = uow.incidents.get(incident.id, for_update=True)
            apply(locked)
            uow.incidents.save(locked)
            uow.commit()
        return next(sql for sql in driver_statements if "UPDATE incidents" in sql)

    assert "checklists" not in change(lambda i: i.set_active_stage(1))  # the document stays as it is
    assert "checklists" in change(lambda i: i.edit_item(0, 0, title="page the on-call"))
    driver_statements.clear()
    with db.unit_of_work() as uow:  # read without the lock, each save runs at once: the same holds
        unlocked = uow.incidents.get(incident.id)
        unlocked.end(5)
        uow.incidents.save(unlocked)
        unlocked.checklists[1].title = "Fix"
        uow.incidents.save(unlocked)
        uow.commit()
    ended, renamed = [sql for sql in driver_statements if "UPDATE incidents" in sql]
    assert "checklists" not in ended and "checklists" in renamed
    with db.unit_of_work(write=False) as uow:
        stored = uow.incidents.get(incident.id)
    assert (stored.active_stage, stored.is_active) == (1, False)
    assert stored.checklists[0].items[0].title == "page the on-call"
    assert stored.checklists[1].title == "Fix" and stored.version == incident.version + 4


def test_get_head_reads_the_row_without_its_stages(db, driver_statements):
    incident = _stored(db)
    driver_statements.clear()
    with db.unit_of_work(write=False) as uow:
        head = uow.incidents.get_head(incident.id)
        missing = uow.incidents.get_head("z" * 26)
    assert head == IncidentHead(incident.id, 0, incident.channel_id, TEAM, True, incident.commander_user_id)
    assert missing is None and not any("checklists" in sql for sql in driver_statements)


def test_a_driver_statement_with_a_bound_limit_runs_on_every_dialect(db):
    # SQLite renders a bound LIMIT with an OFFSET of its own, compiled in as a parameter.
    statement = driver.Statement(sa.select(plugin_kv.c.key).where(plugin_kv.c.key.like("limit-%"))
                                 .order_by(plugin_kv.c.key).limit(sa.bindparam("n")))
    with db.write_engine.begin() as connection:
        connection.execute(sa.insert(plugin_kv), [{"key": f"limit-{n}", "value": ""} for n in range(3)])
    with db.read_engine.connect() as connection:
        keys = [row[0] for row in driver.execute(connection, statement, {"n": 2}).fetchall()]
    assert keys == ["limit-0", "limit-1"]


_PUT = driver.Statement(sa.insert(plugin_kv), ["key", "value"])


def _put(db, key: str, retry=None) -> driver.Write:
    return _PUT.write(db.write_engine.dialect, {"key": key, "value": "v"}, retry=retry)


def test_writes_at_commit_are_one_statement_on_postgresql_and_all_or_nothing(db, driver_statements):
    with db.unit_of_work() as uow:
        for key in ("a", "b", "c"):
            uow.write_at_commit(_put(db, key))
        uow.commit()
    assert _kv_keys(db) == ["a", "b", "c"]
    # PostgreSQL: one statement in autocommit (no BEGIN, no COMMIT); SQLite: one each, after BEGIN IMMEDIATE.
    if db.dialect == "postgresql":
        assert len(driver_statements) == 1 and driver_statements[0].startswith("WITH write_0 AS (INSERT INTO plugin_kv")
    else:
        assert driver_statements[0] == "BEGIN IMMEDIATE" and len(driver_statements) == 4
    for _ in range(3):  # each failure leaves a usable connection behind
        with pytest.raises(sa.exc.IntegrityError):
            with db.unit_of_work() as uow:
                for key in ("d", "b", "e"):
                    uow.write_at_commit(_put(db, key))
                uow.commit()
        assert _kv_keys(db) == ["a", "b", "c"]


def test_a_write_is_retried_as_its_retry_says_and_the_others_are_written_once(db):
    with db.unit_of_work() as uow:
        uow.write_at_commit(_put(db, "taken"))
        uow.commit()
    asked: list[str] = []

    def elsewhere(error: sa.exc.IntegrityError) -> driver.Write | None:
        asked.append(type(error).__name__)
        return _put(db, f"free-{len(asked)}", retry=elsewhere) if len(asked) < 3 else None

    with db.unit_of_work() as uow:
        uow.write_at_commit(_put(db, "before"))
        uow.write_at_commit(_put(db, "taken", retry=elsewhere))
        uow.write_at_commit(_put(db, "after"))
        uow.commit()
    assert asked == ["IntegrityError"]
    assert _kv_keys(db) == ["after", "before", "free-1", "taken"]
    # A retry that keeps answering with a taken key is tried a bounded number of times.
    tries: list[int] = []

    def again(_error: sa.exc.IntegrityError) -> driver.Write:
        tries.append(1)
        return _put(db, "taken", retry=again)

    with pytest.raises(sa.exc.IntegrityError):
        with db.unit_of_work() as uow:
            uow.write_at_commit(_put(db, "never"))
            uow.write_at_commit(_put(db, "taken", retry=again))
            uow.commit()
    assert len(tries) == driver.RETRIES - 1
    assert _kv_keys(db) == ["after", "before", "free-1", "taken"]


def test_in_a_postgresql_transaction_a_failed_write_is_not_retried(db):
    # After a direct statement the writes run inside the transaction; on PostgreSQL an
    # error ends it, so the error stands. SQLite undoes the failed statement alone.
    with db.unit_of_work() as uow:
        uow.write_at_commit(_put(db, "taken"))
        uow.commit()

    def elsewhere(_error):
        return _put(db, "free")

    def attempt():
        with db.unit_of_work() as uow:
            uow.incidents.get("z" * 26, for_update=True)  # begins the transaction
            uow.write_at_commit(_put(db, "other"))
            uow.write_at_commit(_put(db, "taken", retry=elsewhere))
            uow.commit()

    if db.dialect == "postgresql":
        with pytest.raises(sa.exc.IntegrityError):
            attempt()
        assert _kv_keys(db) == ["taken"]
    else:
        attempt()
        assert _kv_keys(db) == ["free", "other", "taken"]


def test_writes_whose_names_clash_are_not_joined_but_still_commit_together(db):
    # Two events in one unit of work: their statements name their parts alike, so
    # PostgreSQL cannot join them into one statement; they run one after the other.
    from plugin.store.tables import telemetry_outbox
    from plugin.telemetry.outbox import Outbox

    outbox = Outbox(db, lambda: 1)
    with db.unit_of_work() as uow:
        outbox.record(uow, "incident", {"action": "end"}, 1, 100)
        outbox.record(uow, "incident", {"action": "restart"}, 2, 100)
        if db.dialect == "postgresql":
            assert driver.compose(uow._at_commit) is None
        uow.commit()
    with db.read_engine.connect() as connection:
        recorded = connection.execute(sa.select(telemetry_outbox.c.recorded_at).order_by("seq")).scalars().all()
    assert recorded == [1, 2]


def test_named_parameters_become_positional_in_order_with_literal_percents_kept():
    assert driver._positional("a = %(x)s AND b LIKE 'p%%' AND c = %(y)s OR d = %(x)s") == (
        "a = %s AND b LIKE 'p%%' AND c = %s OR d = %s", ["x", "y", "x"])


def test_a_unique_violation_is_told_apart_from_others(db, components):
    # The local host's channel name rule, on each database's own error.
    from plugin.chat.local import _CHANNEL_NAME

    first = components.host.create_channel(TEAM, "room", "Room", public=True)
    errors = []
    for values in ({"id": "n" * 26, "name": "room"}, {"id": first, "name": "another"}):
        with db.write_engine.begin() as connection, pytest.raises(sa.exc.IntegrityError) as raised:
            connection.execute(sa.insert(chat_channels).values(team_id=TEAM, display_name="R", type="O",
                                                               create_at=1, **values))
        errors.append(raised.value)
    assert [driver.violates(error, _CHANNEL_NAME) for error in errors] == [True, False]


def _change_elsewhere(db, incident_id: str, name: str) -> None:
    with db.unit_of_work() as uow:
        other = uow.incidents.get(incident_id, for_update=True)
        other.name = name
        uow.incidents.save(other)
        uow.commit()


def _stored_state(db, incident_id: str) -> tuple[str, int, list[str], int]:
    with db.unit_of_work(write=False) as uow:
        stored = uow.incidents.get(incident_id)
    return stored.name, stored.version, _kv_keys(db), Outbox(db).pending_count()


def test_an_optimistic_change_writes_nothing_when_the_incident_moved_on_since_its_read(db, driver_statements):
    incident = _stored(db)
    outbox = Outbox(db)
    with db.unit_of_work(optimistic=True, write=False) as uow:
        assert not uow.optimistic  # only a writing unit of work changes incidents
    with pytest.raises(ConcurrentUpdate):
        with db.unit_of_work(optimistic=True) as uow:
            mine = uow.incidents.get(incident.id, for_update=True)
            _change_elsewhere(db, incident.id, "theirs")  # after the read, before the commit
            mine.name = "mine"
            uow.incidents.save(mine)
            uow.write_at_commit(_put(db, "post of mine"))
            outbox.record(uow, "incident", {"incidentID": incident.id}, 1, 100)
            uow.commit()
    # Nothing of the failed change: the row as the other left it, no post, no event.
    assert _stored_state(db, incident.id) == ("theirs", 1, [], 0)
    driver_statements.clear()
    with db.unit_of_work(optimistic=True) as uow:
        mine = uow.incidents.get(incident.id, for_update=True)
        mine.name = "mine"
        uow.incidents.save(mine)
        uow.write_at_commit(_put(db, "post of mine"))
        outbox.record(uow, "incident", {"incidentID": incident.id}, 1, 100)
        uow.commit()
    assert "FOR UPDATE" not in driver_statements[0]
    if db.dialect == "postgresql":
        # The read and one statement: the row at the version read, then the rest only if it was.
        assert len(driver_statements) == 2 and driver_statements[1].startswith("WITH guard AS (UPDATE incidents")
    else:
        # The read, then under the write lock the row at the version read, then the rest.
        assert driver_statements[1:3] == ["BEGIN IMMEDIATE", driver_statements[2]]
        assert driver_statements[2].startswith("UPDATE incidents")
    assert _stored_state(db, incident.id) == ("mine", 2, ["post of mine"], 1)


def test_an_optimistic_change_that_cannot_be_one_statement_is_still_made_only_at_the_version_read(db):
    # A write given as a callable cannot be joined: the guard then runs first in a transaction.
    incident = _stored(db)

    def put_by_hand(key: str):
        return lambda connection: connection.execute(sa.insert(plugin_kv).values(key=key, value="v"))

    for moved, expected in ((True, ("theirs", 1, [], 0)), (False, ("mine", 2, ["by hand"], 0))):
        with db.unit_of_work(optimistic=True) as uow:
            mine = uow.incidents.get(incident.id, for_update=True)
            if moved:
                _change_elsewhere(db, incident.id, "theirs")
            mine.name = "mine"
            uow.incidents.save(mine)
            uow.write_at_commit(put_by_hand("by hand"))
            if moved:
                with pytest.raises(ConcurrentUpdate):
                    uow.commit()
            else:
                uow.commit()
        assert _stored_state(db, incident.id) == expected
