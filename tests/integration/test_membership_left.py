"""A leave reported by the launcher ends a cached membership in every process on the database at once."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from plugin.app import create_app
from plugin.chat.mattermost import MattermostChatHost
from plugin.membership import LEFT_PATH
from plugin.settings import Settings
from tests.fakes.mattermost import FakeMattermost

SECRET = "launcher-secret-0123456789"
INCIDENT_NAME = "payroll database leaked"


def make_app(settings: Settings) -> Any:
    application = create_app(settings, migrate_db=False)
    application.config["TESTING"] = True
    return application


def stop(application: Any) -> None:
    components = application.extensions["incident"]
    components.webhook_sender.stop(5)
    components.egress.stop(5)
    components.host.close()
    components.db.dispose()


@pytest.fixture
def mm_settings(settings: Settings, fake_mattermost: FakeMattermost) -> Settings:
    return settings.replace(MattermostSiteUrl=fake_mattermost.url, MattermostBotToken=fake_mattermost.bot_token,
                            HostSecret=SECRET)


@pytest.fixture
def apps(mm_settings: Settings) -> Iterator[tuple[Any, Any]]:
    """Two apps on one database, as two worker processes (or two servers) are."""
    here, there = make_app(mm_settings), make_app(mm_settings)
    try:
        yield here, there
    finally:
        stop(here)
        stop(there)


class World:
    """acme (alice, bob, carol); alice's private incident with bob in its channel; bob's public one."""

    def __init__(self, fake: FakeMattermost, here: Any, there: Any):
        self.fake, self.here, self.there = fake, here.test_client(), there.test_client()
        self.alice, self.bob, self.carol = (fake.add_user(name) for name in ("alice", "bob", "carol"))
        self.acme = fake.add_team("acme", [self.alice, self.bob, self.carol])
        self.private = self.start(self.alice, INCIDENT_NAME, public=False)
        fake.join(self.private["channel_id"], self.bob)
        self.public = self.start(self.bob, "api slow", public=True)

    def start(self, user: str, name: str, *, public: bool) -> dict[str, Any]:
        response = self.here.post("/api/v0/incidents", headers=self.user(user), json={
            "name": name, "team_id": self.acme, "commander_user_id": user, "public": public})
        assert response.status_code == 201, response.json
        return response.json

    @staticmethod
    def user(user_id: str) -> dict[str, str]:
        return {"Mattermost-User-ID": user_id, "X-Host-Secret": SECRET}

    def view(self, client: Any, user: str, incident: dict[str, Any]) -> int:
        return client.get(f"/api/v0/incidents/{incident['id']}", headers=self.user(user)).status_code

    def listed(self, client: Any, user: str) -> set[str]:
        response = client.get("/api/v0/incidents", query_string={"team_id": self.acme}, headers=self.user(user))
        assert response.status_code == 200, response.json
        return {item["id"] for item in response.json["items"]}

    def report(self, client: Any, user: str, incident: dict[str, Any]) -> int:
        return client.get(f"/api/v0/incidents/{incident['id']}/report.md", headers=self.user(user)).status_code

    def notice(self, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.here.post(LEFT_PATH, json=body, headers={"X-Host-Secret": SECRET} if headers is None else headers)


@pytest.fixture
def world(fake_mattermost: FakeMattermost, apps: tuple[Any, Any]) -> World:
    return World(fake_mattermost, *apps)


def version(client: Any) -> int:
    return client.application.extensions["incident"].db.settings_version()


def test_someone_removed_from_a_private_incidents_channel_loses_it_in_another_process_once_the_notice_returns(
        world: World):
    incident = world.private
    assert world.view(world.there, world.bob, incident) == 200
    assert incident["id"] in world.listed(world.there, world.bob)
    world.fake.leave(incident["channel_id"], world.bob)
    # Without a notice the other process trusts its cached answers.
    assert world.view(world.there, world.bob, incident) == 200
    assert incident["id"] in world.listed(world.there, world.bob)

    answer = world.notice({"user_id": world.bob, "channel_id": incident["channel_id"]})
    assert answer.status_code == 204, answer.json

    assert world.view(world.there, world.bob, incident) == 403
    assert incident["id"] not in world.listed(world.there, world.bob)
    assert world.report(world.there, world.bob, incident) == 403
    assert world.view(world.here, world.bob, incident) == 403
    # Those still in the channel keep it, from a fresh answer.
    assert world.view(world.there, world.alice, incident) == 200


def test_someone_removed_from_a_team_loses_its_public_incident_in_another_process_once_the_notice_returns(
        world: World):
    incident = world.public
    assert world.view(world.there, world.carol, incident) == 200
    world.fake.leave_team(world.acme, world.carol)
    assert world.view(world.there, world.carol, incident) == 200

    assert world.notice({"user_id": world.carol, "team_id": world.acme}).status_code == 204

    assert world.view(world.there, world.carol, incident) == 403
    assert incident["id"] not in world.listed(world.there, world.carol)


@pytest.mark.parametrize("headers", [{}, {"X-Host-Secret": "guessed"}, {"X-Host-Secret": ""}],
                         ids=["missing", "wrong", "empty"])
def test_a_notice_without_the_launchers_secret_is_refused_and_keeps_the_cached_membership(world: World, headers):
    incident = world.private
    assert world.view(world.there, world.bob, incident) == 200
    world.fake.leave(incident["channel_id"], world.bob)
    before = version(world.here)

    answer = world.notice({"user_id": world.bob, "channel_id": incident["channel_id"]}, headers=headers)

    assert answer.status_code == 401 and "X-Host-Secret" in answer.json["error"]
    assert version(world.here) == before
    assert world.view(world.there, world.bob, incident) == 200


def test_a_server_without_a_host_secret_refuses_every_notice(settings: Settings, fake_mattermost: FakeMattermost):
    application = make_app(settings.replace(MattermostSiteUrl=fake_mattermost.url,
                                            MattermostBotToken=fake_mattermost.bot_token))
    try:
        answer = application.test_client().post(LEFT_PATH, json={"user_id": "u" * 26, "team_id": "t" * 26})
        assert answer.status_code == 403 and "HostSecret" in answer.json["error"]
    finally:
        stop(application)


@pytest.mark.parametrize("body, says", [
    ({"user_id": "u" * 26}, "channel_id or team_id"),
    ({"channel_id": "c" * 26}, "user_id"),
    ({"user_id": "u" * 26, "channel_id": "c" * 26, "team_id": "t" * 26}, "not both"),
    ({"user_id": "not an id", "team_id": "t" * 26}, "user_id: Expected an id"),
    ({"user_id": "u" * 26, "team_id": "t" * 26, "name": "x"}, "name: Unknown field"),
    ({"user_id": "u" * 26, "team_id": "t\u0000" * 13}, "team_id"),
    ([], "JSON object"),
    ("u" * 26, "JSON object"),
], ids=["no-place", "no-user", "both-places", "bad-id", "unknown-field", "nul", "list", "string"])
def test_a_malformed_notice_is_a_400_saying_what_to_fix_and_changes_nothing(world: World, body, says):
    before = version(world.here)
    answer = world.notice(body)
    assert answer.status_code == 400, answer.json
    assert says in answer.json["error"]
    assert version(world.here) == before


def test_a_notice_that_is_not_json_is_refused_and_changes_nothing(world: World):
    before = version(world.here)
    for data, content_type in (("{not json", "application/json"), ("user_id=x", "application/x-www-form-urlencoded"),
                               ("[" * 100_000, "application/json")):
        answer = world.here.post(LEFT_PATH, data=data, content_type=content_type,
                                 headers={"X-Host-Secret": SECRET})
        assert answer.status_code in (400, 415) and answer.json["error"], (content_type, answer.status_code)
    assert version(world.here) == before


def test_a_notice_logs_the_ids_and_nothing_people_typed(world: World, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    world.view(world.there, world.bob, world.private)
    world.fake.leave(world.private["channel_id"], world.bob)
    assert world.notice({"user_id": world.bob, "channel_id": world.private["channel_id"]}).status_code == 204
    world.view(world.there, world.bob, world.private)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert world.bob in text and world.private["channel_id"] in text
    for secret_or_content in (INCIDENT_NAME, "bob", "alice", SECRET):
        assert secret_or_content not in text.replace(world.bob, "").replace(world.alice, "")


# ----- the host's caches ------------------------------------------------------------------------
def test_a_membership_fetched_while_the_version_moved_is_asked_again(fake_mattermost: FakeMattermost):
    bob = fake_mattermost.add_user("bob")
    team = fake_mattermost.add_team("acme", [bob])
    channel = fake_mattermost.add_channel(team, "war-room", [bob])
    current = [0]

    def leave_reported_while_asking(request: httpx.Request) -> None:
        # The first answer is on its way when a leave is reported.
        if request.url.path.endswith(f"/members/{bob}") and current[0] == 0:
            current[0] = 1

    host = MattermostChatHost(lambda: fake_mattermost.url, lambda: fake_mattermost.bot_token,
                              transport=_Watching(httpx.HTTPTransport(), leave_reported_while_asking),
                              memberships_version=lambda: current[0])

    def asked() -> int:
        with fake_mattermost.lock:
            return sum(path.endswith(f"/channels/{channel}/members/{bob}")
                       for _method, path in fake_mattermost.state.requests)

    try:
        assert host.is_channel_member(channel, bob) and asked() == 1
        assert host.is_channel_member(channel, bob) and asked() == 2  # the first answer is not trusted
        assert host.is_channel_member(channel, bob) and asked() == 2  # the second one is
    finally:
        host.close()


def test_a_cached_membership_holds_while_the_version_stays(fake_mattermost: FakeMattermost):
    bob = fake_mattermost.add_user("bob")
    team = fake_mattermost.add_team("acme", [bob])
    channel = fake_mattermost.add_channel(team, "war-room", [bob])
    current = [7]
    host = MattermostChatHost(lambda: fake_mattermost.url, lambda: fake_mattermost.bot_token,
                              memberships_version=lambda: current[0])
    try:
        assert host.is_channel_member(channel, bob) and host.is_team_member(team, bob)
        assert host.user_channel_ids(bob, team) == {channel}
        fake_mattermost.leave_team(team, bob)
        assert host.is_channel_member(channel, bob) and host.is_team_member(team, bob)
        assert host.user_channel_ids(bob, team) == {channel}
        current[0] += 1
        assert not host.is_channel_member(channel, bob) and not host.is_team_member(team, bob)
        assert host.user_channel_ids(bob, team) == frozenset()
    finally:
        host.close()


class _Watching(httpx.BaseTransport):
    """A transport that shows each request to a watcher before sending it on."""

    def __init__(self, inner: httpx.BaseTransport, watch: Any):
        self.inner, self.watch = inner, watch

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.watch(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_someone_mattermost_keeps_as_a_deleted_team_member_is_not_a_member(fake_mattermost: FakeMattermost):
    bob = fake_mattermost.add_user("bob")
    team = fake_mattermost.add_team("acme", [bob])
    fake_mattermost.leave_team(team, bob)
    host = MattermostChatHost(lambda: fake_mattermost.url, lambda: fake_mattermost.bot_token)
    try:
        member = httpx.get(f"{fake_mattermost.url}/api/v4/teams/{team}/members/{bob}", timeout=5,
                           headers={"Authorization": f"Bearer {fake_mattermost.bot_token}"})
        assert member.status_code == 200 and member.json()["delete_at"] > 0
        assert not host.is_team_member(team, bob)
    finally:
        host.close()
