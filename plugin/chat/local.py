"""The embedded local chat host: channels, members, posts and users in our database.

Used when no Mattermost server is configured. Team membership is open (every
user belongs to every team); system admins are the user ids of the
``AdminUserIds`` setting.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from plugin.chat import ServerFacts
from plugin.errors import BadInput
from plugin.model import new_id, now_ms
from plugin.store import Database
from plugin.store.kv import value_made_once
from plugin.store.tables import chat_channel_members, chat_channels, chat_posts, chat_users

LOCAL_SERVER_VERSION = "local"
DIAGNOSTIC_ID_KEY = "diagnostic_id"

# Remembered "is a member" answers: the local host never removes a member, so a
# yes stays true. Bounded: past this many the set is emptied and refilled.
MEMBERSHIP_CACHE_SIZE = 100_000
# Usernames (and "no username known") are remembered this long: a user recorded or
# renamed by another process shows in this one's posts and replies within these
# seconds (at once in the process itself).
USERNAME_TTL_SECONDS = 10.0
USERNAME_CACHE_SIZE = 100_000
# Built once: asked in most requests.
_IS_MEMBER = sa.select(chat_channel_members.c.user_id).where(
    chat_channel_members.c.channel_id == sa.bindparam("channel_id"),
    chat_channel_members.c.user_id == sa.bindparam("user_id"))
_USERNAME = sa.select(chat_users.c.username).where(chat_users.c.id == sa.bindparam("user_id"))
# A membership's insert that inserts nothing when the row exists, whoever added it meanwhile.
_ADD_MEMBER = {name: insert(chat_channel_members).on_conflict_do_nothing(index_elements=["channel_id", "user_id"])
               .returning(chat_channel_members.c.user_id)
               for name, insert in (("postgresql", postgresql_insert), ("sqlite", sqlite_insert))}


class LocalChatHost:
    """A chat host kept in the same database as the incidents."""

    #: Channels and posts live in our database: a unit of work with ``local_chat`` writes them.
    shares_database = True

    def __init__(self, db: Database, admin_user_ids: Callable[[], frozenset[str]],
                 clock: Callable[[], int] = now_ms,
                 diagnostics_enabled: Callable[[], bool] = lambda: True):
        self.db = db
        self._admin_user_ids = admin_user_ids
        self.clock = clock
        self._diagnostics_enabled = diagnostics_enabled
        self._diagnostic_id = ""
        self._members: set[tuple[str, str]] = set()
        self._usernames: dict[str, tuple[str | None, float]] = {}

    def is_system_admin(self, user_id: str) -> bool:
        """True for the user ids of the AdminUserIds setting."""
        return user_id in self._admin_user_ids()

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        """Every user belongs to every team on the local host."""
        return True

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        """True when the membership row exists (a committed yes is remembered: members are never removed)."""
        key = (channel_id, user_id)
        if key in self._members:
            return True
        with self.db.read_engine.connect() as connection:
            row = connection.execute(_IS_MEMBER, {"channel_id": channel_id, "user_id": user_id}).first()
        if row is None:
            return False
        if len(self._members) >= MEMBERSHIP_CACHE_SIZE:
            self._members.clear()
        self._members.add(key)
        return True

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        """The channels the user is a member of (in one team, or all)."""
        query = sa.select(chat_channel_members.c.channel_id).where(chat_channel_members.c.user_id == user_id)
        if team_id:
            query = query.join(chat_channels, chat_channels.c.id == chat_channel_members.c.channel_id).where(
                chat_channels.c.team_id == team_id)
        with self.db.read_engine.connect() as connection:
            return frozenset(connection.execute(query).scalars())

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                       purpose: str = "", member_ids: Sequence[str] = ()) -> str:
        """Insert the channel and its memberships in one transaction; a name taken gets a short suffix."""
        with self.db.unit_of_work(local_chat=True) as uow:
            assert uow.chat is not None
            channel_id = uow.chat.add_channel(team_id, slug, display_name, public=public, member_ids=member_ids)
            uow.commit()
        return channel_id

    def add_channel_member(self, channel_id: str, user_id: str) -> bool:
        """Insert the membership unless it exists; True only when this insert wrote the row.

        ON CONFLICT DO NOTHING writes (and RETURNING gives back) no row when another request
        inserted it first, so of requests adding the same person at once exactly one is told
        it added them.
        """
        with self.db.write_engine.begin() as connection:
            written = connection.execute(_ADD_MEMBER[connection.dialect.name],
                                         {"channel_id": channel_id, "user_id": user_id}).first()
        return written is not None

    def post(self, channel_id: str, message: str) -> str:
        """Store the message as a bot post; return its id."""
        with self.db.unit_of_work(local_chat=True) as uow:
            assert uow.chat is not None
            post_id = uow.chat.add_post(channel_id, message)
            uow.commit()
        return post_id

    def mention(self, user_id: str) -> str:
        """@username when the user is known, else @user_id."""
        return f"@{self._username(user_id) or user_id}"

    def _username(self, user_id: str) -> str | None:
        cached = self._usernames.get(user_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        with self.db.read_engine.connect() as connection:
            username = connection.execute(_USERNAME, {"user_id": user_id}).scalar_one_or_none()
        self._remember_username(user_id, username)
        return username

    def _remember_username(self, user_id: str, username: str | None) -> None:
        if len(self._usernames) >= USERNAME_CACHE_SIZE:
            self._usernames.clear()
        self._usernames[user_id] = (username, time.monotonic() + USERNAME_TTL_SECONDS)

    def server_facts(self) -> ServerFacts:
        return ServerFacts(diagnostic_id=self.diagnostic_id(), version=LOCAL_SERVER_VERSION,
                           diagnostics_enabled=self._diagnostics_enabled())

    def diagnostic_id(self) -> str:
        """This server's diagnostic id: generated once, then kept in the database."""
        if not self._diagnostic_id:
            self._diagnostic_id = value_made_once(self.db, DIAGNOSTIC_ID_KEY, new_id)
        return self._diagnostic_id

    def find_user_by_username(self, username: str) -> str | None:
        """The id recorded for this username, or None."""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(chat_users.c.id).where(
                chat_users.c.username == username.lower())).scalar_one_or_none()

    def find_channel_by_name(self, team_id: str, name: str) -> str | None:
        """The id of the team's channel with this name, or None."""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(chat_channels.c.id).where(
                chat_channels.c.team_id == team_id, chat_channels.c.name == name.lower())).scalar_one_or_none()

    def channel_name(self, channel_id: str) -> str | None:
        """The channel's name, or None."""
        with self.db.read_engine.connect() as connection:
            return connection.execute(sa.select(chat_channels.c.name).where(
                chat_channels.c.id == channel_id)).scalar_one_or_none()

    def can_post(self, channel_id: str, user_id: str) -> bool:
        """Channel members and system admins may post."""
        return self.is_system_admin(user_id) or self.is_channel_member(channel_id, user_id)

    def run_command(self, user_id: str, team_id: str, channel_id: str, command: str) -> None:
        """The embedded host has no slash commands of its own to run: BadInput, nothing run."""
        raise BadInput("The embedded chat host runs no slash commands, so the task's command was not run: run it "
                       "yourself, or use incident-response inside Mattermost, which runs it for you.")

    def note_user(self, user_id: str, username: str) -> None:
        """Record (or rename) a user; a username taken by another id moves to this one."""
        username = (username or "").strip().lower()[:64]
        if not username or not user_id:
            return
        # Every slash command names its caller: answer the usual "already known" without
        # queueing for the database's write lock (and mostly without a read).
        if self._username(user_id) == username:
            return
        try:
            with self.db.write_engine.begin() as connection:
                current = connection.execute(sa.select(chat_users.c.username).where(
                    chat_users.c.id == user_id)).scalar_one_or_none()
                if current == username:
                    self._remember_username(user_id, username)
                    return
                # Usernames are unique; the newest claim wins, as after a rename on a real server.
                connection.execute(sa.delete(chat_users).where(
                    chat_users.c.username == username, chat_users.c.id != user_id))
                if current is None:
                    connection.execute(sa.insert(chat_users).values(
                        id=user_id, username=username, create_at=self.clock()))
                else:
                    connection.execute(sa.update(chat_users).where(chat_users.c.id == user_id)
                                       .values(username=username))
        except sa.exc.IntegrityError:
            # Two first commands by the same user at once: the other request recorded it.
            return
        for other in [key for key, (name, _) in list(self._usernames.items()) if name == username]:
            self._usernames.pop(other, None)  # the name moved to this user
        self._remember_username(user_id, username)

    # Local-host extras (not part of the port): its users and what was posted.
    def users(self) -> list[tuple[str, str]]:
        """Every (username, id), by username."""
        with self.db.read_engine.connect() as connection:
            return [(row.username, row.id) for row in connection.execute(
                sa.select(chat_users.c.username, chat_users.c.id).order_by(chat_users.c.username))]

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
