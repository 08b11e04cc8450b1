"""``incident-plugin chat``: ``/incident`` commands typed in a terminal, as a user of the local chat host.

For trying the product and for demos without Mattermost. Each line runs through the
same parser and runner as ``POST /command``, in this process, on the configured
database (a running server sees the changes at once). People are named by username:
one not seen before is created on the local host. After ``start`` the console moves
to the new incident's channel, as a person would. Every reply is printed, and so is
what the bot posted meanwhile in the channel the console is in.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from plugin.chat.local import LocalChatHost
from plugin.command.parser import USERNAME_MAX, Start, parse
from plugin.command.runner import Caller, CommandRunner
from plugin.errors import BadInput
from plugin.model import IncidentFilter, is_id, new_id

# The team of the README's examples: every user of the local host belongs to every team.
DEFAULT_TEAM = "team0000000000000000000000"
TOWN_SQUARE = "town-square"
# Mentions of a whole channel: as usernames they would turn every post naming the user into one.
CHANNEL_WIDE = ("all", "channel", "here")


@dataclass
class Where:
    """Who types, in which channel."""

    user_id: str
    username: str
    channel_id: str


class Console:
    """Runs command lines for users of the local chat host and reports what they would see."""

    def __init__(self, components: Any, team_id: str = DEFAULT_TEAM, out: Callable[[str], None] = print):
        if not isinstance(components.host, LocalChatHost):
            raise BadInput("`incident-plugin chat` drives the local chat host; with Mattermost configured, "
                           "type the commands in Mattermost.")
        if not is_id(team_id):
            raise BadInput("--team must be an id of 26 characters a-z0-9.")
        self.components = components
        self.host: LocalChatHost = components.host
        self.team_id = team_id
        self.runner = CommandRunner(components.service, components.host, reports=components.reports)
        self.out = out
        self._seen_posts: dict[str, int] = {}

    def user(self, username: str) -> str:
        """The id of the local user with this username, created when new, and in the team's town-square
        (as Mattermost puts everyone who joins a team there)."""
        name = username.strip().lstrip("@").lower()
        if len(name) > USERNAME_MAX:
            raise BadInput(f"'{name[:40]}...' is {len(name)} characters long; use at most {USERNAME_MAX}.")
        if name in CHANNEL_WIDE:
            raise BadInput(f"@{name} notifies everyone in a channel, so it cannot be a username (Mattermost "
                           "reserves it too): pick another name.")
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise BadInput(f"'{username[:40]}' is not a username: use letters, digits, '.', '-' or '_'.")
        user_id = self.host.find_user_by_username(name)
        if user_id is None:
            user_id = new_id()
            self.host.note_user(user_id, name)
        self.channel(TOWN_SQUARE, user_id)
        return user_id

    def channel(self, name_or_id: str, user_id: str) -> str:
        """The team's channel with this name (or this id); town-square is created on first use."""
        name = name_or_id.strip().lstrip("~").lower()
        channel_id = name if is_id(name) and self.host.channel_name(name) else self.host.find_channel_by_name(
            self.team_id, name)
        if channel_id is None and name == TOWN_SQUARE:
            channel_id = self.host.create_channel(self.team_id, TOWN_SQUARE, "Town Square", public=True,
                                                  member_ids=[user_id])
        if channel_id is None:
            raise BadInput(f"There is no channel ~{name[:64]} in this team.")
        if name == TOWN_SQUARE:
            self.host.add_channel_member(channel_id, user_id)  # everyone is in town-square
        self._seen_posts.setdefault(channel_id, len(self.host.posts(channel_id)))
        return channel_id

    def where(self, username: str, channel: str = TOWN_SQUARE) -> Where:
        """A user (created when new) in a channel."""
        user_id = self.user(username)
        return Where(user_id, username.strip().lstrip("@").lower(), self.channel(channel, user_id))

    def run(self, where: Where, line: str) -> Where:
        """Run one line; print the reply and the channel's new posts; return where the user is now."""
        text = line.strip()
        if text.startswith("/"):
            trigger, _, text = text.partition(" ")
            if trigger != "/incident":
                self.out(f"  (only you) Only /incident commands work here, not {trigger[:40]}.")
                return where
        command = parse(text)
        before = self._newest_incident(where) if isinstance(command, Start) else None
        body = self.runner.run(command, Caller(where.user_id, self.team_id, where.channel_id, where.username))
        for reply_line in body["text"].splitlines() or [""]:
            self.out(f"  (only you) {reply_line}")
        if isinstance(command, Start):
            newest = self._newest_incident(where)
            if newest is not None and newest != before:
                self.show_posts(where.channel_id)
                where = Where(where.user_id, where.username, newest)
                self._seen_posts.setdefault(newest, 0)
        self.show_posts(where.channel_id)
        return where

    def show_posts(self, channel_id: str) -> None:
        """Print the posts of the channel not printed yet."""
        posts = self.host.posts(channel_id)
        name = self.host.channel_name(channel_id) or channel_id
        for message in posts[self._seen_posts.get(channel_id, 0):]:
            self.out(f"  ~{name}  incident-bot: {message}")
        self._seen_posts[channel_id] = len(posts)

    def _newest_incident(self, where: Where) -> str | None:
        """The channel of the newest incident the user commands in this team."""
        _, incidents = self.components.service.list_incidents(where.user_id, IncidentFilter(
            team_id=self.team_id, commander_user_id=where.user_id, sort="create_at", direction="desc", per_page=1))
        return incidents[0].channel_id if incidents else None

    def prompt(self, where: Where) -> str:
        """What the console shows before a line is typed."""
        return f"{where.username} in ~{self.host.channel_name(where.channel_id)}> "

    def session(self, where: Where, lines: Iterable[str], echo: bool = False) -> None:
        """Run lines until they end; ``:user NAME`` and ``:channel NAME`` change who types and where."""
        for line in lines:
            if echo:
                self.out(self.prompt(where) + line.rstrip("\n"))
            word, _, rest = line.strip().partition(" ")
            try:
                if word == ":user":
                    where = self.where(rest, self.host.channel_name(where.channel_id) or TOWN_SQUARE)
                elif word == ":channel":
                    where = Where(where.user_id, where.username, self.channel(rest, where.user_id))
                elif word:
                    where = self.run(where, line)
            except BadInput as error:
                self.out(f"  {error.message}")
