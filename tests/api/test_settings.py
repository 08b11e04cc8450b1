"""Settings at run time: the API, persistence across restarts, precedence, other processes."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugin.app import create_app
from plugin.settings import load_settings
from tests.conftest import ADMIN, ALICE, TEAM, as_user


def put(client: Any, body: Any, user: str = ADMIN, **headers: str) -> Any:
    return client.put("/api/v0/settings", json=body, headers={**as_user(user), **headers})


def by_key(response: Any) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in response.json["settings"]}


def make_app(database_url: str, tmp_path: Path, environ: dict[str, str] | None = None,
             config: dict[str, Any] | None = None) -> Any:
    """An app over the same database, as a restarted (or another) server process would build it."""
    config_file = None
    if config is not None:
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(config))
    settings = load_settings(config_file, environ={
        "INCIDENT_ADMIN_USER_IDS": ADMIN, "INCIDENT_DATA_DIR": str(tmp_path),
        "INCIDENT_REMINDER_SCAN_SECONDS": "0", **(environ or {}),
        **({} if config and "DatabaseUrl" in config else {"INCIDENT_DATABASE_URL": database_url})})
    app = create_app(settings, migrate_db=False)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def apps():
    made: list[Any] = []
    yield made
    for app in made:
        app.extensions["incident"].db.dispose()


@pytest.mark.parametrize("method", ["get", "put"])
def test_settings_are_403_for_users_who_are_not_system_admins(client, components, method):
    response = getattr(client, method)("/api/v0/settings", json={"MaxBodyBytes": 4096}, headers=as_user(ALICE))
    assert response.status_code == 403 and "system admins" in response.json["error"]
    assert components.settings.current.max_body_bytes == 262144


def test_settings_without_user_header_are_401(client):
    assert client.get("/api/v0/settings").status_code == 401


def test_get_lists_every_setting_with_source_and_whether_it_can_change(client):
    rows = by_key(client.get("/api/v0/settings", headers=as_user(ADMIN)))
    assert {"DatabaseUrl", "AdminUserIds", "HostSecret", "MaxBodyBytes"} <= set(rows)
    assert rows["AdminUserIds"]["source"] == "environment" and rows["AdminUserIds"]["read_only"] is True
    assert rows["AdminUserIds"]["env_var"] == "INCIDENT_ADMIN_USER_IDS"
    assert rows["DatabaseUrl"]["requires_restart"] is True
    assert rows["MaxBodyBytes"] == {**rows["MaxBodyBytes"], "value": 262144, "source": "default", "read_only": False}


def test_put_takes_effect_at_once_without_a_restart(client, components):
    response = put(client, {"MaxBodyBytes": 2048})
    assert response.status_code == 200
    assert by_key(response)["MaxBodyBytes"]["value"] == 2048 and by_key(response)["MaxBodyBytes"]["source"] == "saved"
    assert components.settings.current.max_body_bytes == 2048
    big = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE, "description": "d" * 3000})
    assert big.status_code == 413


def test_put_accepts_the_same_text_forms_as_the_environment(client, components):
    assert put(client, {"MaxBodyBytes": " 4096 "}).status_code == 200
    assert components.settings.current.max_body_bytes == 4096


@pytest.mark.parametrize("body, named", [
    ({"MaxBodyBytes": 5}, "MaxBodyBytes"),
    ({"MaxBodyBytes": "lots"}, "MaxBodyBytes"),
    ({"MaxBodyBytes": True}, "MaxBodyBytes"),
    ({"HostSecret": 12}, "HostSecret"),
    ({"Colour": "red"}, "Colour"),
    ({}, "at least one"),
])
def test_put_with_an_invalid_value_is_400_naming_it_and_changes_nothing(client, components, body, named):
    response = put(client, {**body})
    assert response.status_code == 400 and named in response.json["error"]
    assert components.settings.current.max_body_bytes == 262144
    rows = by_key(client.get("/api/v0/settings", headers=as_user(ADMIN)))
    assert all(row["source"] != "saved" for row in rows.values())


def test_put_is_all_or_nothing(client, components):
    response = put(client, {"HostSecret": "s3cret", "MaxBodyBytes": 1})
    assert response.status_code == 400
    assert components.settings.current.host_secret == ""


@pytest.mark.parametrize("data", ["[1, 2]", "not json", '"MaxBodyBytes"'])
def test_put_with_a_body_that_is_not_a_json_object_is_400(client, data):
    response = client.put("/api/v0/settings", data=data, content_type="application/json", headers=as_user(ADMIN))
    assert response.status_code == 400 and set(response.json) == {"error", "details"}


def test_setting_fixed_by_an_environment_variable_is_read_only_and_the_error_says_so(client, components):
    response = put(client, {"AdminUserIds": ALICE})
    assert response.status_code == 409
    assert "INCIDENT_ADMIN_USER_IDS" in response.json["error"] and "environment" in response.json["error"]
    assert components.settings.current.admin_user_ids == {ADMIN}


def test_database_url_cannot_change_while_running_and_the_error_says_restart(database_url, tmp_path, apps):
    apps.append(app := make_app(database_url, tmp_path, config={"DatabaseUrl": database_url}))
    response = put(app.test_client(), {"DatabaseUrl": "sqlite:////tmp/elsewhere.db"})
    assert response.status_code == 409 and "restart" in response.json["error"]


def test_secrets_are_masked_and_sending_the_mask_back_keeps_the_secret(client, components):
    assert put(client, {"HostSecret": "s3cret"}).status_code == 200
    secret = {"X-Host-Secret": "s3cret"}
    shown = client.get("/api/v0/settings", headers={**as_user(ADMIN), **secret})
    assert by_key(shown)["HostSecret"]["value"] == "********" and "s3cret" not in shown.get_data(as_text=True)
    echoed = {row["key"]: row["value"] for row in shown.json["settings"] if not row["read_only"]}
    assert put(client, echoed, **secret).status_code == 200
    assert components.settings.current.host_secret == "s3cret"


def test_a_new_host_secret_is_required_from_the_next_request_on(client):
    put(client, {"HostSecret": "s3cret"})
    assert client.get("/api/v0/settings", headers=as_user(ADMIN)).status_code == 401
    assert client.get("/api/v0/settings", headers={**as_user(ADMIN), "X-Host-Secret": "s3cret"}).status_code == 200


def test_saved_settings_survive_a_restart(database_url, tmp_path, apps):
    apps.append(first := make_app(database_url, tmp_path))
    assert put(first.test_client(), {"MaxBodyBytes": 8192}).status_code == 200
    apps.append(restarted := make_app(database_url, tmp_path))
    current = restarted.extensions["incident"].settings.current
    assert current.max_body_bytes == 8192 and current.sources["MaxBodyBytes"] == "saved"
    oversize = restarted.test_client().post("/api/v0/incidents", data=b" " * 8193, headers=as_user(ALICE))
    assert oversize.status_code == 413 and oversize.json["details"]["max_body_bytes"] == 8192


def test_precedence_is_default_then_config_file_then_saved_then_environment(database_url, tmp_path, apps):
    apps.append(configured := make_app(database_url, tmp_path, config={"MaxBodyBytes": 5000}))
    assert configured.extensions["incident"].settings.current.max_body_bytes == 5000
    put(configured.test_client(), {"MaxBodyBytes": 6000})
    apps.append(restarted := make_app(database_url, tmp_path, config={"MaxBodyBytes": 5000}))
    assert restarted.extensions["incident"].settings.current.max_body_bytes == 6000
    apps.append(env := make_app(database_url, tmp_path, environ={"INCIDENT_MAX_BODY_BYTES": "7000"},
                                config={"MaxBodyBytes": 5000}))
    assert env.extensions["incident"].settings.current.max_body_bytes == 7000
    assert put(env.test_client(), {"MaxBodyBytes": 9000}).status_code == 409


def test_another_server_process_applies_a_saved_change_from_its_very_next_request(database_url, tmp_path, apps):
    apps.append(one := make_app(database_url, tmp_path))
    apps.append(other := make_app(database_url, tmp_path))
    other.test_client().get("/api/v0/settings", headers=as_user(ADMIN))
    put(one.test_client(), {"MaxBodyBytes": 4096})
    other.test_client().get("/api/v0/settings", headers=as_user(ADMIN))
    assert other.extensions["incident"].settings.current.max_body_bytes == 4096


def test_subscribers_hear_a_change_made_through_the_api(client, components):
    heard: list[tuple[int, int]] = []
    components.settings.subscribe(lambda old, new: heard.append((old.max_body_bytes, new.max_body_bytes)))
    put(client, {"MaxBodyBytes": 4096})
    put(client, {"MaxBodyBytes": 4096})
    assert heard == [(262144, 4096)]


def test_a_saved_value_that_no_longer_validates_is_skipped_at_start_up(database_url, tmp_path, apps, caplog):
    apps.append(first := make_app(database_url, tmp_path))
    with first.extensions["incident"].db.unit_of_work() as uow:
        uow.saved_settings.put("MaxBodyBytes", 3, now=1, user_id="")
        uow.saved_settings.put("RemovedSetting", "x", now=1, user_id="")
        uow.commit()
    apps.append(restarted := make_app(database_url, tmp_path))
    assert restarted.extensions["incident"].settings.current.max_body_bytes == 262144
    assert "MaxBodyBytes" in caplog.text
