"""Logs: one access line per request naming the route's pattern, and no text people typed at any level."""
from __future__ import annotations

import json
import logging
import re
import socket
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from plugin import logs
from tests.conftest import ALICE, BOB, TEAM, as_user, uid
from tests.integration.test_server import call, clean_env, serve

CANARY = "canary7f3q"
TOKEN = "logstoken00000000000000000"
ACCESS_LINE = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*|-) (\d{3}) (\d+\.\d)ms user=([a-z0-9]{26}|-)$")


def pattern(path: str) -> str:
    """The route pattern the access line names for a concrete path."""
    path = re.sub(r"/api/v0/incidents/[a-z0-9]{26}", "/api/v0/incidents/<incident_id>", path)
    path = re.sub(r"/checklists/\d+", "/checklists/<checklist>", path)
    return re.sub(r"/items/\d+", "/items/<item>", path)


def lifecycle(client) -> list[tuple[str, str, int, str]]:
    """A whole incident's life with canary text everywhere; returns (method, path, status, user) per request."""
    sent: list[tuple[str, str, int, str]] = []

    def call(method: str, path: str, user: str | None = ALICE, body=None, query: str = "") -> dict:
        headers = as_user(user) if user else {}
        response = client.open(path + query, method=method, json=body, headers=headers)
        sent.append((method, path, response.status_code, user or "-"))
        return response.json

    stages = [{"title": f"{CANARY} stage {n}", "items": [
        {"title": f"{CANARY} task", "description": f"{CANARY} secret steps", "command": f"/echo {CANARY}"}]}
        for n in range(2)]
    incident = call("POST", "/api/v0/incidents", body={
        "name": f"{CANARY} name", "description": f"{CANARY} description", "team_id": TEAM,
        "commander_user_id": ALICE, "checklists": stages})
    base = f"/api/v0/incidents/{incident['id']}"
    call("GET", base)
    call("GET", "/api/v0/incidents", query=f"?team_id={TEAM}&search_term={CANARY}")
    call("POST", f"{base}/checklists/0/items", body={"title": f"{CANARY} added", "description": CANARY})
    call("PUT", f"{base}/checklists/0/items/1", body={"title": f"{CANARY} renamed"})
    call("PUT", f"{base}/checklists/0/items/0/state", body={"new_state": "closed"})
    call("PUT", f"{base}/checklists/0/items/0/assignee", body={"assignee_id": ALICE})
    call("PUT", f"{base}/checklists/0/reorder", body={"item_num": 0, "new_location": 1})
    call("PATCH", base, body={"active_stage": 1})
    call("PUT", f"{base}/end")
    call("PUT", f"{base}/restart")
    call("DELETE", f"{base}/checklists/0/items/0")
    # Refused requests carrying canary text must not leak it either.
    call("POST", "/api/v0/incidents", body={"name": CANARY * 20, "team_id": TEAM, "commander_user_id": ALICE})
    call("POST", f"{base}/checklists/0/items", body={"title": CANARY, f"{CANARY}_field": CANARY})
    call("PUT", f"{base}/end", user=BOB)
    call("GET", base, user=None)
    return sent


def test_incident_lifecycle_logs_no_names_descriptions_or_task_text(client, caplog):
    caplog.set_level(logging.INFO)
    lifecycle(client)
    assert caplog.records, "the requests should have been logged"
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "") + str(getattr(record, "extra", ""))
        assert CANARY not in text, f"{record.name}: {text}"


def test_each_request_gets_one_access_line_with_method_route_pattern_status_duration_and_user(client, caplog):
    caplog.set_level(logging.INFO, logger="plugin.access")
    sent = lifecycle(client)
    lines = [record.getMessage() for record in caplog.records if record.name == "plugin.access"]
    assert len(lines) == len(sent)
    for line, (method, path, status, user) in zip(lines, sent):
        match = ACCESS_LINE.match(line)
        assert match, line
        assert match.group(1, 2, 3, 5) == (method, pattern(path), str(status), user)
    assert {status for _, _, status, _ in sent} >= {200, 201, 400, 401, 403}


def test_access_line_records_the_user_even_when_the_request_is_refused(client, caplog):
    caplog.set_level(logging.INFO, logger="plugin.access")
    client.get("/api/v0/incidents/" + "a" * 26, headers=as_user(BOB))
    (line,) = [r.getMessage() for r in caplog.records if r.name == "plugin.access"]
    assert line.startswith("GET /api/v0/incidents/<incident_id> 404 ") and line.endswith(f"user={BOB}")


# ----- at every level: exceptions, database errors, unknown routes ---------------------------------
def test_every_logger_of_the_server_passes_its_records_through_the_filter_that_drops_typed_text(app):
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith("plugin.") or name == "gunicorn.error"]
    assert {"plugin.access", "plugin.api", "plugin.command.views", "gunicorn.error"} <= {lg.name for lg in loggers}
    assert [lg.name for lg in loggers if not logs.has_filter(lg)] == []


def test_an_unexpected_failure_is_logged_with_its_type_and_route_but_not_its_message(
        client, components, caplog, monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError(f"could not store {CANARY} name")

    monkeypatch.setattr(components.service, "create_incident", fails)
    caplog.set_level(logging.DEBUG)
    response = client.post("/api/v0/incidents", headers=as_user(ALICE), json={
        "name": f"{CANARY} name", "team_id": TEAM, "commander_user_id": ALICE})
    assert response.status_code == 500 and set(response.json) == {"error", "details"}
    (failure,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert failure.getMessage() == "unhandled error on POST /api/v0/incidents"
    assert "builtins.RuntimeError (message not logged" in failure.exc_text and "fails" in failure.exc_text
    assert_nothing_typed_logged(caplog)


def test_an_unexpected_slash_command_failure_is_logged_without_its_message(
        client, components, caplog, monkeypatch):
    components.settings.replace(components.settings.current.replace(SlashCommandToken=TOKEN))

    def fails(*args, **kwargs):
        raise KeyError(f"{CANARY} name")

    monkeypatch.setattr(components.service, "create_incident", fails)
    caplog.set_level(logging.DEBUG)
    response = client.post("/command", data={
        "token": TOKEN, "team_id": TEAM, "channel_id": uid("square"), "user_id": ALICE,
        "user_name": f"{CANARY}user", "text": f"start {CANARY} name"})
    assert response.status_code == 200 and "something went wrong" in response.json["text"]
    assert any("builtins.KeyError" in (r.exc_text or "") for r in caplog.records)
    assert_nothing_typed_logged(caplog)


def test_a_failed_statement_hides_its_parameters_and_its_logged_traceback_hides_the_message(
        app, components, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(sa.exc.DBAPIError) as failed:
        with components.db.read_engine.begin() as connection:
            # A NOT NULL violation; PostgreSQL's message quotes the failing row itself.
            connection.execute(sa.text("INSERT INTO incidents (id, name) VALUES (:id, :name)"),
                               {"id": "x" * 26, "name": f"{CANARY} name"})
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(failed.value)
    logging.getLogger("plugin.service").error("could not store an incident", exc_info=failed.value)
    assert any("IntegrityError" in (r.exc_text or "") for r in caplog.records)
    assert_nothing_typed_logged(caplog)


def test_a_path_that_matches_no_route_is_logged_as_a_dash(client, caplog):
    caplog.set_level(logging.DEBUG)
    assert client.get(f"/api/v0/{CANARY}/x?q={CANARY}", headers=as_user(ALICE)).status_code == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "plugin.access"]
    assert line.startswith("GET - 404 ")
    assert_nothing_typed_logged(caplog)


def assert_nothing_typed_logged(caplog) -> None:
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert CANARY not in text, f"{record.name}: {text}"


# ----- the real server: its access lines and gunicorn's error log ----------------------------------
@pytest.mark.slow
def test_the_real_servers_log_names_route_patterns_and_never_what_was_typed(tmp_path, database_url):
    env = clean_env(tmp_path, INCIDENT_SLASH_COMMAND_TOKEN=TOKEN,
                    **({} if database_url.startswith("sqlite") else {"INCIDENT_DATABASE_URL": database_url}))
    with serve(tmp_path, env) as base:
        status, incident = call(base, "POST", "/api/v0/incidents", {
            "name": "served", "team_id": TEAM, "commander_user_id": ALICE})
        assert status == 201
        concrete = f"/api/v0/incidents/{incident['id']}"
        assert call(base, "GET", f"{concrete}?search_term={CANARY}")[0] == 200
        assert call(base, "GET", f"/api/v0/incidents/{CANARY}%00")[0] == 400
        assert call(base, "GET", f"/api/v0/incidents?team_id={TEAM}&search_term={CANARY}%00")[0] == 400
        assert call(base, "POST", "/api/v0/incidents", {
            "name": f"{CANARY}\x00", "team_id": TEAM, "commander_user_id": ALICE})[0] == 400
        form = urllib.parse.urlencode({"token": TOKEN, "team_id": TEAM, "channel_id": incident["channel_id"],
                                       "user_id": ALICE, "user_name": "alice", "text": f"start {CANARY}\x00"})
        request = urllib.request.Request(f"{base}/command", data=form.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["text"].startswith("The command text")
        # A request line and a header with a control character: the front refuses them (400) or
        # passes them on as an unknown path (404); either way the log must not quote them.
        port = int(base.rsplit(":", 1)[1])
        for raw in (f"GET /{CANARY}\x01 HTTP/1.1\r\n\r\n".encode(),
                    f"GET / HTTP/1.1\r\nHost: x\r\nX-{CANARY}\x01: v\r\n\r\n".encode()):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
                connection.sendall(raw)
                assert connection.recv(1024)[9:12] in (b"400", b"404")
        assert call(base, "GET", "/healthz", user=None)[0] == 200
    (log_file,) = tmp_path.glob("server-*.log")  # where serve() writes the server's stdout and stderr
    text = log_file.read_text(errors="replace")
    assert "GET /api/v0/incidents/<incident_id> 200 " in text and "POST /command 200 " in text
    assert "GET /api/v0/incidents 400 " in text
    assert CANARY not in text and "?" not in "".join(
        line for line in text.splitlines() if "plugin.access" in line), text
