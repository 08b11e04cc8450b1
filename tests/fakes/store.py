"""In-memory fakes of the service's ports: a unit of work with its repositories, a chat host, telemetry.

They keep the contracts the service relies on and nothing more: a unit of work
commits all of its writes or none; an incident saved at a version that moved on
fails the commit with ConcurrentUpdate; events recorded in a unit of work count
only once it has committed. Playbooks are not faked (the playbook use cases run
against the real stores in tests/api/).
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plugin.errors import ConcurrentUpdate
from plugin.model import Incident, IncidentFilter, IncidentHead


@dataclass
class Memory:
    """What has been committed."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    events: list[tuple[str, str, str, int, dict[str, Any]]] = field(default_factory=list)
    #: Runs just before a commit's version check: a test's way to let another change in first.
    before_commit: Callable[[], None] | None = None


class FakeIncidents:
    """The incident repository of one unit of work."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.read_at: dict[str, int] = {}
        self.added: list[Incident] = []
        self.saved: list[Incident] = []

    def _copy(self, incident: Incident | None) -> Incident | None:
        if incident is None:
            return None
        self.read_at[incident.id] = incident.version
        return copy.deepcopy(incident)

    def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None:
        return self._copy(self.memory.incidents.get(incident_id))

    def get_head(self, incident_id: str) -> IncidentHead | None:
        found = self.memory.incidents.get(incident_id)
        return None if found is None else IncidentHead(found.id, found.version, found.channel_id, found.team_id,
                                                        found.public, found.commander_user_id)

    def adopt(self, incident: Incident) -> Incident:
        self.read_at[incident.id] = incident.version
        return copy.deepcopy(incident)

    def get_by_channel(self, channel_id: str) -> Incident | None:
        return self._copy(next((i for i in self.memory.incidents.values() if i.channel_id == channel_id), None))

    def add(self, incident: Incident) -> None:
        self.added.append(copy.deepcopy(incident))

    def save(self, incident: Incident) -> None:
        incident.version += 1
        self.saved.append(copy.deepcopy(incident))

    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]:
        found = [i for i in self.memory.incidents.values() if not query.team_id or i.team_id == query.team_id]
        found.sort(key=lambda i: (i.create_at, i.id), reverse=query.direction == "desc")
        start = query.page * query.per_page
        return len(found), [copy.deepcopy(i) for i in found[start:start + query.per_page]]


class FakeUnitOfWork:
    """One transaction over Memory: nothing is visible until commit, which checks every saved version."""

    def __init__(self, memory: Memory, *, write: bool = True, optimistic: bool = False):
        self.memory = memory
        self.writes = write
        self.optimistic = optimistic and write
        self.incidents = FakeIncidents(memory)
        self.events: list[tuple[str, str, str, int, dict[str, Any]]] = []
        self.committed = False

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def commit(self) -> None:
        assert self.writes, "a reading unit of work has nothing to commit"
        if self.memory.before_commit is not None:
            hook, self.memory.before_commit = self.memory.before_commit, None
            hook()
        for incident in self.incidents.saved:
            if self.memory.incidents[incident.id].version != incident.version - 1:
                raise ConcurrentUpdate()
        for incident in [*self.incidents.added, *self.incidents.saved]:
            self.memory.incidents[incident.id] = copy.deepcopy(incident)
        self.memory.events.extend(self.events)
        self.committed = True


class FakeTelemetry:
    """Records each event in the unit of work it is given: kept only if that unit of work commits."""

    def track_incident(self, uow: FakeUnitOfWork, action: str, incident: Incident, user_id: str,
                       **extra: Any) -> None:
        uow.events.append(("incident", action, incident.id, incident.version, extra))

    def track_task(self, uow: FakeUnitOfWork, action: str, incident: Incident, user_id: str, **extra: Any) -> None:
        uow.events.append(("tasks", action, incident.id, incident.version, extra))

    def track_playbook(self, uow: FakeUnitOfWork, action: str, playbook: Any, user_id: str) -> None:
        uow.events.append(("playbook", action, playbook.id, 0, {}))


class FakeChatHost:
    """A chat server kept in dicts: every user is in every team; admins are listed."""

    shares_database = False

    def __init__(self, admins: frozenset[str] = frozenset(), usernames: dict[str, str] | None = None):
        self.admins = admins
        self.usernames = usernames or {}
        self.members: set[tuple[str, str]] = set()
        self.channels: dict[str, str] = {}
        self.posts: list[tuple[str, str]] = []

    def is_system_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        return True

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        return (channel_id, user_id) in self.members

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        return frozenset(channel for channel, member in self.members if member == user_id)

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool, purpose: str = "",
                       member_ids: Any = (), uow: Any = None, channel_id: str | None = None) -> str:
        channel_id = channel_id or f"channel{len(self.channels):019d}"
        self.channels[channel_id] = slug
        self.members.update((channel_id, member) for member in member_ids)
        return channel_id

    def add_channel_member(self, channel_id: str, user_id: str) -> None:
        self.members.add((channel_id, user_id))

    def post(self, channel_id: str, message: str, *, uow: Any = None) -> str:
        self.posts.append((channel_id, message))
        return f"post{len(self.posts):022d}"

    def mention(self, user_id: str) -> str:
        return f"@{self.usernames.get(user_id, user_id)}"

    def find_user_by_username(self, username: str) -> str | None:
        return next((user for user, name in self.usernames.items() if name == username), None)

    def channel_name(self, channel_id: str) -> str | None:
        return self.channels.get(channel_id)

    def posts_in(self, channel_id: str) -> list[str]:
        """The messages posted in a channel, oldest first."""
        return [message for channel, message in self.posts if channel == channel_id]
