"""The local chat host's channels, members and posts, written in a unit of work's commit."""
from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.model import new_id
from plugin.store.tables import chat_channel_members, chat_channels, chat_posts

# A name taken in the team is tried again with a short suffix, this many times.
NAME_TRIES = 8


# The channel's insert, which inserts nothing when its name is taken in the team.
_INSERT_CHANNEL = {name: insert(chat_channels).on_conflict_do_nothing(index_elements=["team_id", "name"])
                   .returning(chat_channels.c.id)
                   for name, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))}
# Built once, as every statement a create runs, so SQLAlchemy finds them compiled in its cache.
_INSERT_MEMBERS = sa.insert(chat_channel_members)
_INSERT_POSTS = sa.insert(chat_posts)


@dataclass(frozen=True)
class LocalChannel:
    """A channel to create: its name (``slug``) is unique in its team."""

    id: str
    team_id: str
    slug: str
    display_name: str
    public: bool
    create_at: int
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalPost:
    """A bot post."""

    id: str
    channel_id: str
    message: str
    create_at: int


class SqlChatRepository:
    """Channels, their members and bot posts of the local chat host, written at commit."""

    def __init__(self, clock: Callable[[], int]):
        self.clock = clock
        self._channels: list[LocalChannel] = []
        self._posts: list[LocalPost] = []

    def add_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                    member_ids: Sequence[str] = ()) -> str:
        """A new channel with these members, created at commit; its id."""
        channel = LocalChannel(new_id(), team_id, slug, display_name[:64], public, self.clock(),
                               tuple(dict.fromkeys(member_ids)))
        self._channels.append(channel)
        return channel.id

    def add_post(self, channel_id: str, message: str) -> str:
        """A bot post, stored at commit; its id."""
        post = LocalPost(new_id(), channel_id, message, self.clock())
        self._posts.append(post)
        return post.id

    def flush(self, connection: sa.Connection) -> None:
        """Write the channels, members and posts added (in the commit's transaction)."""
        for channel in self._channels:
            self._insert_channel(connection, channel)
            if channel.member_ids:
                connection.execute(_INSERT_MEMBERS, [
                    {"channel_id": channel.id, "user_id": user_id} for user_id in channel.member_ids])
        if self._posts:
            connection.execute(_INSERT_POSTS, [
                {"id": post.id, "channel_id": post.channel_id, "user_id": "", "message": post.message,
                 "create_at": post.create_at} for post in self._posts])
        self._channels.clear()
        self._posts.clear()

    @staticmethod
    def _insert_channel(connection: sa.Connection, channel: LocalChannel) -> None:
        """Insert the channel; a name taken in its team gets a short suffix (incident names repeat)."""
        name = channel.slug
        for _ in range(NAME_TRIES):
            inserted = connection.execute(_INSERT_CHANNEL[connection.dialect.name], {
                "id": channel.id, "team_id": channel.team_id, "name": name, "display_name": channel.display_name,
                "type": "O" if channel.public else "P", "create_at": channel.create_at}).first()
            if inserted is not None:
                return
            name = f"{channel.slug[:57]}-{secrets.token_hex(3)}"
        raise RuntimeError(f"no free channel name for {channel.slug!r} after {NAME_TRIES} tries")
