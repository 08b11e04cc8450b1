"""Saved settings layered between the config file and the environment."""
from __future__ import annotations

import pytest

from plugin.settings import MASK, load_settings


def test_saved_value_overrides_config_and_default_but_not_environment(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"MaxBodyBytes": 5000}')
    base = load_settings(config, environ={"INCIDENT_HOST_SECRET": "from-env"})
    layered = base.with_saved({"MaxBodyBytes": 6000, "HostSecret": "saved", "AdminUserIds": ""})
    assert layered["MaxBodyBytes"] == 6000 and layered.sources["MaxBodyBytes"] == "saved"
    assert layered["HostSecret"] == "from-env" and layered.sources["HostSecret"] == "environment"
    assert layered.sources["AdminUserIds"] == "saved"


def test_saved_database_url_is_ignored_because_it_needs_a_restart():
    layered = load_settings(environ={}).with_saved({"DatabaseUrl": "sqlite:////tmp/x.db"})
    assert layered["DatabaseUrl"] == "" and layered.sources["DatabaseUrl"] == "default"


@pytest.mark.parametrize("saved", [{"MaxBodyBytes": "huge"}, {"NoSuchSetting": 1}])
def test_saved_values_that_do_not_validate_are_skipped(saved):
    layered = load_settings(environ={}).with_saved(saved)
    assert layered["MaxBodyBytes"] == 262144 and "NoSuchSetting" not in layered.values


def test_public_view_masks_only_secrets_that_are_set():
    settings = load_settings(environ={}).with_saved({"HostSecret": "s3cret"})
    assert settings.public_view()["HostSecret"] == MASK
    assert load_settings(environ={}).public_view()["HostSecret"] == ""
