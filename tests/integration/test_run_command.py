"""A task's slash command, run through the plugin's launcher (a fake here; tests/e2e has the real one)."""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from plugin.chat.mattermost import MattermostChatHost
from plugin.errors import BadInput, HostUnavailable
from plugin.model import Incident
from plugin.service import NewItem
from plugin.settings import SettingsError, load_settings
from tests.conftest import ALICE, BOB, TEAM, as_user
from tests.fakes.launcher import FakeLauncher
from tests.integration.conftest import SLASH_TOKEN, _serve
from tests.integration.test_slash_mattermost import World

SECRET = "launchersecret"
CHANNEL, USER = "c" * 26, "u" * 26


@pytest.fixture
def launcher() -> Iterator[FakeLauncher]:
    fake = FakeLauncher(SECRET).start()
    yield fake
    fake.stop()


@pytest.fixture
def adapter(launcher: FakeLauncher) -> Iterator[MattermostChatHost]:
    host = MattermostChatHost(lambda: "http://127.0.0.1:9", lambda: "token", launcher_url=lambda: launcher.url,
                              launcher_secret=lambda: SECRET)
    yield host
    host.close()


# ----- the adapter ------------------------------------------------------------------------------------
def test_the_adapter_asks_the_launcher_to_run_the_command_as_the_user_with_the_secret(adapter, launcher):
    adapter.run_command(USER, TEAM, CHANNEL, "/deploy rollback --fast")
    assert launcher.calls == [{"path": "/commands/execute", "secret": SECRET, "body": {
        "user_id": USER, "team_id": TEAM, "channel_id": CHANNEL, "command": "/deploy rollback --fast"}}]


def test_a_command_mattermost_refuses_is_bad_input_with_its_reason_on_one_line(adapter, launcher):
    launcher.answer(422, {"error": "Command with a trigger of 'deploy' not found.\n" + "x" * 500})
    with pytest.raises(BadInput) as refused:
        adapter.run_command(USER, TEAM, CHANNEL, "/deploy rollback")
    assert refused.value.message.startswith(
        "Mattermost did not run the command: Command with a trigger of 'deploy' not found. xxx")
    assert "\n" not in refused.value.message and len(refused.value.message) < 400


@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_launcher_that_fails_is_host_unavailable_and_the_log_names_no_command(adapter, launcher, caplog, status):
    launcher.answer(status, {"error": "no"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HostUnavailable):
        adapter.run_command(USER, TEAM, CHANNEL, "/deploy canary7f3q")
    assert "canary7f3q" not in caplog.text


def test_a_launcher_that_is_down_is_host_unavailable(adapter, launcher):
    launcher.stop()
    with pytest.raises(HostUnavailable):
        adapter.run_command(USER, TEAM, CHANNEL, "/deploy rollback")


def test_a_wrong_secret_is_refused_by_the_launcher_and_reported_as_unavailable(launcher):
    host = MattermostChatHost(lambda: "http://127.0.0.1:9", lambda: "token", launcher_url=lambda: launcher.url,
                              launcher_secret=lambda: "wrong")
    try:
        with pytest.raises(HostUnavailable):
            host.run_command(USER, TEAM, CHANNEL, "/deploy rollback")
    finally:
        host.close()


def test_without_the_launcher_the_adapter_runs_nothing_and_says_why():
    host = MattermostChatHost(lambda: "http://127.0.0.1:9", lambda: "token")
    try:
        with pytest.raises(BadInput, match="needs incident-response inside Mattermost"):
            host.run_command(USER, TEAM, CHANNEL, "/deploy rollback")
    finally:
        host.close()


@pytest.mark.parametrize("url", ["http://10.0.0.7:8066", "https://127.0.0.1:8066", "http://127.0.0.1.evil.example:1",
                                 "http://127.0.0.1:8066/x", "127.0.0.1:8066"])
def test_a_launcher_url_off_loopback_is_refused_at_start_up(url):
    with pytest.raises(SettingsError, match="INCIDENT_LAUNCHER_URL must be a loopback http URL"):
        load_settings(environ={"INCIDENT_LAUNCHER_URL": url})


def test_the_launcher_url_is_read_from_the_environment():
    assert load_settings(environ={"INCIDENT_LAUNCHER_URL": "http://127.0.0.1:8066/"}).launcher_url == \
        "http://127.0.0.1:8066"
    assert load_settings(environ={}).launcher_url == ""


# ----- the whole server over the fake Mattermost ----------------------------------------------------------
@pytest.fixture
def world(fake_mattermost, settings, launcher) -> Iterator[World]:
    wired = dataclasses.replace(settings.replace(
        SlashCommandToken=SLASH_TOKEN, MattermostSiteUrl=fake_mattermost.url,
        MattermostBotToken=fake_mattermost.bot_token, HostSecret=SECRET), launcher_url=launcher.url)
    for backend in _serve(wired):
        yield World(fake_mattermost, backend)


def add_task(world: World, incident: Incident, title: str, command: str) -> None:
    """Alice adds a task with this command to the incident's first stage."""
    world.backend.components.service.add_item(world.alice, incident.id, 0, NewItem(title, command=command))


def test_run_in_chat_runs_the_tasks_command_as_the_caller_in_the_incident_channel(world, launcher, settings):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Roll back", "/deploy rollback")
    reply = world.run("run 1 1", channel=incident.channel_id)
    assert reply == {"response_type": "ephemeral",
                     "text": "Ran the command of task 1.1 (**Roll back**) in this channel, as you."}
    assert [call["body"] for call in launcher.calls] == [{
        "user_id": world.alice, "team_id": world.team, "channel_id": incident.channel_id,
        "command": "/deploy rollback"}]
    assert world.incidents()[0].checklists[0].items[0].command_last_run > 0
    refused = world.run("run 1 1", user=world.bob, channel=incident.channel_id)
    assert "no incident you can see" in refused["text"] and len(launcher.calls) == 1


def test_run_in_chat_tells_mattermosts_refusal_and_records_nothing(world, launcher):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Roll back", "/nope")
    launcher.answer(422, {"error": "Command with a trigger of 'nope' not found."})
    reply = world.run("run 1 1", channel=incident.channel_id)
    assert reply["text"] == ("Mattermost did not run the command of task 1.1 (**Roll back**): Command with a "
                             "trigger of 'nope' not found.")
    assert world.incidents()[0].checklists[0].items[0].command_last_run == 0


def test_two_runs_of_one_task_at_once_both_run_and_both_are_recorded(world, launcher):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Roll back", "/deploy rollback")
    before = world.incidents()[0]
    launcher.answer_together(2)  # both commands are running before either answers
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: world.run("run 1 1", channel=incident.channel_id), range(2)))
    assert [reply["text"] for reply in replies] == ["Ran the command of task 1.1 (**Roll back**) in this "
                                                    "channel, as you."] * 2
    assert len(launcher.calls) == 2
    after = world.incidents()[0]
    assert after.version == before.version + 2 and after.checklists[0].items[0].command_last_run > 0
    with world.backend.components.db.unit_of_work(write=False) as uow:
        kinds = [entry.event_type for entry in uow.timeline.list(incident.id)]
    assert kinds.count("task_command_run") == 2


def test_a_run_sent_with_if_match_runs_only_at_that_version_and_is_then_recorded(world, launcher):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Roll back", "/deploy rollback")
    url = f"{world.backend.url}/api/v0/incidents/{incident.id}"
    headers = {"Mattermost-User-ID": world.alice, "X-Host-Secret": SECRET}
    stale = httpx.get(url, headers=headers).headers["ETag"]
    add_task(world, incident, "Look", "")
    refused = httpx.post(f"{url}/checklists/0/items/0/run", headers={**headers, "If-Match": stale})
    assert refused.status_code == 412 and launcher.calls == []
    current = httpx.get(url, headers=headers).headers["ETag"]
    launcher.meanwhile = lambda: add_task(world, incident, "Meanwhile", "")  # the version moves while it runs
    ran = httpx.post(f"{url}/checklists/0/items/0/run", headers={**headers, "If-Match": current})
    assert ran.status_code == 200 and len(launcher.calls) == 1
    assert ran.json()["checklists"][0]["items"][0]["command_last_run"] > 0


# ----- the API on the embedded chat host (both databases) ------------------------------------------------
def test_the_run_route_on_the_embedded_host_refuses_and_records_nothing(client):
    body = {"name": "db is down", "team_id": TEAM, "commander_user_id": ALICE, "checklists": [
        {"title": "Triage", "items": [{"title": "Roll back", "command": "/deploy rollback"}, {"title": "Look"}]}]}
    incident = client.post("/api/v0/incidents", json=body, headers=as_user(ALICE)).json
    run = f"/api/v0/incidents/{incident['id']}/checklists/0/items/%d/run"
    refused = client.post(run % 0, headers=as_user(ALICE))
    assert refused.status_code == 400 and "embedded chat host runs no slash commands" in refused.json["error"]
    no_command = client.post(run % 1, headers=as_user(ALICE))
    assert no_command.status_code == 400 and "has no command to run" in no_command.json["error"]
    assert client.post(run % 2, headers=as_user(ALICE)).status_code == 404
    assert client.post(run % 0, headers=as_user(BOB)).status_code == 403
    after = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE)).json
    assert client.get(f"/api/v0/incidents/{incident['id']}/timeline", headers=as_user(ALICE)).json[-1][
        "event_type"] == "incident_created"
    assert [item["command_last_run"] for item in after["checklists"][0]["items"]] == [0, 0]


def test_run_in_chat_shows_a_refusal_quoting_a_hostile_command_as_text(world, launcher):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Sign in", "/[x](http://evil)")
    launcher.answer(422, {"error": "Command with a trigger of '[x](http://evil)' not found. @channel"})
    text = world.run("run 1 1", channel=incident.channel_id)["text"]
    assert "'\\[x\\](http://evil)'" in text and "@\u2060channel" in text  # no link, nobody notified


def test_run_in_chat_on_a_task_without_a_command_says_so_and_runs_nothing(world, launcher):
    world.run('start db is down')
    incident = world.incidents()[0]
    add_task(world, incident, "Look", "")
    reply = world.run("run 1 1", channel=incident.channel_id)
    assert reply["text"] == ("The task 1.1 (**Look**) has no command to run: give it one first, e.g. "
                             "/deploy rollback.")
    assert launcher.calls == []
