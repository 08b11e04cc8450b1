"""GET /api/v0/stats against a hand-computed set of incidents, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from plugin.store.reports import SqlReportRepository
from plugin.figures import StatsScope
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, OTHER_TEAM, TEAM, as_user
from tests.fakes.clock import Clock

HOUR = 3_600_000
DAY = 24 * HOUR
MONDAY = int(datetime(2026, 11, 2, tzinfo=timezone.utc).timestamp() * 1000)  # week 0 of the window
FROM, TO = MONDAY + 2 * DAY + 12 * HOUR, MONDAY + 22 * DAY  # Wednesday noon to a Tuesday: four weeks


@pytest.fixture
def clock(components, monkeypatch) -> Clock:
    """One clock for the service and for the timeline entries its commits write."""
    moved = Clock(MONDAY)
    monkeypatch.setattr(components.service, "clock", moved)
    monkeypatch.setattr("plugin.store.database.now_ms", moved)
    return moved


class Life:
    """Drives one incident through the API at the times the test gives."""

    def __init__(self, client, clock: Clock, at: int, *, public: bool = True, team: str = TEAM, severity: str = ""):
        self.client, self.clock = client, clock
        clock.now = at
        self.incident = start(client, team_id=team, checklists=TWO_STAGES, public=public, severity=severity)
        self.base = f"/api/v0/incidents/{self.incident['id']}"

    def at(self, when: int, method: str, suffix: str = "", **body) -> "Life":
        self.clock.now = when
        response = getattr(self.client, method)(self.base + suffix, headers=as_user(ALICE), **body)
        assert response.status_code == 200, response.json
        return self

    def stage(self, when: int, stage: int) -> "Life":
        return self.at(when, "patch", json={"active_stage": stage})

    def end(self, when: int) -> "Life":
        return self.at(when, "put", "/end")

    def restart(self, when: int) -> "Life":
        return self.at(when, "put", "/restart")


@pytest.fixture
def incidents(client, clock) -> dict[str, Life]:
    """The hand-computed set (times from MONDAY; the window is FROM..TO), severities in brackets:

    A  started before the window (day 1), Resolve at +2h, ended day 3: ended in it; 2d to end (2h, 46h)
    B  day 3, Resolve at +1h, ended at +5h (1h, 4h) [sev2]
    C  day 8, ended at +3h in Triage (3h, never Resolve) [sev1]
    D  day 9, Resolve at +1h, still active [sev2]
    E  day 10, private to alice, ended at +10h in Triage (10h) [sev3]
    F  day 15, ended on day 23, after the window: started in it, ended outside it [legacy, a level since removed]
    G  day 25, after the window, active: not counted anywhere
    H  another team's, in the window: not counted
    I  day 16, ended at +1h, restarted at +2h, ended at +4h: 4h to end, 3h in Triage
    """
    assert set_levels(client, "sev1,sev2,sev3,sev4,legacy").status_code == 200
    lives = {
        "A": Life(client, clock, MONDAY + DAY).stage(MONDAY + DAY + 2 * HOUR, 1).end(MONDAY + 3 * DAY),
        "B": Life(client, clock, MONDAY + 3 * DAY, severity="sev2").stage(MONDAY + 3 * DAY + HOUR, 1).end(MONDAY + 3 * DAY + 5 * HOUR),
        "C": Life(client, clock, MONDAY + 8 * DAY, severity="sev1").end(MONDAY + 8 * DAY + 3 * HOUR),
        "D": Life(client, clock, MONDAY + 9 * DAY, severity="sev2").stage(MONDAY + 9 * DAY + HOUR, 1),
        "E": Life(client, clock, MONDAY + 10 * DAY, public=False, severity="sev3").end(MONDAY + 10 * DAY + 10 * HOUR),
        "F": Life(client, clock, MONDAY + 15 * DAY, severity="legacy").end(MONDAY + 23 * DAY),
        "G": Life(client, clock, MONDAY + 25 * DAY),
        "H": Life(client, clock, MONDAY + 10 * DAY, team=OTHER_TEAM).end(MONDAY + 10 * DAY + HOUR),
        "I": Life(client, clock, MONDAY + 16 * DAY).end(MONDAY + 16 * DAY + HOUR)
        .restart(MONDAY + 16 * DAY + 2 * HOUR).end(MONDAY + 16 * DAY + 4 * HOUR),
    }
    assert set_levels(client, "sev1,sev2,sev3,sev4").status_code == 200
    clock.now = MONDAY + 30 * DAY
    return lives


def set_levels(client, levels: str):
    return client.put("/api/v0/settings", json={"SeverityLevels": levels}, headers=as_user(ADMIN))


def stats(client, user: str = ALICE, query: str = f"team_id={TEAM}&from={FROM}&to={TO}"):
    response = client.get(f"/api/v0/stats?{query}", headers=as_user(user))
    assert response.status_code == 200, response.json
    return response.json


def weeks(*counts: tuple[int, int]) -> list[dict]:
    return [{"week_start": MONDAY + n * 7 * DAY, "started": s, "ended": e} for n, (s, e) in enumerate(counts)]


def test_stats_count_the_hand_computed_set_exactly(client, incidents):
    assert stats(client) == {
        "team_id": TEAM, "from": FROM, "to": TO,
        "started": 6, "ended": 5, "active": 1,  # B C D E F I; A B C E I; D
        # To end: 3h 4h 5h 10h 48h.
        "time_to_end_ms": {"p50": 5 * HOUR, "p90": 48 * HOUR},
        # Triage: 1h 2h 3h 3h 10h; Resolve: 4h 46h (entered by A and B only).
        "stages": [{"name": "Triage", "p50_ms": 3 * HOUR, "count": 5},
                   {"name": "Resolve", "p50_ms": 4 * HOUR, "count": 2}],
        # The levels in force in order (sev4 with none), then the removed one, then none (I).
        "severity": [{"severity": "sev1", "count": 1}, {"severity": "sev2", "count": 2},
                     {"severity": "sev3", "count": 1}, {"severity": "sev4", "count": 0},
                     {"severity": "legacy", "count": 1}, {"severity": "", "count": 1}],
        "weeks": weeks((1, 2), (3, 2), (2, 1), (0, 0)),
    }


def test_stats_leave_out_private_incidents_of_channels_the_caller_is_not_in(client, incidents):
    seen = stats(client, BOB)
    assert (seen["started"], seen["ended"], seen["active"]) == (5, 4, 1)
    assert seen["time_to_end_ms"] == {"p50": 4 * HOUR, "p90": 48 * HOUR}  # 3h 4h 5h 48h
    assert seen["stages"][0] == {"name": "Triage", "p50_ms": 2 * HOUR, "count": 4}  # 1h 2h 3h 3h
    assert seen["weeks"] == weeks((1, 2), (2, 1), (2, 1), (0, 0))
    assert [level["count"] for level in seen["severity"]] == [1, 2, 0, 0, 1, 1]  # no sev3: E is private
    assert stats(client, ADMIN) == stats(client, ALICE)


def test_a_stage_change_deleted_from_the_timeline_still_counts_in_the_stage_times(client, incidents):
    before = stats(client)
    b = incidents["B"]
    entries = client.get(f"{b.base}/timeline?event_type=stage_changed", headers=as_user(ALICE)).json
    assert client.delete(f"{b.base}/timeline/{entries[0]['id']}", headers=as_user(ALICE)).status_code == 204
    assert stats(client) == before


def test_the_window_defaults_to_the_ninety_days_before_now(client, incidents, clock):
    clock.now = MONDAY + 30 * DAY
    seen = stats(client, query=f"team_id={TEAM}")
    assert (seen["from"], seen["to"]) == (MONDAY - 60 * DAY, MONDAY + 30 * DAY)
    # Everything but H (another team) started by now: A..G and I; D and G are still active.
    assert (seen["started"], seen["ended"], seen["active"]) == (8, 6, 2)
    assert seen["weeks"][0]["week_start"] <= seen["from"] < seen["weeks"][0]["week_start"] + 7 * DAY
    assert len(seen["weeks"]) == 14 and sum(week["started"] for week in seen["weeks"]) == 8


def test_a_team_without_incidents_gets_zeros_and_nulls(client, clock):
    assert stats(client) == {
        "team_id": TEAM, "from": FROM, "to": TO, "started": 0, "ended": 0, "active": 0,
        "time_to_end_ms": {"p50": None, "p90": None}, "stages": [],
        "severity": [{"severity": level, "count": 0} for level in ("sev1", "sev2", "sev3", "sev4")],
        "weeks": weeks((0, 0), (0, 0), (0, 0), (0, 0)),
    }


@pytest.mark.parametrize("query, complaint", [
    ("", "team_id: Missing data for required field"),
    ("team_id=nope", "team_id: Must be an id"),
    (f"team_id={TEAM}&from=10&to=5", "from (10) is after to (5)"),
    (f"team_id={TEAM}&from=yesterday", "from: Must be a whole number from 0"),
    (f"team_id={TEAM}&to=-1", "to: Must be a whole number from 0"),
    (f"team_id={TEAM}&from=0&to={400 * 24 * 3600 * 1000 * 10}", "longer than 3660 days"),
    (f"team_id={TEAM}&from={10 ** 15}", "is after to"),
    (f"team_id={TEAM}&bogus=1", "bogus: Unknown field"),
])
def test_bad_stats_parameters_are_a_400_saying_what_to_fix(client, query, complaint):
    response = client.get(f"/api/v0/stats?{query}", headers=as_user(ALICE))
    assert response.status_code == 400
    assert complaint in response.json["error"]


def test_stats_need_a_user(client):
    assert client.get(f"/api/v0/stats?team_id={TEAM}").status_code == 401


@pytest.mark.parametrize("statement, indexes", [
    (SqlReportRepository.count_statement(StatsScope(TEAM, FROM, TO)),
     {"ix_incidents_team_create", "ix_incidents_team_end", "ix_incidents_team_active_create"}),
    (SqlReportRepository.week_statement(StatsScope(TEAM, FROM, TO, frozenset({OTHER_TEAM}), True), MONDAY),
     {"ix_incidents_team_create", "ix_incidents_team_end"}),
])
def test_stats_counts_and_weeks_search_indexes_led_by_team_id_never_the_whole_table(db, statement, indexes):
    with db.read_engine.connect() as connection:
        compiled = statement.compile(connection, compile_kwargs={"literal_binds": True})
        if db.dialect == "sqlite":
            plan = " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
            assert "SCAN incidents" not in plan
            assert {index for index in indexes if index in plan} == indexes
        else:
            # An empty table is read whole at no cost: ask which plan the indexes allow.
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = " ".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {compiled}"))
            connection.exec_driver_sql("RESET enable_seqscan")
            # Without statistics PostgreSQL may pick any index that leads with team_id.
            assert "Seq Scan" not in plan and "ix_incidents_team" in plan
