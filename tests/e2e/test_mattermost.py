"""The plugin inside a real Mattermost server: people run incidents as they would in the product.

The tests of this module share one server and run in order: an incident is
started and driven through its life, then the plugin is switched off and on.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import PLUGIN_ID, World, write_key
from tests.e2e.mattermost import PLUGIN_READY, wait_for_plugin_state
from tests.telemetry.dataplane import DataPlane, wait_until

pytestmark = pytest.mark.slow

TWO_STAGES = [
    {"title": "Triage", "items": [{"title": "Page the owner"}]},
    {"title": "Fix", "items": [{"title": "Roll back"}]},
]


def server_processes(home: Path) -> dict[int, dict[str, str]]:
    """The incident servers (and their workers) started for this Mattermost, with their environments."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(entry.decode(errors="replace").partition("=")[::2] for entry in environ if b"=" in entry)
        if env.get("INCIDENT_DATA_DIR", "").startswith(str(home)):
            found[int(proc.name)] = env
    return found


def wait_for_server_env(world: World, name: str, value: str) -> None:
    """Wait until the running incident server was started with name=value and answers through Mattermost."""
    def started_with_it() -> bool:
        processes = server_processes(world.server.home)
        return bool(processes) and all(env.get(name) == value for env in processes.values())

    wait_until(started_with_it, timeout=90, interval=0.5)
    wait_until(lambda: world.alice.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={
        "team_id": world.team_id}).status_code == 200, timeout=60, interval=0.5)


def server_parent(pid: int) -> int:
    """The parent process id of pid (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def reply_text(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["text"]


def incident_in(world: World, channel_id: str) -> dict:
    response = world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/channel/{channel_id}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def incident(world: World) -> dict:
    """An incident alice started with /incident start from a playbook of two stages."""
    playbook = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/playbooks", json={
        "title": "Database outage", "team_id": world.team_id, "checklists": TWO_STAGES})
    assert playbook.status_code == 201, playbook.text
    text = reply_text(world.alice.command(
        world.channel_id, f"/incident start Database is down --playbook {playbook.json()['id']}"))
    assert "Database is down" in text and "you are the commander" in text
    listed = world.alice.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": world.team_id})
    assert listed.status_code == 200, listed.text
    (found,) = [item for item in listed.json()["items"] if item["name"] == "Database is down"]
    return found


def test_python_server_runs_with_only_the_environment_it_needs(world: World, incident: dict):
    processes = server_processes(world.server.home)
    assert processes, "no incident server process found"
    for env in processes.values():
        assert not any(name.startswith("MM_") for name in env), sorted(env)
        assert "canary-not-for-plugins" not in env.values()
        assert env["INCIDENT_MATTERMOST_SITE_URL"] == world.server.url


def test_start_creates_the_incident_channel_in_mattermost_with_the_commander_in_it(world: World, incident: dict):
    channel = world.alice.ok("GET", f"/channels/{incident['channel_id']}")
    assert channel["display_name"] == "Database is down" and channel["type"] == "P"
    assert channel["team_id"] == world.team_id
    assert incident["commander_user_id"] == world.alice_id
    world.alice.ok("GET", f"/channels/{incident['channel_id']}/members/{world.alice_id}")


def test_an_incident_runs_to_its_end_and_restarts_through_slash_commands(world: World, incident: dict):
    channel_id = incident["channel_id"]
    world.alice.ok("POST", f"/channels/{channel_id}/members", json={"user_id": world.bob_id})
    assert "is done" in reply_text(world.alice.command(channel_id, "/incident check 1 1"))
    assert "now 2 of 2" in reply_text(world.alice.command(channel_id, "/incident stage next"))
    assert "now the commander" in reply_text(world.alice.command(channel_id, "/incident commander @bob"))
    assert "ended" in reply_text(world.bob.command(channel_id, "/incident end"))
    assert not incident_in(world, channel_id)["is_active"]
    assert "active again" in reply_text(world.bob.command(channel_id, "/incident restart"))
    current = incident_in(world, channel_id)
    assert current["is_active"] and current["commander_user_id"] == world.bob_id
    assert current["active_stage"] == 1
    assert current["checklists"][0]["items"][0]["state"] == "closed"


def test_the_bot_posts_the_incidents_updates_in_its_channel(world: World, incident: dict):
    bot = world.admin.ok("GET", "/users/username/incident")
    posts = world.alice.ok("GET", f"/channels/{incident['channel_id']}/posts")["posts"].values()
    by_bot = [post["message"] for post in posts if post["user_id"] == bot["id"]]
    assert by_bot, [post["message"] for post in posts]
    assert bot["is_bot"]


def test_slash_command_help_answers_only_the_caller(world: World):
    town_square = world.carol.ok("GET", f"/teams/{world.team_id}/channels/name/town-square")
    response = world.carol.command(town_square["id"], "/incident help")
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    assert "/incident start" in response.json()["text"]


def test_a_user_outside_the_incident_channel_is_refused_its_incident(world: World, incident: dict):
    response = world.carol.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}")
    assert response.status_code in (403, 404), response.text
    listed = world.carol.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": world.team_id})
    assert listed.status_code == 200 and incident["id"] not in [item["id"] for item in listed.json()["items"]]
    changed = world.carol.plugin(PLUGIN_ID, "PUT", f"/api/v0/incidents/{incident['id']}/end")
    assert changed.status_code in (403, 404), changed.text


def test_export_links_under_the_site_url_to_a_report_the_browser_session_opens(world: World, incident: dict):
    text = reply_text(world.alice.command(incident["channel_id"], "/incident export"))
    link = next(word for word in text.split() if word.startswith("http"))
    path = f"/api/v0/incidents/{incident['id']}/report.md"
    assert link.endswith(f"/plugins/{PLUGIN_ID}{path}"), text
    report = world.alice.plugin(PLUGIN_ID, "GET", path)
    assert report.status_code == 200 and report.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert report.text.startswith("# Incident report: Database is down\n")
    assert world.carol.plugin(PLUGIN_ID, "GET", path).status_code == 403
    stats = reply_text(world.alice.command(incident["channel_id"], "/incident stats"))
    assert stats.startswith("Incidents in this team in the last 90 days: ") and "active now" in stats


def test_a_request_without_a_mattermost_session_is_refused(world: World):
    from tests.e2e.mattermost import Client

    anonymous = Client(world.server.url)
    try:
        response = anonymous.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": world.team_id})
        assert response.status_code == 401
        forged = anonymous.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": world.team_id},
                                  headers={"Mattermost-User-Id": world.alice_id})
        assert forged.status_code == 401
    finally:
        anonymous.close()


def test_bodies_of_every_size_pass_through_mattermost_and_the_launcher_to_the_servers_limit(world: World):
    # Valid JSON padded past the part the launcher reads before it forwards: passed on as it arrives.
    padded = json.dumps({"title": "Padded", "team_id": world.team_id}) + " " * (100 * 1024)
    created = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/playbooks", content=padded.encode(),
                                 headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    for size in (300 * 1024, 70 * 1024 * 1024):  # over MaxBodyBytes; over the largest MaxBodyBytes
        refused = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/playbooks", content=b" " * size,
                                     headers={"Content-Type": "application/json"})
        assert refused.status_code == 413 and refused.json()["error"], (size, refused.text[:200])


def test_telemetry_carries_mattermosts_diagnostic_id_and_version(world: World, incident: dict,
                                                                   dataplane: DataPlane):
    client_config = world.admin.ok("GET", "/config/client", params={"format": "old"})
    messages = wait_until(lambda: dataplane.delivered(), timeout=60, interval=0.5)
    assert all(request.write_key == write_key(dataplane) for request in dataplane.requests)
    for message in messages:
        assert message["properties"]["diagnosticID"] == client_config["DiagnosticId"]
        assert message["properties"]["serverVersion"] == client_config["Version"]
    actions = {message["properties"].get("Action") for message in messages}
    assert actions, messages


def test_switching_mattermosts_diagnostics_off_silences_telemetry(world: World, incident: dict,
                                                                    dataplane: DataPlane):
    # Whatever the earlier steps recorded has been delivered before the switch.
    wait_until(lambda: {message["properties"]["Action"] for message in dataplane.delivered()} >= {"restart"},
               timeout=60, interval=0.5)
    world.admin.ok("PUT", "/config/patch", json={"LogSettings": {"EnableDiagnostics": False}})
    try:
        # The launcher restarts the server with the new switch.
        wait_for_server_env(world, "INCIDENT_SERVER_DIAGNOSTICS_ENABLED", "false")
        before = len(dataplane.delivered())
        assert "now 1 of 2" in reply_text(world.bob.command(incident["channel_id"], "/incident stage prev"))
        time.sleep(5)
        assert dataplane.delivered()[before:] == []
    finally:
        world.admin.ok("PUT", "/config/patch", json={"LogSettings": {"EnableDiagnostics": True}})
        wait_for_server_env(world, "INCIDENT_SERVER_DIAGNOSTICS_ENABLED", "true")


def test_switching_the_plugins_telemetry_setting_off_in_the_system_console_silences_it(
        world: World, incident: dict, dataplane: DataPlane):
    settings = {"rudderwritekey": write_key(dataplane), "rudderdataplaneurl": dataplane.url}
    world.admin.ok("PUT", "/config/patch", json={"PluginSettings": {"Plugins": {PLUGIN_ID: {
        **settings, "enabletelemetry": False}}}})
    try:
        wait_for_server_env(world, "INCIDENT_ENABLE_TELEMETRY", "false")
        before = len(dataplane.delivered())
        assert "now 2 of 2" in reply_text(world.bob.command(incident["channel_id"], "/incident stage next"))
        time.sleep(5)
        assert dataplane.delivered()[before:] == []
    finally:
        world.admin.ok("PUT", "/config/patch", json={"PluginSettings": {"Plugins": {PLUGIN_ID: {
            **settings, "enabletelemetry": True}}}})
        wait_for_server_env(world, "INCIDENT_ENABLE_TELEMETRY", "true")
    # On again: the next change is sent.
    assert "now 1 of 2" in reply_text(world.bob.command(incident["channel_id"], "/incident stage prev"))
    wait_until(lambda: len(dataplane.delivered()) > before, timeout=60, interval=0.5)


def test_events_waiting_when_telemetry_is_switched_off_in_the_system_console_are_never_sent(
        world: World, incident: dict, dataplane: DataPlane):
    settings = {"rudderwritekey": write_key(dataplane), "rudderdataplaneurl": dataplane.url}
    # Whatever the earlier steps recorded has been delivered before the switch.
    wait_until(lambda: world.admin.plugin(PLUGIN_ID, "GET", "/api/v0/telemetry").json()["pending"] == 0,
               timeout=60, interval=0.5)
    before = len(dataplane.delivered())
    dataplane.stop()
    try:
        # Recorded while the data plane is down: the event waits in the outbox.
        assert "Added your note" in reply_text(world.alice.command(incident["channel_id"],
                                                                  "/incident note paged the DBA"))
        world.admin.ok("PUT", "/config/patch", json={"PluginSettings": {"Plugins": {PLUGIN_ID: {
            **settings, "enabletelemetry": False}}}})
    finally:
        dataplane.start()
    try:
        # Neither the server on its way out nor the one started with telemetry off sends it.
        wait_for_server_env(world, "INCIDENT_ENABLE_TELEMETRY", "false")
        time.sleep(3)
        assert dataplane.delivered()[before:] == []
    finally:
        world.admin.ok("PUT", "/config/patch", json={"PluginSettings": {"Plugins": {PLUGIN_ID: {
            **settings, "enabletelemetry": True}}}})
        wait_for_server_env(world, "INCIDENT_ENABLE_TELEMETRY", "true")
    # Nor the server with telemetry on again: it sends only what is recorded from then on.
    time.sleep(5)
    assert dataplane.delivered()[before:] == []
    reply_text(world.alice.command(incident["channel_id"], "/incident note rolled back"))
    wait_until(lambda: len(dataplane.delivered()) > before, timeout=60, interval=0.5)
    time.sleep(2)
    assert len(dataplane.delivered()) == before + 1


def test_a_change_and_a_command_cut_short_by_a_crash_are_told_they_may_have_been_made(world: World, incident: dict):
    processes = server_processes(world.server.home)
    for pid in processes:
        os.kill(pid, signal.SIGSTOP)  # the server holds the requests unanswered...
    answers: dict[str, httpx.Response] = {}
    calls = [threading.Thread(target=lambda: answers.update(change=world.alice.plugin(
                 PLUGIN_ID, "POST", f"/api/v0/incidents/{incident['id']}/timeline", json={"summary": "paged"}))),
             threading.Thread(target=lambda: answers.update(command=world.alice.command(
                 incident["channel_id"], "/incident note paged")))]
    for call in calls:
        call.start()
    time.sleep(2)
    for pid in processes:
        os.kill(pid, signal.SIGKILL)  # ...and dies
    for call in calls:
        call.join(60)
    change = answers["change"]
    assert change.status_code == 502 and change.headers["Retry-After"] == "1"
    assert "may or may not have been made" in change.json()["error"]
    assert "may or may not have run" in reply_text(answers["command"])
    wait_until(lambda: len(server_processes(world.server.home)) == len(processes), timeout=60, interval=0.5)
    wait_until(lambda: world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").status_code
               == 200, timeout=60, interval=0.5)


def test_a_crashed_python_server_is_restarted_by_the_launcher(world: World, incident: dict):
    processes = server_processes(world.server.home)
    (master,) = [pid for pid in processes if server_parent(pid) not in processes]
    os.kill(master, signal.SIGKILL)
    wait_until(lambda: master not in server_processes(world.server.home) and
               len(server_processes(world.server.home)) == len(processes), timeout=60, interval=0.5)
    wait_until(lambda: world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").status_code
               == 200, timeout=60, interval=0.5)
    statuses = world.admin.ok("GET", "/plugins/statuses")
    assert [status["state"] for status in statuses if status["plugin_id"] == PLUGIN_ID] == [PLUGIN_READY]


def test_disabling_the_plugin_stops_the_python_server_and_enabling_serves_the_same_incidents(
        world: World, incident: dict):
    assert server_processes(world.server.home)
    bot = world.admin.ok("GET", "/users/username/incident")

    def active_tokens() -> int:
        return sum(token["is_active"] for token in world.admin.ok("GET", f"/users/{bot['id']}/tokens"))

    assert active_tokens() == 1
    world.admin.ok("POST", f"/plugins/{PLUGIN_ID}/disable")
    wait_until(lambda: not server_processes(world.server.home), timeout=60, interval=0.5)
    wait_until(lambda: active_tokens() == 0, timeout=30, interval=0.5)
    world.admin.ok("POST", f"/plugins/{PLUGIN_ID}/enable")
    wait_for_plugin_state(world.admin, PLUGIN_ID, PLUGIN_READY)
    assert server_processes(world.server.home)
    assert active_tokens() == 1
    again = incident_in(world, incident["channel_id"])
    assert again["id"] == incident["id"] and again["commander_user_id"] == world.bob_id
    assert "active" in reply_text(world.bob.command(incident["channel_id"], "/incident info")).lower()


def test_a_frozen_python_server_is_killed_and_restarted_by_the_launcher(world: World, incident: dict):
    processes = server_processes(world.server.home)
    (master,) = [pid for pid in processes if server_parent(pid) not in processes]
    os.killpg(master, signal.SIGSTOP)  # alive, but answering nothing, as a deadlocked server
    try:
        # About a minute of unanswered health checks, then the kill and the crash restart.
        wait_until(lambda: not set(processes) & set(server_processes(world.server.home)), timeout=150, interval=1)
        wait_until(lambda: world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").status_code
                   == 200, timeout=60, interval=0.5)
    finally:
        try:
            os.killpg(master, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: len(server_processes(world.server.home)) == len(processes), timeout=30, interval=0.5)
    statuses = world.admin.ok("GET", "/plugins/statuses")
    assert [status["state"] for status in statuses if status["plugin_id"] == PLUGIN_ID] == [PLUGIN_READY]
