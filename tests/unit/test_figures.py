"""Time per stage, percentiles and weeks: the figures the report and the statistics share."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from plugin.figures import Life, Mark, describe_duration, percentile, stage_durations, week_start

MIN = 60_000


def moved(at: int, to: int) -> Mark:
    return Mark("stage_changed", at, {"from_stage": -1, "to_stage": to})


def test_an_incident_without_stage_changes_spends_its_whole_life_in_the_first_stage():
    life = Life(create_at=0, end_at=30 * MIN, is_active=False, stage_count=3)
    assert stage_durations(life, now=99 * MIN) == [30 * MIN, None, None]


def test_each_stage_runs_from_the_change_into_it_to_the_change_out_of_it_and_the_last_until_the_end():
    life = Life(0, 60 * MIN, False, 3, (moved(10 * MIN, 1), moved(25 * MIN, 2)))
    assert stage_durations(life, now=0) == [10 * MIN, 15 * MIN, 35 * MIN]


def test_an_active_incidents_current_stage_runs_until_now():
    life = Life(0, 0, True, 2, (moved(10 * MIN, 1),))
    assert stage_durations(life, now=40 * MIN) == [10 * MIN, 30 * MIN]


def test_going_back_to_a_stage_adds_the_second_visit_to_the_first():
    life = Life(0, 60 * MIN, False, 2, (moved(10 * MIN, 1), moved(20 * MIN, 0), moved(45 * MIN, 1)))
    assert stage_durations(life, now=0) == [10 * MIN + 25 * MIN, 10 * MIN + 15 * MIN]


def test_time_between_an_end_and_a_restart_counts_for_no_stage():
    marks = (moved(10 * MIN, 1), Mark("incident_ended", 20 * MIN), Mark("incident_restarted", 80 * MIN))
    assert stage_durations(Life(0, 0, True, 2, marks), now=90 * MIN) == [10 * MIN, 10 * MIN + 10 * MIN]


def test_a_stage_changed_while_ended_is_where_the_time_goes_after_the_restart():
    marks = (Mark("incident_ended", 10 * MIN), moved(30 * MIN, 1), Mark("incident_restarted", 50 * MIN))
    assert stage_durations(Life(0, 70 * MIN, False, 2, marks), now=0) == [10 * MIN, 20 * MIN]


def test_an_incident_without_stages_has_no_stage_times():
    assert stage_durations(Life(0, 10, False, 0, (moved(5, 1),)), now=20) == []


def test_a_change_to_a_stage_the_incident_does_not_have_stops_the_clock_for_its_stages():
    life = Life(0, 60 * MIN, False, 2, (moved(10 * MIN, 5), moved(40 * MIN, 1)))
    assert stage_durations(life, now=0) == [10 * MIN, 20 * MIN]


@pytest.mark.parametrize("values, percent, expected", [
    ([], 50, None), ([7], 50, 7), ([7], 90, 7), ([4, 1, 3, 2], 50, 2), ([5, 1, 4, 2, 3], 50, 3),
    (list(range(1, 11)), 90, 9), (list(range(1, 11)), 100, 10), ([3, 1], 0, 1),
])
def test_percentiles_are_nearest_rank_values_that_occurred(values, percent, expected):
    assert percentile(values, percent) == expected


@pytest.mark.parametrize("moment, monday", [
    ("2026-12-07T00:00:00", "2026-12-07T00:00:00"), ("2026-12-06T23:59:59", "2026-11-30T00:00:00"),
    ("2026-12-09T13:45:00", "2026-12-07T00:00:00"), ("1970-01-01T00:00:00", "1969-12-29T00:00:00"),
])
def test_weeks_start_on_the_monday_at_or_before_a_moment_at_midnight_utc(moment, monday):
    def ms(text: str) -> int:
        return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)
    assert week_start(ms(moment)) == ms(monday)


@pytest.mark.parametrize("milliseconds, words", [
    (0, "0s"), (45_999, "45s"), (12 * MIN + 5000, "12m 5s"), (3 * 60 * MIN + 4 * MIN, "3h 4m"),
    ((2 * 24 + 5) * 60 * MIN, "2d 5h"), (-5, "0s"),
])
def test_durations_read_in_the_two_largest_units(milliseconds, words):
    assert describe_duration(milliseconds) == words
