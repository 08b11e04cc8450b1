"""Statistics and the report through the fake Mattermost, for people outside a team or a private incident."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fakes.mattermost import FakeMattermost, send_slash_command
from tests.integration.conftest import SLASH_TOKEN

HEADLINE = "Incidents in this team in the last 90 days: {} started, 0 ended; {} active now."


class Teams:
    """acme (alice, bob, dave) with a private incident of alice's and a public one of bob's; other (dave, erin)."""

    def __init__(self, fake: FakeMattermost, backend: Any):
        self.fake, self.backend = fake, backend
        self.alice, self.bob, self.dave, self.erin = (fake.add_user(name) for name in ("alice", "bob", "dave", "erin"))
        self.root = fake.add_user("root", roles="system_admin system_user")
        self.acme = fake.add_team("acme", [self.alice, self.bob, self.dave])
        self.other = fake.add_team("other", [self.dave, self.erin])
        self.acme_square = fake.add_channel(self.acme, "town-square", [self.alice, self.bob, self.dave, fake.bot_id])
        self.other_square = fake.add_channel(self.other, "town-square", [self.dave, self.erin, fake.bot_id])
        self.private = self.create(self.alice, "secret outage", public=False)
        self.public = self.create(self.bob, "api slow", public=True)

    def create(self, user: str, name: str, *, public: bool) -> dict[str, Any]:
        response = httpx.post(f"{self.backend.url}/api/v0/incidents", headers=self.auth(user), timeout=10, json={
            "name": name, "team_id": self.acme, "commander_user_id": user, "public": public})
        assert response.status_code == 201, response.text
        return response.json()

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.fake.token_for(user)}"}

    def stats(self, user: str) -> dict[str, Any]:
        response = httpx.get(f"{self.backend.url}/api/v0/stats", params={"team_id": self.acme},
                             headers=self.auth(user), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def slash(self, user: str, channel: str) -> str:
        response = self.fake.run_command(self.backend.url, SLASH_TOKEN, user_id=user, channel_id=channel,
                                         text="stats")
        assert response.status_code == 200, response.text
        return response.json()["text"]


@pytest.fixture
def teams(fake_mattermost, mattermost_backend) -> Teams:
    return Teams(fake_mattermost, mattermost_backend)


def counts(seen: dict[str, Any]) -> tuple[int, int, int, int]:
    return seen["started"], seen["ended"], seen["active"], sum(level["count"] for level in seen["severity"])


def test_someone_outside_the_team_gets_zeros_like_an_empty_list_and_an_admin_gets_everything(teams):
    assert counts(teams.stats(teams.erin)) == (0, 0, 0, 0)
    listed = httpx.get(f"{teams.backend.url}/api/v0/incidents", params={"team_id": teams.acme},
                       headers=teams.auth(teams.erin), timeout=10)
    assert listed.status_code == 200 and listed.json()["total_count"] == 0
    assert counts(teams.stats(teams.bob)) == (1, 0, 1, 1)  # the public one only
    assert counts(teams.stats(teams.alice)) == (2, 0, 2, 2)
    assert counts(teams.stats(teams.root)) == (2, 0, 2, 2)


def test_slash_stats_count_the_team_of_the_channel_with_the_callers_visibility(teams):
    assert teams.slash(teams.dave, teams.acme_square).startswith(HEADLINE.format(1, 1))
    assert teams.slash(teams.dave, teams.other_square).startswith(HEADLINE.format(0, 0))
    assert teams.slash(teams.alice, teams.acme_square).startswith(HEADLINE.format(2, 2))


def test_slash_stats_naming_a_team_the_caller_is_not_in_count_nothing_of_it(teams):
    response = send_slash_command(
        teams.backend.url, SLASH_TOKEN, user_id=teams.erin, user_name="erin", team_id=teams.acme,
        team_domain="acme", channel_id=teams.other_square, channel_name="town-square", text="stats",
        response_url=f"{teams.fake.url}/hooks/commands/x", mentions=[], channel_mentions=[])
    assert response.status_code == 200
    assert response.json()["text"].startswith(HEADLINE.format(0, 0))


def test_the_report_of_a_private_incident_is_refused_to_others_as_the_incident_is(teams):
    path = f"{teams.backend.url}/api/v0/incidents/{teams.private['id']}"
    for user in (teams.bob, teams.erin):
        fetched = httpx.get(path, headers=teams.auth(user), timeout=10)
        reported = httpx.get(f"{path}/report.md", headers=teams.auth(user), timeout=10)
        assert (reported.status_code, reported.json()) == (fetched.status_code, fetched.json())
        assert reported.status_code == 403 and "secret outage" not in reported.text
    assert httpx.get(f"{path}/report.md", headers=teams.auth(teams.root), timeout=10).status_code == 200
    public = f"{teams.backend.url}/api/v0/incidents/{teams.public['id']}/report.md"
    assert httpx.get(public, headers=teams.auth(teams.erin), timeout=10).status_code == 403  # not in the team
    assert httpx.get(public, headers=teams.auth(teams.dave), timeout=10).status_code == 200


@pytest.mark.parametrize("level", ["x" * 300, "**sev1**", "sev1 sev2", "<b>sev1</b>", '"sev 1"'])
def test_an_odd_slash_severity_gets_an_ephemeral_answer_and_changes_nothing(teams, level):
    room = teams.private["channel_id"]
    posts = teams.fake.posts_in(room)
    response = teams.fake.run_command(teams.backend.url, SLASH_TOKEN, user_id=teams.alice, channel_id=room,
                                      text=f"severity {level}")
    assert response.status_code == 200 and response.json()["response_type"] == "ephemeral"
    text = response.json()["text"]
    assert "is not a severity level" in text or "takes one level" in text
    assert "x" * 41 not in text  # an echo of what was typed stays short
    assert teams.fake.posts_in(room) == posts
    fetched = httpx.get(f"{teams.backend.url}/api/v0/incidents/{teams.private['id']}",
                        headers=teams.auth(teams.alice), timeout=10)
    assert fetched.json()["severity"] == ""
