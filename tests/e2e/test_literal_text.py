"""People's text in the bot's posts, in a real Mattermost: shown as typed, and never a channel-wide mention.

Mattermost decides whom a post notifies from its text and from the poster's
permission to use channel mentions (server/channels/app/notification.go,
``allowChannelMentions``); the bot has that permission, so the text must not hold an
``@channel`` Mattermost can read (the post prop ``mentionHighlightDisabled`` only tells
the web app not to highlight: the server never reads it). Whom a post notified shows in
each member's unread ``mention_count`` of the channel.
"""
from __future__ import annotations

import pytest

from tests.chat_text import channel_mentions, shown, strong
from tests.e2e.conftest import PLUGIN_ID, World
from tests.telemetry.dataplane import wait_until

pytestmark = pytest.mark.slow

NAME = "@channel [Sign in again](https://evil.example) **now**"


def reply_text(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["text"]


def mention_count(world: World, user_id: str, channel_id: str) -> int:
    """The user's unread mentions in the channel, as Mattermost counts them."""
    members = world.admin.ok("GET", f"/users/{user_id}/teams/{world.team_id}/channels/members")
    return next(member["mention_count"] for member in members if member["channel_id"] == channel_id)


def bot_posts(world: World, channel_id: str) -> list[dict]:
    """The bot's posts in the channel, oldest first."""
    bot = world.admin.ok("GET", "/users/username/incident")
    listed = world.admin.ok("GET", f"/channels/{channel_id}/posts")
    return [listed["posts"][post_id] for post_id in reversed(listed["order"])
            if listed["posts"][post_id]["user_id"] == bot["id"]]


@pytest.fixture(scope="module")
def hostile(world: World) -> dict:
    """An incident alice named with @channel and a link, whose status updates also go to the war room."""
    started = reply_text(world.alice.command(world.channel_id, f"/incident start {NAME}"))
    listed = world.alice.plugin(PLUGIN_ID, "GET", "/api/v0/incidents", params={"team_id": world.team_id})
    (incident,) = [item for item in listed.json()["items"] if item["name"] == NAME]
    patched = world.alice.plugin(PLUGIN_ID, "PATCH", f"/api/v0/incidents/{incident['id']}",
                                 json={"broadcast_channel_ids": [world.channel_id]})
    assert patched.status_code == 200, patched.text
    assert "Added @bob" in reply_text(world.alice.command(incident["channel_id"], "/incident add @bob"))
    return {**incident, "started": started}


def test_an_incident_named_at_channel_notifies_nobody_through_the_bots_posts(world: World, hostile: dict):
    here, war_room = hostile["channel_id"], world.channel_id
    before = {channel: mention_count(world, world.bob_id, channel) for channel in (here, war_room)}
    update = "all hands @all: @channel read this"
    assert "Status update posted" in reply_text(world.alice.command(here, f"/incident update {update}"))
    assert {channel: mention_count(world, world.bob_id, channel) for channel in (here, war_room)} == before
    # The same posts with a person's @username do notify them: the counts above could have moved.
    reply_text(world.alice.command(here, "/incident update @bob please look at the replica"))
    wait_until(lambda: mention_count(world, world.bob_id, war_room) == before[war_room] + 1, timeout=30,
               interval=0.5)
    assert mention_count(world, world.bob_id, here) == before[here] + 1


def test_the_bots_posts_show_the_name_and_the_update_as_typed(world: World, hostile: dict):
    assert NAME in strong(hostile["started"]), hostile["started"]
    copies = [post["message"] for post in bot_posts(world, world.channel_id) if "all hands" in post["message"]]
    assert len(copies) == 1, copies
    assert NAME in strong(copies[0]) and "all hands @all: @channel read this" in shown(copies[0])
    assert channel_mentions(copies[0]) == []
    (posted,) = [post["message"] for post in bot_posts(world, hostile["channel_id"]) if "all hands" in post["message"]]
    assert "all hands @all: @channel read this" in shown(posted) and channel_mentions(posted) == []
