"""The embedded local chat host: channels, members, posts and users in our database.

Used when no Mattermost server is configured. Team membership is open (every
user belongs to every team); system admins are the user ids of the
``AdminUserIds`` setting.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import sqlalchemy as sa

from plugin.chat import ServerFacts
from plugin.model import new_id
from plugin.store import Database
from plugin.store.tables import chat_channel_members, chat_channels, chat_posts, chat_users, plugin_kv

LOCAL_SERVER_VERSION = "local"
DIAGNOSTIC_ID_KEY = "diagnostic_id"


def _now_ms() -> int:
    return int(time.time() * 1000)


class LocalChatHost:
    """A chat host kept in the same database as the incidents."""

    def __init__(self, db: Database, admin_user_ids: Callable[[], frozenset[str]],
                 clock: Callable[[], int] = _now_ms,
                 diagnostics_enabled: Callable[[], bool] = lambda: True):
        self.db = db
        self._admin_user_ids = admin_user_ids
        self.clock = clock
        self._diagnostics_enabled = diagnostics_enabled
        self._diagnostic_id = ""

    def is_system_admin(self, user_id: str) -> bool:
        return user_id in self._admin_user_ids()

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        return True

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        with self.db.read_engine.connect() as connection:
            row = connection.execute(sa.select(chat_channel_members.c.user_id).where(
                chat_channel_members.c.channel_id == channel_id,
                chat_channel_members.c.user_id == user_id)).first()
        return row is not None

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        query = sa.select(chat_channel_members.c.channel_id).where(chat_channel_members.c.user_id == user_id)
        if team_id:
            query = query.join(chat_channels, chat_channels.c.id == chat_channel_members.c.channel_id).where(
                chat_channels.c.team_id == team_id)
        with self.db.read_engine.connect() as connection:
            return frozenset(connection.execute(query).scalars())

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                       purpose: str = "") -> str:
        channel_id = new_id()
        name = slug
        for _ in range(8):
            try:
                with self.db.write_engine.begin() as connection:
                    connection.execute(sa.insert(chat_channels).values(
                        id=channel_id, team_id=team_id, name=name, display_name=display_name[:64],
                        type="O" if public else "P", create_at=self.clock()))
                return channel_id
            except sa.exc.IntegrityError:
                # Incident names repeat; channel names must not: add a short suffix.
                name = f"{slug[:57]}-{secrets.token_hex(3)}"
        raise RuntimeError("could not find a free channel name")

    def add_channel_member(self, channel_id: str, user_id: str) -> None:
        with self.db.write_engine.begin() as connection:
            exists = connection.execute(sa.select(chat_channel_members.c.user_id).where(
                chat_channel_members.c.channel_id == channel_id,
                chat_channel_members.c.user_id == user_id)).first()
            if not exists:
                connection.execute(sa.insert(chat_channel_members).values(channel_id=channel_id, user_id=user_id))

    def post(self, channel_id: str, message: str) -> str:
        post_id = new_id()
        with self.db.write_engine.begin() as connection:
            connection.execute(sa.insert(chat_posts).values(
                id=post_id, channel_id=channel_id, user_id="", message=message, create_at=self.clock()))
        return post_id

    def mention(self, user_id: str) -> str:
        with self.db.read_engine.connect() as connection:
            username = connection.execute(
                sa.select(chat_users.c.username).where(chat_users.c.id == user_id)).scalar_one_or_none()
        return f"@{username or user_id}"

    def server_facts(self) -> ServerFacts:
        return ServerFacts(diagnostic_id=self.diagnostic_id(), version=LOCAL_SERVER_VERSION,
                           diagnostics_enabled=self._diagnostics_enabled())

    def diagnostic_id(self) -> str:
        """This server's diagnostic id: generated once, then kept in the database."""
        if not self._diagnostic_id:
            self._diagnostic_id = self._load_or_create_diagnostic_id()
        return self._diagnostic_id

    def _load_or_create_diagnostic_id(self) -> str:
        select = sa.select(plugin_kv.c.value).where(plugin_kv.c.key == DIAGNOSTIC_ID_KEY)
        with self.db.read_engine.connect() as connection:
            found = connection.execute(select).scalar_one_or_none()
        if found:
            return found
        try:
            with self.db.write_engine.begin() as connection:
                connection.execute(sa.insert(plugin_kv).values(key=DIAGNOSTIC_ID_KEY, value=new_id()))
        except sa.exc.IntegrityError:
            pass  # another process created it first: theirs is the one
        with self.db.read_engine.connect() as connection:
            return connection.execute(select).scalar_one()

    # Local-host extras (not part of the port): reading what was posted.
    def channel(self, channel_id: str) -> dict | None:
        """The channel's row as a dict, or None."""
        with self.db.read_engine.connect() as connection:
            row = connection.execute(sa.select(chat_channels).where(chat_channels.c.id == channel_id)).first()
        return dict(row._mapping) if row else None

    def posts(self, channel_id: str) -> list[str]:
        """Messages posted in a channel, oldest first."""
        with self.db.read_engine.connect() as connection:
            return list(connection.execute(
                sa.select(chat_posts.c.message).where(chat_posts.c.channel_id == channel_id)
                .order_by(chat_posts.c.seq)).scalars())
