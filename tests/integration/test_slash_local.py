"""Whole incidents through /incident with the built-in local chat host (no Mattermost)."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from plugin.errors import PermissionDenied
from plugin.model import IncidentFilter
from plugin.service import NewChecklist, NewIncident, NewItem
from tests.conftest import ADMIN, ALICE, BOB, CAROL, TEAM, uid
from tests.fakes.mattermost import send_slash_command
from tests.integration.conftest import SLASH_TOKEN
from tests.threads import run_in_threads

SQUARE = uid("townsquare")
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol", ADMIN: "admin"}


def run(backend: Any, text: str, *, user: str = ALICE, channel: str = SQUARE, **extra: Any) -> dict[str, Any]:
    """Type /incident text as user in channel; return the reply body."""
    response = send_slash_command(backend.url, SLASH_TOKEN, user_id=user, user_name=NAMES[user], team_id=TEAM,
                                  channel_id=channel, text=text, **extra)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def incidents(backend: Any) -> list[Any]:
    """Every incident in the store."""
    with backend.components.db.unit_of_work(write=False) as uow:
        return uow.incidents.list(IncidentFilter())[1]


def test_a_whole_incident_runs_through_slash_commands_on_the_local_host(local_backend):
    host = local_backend.components.host
    reply = run(local_backend, "start Payments failing")
    assert "started in ~payments-failing" in reply["text"]
    room = host.find_channel_by_name(TEAM, "payments-failing")
    assert host.channel(room)["type"] == "P"
    assert host.posts(room) == ["This incident was started by @alice; the commander is @alice."]

    assert "last stage" in run(local_backend, "stage next", channel=room)["text"]
    assert run(local_backend, "commander @bob", channel=room)["text"] == (
        "There is no user @bob. Check the spelling of the username.")
    run(local_backend, "help", user=BOB)  # bob uses a command once: the local host now knows @bob
    host.add_channel_member(room, BOB)
    assert "@bob is now the commander" in run(local_backend, "commander @bob", channel=room)["text"]
    assert host.posts(room)[-1] == "@alice changed the incident commander from @alice to @bob."
    assert "ended" in run(local_backend, "end", channel=room)["text"]
    assert host.posts(room)[-1] == "This incident was ended by @alice."
    assert "active again" in run(local_backend, "restart", channel=room, user=BOB)["text"]
    assert host.posts(room)[-1] == "This incident was restarted by @bob."
    info = run(local_backend, "info", channel=room)["text"]
    assert "**Payments failing** (active)" in info and "Commander: @bob" in info
    assert "**Payments failing** in ~payments-failing" in run(local_backend, "list")["text"]


def test_mentioned_users_become_known_to_the_local_host(local_backend):
    run(local_backend, "start mentions")
    room = local_backend.components.host.find_channel_by_name(TEAM, "mentions")
    local_backend.components.host.add_channel_member(room, CAROL)
    reply = run(local_backend, "commander @carol", channel=room, mentions=[("carol", CAROL)])
    assert reply["text"] == "@carol is now the commander of **mentions**."


def test_check_toggles_a_task_and_reports_one_based_numbers(local_backend):
    service = local_backend.components.service
    incident = service.create_incident(ALICE, NewIncident("tasks", TEAM, ALICE, checklists=[
        NewChecklist("Triage", [NewItem("page"), NewItem("status page")]), NewChecklist("Fix")]))
    room = incident.channel_id
    assert run(local_backend, "check 1 2", channel=room)["text"] == "Task 1.2 (**status page**) is done."
    assert service.get_incident(ALICE, incident.id).checklists[0].items[1].state.value == "closed"
    assert "1 open task(s)" in run(local_backend, "stage next", channel=room)["text"]
    assert "Fix" in run(local_backend, "stage 2", channel=room)["text"]
    assert "already the active stage" in run(local_backend, "stage 2", channel=room)["text"]


def test_announce_on_the_local_host_posts_where_the_caller_is_a_member(local_backend):
    host = local_backend.components.host
    run(local_backend, "start announce me")
    room = host.find_channel_by_name(TEAM, "announce-me")
    ops = host.create_channel(TEAM, "ops", "Ops", public=True)
    host.add_channel_member(ops, ALICE)
    reply = run(local_backend, "announce ~ops", channel=room)
    assert reply["text"] == "Announced in ~ops."
    assert host.posts(ops) == ["@alice started an incident in ~announce-me"]


def test_get_requests_run_commands_like_post(local_backend):
    response = send_slash_command(local_backend.url, SLASH_TOKEN, user_id=ALICE, user_name="alice", team_id=TEAM,
                                  channel_id=SQUARE, text="help", method="GET")
    assert response.status_code == 200 and "/incident start" in response.json()["text"]


@pytest.mark.parametrize("token", ["", "x", SLASH_TOKEN[:-1] + "X", SLASH_TOKEN + "0"])
def test_a_wrong_or_missing_token_is_refused_and_runs_nothing(local_backend, token):
    response = send_slash_command(local_backend.url, token, user_id=ALICE, user_name="alice", team_id=TEAM,
                                  channel_id=SQUARE, text="start nope")
    assert response.status_code == 401 and set(response.json()) == {"error", "details"}
    assert incidents(local_backend) == []


def test_malformed_ids_in_the_request_are_a_400_in_the_error_shape(local_backend):
    response = send_slash_command(local_backend.url, SLASH_TOKEN, user_id="alice", user_name="alice", team_id=TEAM,
                                  channel_id=SQUARE, text="start nope")
    assert response.status_code == 400
    assert response.json()["details"] == {"user_id": "malformed"}
    assert incidents(local_backend) == []


def test_an_unexpected_failure_becomes_an_ephemeral_apology(local_backend, monkeypatch):
    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    run(local_backend, "start ok")
    monkeypatch.setattr(local_backend.components.host, "channel_name", broken)
    reply = run(local_backend, "list")
    assert reply["response_type"] == "ephemeral" and reply["text"].startswith("Sorry, something went wrong")


@pytest.fixture
def units_of_work(local_backend):
    """(write, ...) of every unit of work the service opens."""
    service = local_backend.components.service
    opened: list[bool] = []
    factory = service.uow_factory

    def counting(*, write: bool = True, **options):
        opened.append(write)
        return factory(write=write, **options)

    service.uow_factory = counting
    yield opened
    service.uow_factory = factory


@pytest.mark.parametrize("text", ["stage next --force", "check 1 1", "end", "commander @bob"])
def test_a_change_by_slash_command_reads_the_incident_then_changes_it_once(local_backend, units_of_work, text):
    host = local_backend.components.host
    run(local_backend, "help", user=BOB)  # the local host learns @bob
    incident = local_backend.components.service.create_incident(ALICE, NewIncident("once", TEAM, ALICE, checklists=[
        NewChecklist("Triage", [NewItem("page")]), NewChecklist("Fix")]))
    host.add_channel_member(incident.channel_id, BOB)
    units_of_work.clear()
    before = incidents(local_backend)[0]
    posts = host.posts(incident.channel_id)
    reply = run(local_backend, text, channel=incident.channel_id)["text"]
    after = incidents(local_backend)[0]
    # A read that answers the command, then the change in a unit of work of its own.
    assert units_of_work[:2] == [False, True], reply
    assert after.version == before.version + 1
    assert len(host.posts(incident.channel_id)) - len(posts) == (0 if text == "check 1 1" else 1)


def test_a_viewer_outside_the_channel_may_not_change_a_public_incident(local_backend):
    service = local_backend.components.service
    incident = service.create_incident(ALICE, NewIncident("guarded", TEAM, ALICE, public=True, checklists=[
        NewChecklist("Triage"), NewChecklist("Fix")]))
    service.get_incident(BOB, incident.id)  # BOB may see it (public) but is not in its channel
    with pytest.raises(PermissionDenied):
        service.set_active_stage(BOB, incident.id, 1)
    with pytest.raises(PermissionDenied):
        service.end_incident(BOB, incident.id)
    assert incidents(local_backend)[0].version == incident.version
    assert incidents(local_backend)[0].active_stage == 0 and incidents(local_backend)[0].is_active


def test_add_brings_a_second_person_into_the_incident_on_the_local_host(local_backend):
    host = local_backend.components.host
    run(local_backend, "help", user=BOB)  # bob has used a command: the local host knows @bob
    run(local_backend, "start two people")
    room = host.find_channel_by_name(TEAM, "two-people")
    assert run(local_backend, "add @bob", channel=room)["text"] == "Added @bob to this incident's channel."
    assert host.is_channel_member(room, BOB)
    assert host.posts(room)[-1] == "@alice added @bob to the incident."
    assert "@bob is now the commander" in run(local_backend, "commander @bob", channel=room)["text"]
    assert "is done" not in run(local_backend, "info", channel=room, user=BOB)["text"]


def test_add_needs_a_member_of_the_incident_channel(local_backend):
    run(local_backend, "help", user=CAROL)
    run(local_backend, "start closed door")
    room = local_backend.components.host.find_channel_by_name(TEAM, "closed-door")
    reply = run(local_backend, "add @carol", channel=room, user=BOB)
    assert "no incident you can see" in reply["text"]
    assert not local_backend.components.host.is_channel_member(room, CAROL)


def test_add_without_a_username_shows_how(local_backend):
    assert run(local_backend, "add")["text"].startswith("add needs at least one @username")


def test_note_and_timeline_tell_what_happened_with_times_oldest_first(local_backend):
    run(local_backend, "start timeline me")
    host = local_backend.components.host
    room = host.find_channel_by_name(TEAM, "timeline-me")
    assert run(local_backend, "note it's \"down\" for EU users", channel=room)["text"] == (
        "Added your note to the timeline of **timeline me**. `/incident timeline` shows it.")
    run(local_backend, "end", channel=room)
    lines = run(local_backend, "timeline", channel=room)["text"].splitlines()
    assert lines[0] == "Timeline of **timeline me**, oldest first:"
    assert [line.split(" UTC: ", 1)[1] for line in lines[1:]] == [
        '@alice started the incident "timeline me" as its commander.', 'it\'s "down" for EU users',
        "@alice ended the incident."]
    assert all(line.startswith("* 20") for line in lines[1:])
    assert len(host.posts(room)) == 2  # a note is not posted to the channel


def test_timeline_shows_the_last_twenty_entries_and_says_so(local_backend):
    run(local_backend, "start long one")
    room = local_backend.components.host.find_channel_by_name(TEAM, "long-one")
    for number in range(1, 22):
        run(local_backend, f"note step {number}", channel=room)
    lines = run(local_backend, "timeline", channel=room)["text"].splitlines()
    assert lines[0] == "Timeline of **long one**, oldest first (the last 20):"
    assert [line.rsplit(": ", 1)[1] for line in (lines[1], lines[-1])] == ["step 2", "step 21"]


@pytest.mark.parametrize("text, expected", [
    ("note", "note needs some text"),
    ("note " + "x" * 1025, "use at most 1024"),
    ("note tab\x00nul", "NUL"),
])
def test_a_bad_note_gets_an_ephemeral_reply_and_writes_nothing(local_backend, text, expected):
    run(local_backend, "start noted")
    room = local_backend.components.host.find_channel_by_name(TEAM, "noted")
    reply = run(local_backend, text, channel=room)
    assert reply["response_type"] == "ephemeral" and expected in reply["text"]
    incident = incidents(local_backend)[0]
    assert [e.event_type for e in local_backend.components.service.get_timeline(ALICE, incident.id)] == [
        "incident_created"]


def test_timeline_and_note_outside_an_incident_channel_say_where_to_run_them(local_backend):
    for text in ("timeline", "note hello"):
        assert "This channel has no incident you can see" in run(local_backend, text)["text"]


def test_update_posts_here_and_in_the_broadcast_channels_and_remind_snoozes_on_the_local_host(local_backend):
    components = local_backend.components
    host, service = components.host, components.service
    run(local_backend, "start db is down")
    room = host.find_channel_by_name(TEAM, "db-is-down")
    stakeholders = host.create_channel(TEAM, "stakeholders", "Stakeholders", public=True, member_ids=[ALICE])
    incident = service.get_incident_by_channel(ALICE, room)
    service.set_broadcast_channels(ALICE, incident.id, [stakeholders])

    reply = run(local_backend, 'update rolled back, "errors" dropping --remind 30m', channel=room)["text"]

    assert reply == ("Status update posted in this channel and in 1 broadcast channel. The commander will be "
                     "reminded to post an update in 30 minutes, and as often after.")
    assert host.posts(room)[-1] == 'Status update from @alice:\n\nrolled back, "errors" dropping'
    assert host.posts(stakeholders) == ['Status update on **db is down** (~db-is-down) from @alice:\n\n'
                                        'rolled back, "errors" dropping']
    assert service.get_incident(ALICE, incident.id).reminder_seconds == 1800
    assert run(local_backend, "remind never", channel=room)["text"] == (
        "No status update reminders for this incident: `/incident remind 30m` sets one.")
    assert host.posts(room)[-1] == "@alice set the status update reminder: no more (until an update sets it)."
    assert run(local_backend, "remind 2h", channel=room)["text"].endswith("in 2 hours, and as often after.")


@pytest.mark.parametrize("text, says", [
    ("update", "update needs a message"),
    ("update fixed --remind soon", "'soon' is not a duration"),
    ("remind 5s", "A reminder period is 0 (never) or from 10 seconds to 30 days"),
])
def test_update_and_remind_answer_bad_input_with_an_ephemeral_reply_and_change_nothing(local_backend, text, says):
    run(local_backend, "start quiet")
    room = local_backend.components.host.find_channel_by_name(TEAM, "quiet")
    posts = local_backend.components.host.posts(room)
    reply = run(local_backend, text, channel=room)
    assert reply["response_type"] == "ephemeral" and says in reply["text"]
    assert local_backend.components.host.posts(room) == posts


def test_update_in_an_ended_incident_says_why_it_is_refused(local_backend):
    run(local_backend, "start over")
    room = local_backend.components.host.find_channel_by_name(TEAM, "over")
    run(local_backend, "end", channel=room)
    reply = run(local_backend, "update all good", channel=room)["text"]
    assert reply.startswith("This incident has ended: it takes no status updates. Restart it first")


def test_update_outside_an_incident_channel_says_where_to_run_it(local_backend):
    assert "This channel has no incident you can see" in run(local_backend, "update hello")["text"]


def test_help_lists_update_and_remind(local_backend):
    text = run(local_backend, "help")["text"]
    assert "`/incident update <message> [--remind 30m]`" in text and "`/incident remind 30m|never`" in text


def _report_link(text: str) -> str:
    """The one URL in a reply."""
    links = [word for word in text.split() if word.startswith("http")]
    assert len(links) == 1, text
    return links[0]


def test_export_replies_with_a_link_to_the_report_on_this_server_that_opens_it(local_backend):
    run(local_backend, "start Payments failing")
    room = local_backend.components.host.find_channel_by_name(TEAM, "payments-failing")
    incident = incidents(local_backend)[0]
    reply = run(local_backend, "export", channel=room)
    assert reply["response_type"] == "ephemeral"
    link = _report_link(reply["text"])
    assert link == f"{local_backend.url}/api/v0/incidents/{incident.id}/report.md"
    opened = httpx.get(link, headers={"Mattermost-User-ID": ALICE}, timeout=10)
    assert opened.status_code == 200 and opened.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert opened.text.startswith("# Incident report: Payments failing\n")


def test_export_through_the_plugin_links_under_mattermosts_site_url(local_backend):
    run(local_backend, "start Payments failing")
    room = local_backend.components.host.find_channel_by_name(TEAM, "payments-failing")
    incident = incidents(local_backend)[0]
    reply = run(local_backend, "export", channel=room, site_url="https://chat.example.com/")
    assert _report_link(reply["text"]) == ("https://chat.example.com/plugins/com.mattermost.plugin-incident-response"
                                           f"/api/v0/incidents/{incident.id}/report.md")


def test_export_outside_an_incident_channel_says_where_to_run_it(local_backend):
    assert "This channel has no incident you can see" in run(local_backend, "export")["text"]
    assert "export takes no arguments" in run(local_backend, "export now")["text"]


def test_stats_reply_with_the_teams_figures_without_private_incidents_of_other_channels(local_backend):
    run(local_backend, "start first --severity sev2", user=ALICE)
    run(local_backend, "start second", user=ALICE)
    room = local_backend.components.host.find_channel_by_name(TEAM, "second")
    run(local_backend, "end", channel=room)
    reply = run(local_backend, "stats")
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith("Incidents in this team in the last 90 days: 2 started, 1 ended; 1 active now.")
    assert "* Time to end: " in reply["text"] and "* Stage **Checklist**: " in reply["text"]
    assert reply["text"].endswith("\n* By severity: sev2 1, none 1.")
    # bob is in neither private channel: he sees no incident at all.
    assert run(local_backend, "stats", user=BOB)["text"] == (
        "Incidents in this team in the last 90 days: 0 started, 0 ended; 0 active now.")


def test_people_adding_the_same_person_at_once_by_slash_command_see_one_added_and_one_post(local_backend):
    host = local_backend.components.host
    run(local_backend, "help", user=BOB)  # the local host now knows @bob
    for round_ in range(5):  # each round a new incident, to which six commands at once add @bob
        run(local_backend, f"start crowded {round_}")
        room = host.find_channel_by_name(TEAM, f"crowded-{round_}")
        replies: list[str] = []
        run_in_threads(lambda _number: replies.append(run(local_backend, "add @bob", channel=room)["text"]), 6, 60,
                       "adds")
        assert sorted(replies) == ["Added @bob to this incident's channel."] + ["Already in the channel: @bob."] * 5
        assert [post for post in host.posts(room) if "to the incident" in post] == [
            "@alice added @bob to the incident."]
