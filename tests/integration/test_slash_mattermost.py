"""Whole incidents through /incident with the fake Mattermost: the real HTTP path both ways."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from plugin.command.runner import HELP_TEXT
from plugin.model import IncidentFilter
from tests.api.helpers import TWO_STAGES
from tests.fakes.mattermost import FakeMattermost, send_slash_command
from tests.integration.conftest import SLASH_TOKEN


class World:
    """A team with alice and bob, a town square, and a way to type commands."""

    def __init__(self, fake: FakeMattermost, backend: Any):
        self.fake, self.backend = fake, backend
        self.alice = fake.add_user("alice")
        self.bob = fake.add_user("bob")
        self.carol = fake.add_user("carol")
        self.team = fake.add_team("acme", [self.alice, self.bob, self.carol])
        self.square = fake.add_channel(self.team, "town-square", [self.alice, self.bob, self.carol, fake.bot_id])

    def run(self, text: str, *, user: str | None = None, channel: str | None = None) -> dict[str, Any]:
        """Type /incident text and return the reply body (asserting Mattermost's expectations)."""
        response = self.fake.run_command(self.backend.url, SLASH_TOKEN, user_id=user or self.alice,
                                         channel_id=channel or self.square, text=text)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/json"
        body = response.json()
        assert set(body) == {"response_type", "text"}
        return body

    def incidents(self) -> list[Any]:
        """Every incident in the store (as a system-level read)."""
        with self.backend.components.db.unit_of_work(write=False) as uow:
            return uow.incidents.list(IncidentFilter())[1]


@pytest.fixture
def world(fake_mattermost, mattermost_backend) -> World:
    return World(fake_mattermost, mattermost_backend)


def test_a_whole_incident_runs_through_slash_commands_and_bot_posts(world):
    fake = world.fake
    reply = world.run('start "DB is down" --description "disk full"')
    assert reply["response_type"] == "ephemeral"
    assert "Incident **DB is down** started in ~db-is-down (private channel)" in reply["text"]
    channel = fake.channel_named(world.team, "db-is-down")
    assert channel["type"] == "P" and channel["purpose"] == "disk full"
    assert (channel["id"], world.alice) in fake.state.channel_members
    room = channel["id"]
    assert fake.posts_in(room) == ["This incident was started by @alice; the commander is @alice."]
    assert {p.user_id for p in fake.state.posts} == {fake.bot_id}

    assert "is the last stage" in world.run("stage next", channel=room)["text"]
    assert "`/incident end`" in world.run("stage next", channel=room)["text"]

    assert "not a member of this channel" in world.run("commander @bob", channel=room)["text"]
    fake.join(room, world.bob)
    assert world.run("commander @bob", channel=room)["text"] == "@bob is now the commander of **DB is down**."
    assert fake.posts_in(room)[-1] == "@alice changed the incident commander from @alice to @bob."
    assert world.run("commander", channel=room)["text"] == "The commander of **DB is down** is @bob."

    assert "ended" in world.run("end", channel=room, user=world.bob)["text"]
    assert fake.posts_in(room)[-1] == "This incident was ended by @bob."
    assert world.run("end", channel=room)["text"] == "This incident has already ended: only an active incident can be ended."
    assert "active again" in world.run("restart", channel=room)["text"]
    assert fake.posts_in(room)[-1] == "This incident was restarted by @alice."
    assert len(world.incidents()) == 1 and world.incidents()[0].is_active


def test_stages_and_tasks_move_with_confirmation_and_one_based_numbers(world):
    alice_token = world.fake.token_for(world.alice)
    created = httpx.post(f"{world.backend.url}/api/v0/incidents", headers={"Authorization": f"Bearer {alice_token}"},
                         json={"name": "api slow", "team_id": world.team, "commander_user_id": world.alice,
                               "checklists": TWO_STAGES})
    assert created.status_code == 201, created.text
    room = created.json()["channel_id"]

    assert world.run("stage prev", channel=room)["text"] == "**Triage** is already the first stage."
    asked = world.run("stage next", channel=room)["text"]
    assert "still has 2 open task(s)" in asked and "`/incident stage next --force`" in asked
    assert world.run("check 1 1", channel=room)["text"] == "Task 1.1 (**Page the on-call**) is done."
    assert world.run("check 1 1", channel=room)["text"] == "Task 1.1 (**Page the on-call**) is open again."
    assert "no task 3 in stage 1" in world.run("check 1 3", channel=room)["text"]
    assert "no stage 3" in world.run("check 3 1", channel=room)["text"]
    assert "now 2 of 2: **Resolve**" in world.run("stage next --force", channel=room)["text"]
    assert world.fake.posts_in(room)[-1] == "@alice changed the active stage from **Triage** to **Resolve**."
    assert "last stage" in world.run("stage next", channel=room)["text"]
    assert "now 1 of 2" in world.run("stage 1", channel=room)["text"]
    assert "no stage 5" in world.run("stage 5", channel=room)["text"]

    info = world.run("info", channel=room)["text"]
    assert "**api slow** (active)" in info and "Commander: @alice" in info
    assert "Stage 1 of 2: **Triage**" in info and "Tasks done: 0 of 3" in info


def test_list_shows_the_callers_active_incidents_in_this_team(world):
    world.run("start first")
    world.run("start second")
    ended = world.fake.channel_named(world.team, "first")["id"]
    world.run("end", channel=ended)
    listing = world.run("list")["text"]
    assert "**second** in ~second" in listing and "first" not in listing.split("\n", 1)[1]
    assert "no active incidents" in world.run("list", user=world.bob)["text"]


def test_announce_posts_in_channels_the_caller_may_post_in_and_names_the_rest(world):
    world.run("start outage")
    room = world.fake.channel_named(world.team, "outage")["id"]
    secret = world.fake.add_channel(world.team, "secret", [world.bob, world.fake.bot_id], private=True)
    reply = world.run("announce ~town-square ~secret ~nowhere", channel=room)["text"]
    assert "Announced in ~town-square." in reply
    assert "~secret (you cannot post there)" in reply and "~nowhere (no such channel in this team)" in reply
    assert world.fake.posts_in(world.square) == ["@alice started an incident in ~outage"]
    assert world.fake.posts_in(secret) == []


def test_a_wrong_slash_token_is_refused_with_401_and_changes_nothing(world):
    response = world.fake.run_command(world.backend.url, "wrongtoken0000000000000000", user_id=world.alice,
                                      channel_id=world.square, text="start nope")
    assert response.status_code == 401
    assert response.json()["error"].startswith("Missing or wrong slash command token")
    assert set(response.json()) == {"error", "details"}
    assert world.fake.channel_named(world.team, "nope") is None and world.incidents() == []


def test_a_garbage_command_line_gets_the_help_text_and_changes_nothing(world):
    for garbage in ('stage "next --force', 'check 1 "two', "\u202e;rm -rf /", "start --bogus db", "@ ~ \\"):
        reply = world.run(garbage)
        assert reply["response_type"] == "ephemeral" and HELP_TEXT in reply["text"]
    reply = world.run("\u0000\u202e;rm -rf /")
    assert reply["text"].startswith("The command text must not contain NUL characters")
    reply = world.run("launch the rockets")
    assert reply["text"].startswith("Unknown subcommand 'launch'.") and HELP_TEXT in reply["text"]
    assert world.incidents() == [] and world.fake.state.posts == []


def test_a_mattermost_outage_during_start_is_explained_and_creates_no_incident(world):
    world.fake.inject("POST", r"^/api/v4/channels$", 503, times=10, retry_after="0")
    reply = world.run("start db down")
    assert reply["text"] == "Mattermost is having trouble right now; try again in a minute."
    assert world.incidents() == [] and world.fake.channel_named(world.team, "db-down") is None
    assert world.fake.state.requests.count(("POST", "/api/v4/channels")) == 4


def test_an_unreachable_mattermost_is_explained_and_creates_no_incident(world):
    world.fake.stop()
    response = send_slash_command(world.backend.url, SLASH_TOKEN, user_id=world.alice, user_name="alice",
                                  team_id=world.team, channel_id=world.square, text="start db down")
    assert response.status_code == 200
    reply = response.json()["text"]
    assert "cannot be reached" in reply and "nothing was changed" in reply
    assert world.incidents() == []


def test_a_rate_limited_post_is_retried_after_retry_after(world):
    world.fake.inject("POST", r"^/api/v4/posts$", 429, times=1, retry_after="0")
    world.run("start throttled")
    room = world.fake.channel_named(world.team, "throttled")["id"]
    assert world.fake.posts_in(room) == ["This incident was started by @alice; the commander is @alice."]
    assert world.fake.state.requests.count(("POST", "/api/v4/posts")) == 2


def test_a_failed_post_leaves_the_committed_change_and_is_not_retried(world):
    world.run("start flaky")
    room = world.fake.channel_named(world.team, "flaky")["id"]
    world.fake.inject("POST", r"^/api/v4/posts$", 500, times=1)
    assert "ended" in world.run("end", channel=room)["text"]
    assert not world.incidents()[0].is_active
    assert world.fake.posts_in(room) == ["This incident was started by @alice; the commander is @alice."]


def test_an_unknown_playbook_is_refused_and_nothing_starts(world):
    reply = world.run("start db --playbook " + "p" * 26)
    assert "does not exist or you are not one of its members" in reply["text"]
    assert world.incidents() == []


def test_start_with_a_playbook_copies_its_stages_and_public_default(world):
    from plugin.playbooks import NewPlaybook
    from plugin.service import NewChecklist, NewItem

    playbook = world.backend.components.playbooks.create(world.alice, NewPlaybook(
        "Outage", world.team, create_public_incident=True,
        checklists=[NewChecklist("Triage", [NewItem("Page on-call")]), NewChecklist("Fix")]))
    reply = world.run(f"start db --playbook {playbook.id}")
    assert reply["text"].startswith("Incident **db** started")
    (incident,) = world.incidents()
    assert [c.title for c in incident.checklists] == ["Triage", "Fix"]
    assert incident.checklists[0].items[0].title == "Page on-call" and incident.public is True
    assert world.fake.channel_named(world.team, "db")["type"] == "O"


def test_a_repeated_incident_name_gets_a_suffixed_channel(world):
    world.run("start db")
    reply = world.run("start db")["text"]
    names = sorted(c["name"] for c in world.fake.state.channels.values() if c["name"].startswith("db"))
    assert names[0] == "db" and names[1].startswith("db-") and len(names) == 2
    assert f"~{names[1]}" in reply


def test_a_public_incident_gets_an_open_channel(world):
    world.run("start open air --public")
    assert world.fake.channel_named(world.team, "open-air")["type"] == "O"


def test_commander_of_an_unknown_user_says_so(world):
    world.run("start who")
    room = world.fake.channel_named(world.team, "who")["id"]
    assert world.run("commander @nobody", channel=room)["text"] == (
        "There is no user @nobody. Check the spelling of the username.")


def test_a_username_or_channel_of_dots_is_unknown_and_reaches_no_other_mattermost_path(world):
    world.run("start dots")
    room = world.fake.channel_named(world.team, "dots")["id"]
    assert world.run("commander @..", channel=room)["text"] == (
        "There is no user @... Check the spelling of the username.")
    assert world.run("add @.", channel=room)["text"].startswith("There is no user @.;")
    assert world.run("announce ~..", channel=room)["text"] == (
        "Not announced in ~.. (no such channel in this team).")
    assert world.fake.posts_in(room) == ["This incident was started by @alice; the commander is @alice."]


def test_commands_outside_an_incident_channel_point_to_start(world):
    assert "This channel has no incident" in world.run("end")["text"]


def test_a_non_member_cannot_end_a_private_incident(world):
    world.run("start hidden")
    room = world.fake.channel_named(world.team, "hidden")["id"]
    assert "no incident you can see" in world.run("end", channel=room, user=world.carol)["text"]
    assert world.incidents()[0].is_active


def test_a_mattermost_bearer_token_authenticates_rest_api_calls(world):
    token = world.fake.token_for(world.bob)
    url = f"{world.backend.url}/api/v0/incidents"
    ok = httpx.get(url, params={"team_id": world.team}, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["total_count"] == 0
    bad = httpx.get(url, params={"team_id": world.team}, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and "did not accept the bearer token" in bad.json()["error"]


def test_a_bearer_token_cannot_be_paired_with_a_forged_user_header(world):
    token = world.fake.token_for(world.bob)
    created = httpx.post(f"{world.backend.url}/api/v0/incidents",
                         headers={"Authorization": f"Bearer {token}", "Mattermost-User-ID": world.alice},
                         json={"name": "mine", "team_id": world.team, "commander_user_id": world.bob})
    assert created.status_code == 201
    assert world.fake.posts_in(created.json()["channel_id"]) == [
        "This incident was started by @bob; the commander is @bob."]


def test_the_mattermost_host_is_chosen_when_site_url_and_bot_token_are_set(world):
    from plugin.chat.mattermost import MattermostChatHost
    assert isinstance(world.backend.components.host, MattermostChatHost)
    assert world.backend.components.host.server_facts().version == "9.11.0"


def test_a_started_incident_is_reported_as_started_even_if_the_channel_name_lookup_fails(world):
    world.fake.inject("GET", r"^/api/v4/channels/[a-z0-9]{26}$", 503, times=4, retry_after="0")
    reply = world.run("start lookup fails")
    assert reply["text"] == "Incident **lookup fails** started in its channel (private channel); you are the commander."
    assert len(world.incidents()) == 1


def test_announce_reports_a_failed_post_per_channel_and_continues(world):
    world.run("start partial")
    room = world.fake.channel_named(world.team, "partial")["id"]
    ops = world.fake.add_channel(world.team, "ops", [world.alice, world.fake.bot_id])
    world.fake.inject("POST", r"^/api/v4/posts$", 500, times=1)
    reply = world.run("announce ~town-square ~ops", channel=room)["text"]
    assert reply == ("Announced in ~ops.\n"
                     "Not announced in ~town-square (Mattermost is having trouble right now; try again in a minute).")
    assert world.fake.posts_in(ops) == ["@alice started an incident in ~partial"]


def test_add_brings_people_into_the_incident_channel_on_mattermost(world):
    world.run("start bring people")
    room = world.fake.channel_named(world.team, "bring-people")["id"]
    reply = world.run("add @bob @carol", channel=room)
    assert reply["text"] == "Added @bob, @carol to this incident's channel."
    assert (room, world.bob) in world.fake.state.channel_members
    assert (room, world.carol) in world.fake.state.channel_members
    assert world.fake.posts_in(room)[-1] == "@alice added @bob, @carol to the incident."
    assert world.run("add @bob", channel=room)["text"] == "Already in the channel: @bob."
    assert "@bob is now the commander" in world.run("commander @bob", channel=room)["text"]


def test_add_of_an_unknown_user_adds_nobody(world):
    world.run("start nobody here")
    room = world.fake.channel_named(world.team, "nobody-here")["id"]
    reply = world.run("add @bob @nobody", channel=room)
    assert reply["text"] == "There is no user @nobody; nobody was added. Check the spelling of the username."
    assert (room, world.bob) not in world.fake.state.channel_members


def test_a_status_update_reaches_the_incident_and_broadcast_channels_through_the_mattermost_api(world):
    fake = world.fake
    world.run("start db is down")
    room = fake.channel_named(world.team, "db-is-down")["id"]
    stakeholders = fake.add_channel(world.team, "stakeholders", [world.alice, fake.bot_id])
    secret = fake.add_channel(world.team, "secret", [world.bob, fake.bot_id], private=True)
    incident = world.incidents()[0]
    alice_token = fake.token_for(world.alice)
    patch = httpx.patch(f"{world.backend.url}/api/v0/incidents/{incident.id}",
                        headers={"Authorization": f"Bearer {alice_token}"},
                        json={"broadcast_channel_ids": [stakeholders, secret]})
    assert patch.status_code == 403 and patch.json()["details"] == {"broadcast_channel_ids": [secret]}
    world.backend.components.service.set_broadcast_channels(world.alice, incident.id, [stakeholders])

    reply = world.run("update replica promoted --remind 1h", channel=room)["text"]

    assert reply.startswith("Status update posted in this channel and in 1 broadcast channel.")
    assert fake.posts_in(room)[-1] == "Status update from @alice:\n\nreplica promoted"
    assert fake.posts_in(stakeholders) == ["Status update on **db is down** (~db-is-down) from @alice:\n\n"
                                           "replica promoted"]
    assert fake.posts_in(secret) == [] and fake.posts_in(world.square) == []
    assert {p.user_id for p in fake.state.posts} == {fake.bot_id}


def test_a_due_reminder_is_posted_once_through_the_mattermost_api_mentioning_the_commander(world):
    fake, service = world.fake, world.backend.components.service
    world.run("start api slow")
    room = fake.channel_named(world.team, "api-slow")["id"]
    fake.join(room, world.bob)
    world.run("commander @bob", channel=room)
    now = [2_000_000_000_000]
    service.clock = lambda: now[0]
    world.run("remind 15m", channel=room)
    now[0] += 15 * 60 * 1000
    assert service.send_due_reminders() == 1 and service.send_due_reminders() == 0
    reminders = [post for post in fake.posts_in(room) if "please post a status update" in post]
    assert reminders == ["@bob, please post a status update on **api slow**: `/incident update <what changed>`. "
                         "Snooze this reminder with `/incident remind 30m`, or stop it with `/incident remind never`."]


def test_note_and_timeline_work_through_the_mattermost_api_with_names_as_mattermost_gives_them(world):
    fake = world.fake
    world.run("start db is down")
    room = fake.channel_named(world.team, "db-is-down")["id"]
    posts_before = list(fake.posts_in(room))
    assert world.run("note failover started by hand", channel=room)["text"] == (
        "Added your note to the timeline of **db is down**. `/incident timeline` shows it.")
    world.run("update replica promoted", channel=room)
    lines = world.run("timeline", channel=room)["text"].splitlines()
    assert lines[0] == "Timeline of **db is down**, oldest first:"
    assert [line.split(" UTC: ", 1)[1] for line in lines[1:]] == [
        '@alice started the incident "db is down" as its commander.', "failover started by hand",
        "@alice posted a status update: replica promoted"]
    # A note is not posted to the channel; the status update is.
    assert fake.posts_in(room) == [*posts_before, "Status update from @alice:\n\nreplica promoted"]


def test_export_links_to_the_report_which_opens_with_a_mattermost_token(world):
    world.run("start api slow")
    room = world.fake.channel_named(world.team, "api-slow")["id"]
    incident = world.incidents()[0]
    text = world.run("export", channel=room)["text"]
    link = f"{world.backend.url}/api/v0/incidents/{incident.id}/report.md"
    assert text == f"The report of **api slow**, one Markdown document to file: {link}"
    alice = httpx.get(link, headers={"Authorization": f"Bearer {world.fake.token_for(world.alice)}"}, timeout=10)
    assert alice.status_code == 200 and "- **Commander:** @alice" in alice.text
    carol = httpx.get(link, headers={"Authorization": f"Bearer {world.fake.token_for(world.carol)}"}, timeout=10)
    assert carol.status_code == 403


def test_stats_through_mattermost_count_what_the_caller_may_see(world):
    world.run("start api slow")
    world.run("start db down --public", user=world.bob)
    assert world.run("stats")["text"].startswith(
        "Incidents in this team in the last 90 days: 2 started, 0 ended; 2 active now.")
    assert world.run("stats", user=world.carol)["text"].startswith(
        "Incidents in this team in the last 90 days: 1 started, 0 ended; 1 active now.")
