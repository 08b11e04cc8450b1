"""The reminder scanner thread: scans at once and then each interval, survives a failed scan, stops."""
from __future__ import annotations

import threading

import pytest

from plugin.reminders import ReminderScanner
from plugin.settings import SettingsError, load_settings


def test_the_scanner_scans_at_start_keeps_scanning_after_a_failure_and_stops_within_its_timeout():
    scans: list[int] = []
    third = threading.Event()

    def send_due() -> int:
        scans.append(1)
        if len(scans) == 1:
            raise RuntimeError("the database is restarting")
        if len(scans) >= 3:
            third.set()
        return 0

    scanner = ReminderScanner(send_due, interval=0.01)
    scanner.start()
    assert third.wait(5.0), "the scanner stopped scanning after a failed scan"
    assert scanner.stop(timeout=5.0) and not scanner.running


def test_an_interval_of_zero_starts_no_scanner():
    scanner = ReminderScanner(lambda: 0, interval=0)
    scanner.start()
    assert not scanner.running and scanner.stop(timeout=0.1)


@pytest.mark.parametrize("value", ["soon", "-1", "3601"])
def test_a_scan_interval_that_is_not_0_to_3600_seconds_stops_start_up_naming_the_variable(value):
    with pytest.raises(SettingsError, match="INCIDENT_REMINDER_SCAN_SECONDS"):
        load_settings(environ={"INCIDENT_REMINDER_SCAN_SECONDS": value})


def test_the_scan_interval_defaults_to_five_seconds_and_reads_fractions():
    assert load_settings(environ={}).reminder_scan_seconds == 5.0
    assert load_settings(environ={"INCIDENT_REMINDER_SCAN_SECONDS": "0.2"}).reminder_scan_seconds == 0.2
