"""The Mattermost REST adapter against the fake server: status codes, retries, caches, facts."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from plugin.chat import ServerFacts
from plugin.chat.mattermost import MattermostChatHost
from plugin.errors import HostUnavailable
from tests.fakes.mattermost import FakeMattermost


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def adapter(fake_mattermost: FakeMattermost, clock: Clock, sleeps: list[float]) -> Iterator[MattermostChatHost]:
    host = MattermostChatHost(lambda: fake_mattermost.url, lambda: fake_mattermost.bot_token,
                              clock=clock, sleep=sleeps.append)
    yield host
    host.close()


@pytest.fixture
def people(fake_mattermost: FakeMattermost) -> dict[str, str]:
    alice = fake_mattermost.add_user("alice")
    boss = fake_mattermost.add_user("boss", roles="system_user system_admin")
    team = fake_mattermost.add_team("acme", [alice, boss])
    return {"alice": alice, "boss": boss, "team": team}


def test_create_channel_adds_a_suffix_when_mattermost_says_the_name_exists(adapter, fake_mattermost, people):
    first = adapter.create_channel(people["team"], "db-down", "db down", public=False)
    second = adapter.create_channel(people["team"], "db-down", "db down", public=True)
    channels = fake_mattermost.state.channels
    assert channels[first]["name"] == "db-down" and channels[first]["type"] == "P"
    assert channels[second]["name"].startswith("db-down-") and channels[second]["type"] == "O"


def test_membership_and_roles_follow_mattermosts_answers(adapter, fake_mattermost, people):
    channel = adapter.create_channel(people["team"], "room", "room", public=False)
    assert not adapter.is_channel_member(channel, people["alice"])
    adapter.add_channel_member(channel, people["alice"])
    assert adapter.is_channel_member(channel, people["alice"])
    assert adapter.is_team_member(people["team"], people["alice"])
    assert not adapter.is_team_member(people["team"], fake_mattermost.add_user("stranger"))
    assert adapter.is_system_admin(people["boss"]) and not adapter.is_system_admin(people["alice"])
    assert adapter.user_channel_ids(people["alice"], people["team"]) == frozenset({channel})
    assert adapter.user_channel_ids(people["alice"]) == frozenset({channel})
    assert adapter.find_user_by_username("@alice") == people["alice"]
    assert adapter.find_user_by_username("nobody") is None
    assert adapter.mention(people["alice"]) == "@alice"
    assert adapter.find_channel_by_name(people["team"], "~room") == channel
    assert adapter.channel_name(channel) == "room" and adapter.channel_name("x" * 26) is None


def test_a_channel_the_bot_cannot_see_counts_as_no_membership(adapter, fake_mattermost, people):
    hidden = fake_mattermost.add_channel(people["team"], "hidden", [people["alice"]], private=True)
    fake_mattermost.state.users[fake_mattermost.bot_id]["roles"] = "system_user"
    assert not adapter.is_channel_member(hidden, people["alice"])
    assert ("GET", f"/api/v4/channels/{hidden}/members/{people['alice']}") in fake_mattermost.state.requests


def test_429_is_retried_after_the_retry_after_seconds(adapter, fake_mattermost, people, sleeps):
    fake_mattermost.inject("POST", r"/posts$", 429, times=2, retry_after="3")
    channel = adapter.create_channel(people["team"], "room", "room", public=False)
    adapter.post(channel, "hello")
    assert sleeps == [3.0, 3.0]
    assert fake_mattermost.posts_in(channel) == ["hello"]


def test_a_huge_retry_after_is_capped(adapter, fake_mattermost, people, sleeps):
    fake_mattermost.inject("GET", r"/users/", 429, times=1, retry_after="3600")
    adapter.is_system_admin(people["alice"])
    assert sleeps == [5.0]


def test_persistent_5xx_gives_up_after_bounded_retries_with_a_clear_message(adapter, fake_mattermost, people, sleeps):
    fake_mattermost.inject("GET", r"/users/", 503, times=99)
    with pytest.raises(HostUnavailable, match="Mattermost is having trouble"):
        adapter.is_system_admin(people["alice"])
    assert len(sleeps) == 3
    assert sum(1 for method, path in fake_mattermost.state.requests if path.startswith("/api/v4/users/")) == 4


def test_a_500_on_a_post_is_not_retried_to_avoid_duplicates(adapter, fake_mattermost, people, sleeps):
    channel = adapter.create_channel(people["team"], "room", "room", public=False)
    fake_mattermost.inject("POST", r"/posts$", 500)
    with pytest.raises(HostUnavailable):
        adapter.post(channel, "once")
    assert fake_mattermost.state.requests.count(("POST", "/api/v4/posts")) == 1 and sleeps == []


def test_a_wrong_bot_token_says_which_setting_to_fix(fake_mattermost, people):
    host = MattermostChatHost(lambda: fake_mattermost.url, lambda: "wrong", sleep=lambda _s: None)
    with pytest.raises(HostUnavailable, match="MattermostBotToken"):
        host.create_channel(people["team"], "room", "room", public=False)
    host.close()


def test_a_forbidden_call_asks_an_admin_for_bot_permissions(adapter, fake_mattermost, people):
    other_team = fake_mattermost.add_team("other")
    fake_mattermost.state.team_members.discard((other_team, fake_mattermost.bot_id))
    with pytest.raises(HostUnavailable, match="permissions") as caught:
        adapter.create_channel(other_team, "room", "room", public=False)
    assert caught.value.details == {"status": 403,
                                    "mattermost_message": "You do not have the appropriate permissions."}


def test_an_unreachable_server_is_reported_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    host = MattermostChatHost(lambda: f"http://127.0.0.1:{port}", lambda: "token", sleep=sleeps.append)
    with pytest.raises(HostUnavailable, match="cannot be reached"):
        host.post("c" * 26, "hello")
    assert sleeps == [0.2, 0.4, 0.8]
    host.close()


def test_a_server_that_never_answers_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts connections in the kernel but never answers
        port = listener.getsockname()[1]
        host = MattermostChatHost(lambda: f"http://127.0.0.1:{port}", lambda: "token", timeout=0.3,
                                  retries=1, sleep=lambda _s: None)
        with pytest.raises(HostUnavailable, match="did not answer in time"):
            host.post("c" * 26, "hello")
        host.close()


def test_server_facts_are_cached_then_refreshed_and_changes_are_heard(adapter, fake_mattermost, clock):
    heard: list[tuple[ServerFacts | None, ServerFacts]] = []
    adapter.subscribe_facts(lambda old, new: heard.append((old, new)))
    first = adapter.server_facts()
    assert first == ServerFacts(fake_mattermost.state.config["DiagnosticId"], "9.11.0", True)
    fake_mattermost.state.config.update(DiagnosticsEnabled="false", Version="10.0.0")
    assert adapter.server_facts() == first
    clock.now += 301
    second = adapter.server_facts()
    assert second.diagnostics_enabled is False and second.version == "10.0.0"
    assert heard == [(None, first), (first, second)]
    assert fake_mattermost.state.requests.count(("GET", "/api/v4/config/client")) == 2


def test_server_facts_keep_the_last_known_values_when_mattermost_is_down(adapter, fake_mattermost, clock):
    first = adapter.server_facts()
    fake_mattermost.inject("GET", r"/config/client", 503, times=99, retry_after="0")
    clock.now += 301
    assert adapter.server_facts() == first


def test_a_personal_token_is_verified_once_and_cached(adapter, fake_mattermost, people, clock):
    token = fake_mattermost.token_for(people["alice"])
    assert adapter.user_for_token(token) == people["alice"]
    assert adapter.user_for_token(token) == people["alice"]
    assert fake_mattermost.state.requests.count(("GET", "/api/v4/users/me")) == 1
    assert adapter.user_for_token("bogus") is None
    clock.now += 61
    assert adapter.user_for_token(token) == people["alice"]
    assert fake_mattermost.state.requests.count(("GET", "/api/v4/users/me")) == 3


def test_a_refused_lookup_logs_no_username(adapter, fake_mattermost, people, caplog):
    fake_mattermost.inject("GET", r"/users/username/", 403)
    with pytest.raises(HostUnavailable):
        adapter.find_user_by_username("alice")
    assert "GET /users/username/*" in caplog.text and "alice" not in caplog.text
