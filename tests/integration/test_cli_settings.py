"""``incident-plugin settings show|set`` against a real database."""
from __future__ import annotations

import pytest

from plugin import cli
from plugin.app import create_app
from plugin.settings import load_settings
from tests.conftest import ADMIN


@pytest.fixture
def shell_env(monkeypatch, database_url, tmp_path):
    for name in ("INCIDENT_CONFIG", "INCIDENT_MAX_BODY_BYTES", "INCIDENT_HOST_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INCIDENT_DATABASE_URL", database_url)
    monkeypatch.setenv("INCIDENT_ADMIN_USER_IDS", ADMIN)
    monkeypatch.setenv("INCIDENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("INCIDENT_REMINDER_SCAN_SECONDS", "0")  # no scanner outliving the test's database
    return database_url


def test_settings_set_saves_a_value_that_a_starting_server_applies(shell_env, capsys):
    assert cli.main(["settings", "set", "MaxBodyBytes", "4096"]) == 0
    out = capsys.readouterr().out
    assert "MaxBodyBytes saved" in out and "MaxBodyBytes" in out and "4096  [saved]" in out
    app = create_app(load_settings(), migrate_db=False)
    try:
        assert app.extensions["incident"].settings.current.max_body_bytes == 4096
    finally:
        app.extensions["incident"].db.dispose()


def test_settings_show_masks_secrets_and_marks_environment_settings_read_only(shell_env, capsys):
    assert cli.main(["settings", "set", "HostSecret", "s3cret"]) == 0
    capsys.readouterr()
    assert cli.main(["settings", "show"]) == 0
    out = capsys.readouterr().out
    assert "s3cret" not in out and '"********"  [saved]' in out
    assert "AdminUserIds" in out and "(read-only: environment)" in out


@pytest.mark.parametrize("key, value, message", [
    ("AdminUserIds", "x", "INCIDENT_ADMIN_USER_IDS"),
    ("MaxBodyBytes", "tiny", "expected a whole number"),
    ("Colour", "red", "Unknown setting Colour"),
])
def test_settings_set_refuses_what_the_api_refuses_with_exit_status_2(shell_env, capsys, key, value, message):
    assert cli.main(["settings", "set", key, value]) == 2
    assert message in capsys.readouterr().err


def test_serve_start_up_check_sees_a_host_secret_saved_from_the_shell(shell_env, capsys):
    from plugin.store import Database

    assert cli.main(["settings", "set", "HostSecret", "s3cret"]) == 0
    db = Database(shell_env)
    try:
        assert cli.settings_with_saved(load_settings(), db).host_secret == "s3cret"
    finally:
        db.dispose()


def test_serve_refuses_a_non_loopback_address_without_any_host_secret(shell_env, capsys):
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "refusing to listen on 0.0.0.0" in capsys.readouterr().err
