"""The SQL store: migrations, JSON round trips, and index use for listing."""
from __future__ import annotations

import sqlalchemy as sa

from plugin.model import IncidentFilter
from plugin.store import migrate
from plugin.store.incidents import SqlIncidentRepository
from plugin.store.migrate import current_revision
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
