"""Settings: plugin.json defaults < config file < environment, with clear errors."""
from __future__ import annotations

import json

import pytest

from plugin.settings import SettingsError, env_name, load_manifest, load_settings


def test_env_names_are_upper_snake_case_of_the_key():
    assert env_name("DatabaseUrl") == "INCIDENT_DATABASE_URL"
    assert env_name("AdminUserIds") == "INCIDENT_ADMIN_USER_IDS"
    assert env_name("MaxBodyBytes") == "INCIDENT_MAX_BODY_BYTES"


def test_defaults_come_from_plugin_json(tmp_path):
    settings = load_settings(environ={"INCIDENT_DATA_DIR": str(tmp_path)})
    declared = {s["key"]: s["default"] for s in load_manifest()["settings_schema"]["settings"]}
    assert set(settings.values) == set(declared)
    assert settings["MaxBodyBytes"] == declared["MaxBodyBytes"]
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'incidents.db'}"
    assert all(source == "default" for source in settings.sources.values())


def test_config_file_overrides_defaults_and_environment_overrides_both(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"MaxBodyBytes": 5000, "AdminUserIds": "a" * 26}))
    settings = load_settings(config, environ={"INCIDENT_MAX_BODY_BYTES": "6000"})
    assert settings["MaxBodyBytes"] == 6000 and settings.sources["MaxBodyBytes"] == "environment"
    assert settings.admin_user_ids == frozenset({"a" * 26}) and settings.sources["AdminUserIds"] == "config"


@pytest.mark.parametrize("environ, named", [
    ({"INCIDENT_MAX_BODY_BYTES": "lots"}, "MaxBodyBytes"),
    ({"INCIDENT_MAX_BODY_BYTES": "10"}, "MaxBodyBytes"),
    ({"INCIDENT_DATABASE_URL": "mysql://x"}, "DatabaseUrl"),
    ({"INCIDENT_ADMIN_USER_IDS": "alice,bob"}, "AdminUserIds"),
])
def test_invalid_values_stop_start_up_naming_the_setting(environ, named):
    with pytest.raises(SettingsError, match=named) as error:
        load_settings(environ=environ)
    assert "environment variable INCIDENT_" in str(error.value)


def test_unknown_keys_in_the_config_file_are_refused(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"DatabaseURL": "sqlite:///x.db"}))
    with pytest.raises(SettingsError, match="unknown setting DatabaseURL"):
        load_settings(config, environ={})


def test_an_unreadable_config_file_is_reported(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    with pytest.raises(SettingsError, match="could not be read"):
        load_settings(config, environ={})


def test_secrets_are_masked_in_the_public_view():
    settings = load_settings(environ={"INCIDENT_HOST_SECRET": "hunter2"})
    assert settings.host_secret == "hunter2"
    assert settings.public_view()["HostSecret"] == "********"
    assert load_settings(environ={}).public_view()["HostSecret"] == ""


@pytest.mark.parametrize("url, shown", [
    ("postgresql://incident:hunter2@db.example:5432/incidents",
     "postgresql://incident:********@db.example:5432/incidents"),
    ("postgresql+psycopg://incident:p%40ss%3Aword@db/incidents", "postgresql+psycopg://incident:********@db/incidents"),
    ("postgresql://incident@db/incidents?password=hunter2&sslmode=require",
     "postgresql://incident@db/incidents?password=********&sslmode=require"),
    ("postgresql://incident@db/incidents", "postgresql://incident@db/incidents"),
    ("sqlite:////var/lib/incidents.db", "sqlite:////var/lib/incidents.db"),
])
def test_the_database_url_is_shown_with_its_password_masked(url, shown):
    assert load_settings(environ={"INCIDENT_DATABASE_URL": url}).public_view()["DatabaseUrl"] == shown
