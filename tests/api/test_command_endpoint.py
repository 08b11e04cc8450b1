"""POST /command over Flask's test client: any text gets a JSON reply, never a 500."""
from __future__ import annotations

import gzip
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.chat.local import LocalChatHost
from plugin.settings import SettingsError
from tests.api.helpers import start
from tests.conftest import ALICE, TEAM, as_user, uid

TOKEN = "endpointtoken0000000000000"


@pytest.fixture
def command_client(app, components):
    components.settings.replace(components.settings.current.replace(SlashCommandToken=TOKEN))
    return app.test_client()


def form(text: str, **extra: str) -> dict[str, str]:
    """The fields Mattermost sends, for alice in the town square."""
    return {"token": TOKEN, "team_id": TEAM, "team_domain": "acme", "channel_id": uid("square"),
            "channel_name": "town-square", "user_id": ALICE, "user_name": "alice", "command": "/incident",
            "text": text, "trigger_id": "t", "root_id": "", "response_url": "http://127.0.0.1:1/hooks/commands/x",
            **extra}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_any_command_text_gets_a_200_json_reply(command_client, text):
    response = command_client.post("/command", data=form(text), headers={"Authorization": f"Token {TOKEN}"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.json["response_type"] == "ephemeral" and response.json["text"]


def test_the_token_may_come_in_the_form_field_alone(command_client):
    response = command_client.post("/command", data=form("help"))
    assert response.status_code == 200 and "/incident start" in response.json["text"]


def test_without_a_configured_token_the_endpoint_refuses_everything(app):
    response = app.test_client().post("/command", data=form("start x", token=""))
    assert response.status_code == 401
    assert "SlashCommandToken" in response.json["error"] and response.json["details"] == {}


def test_the_local_host_is_used_when_mattermost_is_not_configured(components):
    assert isinstance(components.host, LocalChatHost)


def test_a_bearer_token_without_mattermost_is_not_a_way_in(client):
    response = client.get(f"/api/v0/incidents?team_id={TEAM}", headers={"Authorization": "Bearer abc"})
    assert response.status_code == 401 and "Mattermost-User-ID" in response.json["error"]


def test_list_shows_at_most_the_ten_newest_incidents(command_client, ticking_clock):
    for number in range(12):
        command_client.post("/command", data=form(f"start incident {number:02d}"))
    lines = command_client.post("/command", data=form("list")).json["text"].split("\n")
    assert len(lines) == 11
    assert "**incident 11**" in lines[1] and "**incident 02**" in lines[10]


def test_the_site_url_setting_must_be_an_http_url(settings):
    with pytest.raises(SettingsError, match="MattermostSiteUrl"):
        settings.replace(MattermostSiteUrl="chat.example.com")
    assert settings.replace(MattermostSiteUrl="https://chat.example.com/").mattermost_site_url == (
        "https://chat.example.com")


def test_the_api_still_answers_the_host_header(client):
    assert client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE)).status_code == 200


def test_stage_next_on_the_last_stage_of_an_ended_incident_does_not_suggest_ending_it(client, command_client):
    incident = start(client, checklists=[{"title": "Triage", "items": []}, {"title": "Fix", "items": []}])
    here = {"channel_id": incident["channel_id"]}
    command_client.post("/command", data=form("stage next", **here))
    active = command_client.post("/command", data=form("stage next", **here)).json["text"]
    assert "`/incident end`" in active
    command_client.post("/command", data=form("end", **here))
    ended = command_client.post("/command", data=form("stage next", **here)).json["text"]
    assert ended.startswith("**Fix** is the last stage.") and "/incident end" not in ended


@pytest.mark.parametrize("text", ["remind 99999d", "remind 12345678s", "update db is back --remind 99999d"])
def test_a_reminder_too_long_gets_the_allowed_range_and_changes_nothing(client, command_client, components, text):
    incident = start(client)
    here = {"channel_id": incident["channel_id"]}
    posts = len(components.host.posts(incident["channel_id"]))
    reply = command_client.post("/command", data=form(text, **here)).json["text"]
    assert reply.startswith("A reminder period is 0 (never) or from 10 seconds to 30 days"), reply
    assert len(components.host.posts(incident["channel_id"])) == posts
    updates = client.get(f"/api/v0/incidents/{incident['id']}/status-updates", headers=as_user(ALICE)).json
    assert updates["total_count"] == 0


@pytest.mark.parametrize("text, says", [
    ("stage 1234567", "There is no stage 1234567: this incident has 2 stage(s), numbered 1 to 2."),
    ("check 1234567 1", "There is no stage 1234567: this incident has 2 stage(s), numbered 1 to 2."),
    ("run 1 1234567", "There is no task 1234567 in stage 1 (**Triage**): it has 1 task(s), numbered 1 to 1."),
])
def test_a_large_stage_or_task_number_is_answered_with_the_numbers_there_are(client, command_client, text, says):
    incident = start(client, checklists=[{"title": "Triage", "items": [{"title": "page"}]},
                                         {"title": "Fix", "items": []}])
    assert command_client.post("/command", data=form(text, channel_id=incident["channel_id"])).json["text"] == says


def test_a_compressed_slash_command_is_a_415_asking_for_it_uncompressed_not_a_missing_token(command_client):
    body = gzip.compress(urlencode(form("start compressed")).encode())
    response = command_client.post("/command", data=body, content_type="application/x-www-form-urlencoded",
                                   headers={"Content-Encoding": "gzip"})
    assert response.status_code == 415 and response.json["details"] == {"content_encoding": "gzip"}
    assert "uncompressed" in response.json["error"]
