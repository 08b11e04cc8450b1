"""Random sequences of well-formed and malformed `/incident` commands in an incident's channel.

The endpoint answers every failure with a 200 ephemeral reply, so "never a 500" says
nothing here: what must never appear is the apology for an unexpected failure. Each
command is a real subcommand with arguments drawn from values that are valid,
out of range, malformed or hostile, run by the commander, a non-member and an admin;
after each sequence the incident still satisfies the model's rules.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.command.views import APOLOGY, UNREACHABLE
from tests.conftest import ADMIN, ALICE, BOB, TEAM, as_user, uid

TOKEN = "sequencetoken0000000000000"

SUBCOMMANDS = ("start", "end", "restart", "stage", "check", "run", "commander", "add", "announce", "update", "remind",
               "severity", "list", "info", "timeline", "note", "export", "stats", "help", "frobnicate", "")
ARGUMENTS = (
    # numbers: valid, out of range, malformed
    "0", "1", "2", "3", "-1", "99999999999999999999", "1.5", "x", "next", "prev",
    # durations
    "30s", "15m", "2h", "1d", "1h30m", "0m", "never", "999999d", "-5m", "m", "1x",
    # people and channels
    "@alice", "@bob", "@admin", "@nobody", "@", "@@", "@channel", "~town-square", "~nowhere", "~",
    f"~{uid('square')}", f"@{BOB}",
    # flags and quoting
    "--force", "--public", "--description", "--playbook", "--severity", "--remind", "--", "-x",
    '"', '"two words"', '"unterminated', "'", "sev1", "none",
)
NAMES = {ALICE: "alice", BOB: "bob", ADMIN: "admin"}
CALLERS = (ALICE, ALICE, BOB, ADMIN)


def command() -> st.SearchStrategy[tuple[str, str]]:
    """A caller and the text of one command."""
    # Half the commands take no argument, so that the ones that need none do something.
    words = st.one_of(st.just([]), st.lists(st.one_of(st.sampled_from(ARGUMENTS), st.text(max_size=12)),
                                            min_size=1, max_size=3))
    return st.tuples(st.sampled_from(CALLERS),
                     st.builds(lambda sub, args: " ".join([sub, *args]), st.sampled_from(SUBCOMMANDS), words))


@pytest.fixture
def incident(app, components, client):
    """An active incident of alice's with two stages, and the users the commands name."""
    components.settings.replace(components.settings.current.replace(SlashCommandToken=TOKEN))
    for user_id, name in NAMES.items():
        components.host.note_user(user_id, name)
    body = {"name": "db is down", "team_id": TEAM, "commander_user_id": ALICE, "checklists": [
        {"title": "Triage", "items": [{"title": "Page on-call", "command": "/page oncall"}, {"title": "Open a bridge"}]},
        {"title": "Resolve", "items": [{"title": "Roll back"}]}]}
    response = client.post("/api/v0/incidents", json=body, headers=as_user(ALICE))
    assert response.status_code == 201, response.json
    return response.json


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(command(), min_size=1, max_size=8))
def test_no_sequence_of_commands_meets_an_unexpected_failure_or_breaks_the_incident(client, incident, commands):
    for user_id, text in commands:
        response = client.post("/command", data={
            "token": TOKEN, "team_id": TEAM, "channel_id": incident["channel_id"], "user_id": user_id,
            "user_name": NAMES[user_id], "command": "/incident", "text": text})
        assert response.status_code == 200 and response.mimetype == "application/json"
        assert response.json["text"], text
        assert response.json["text"] not in (APOLOGY, UNREACHABLE), text
    now = client.get(f"/api/v0/incidents/{incident['id']}", headers=as_user(ADMIN)).json
    assert -1 <= now["active_stage"] < len(now["checklists"])
    assert now["end_at"] == 0 if now["is_active"] else now["end_at"] >= now["create_at"]
