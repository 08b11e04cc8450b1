"""The chat host port: what the incident service needs from a chat server.

Two adapters implement it: the embedded :class:`~plugin.chat.local.LocalChatHost`
(channels, members and posts kept in our own database) and the Mattermost REST
adapter. The service owns this interface; adapters only fit it.

Hosts that keep their data in our own database (``shares_database``) take part in
the service's unit of work: ``create_channel`` and ``post`` given ``uow`` write in
its transaction, so an incident, its channel and its post commit or roll back
together, for the price of one write transaction. Hosts elsewhere are called
outside any transaction (no row lock is held while a remote server answers), and
are never given a unit of work.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Protocol


@dataclass(frozen=True)
class ServerFacts:
    """What the chat server says about itself (used to label telemetry)."""

    diagnostic_id: str
    version: str
    diagnostics_enabled: bool


class ChatHost(Protocol):
    """The chat server the incidents live in.

    Error contract: permission questions answer True/False; an unknown user or
    channel is simply not a member. Calls that change the chat server raise
    :class:`plugin.errors.HostUnavailable` when the server cannot be reached or
    refuses, with a message fit for the person who asked.
    """

    #: True when channels, members and posts live in our database (the local host):
    #: then ``create_channel`` and ``post`` accept the caller's unit of work.
    shares_database: bool

    def is_system_admin(self, user_id: str) -> bool:
        """May this user see and change every incident?"""

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        """Is the user in the team (public incidents are visible to its members)?"""

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        """Is the user in the channel (incident channel members may edit)?"""

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        """Ids of the channels the user belongs to, in one team or in all."""

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                       purpose: str = "", member_ids: Sequence[str] = (), uow: Any = None,
                       channel_id: str | None = None) -> str:
        """Create a channel named from slug (a unique suffix is added if it is taken) with these members; return its id.

        Hosts that can do so create the channel and its memberships in one step (the
        local host: one transaction, the caller's ``uow`` when given); others add the
        members one by one afterwards. ``channel_id`` is the id to give the channel;
        only hosts that share the database (``shares_database``) accept one.
        """

    def add_channel_member(self, channel_id: str, user_id: str) -> None:
        """Add a user to a channel (no error when already a member)."""

    def post(self, channel_id: str, message: str, *, uow: Any = None) -> str:
        """Post a message as the bot; return the post id (in the caller's ``uow`` when given)."""

    def mention(self, user_id: str) -> str:
        """How to name the user in a post: @username when known."""

    def server_facts(self) -> ServerFacts:
        """The server's diagnostic id, version and diagnostics switch."""

    def find_user_by_username(self, username: str) -> str | None:
        """The id of the user with this username (no leading @), or None when there is none."""

    def find_channel_by_name(self, team_id: str, name: str) -> str | None:
        """The id of the team's channel with this name (the ~slug, no tilde), or None."""

    def channel_name(self, channel_id: str) -> str | None:
        """The channel's name (its ~slug), or None when it does not exist."""

    def can_post(self, channel_id: str, user_id: str) -> bool:
        """May this user post in the channel (is a member, or a system admin)?"""

    def note_user(self, user_id: str, username: str) -> None:
        """A trusted caller (the slash command request) named this user.

        Hosts that own a user directory (Mattermost) may ignore it or use it to warm a
        cache; the local host records it so ``@username`` can be resolved later.
        Never raises.
        """
