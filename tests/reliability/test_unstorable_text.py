"""Text a database cannot store (NUL, lone surrogates) is refused at every entry point, the same on
both databases, with a reply naming the field; nothing changes and no log line carries what was typed.

A lone surrogate can only arrive inside JSON (as a ``\\ud800`` escape) or through the command line
and environment (bytes that are not UTF-8); a URL-encoded query string or form cannot carry one, so
those entry points are tried with NUL, and with the bytes of a surrogate to show they arrive as
storable text.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from plugin import cli
from plugin.settings import SettingsError, load_settings
from plugin.store.tables import metadata
from tests.conftest import ADMIN, ALICE, TEAM, as_user

CANARY = "canaryzq4v"
BAD = {"nul": "\x00", "surrogate": "\ud800"}
TOKEN = "unstorabletoken00000000000"


def typed(kind: str) -> str:
    """Text someone typed with one character no database can store."""
    return f"{CANARY} before{BAD[kind]}after"


def snapshot(components) -> dict[str, list[str]]:
    """Every row of every table, to compare before and after a refused request."""
    with components.db.read_engine.connect() as connection:
        return {table.name: sorted(repr(tuple(row)) for row in connection.execute(sa.select(table)))
                for table in metadata.sorted_tables}


def assert_no_canary_logged(caplog) -> None:
    assert caplog.records, "the requests should have been logged"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert CANARY not in text, f"{record.name}: {text}"


@pytest.fixture
def world(client, components):
    """An incident with a stage and a task, a playbook, and the slash command switched on."""
    components.settings.replace(components.settings.current.replace(SlashCommandToken=TOKEN))
    incident = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": "steady", "team_id": TEAM, "commander_user_id": ALICE,
        "checklists": [{"title": "Triage", "items": [{"title": "look"}]}]}).json
    playbook = client.post("/api/v0/playbooks", headers=as_user(ALICE), json={
        "title": "runbook", "team_id": TEAM, "checklists": [{"title": "Triage"}]}).json
    return {"incident": incident["id"], "channel": incident["channel_id"], "playbook": playbook["id"]}


# ----- REST bodies: (method, path, body with the text at the field, the field's path) ----------------
def _incident(text: str, **extra: Any) -> dict[str, Any]:
    return {"name": "db down", "team_id": TEAM, "commander_user_id": ALICE, **extra}


def _stages(where: str, text: str) -> list[dict[str, Any]]:
    item = {"title": "look", **({where: text} if where in ("title", "description", "command") else {})}
    return [{"title": text if where == "stage" else "Triage", "items": [item]}]


BODIES = [
    ("POST", "/api/v0/incidents", lambda t: _incident(t, name=t), "name"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, description=t), "description"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, checklists=_stages("stage", t)), "checklists.0.title"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, checklists=_stages("title", t)),
     "checklists.0.items.0.title"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, checklists=_stages("description", t)),
     "checklists.0.items.0.description"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, checklists=_stages("command", t)),
     "checklists.0.items.0.command"),
    ("POST", "/api/v0/incidents", lambda t: _incident(t, **{t: "x"}), "(in the field name)"),
    ("POST", "{incident}/checklists/0/items", lambda t: {"title": t}, "title"),
    ("POST", "{incident}/checklists/0/items", lambda t: {"title": "ok", "description": t}, "description"),
    ("POST", "{incident}/checklists/0/items", lambda t: {"title": "ok", "command": t}, "command"),
    ("PUT", "{incident}/checklists/0/items/0", lambda t: {"title": t}, "title"),
    ("PUT", "{incident}/checklists/0/items/0", lambda t: {"description": t}, "description"),
    ("PUT", "{incident}/checklists/0/items/0", lambda t: {"command": t}, "command"),
    ("POST", "{incident}/commander", lambda t: {"commander_id": t}, "commander_id"),
    ("PUT", "{incident}/checklists/0/items/0/assignee", lambda t: {"assignee_id": t}, "assignee_id"),
    ("PUT", "{incident}/checklists/0/items/0/state", lambda t: {"new_state": t}, "new_state"),
    ("POST", "{incident}/timeline", lambda t: {"summary": t}, "summary"),
    ("POST", "{incident}/timeline", lambda t: {"summary": "ok", "details": {"said": t}}, "details.said"),
    ("POST", "{incident}/timeline", lambda t: {"summary": "ok", "details": {t: 1}}, "(in the field name)"),
    ("POST", "{incident}/timeline", lambda t: {"summary": "ok", "post_id": t}, "post_id"),
    ("POST", "/api/v0/playbooks", lambda t: {"title": t, "team_id": TEAM}, "title"),
    ("POST", "/api/v0/playbooks", lambda t: {"title": "ok", "team_id": TEAM, "description": t}, "description"),
    ("POST", "/api/v0/playbooks", lambda t: {"title": "ok", "team_id": TEAM, "checklists": _stages("title", t)},
     "checklists.0.items.0.title"),
    ("PUT", "{playbook}", lambda t: {"title": t}, "title"),
    ("PUT", "{playbook}", lambda t: {"title": "ok", "description": t}, "description"),
    ("PUT", "/api/v0/settings", lambda t: {"HostSecret": t}, "HostSecret"),
    ("PUT", "/api/v0/settings", lambda t: {"MattermostSiteUrl": t}, "MattermostSiteUrl"),
]


def _path(template: str, world: dict[str, str]) -> str:
    return template.format(incident=f"/api/v0/incidents/{world['incident']}",
                           playbook=f"/api/v0/playbooks/{world['playbook']}")


@pytest.mark.parametrize("kind", BAD)
@pytest.mark.parametrize(("method", "template", "body", "field"), BODIES,
                         ids=[f"{m} {p} {f}" for m, p, _, f in BODIES])
def test_rest_body_with_unstorable_text_is_a_400_naming_the_field_and_changes_nothing(
        client, components, world, caplog, kind, method, template, body, field):
    caplog.set_level(logging.DEBUG)
    before = snapshot(components)
    user = ADMIN if "settings" in template else ALICE
    response = client.open(_path(template, world), method=method, headers=as_user(user), json=body(typed(kind)))
    assert response.status_code == 400, response.json
    assert set(response.json) == {"error", "details"}
    assert field in response.json["error"], response.json["error"]
    assert snapshot(components) == before
    assert_no_canary_logged(caplog)


# ----- query strings -------------------------------------------------------------------------------
QUERIES = [
    ("/api/v0/incidents", f"team_id={TEAM}&search_term=", "search_term"),
    ("/api/v0/incidents", f"team_id={TEAM}&sort=", "sort"),
    ("/api/v0/incidents", "team_id=", "team_id"),
    ("/api/v0/playbooks", f"team_id={TEAM}&direction=", "direction"),
    ("/api/v0/telemetry", "limit=", "limit"),
    ("{incident}/timeline", "event_type=", "event_type"),
]


@pytest.mark.parametrize(("path", "query", "field"), QUERIES, ids=[f"{p} {f}" for p, _, f in QUERIES])
def test_query_string_with_nul_is_a_400_naming_the_field(client, components, world, caplog, path, query, field):
    caplog.set_level(logging.DEBUG)
    before = snapshot(components)
    response = client.get(f"{_path(path, world)}?{query}{quote(typed('nul'))}", headers=as_user(ADMIN))
    assert response.status_code == 400, response.json
    assert f"{field}: " in response.json["error"], response.json["error"]
    assert snapshot(components) == before
    assert_no_canary_logged(caplog)


def test_a_query_string_with_the_bytes_of_a_surrogate_searches_for_them_as_escaped_text(client, world):
    # Not UTF-8, so Werkzeug keeps the bytes as their %-escapes: storable text, found nowhere.
    response = client.get(f"/api/v0/incidents?team_id={TEAM}&search_term={CANARY}%ED%A0%80",
                          headers=as_user(ALICE))
    assert response.status_code == 200 and response.json["total_count"] == 0


# ----- the slash command: its text and every form field --------------------------------------------
def _form(world: dict[str, str], **fields: str) -> dict[str, str]:
    return {"token": TOKEN, "team_id": TEAM, "team_domain": "acme", "channel_id": world["channel"],
            "channel_name": "steady", "user_id": ALICE, "user_name": "alice", "command": "/incident",
            "text": "info", "trigger_id": "t", "root_id": "", "response_url": "http://127.0.0.1:1/hooks/x",
            **fields}


SLASH = [
    ("text", lambda t: {"text": f"start {t}"}),
    ("text", lambda t: {"text": f'start db down --description "{t}"'}),
    ("text", lambda t: {"text": f"start db down --playbook {t}"}),
    ("text", lambda t: {"text": f"announce ~{t}"}),
    ("text", lambda t: {"text": f"commander @{t}"}),
    ("text", lambda t: {"text": f"note {t}"}),
    ("user_name", lambda t: {"text": "start db down", "user_name": t}),
    ("user_mentions", lambda t: {"text": "start db down", "user_mentions": t, "user_mentions_ids": ALICE}),
    ("channel_name", lambda t: {"text": "start db down", "channel_name": t}),
    ("team_domain", lambda t: {"text": "start db down", "team_domain": t}),
    ("trigger_id", lambda t: {"text": "start db down", "trigger_id": t}),
    ("channel_mentions", lambda t: {"text": "announce ~town", "channel_mentions": t}),
]


@pytest.mark.parametrize(("field", "fields"), SLASH, ids=[f"{f} {n}" for n, (f, _) in enumerate(SLASH)])
def test_slash_command_with_nul_gets_an_ephemeral_reply_naming_the_field_and_changes_nothing(
        client, components, world, caplog, field, fields):
    caplog.set_level(logging.DEBUG)
    before = snapshot(components)
    response = client.post("/command", data=_form(world, **fields(typed("nul"))),
                           headers={"Authorization": f"Token {TOKEN}"})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["response_type"] == "ephemeral" and "NUL" in body["text"] and "went wrong" not in body["text"]
    named = "The command text" if field == "text" else f"The {field} field"
    assert body["text"].startswith(named) and "Nothing was changed" in body["text"]
    assert snapshot(components) == before
    assert_no_canary_logged(caplog)


def test_slash_command_sent_as_a_get_with_nul_in_the_query_is_refused_the_same_way(client, components, world):
    before = snapshot(components)
    response = client.get("/command", query_string=_form(world, text=f"start {typed('nul')}"))
    assert response.status_code == 200 and response.json["text"].startswith("The command text")
    assert snapshot(components) == before


# ----- settings from the command line and the config file ------------------------------------------
@pytest.fixture
def shell_env(monkeypatch, database_url, tmp_path):
    for name in ("INCIDENT_CONFIG", "INCIDENT_HOST_SECRET", "INCIDENT_MATTERMOST_SITE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INCIDENT_DATABASE_URL", database_url)
    monkeypatch.setenv("INCIDENT_DATA_DIR", str(tmp_path))


@pytest.mark.parametrize("key", ["HostSecret", "MattermostSiteUrl"])
def test_settings_set_from_the_shell_with_bytes_that_are_not_utf8_is_refused_and_saves_nothing(
        shell_env, components, caplog, capsys, key):
    # The command line decodes such bytes to lone surrogates (Python's surrogateescape).
    value = (CANARY + " ").encode() + b"\xed\xa0\x80"
    caplog.set_level(logging.DEBUG)
    before = snapshot(components)
    assert cli.main(["settings", "set", key, value.decode("utf-8", "surrogateescape")]) == 2
    error = capsys.readouterr().err
    assert key in error and "surrogate" in error
    assert snapshot(components) == before
    for record in caplog.records:
        assert CANARY not in record.getMessage() + (record.exc_text or "")


@pytest.mark.parametrize("kind", BAD)
def test_a_config_file_with_unstorable_text_stops_start_up_naming_the_setting_and_the_file(tmp_path, kind):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"MattermostSiteUrl": typed(kind)}))
    with pytest.raises(SettingsError) as refused:
        load_settings(config, environ={})
    assert "MattermostSiteUrl" in str(refused.value) and str(config) in str(refused.value)
