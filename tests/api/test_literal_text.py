"""The local chat host's posts and the slash replies that read the database show people's text as typed."""
from __future__ import annotations

import pytest

from tests.api.helpers import start
from tests.api.test_command_endpoint import TOKEN, form
from tests.chat_text import channel_mentions, shape, shown, strong
from tests.conftest import ALICE, TEAM, as_user

NAME = "[Sign in again](https://evil.example) @channel *now*"


@pytest.fixture
def command_client(app, components):
    components.settings.replace(components.settings.current.replace(SlashCommandToken=TOKEN))
    return app.test_client()


def assert_plain(markdown: str) -> None:
    assert not {"link_open", "em_open", "image", "html_inline"} & set(shape(markdown)), markdown
    assert channel_mentions(markdown) == [], markdown


def test_stage_posts_and_the_stats_reply_show_names_and_titles_as_typed(client, command_client, components):
    incident = start(client, name=NAME, checklists=[{"title": NAME, "items": []}, {"title": "Fix", "items": []}])
    base = f"/api/v0/incidents/{incident['id']}"
    assert client.patch(base, json={"active_stage": 1}, headers=as_user(ALICE)).status_code == 200
    assert client.put(f"{base}/end", headers=as_user(ALICE)).status_code == 200
    posts = components.host.posts(incident["channel_id"])
    (stage_post,) = [post for post in posts if "changed the active stage" in post]
    assert strong(stage_post) == [NAME, "Fix"] and shown(stage_post).startswith("@")
    assert_plain(stage_post)
    stats = command_client.post("/command", data=form("stats")).json["text"]
    assert NAME in strong(stats) and NAME in shown(stats)
    assert_plain(stats)
    listed = command_client.post("/command", data=form("timeline", channel_id=incident["channel_id"])).json["text"]
    assert NAME in strong(listed) and f'"{NAME}"' in shown(listed)
    assert_plain(listed)


def test_a_refusal_quotes_a_level_as_typed_to_the_api_and_escaped_in_the_slash_reply(client, command_client):
    incident = start(client)
    hostile = "*sev9*&lt;[x](y)"
    response = client.patch(f"/api/v0/incidents/{incident['id']}", json={"severity": hostile},
                            headers=as_user(ALICE))
    assert response.status_code == 400
    assert response.json["error"].startswith(f"'{hostile}' is not a severity level: use one of sev1, ")
    reply = command_client.post("/command", data=form(f"severity {hostile}",
                                                      channel_id=incident["channel_id"])).json["text"]
    assert f"'{hostile}' is not a severity level" in shown(reply)
    assert_plain(reply)
    assert "strong_open" not in shape(reply) and "s_open" not in shape(reply)


def test_a_playbook_that_is_no_id_is_refused_quoting_it_as_typed_and_nothing_starts(client, command_client):
    hostile = "**[pb](https://evil.example)**_@channel_"
    reply = command_client.post("/command", data=form(f"start db --playbook {hostile}")).json["text"]
    assert f"'{hostile}' is not a playbook id" in shown(reply)
    assert_plain(reply)
    assert "strong_open" not in shape(reply)
    listed = client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE)).json
    assert listed["total_count"] == 0


def test_a_long_playbook_that_is_no_id_is_quoted_only_in_part(command_client):
    reply = command_client.post("/command", data=form(f"start db --playbook {'p' * 5000}")).json["text"]
    assert "is not a playbook id" in reply and len(reply) < 1000
