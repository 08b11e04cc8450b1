"""The chat host port: what the incident service needs from a chat server.

Two adapters implement it: the embedded :class:`~plugin.chat.local.LocalChatHost`
(channels, members and posts kept in our own database) and the Mattermost REST
adapter. The service owns this interface; adapters only fit it.

A host that keeps its data in our own database (``shares_database``: the local
host) has its channels, members and posts written by the unit of work itself, in
the transaction of the change they belong to. A host elsewhere is called outside
any transaction: no lock is held while a remote server answers.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence
from typing import Protocol


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
    #: then a unit of work made for it writes them in the change's own transaction.
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
                       purpose: str = "", member_ids: Sequence[str] = ()) -> str:
        """Create a channel named from slug (a unique suffix is added if it is taken) with these members; return its id."""

    def add_channel_member(self, channel_id: str, user_id: str) -> bool:
        """Add a user to a channel (no error when already a member).

        True when this call made them a member, False when it knows they already were
        (of requests adding the same person at once, only one then says True).
        """

    def post(self, channel_id: str, message: str) -> str:
        """Post a message as the bot; return the post id."""

    def run_command(self, user_id: str, team_id: str, channel_id: str, command: str) -> None:
        """Run a slash command in the channel as the user, with the user's rights; BadInput when the
        host refuses it (unknown command, not allowed), HostUnavailable when it cannot be asked."""

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
