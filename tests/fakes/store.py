"""In-memory fakes of the service's ports: a unit of work with its repositories, and a chat host.

They keep the contracts the service relies on and nothing more: a unit of work
commits all of its writes or none; an incident saved at a version that moved on
fails the commit with ConcurrentUpdate, and so does a reminder claimed at a due
time that moved on; events added to a unit of work count only once it has
committed, with their timeline entries (from the same ``plugin.timeline.entry_for``
the real unit of work uses), status updates and reminders' due times, and its posts
are handed back to be sent. Playbooks are not faked (the playbook use cases run
against the real stores in tests/api/).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from plugin.chat import ServerFacts
from plugin.errors import ConcurrentUpdate, HostUnavailable, NotFound
from plugin.events import (Announcement, Event, IncidentEvent, PlaybookEvent, ReminderDue, RetrospectiveSaved,
                           StatusUpdated, TaskEvent)
from plugin.model import Incident, IncidentFilter, Reminder, Retrospective, StatusUpdate, TimelineEntry, now_ms
from plugin.timeline import entry_for


@dataclass
class Memory:
    """What has been committed."""

    incidents: dict[str, Incident] = field(default_factory=dict)
    #: (catalogue name, action, incident id, version committed, the action's properties)
    events: list[tuple[str, str, str, int, dict[str, Any]]] = field(default_factory=list)
    #: Timeline entries, in the order their commits wrote them (deleted ones too).
    timeline: list[TimelineEntry] = field(default_factory=list)
    #: The time of a commit (the service's clock, when a test shares one).
    clock: Callable[[], int] = now_ms
    #: Runs just before a commit's version check: a test's way to let another change in first.
    before_commit: Callable[[], None] | None = None
    status_updates: list[StatusUpdate] = field(default_factory=list)
    #: incident id: when its next reminder is due (None: not due)
    reminders: dict[str, int | None] = field(default_factory=dict)
    #: incident id: its retrospective as committed
    retrospectives: dict[str, Retrospective] = field(default_factory=dict)


class FakeRetrospectives:
    """Retrospectives as committed (written through RetrospectiveSaved events)."""

    def __init__(self, memory: Memory):
        self.memory = memory

    def get(self, incident_id: str) -> Retrospective | None:
        return copy.deepcopy(self.memory.retrospectives.get(incident_id))


class FakeStatusUpdates:
    """Status updates as committed."""

    def __init__(self, memory: Memory):
        self.memory = memory

    def list(self, incident_id: str, page: int, per_page: int) -> tuple[int, list[StatusUpdate]]:
        found = sorted((u for u in self.memory.status_updates if u.incident_id == incident_id),
                       key=lambda u: (u.create_at, u.id), reverse=True)
        return len(found), found[page * per_page:(page + 1) * per_page]


class FakeReminders:
    """Reminders as committed; claims wait for the commit."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.claims: list[tuple[Reminder, int | None]] = []

    def due(self, now: int, limit: int) -> list[Reminder]:
        found = sorted((due_at, incident_id) for incident_id, due_at in self.memory.reminders.items()
                       if due_at is not None and due_at <= now)
        return [Reminder(incident_id, due_at) for due_at, incident_id in found[:limit]]

    def claim(self, reminder: Reminder, next_due_at: int | None) -> None:
        self.claims.append((reminder, next_due_at))


class FakeIncidents:
    """The incident repository of one unit of work."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.added: list[Incident] = []
        self.saved: list[Incident] = []

    def get(self, incident_id: str) -> Incident | None:
        found = self.memory.incidents.get(incident_id)
        return None if found is None else copy.deepcopy(found)

    def get_by_channel(self, channel_id: str) -> Incident | None:
        return copy.deepcopy(next((i for i in self.memory.incidents.values() if i.channel_id == channel_id), None))

    def add(self, incident: Incident) -> None:
        self.added.append(incident)

    def save(self, incident: Incident) -> None:
        self.saved.append(incident)

    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]:
        found = [i for i in self.memory.incidents.values() if (not query.team_id or i.team_id == query.team_id)
                 and (query.status != "active" or i.is_active)
                 and (query.member_channel_ids is None or i.channel_id in query.member_channel_ids)
                 and (not query.severity or i.severity in query.severity)]
        found.sort(key=lambda i: (i.create_at, i.id), reverse=query.direction == "desc")
        start = query.page * query.per_page
        return len(found), [copy.deepcopy(i) for i in found[start:start + query.per_page]]


class FakeTimeline:
    """The timeline repository of one unit of work."""

    def __init__(self, memory: Memory):
        self.memory = memory
        self.added: list[TimelineEntry] = []
        self.deleted: list[TimelineEntry] = []

    def get(self, incident_id: str, entry_id: str) -> TimelineEntry | None:
        return copy.deepcopy(next((e for e in self.memory.timeline
                                   if e.incident_id == incident_id and e.id == entry_id), None))

    def list(self, incident_id: str, event_types: Sequence[str] = (), last: int | None = None) -> list[TimelineEntry]:
        found = [e for e in self.memory.timeline if e.incident_id == incident_id and not e.deleted
                 and (not event_types or e.event_type in event_types)]
        found.sort(key=lambda e: e.event_at)  # stable: entries of one millisecond stay in commit order
        return copy.deepcopy(found if last is None else found[-last:] if last else [])

    def add(self, entry: TimelineEntry) -> None:
        self.added.append(entry)

    def delete(self, entry: TimelineEntry) -> None:
        self.deleted.append(entry)


_NAMES = {IncidentEvent: "incident", TaskEvent: "tasks", PlaybookEvent: "playbook"}


class FakeUnitOfWork:
    """One transaction over Memory: nothing is visible until commit, which checks every saved version.

    It keeps no chat host's data (``chat`` is None): every post is left for the host.
    """

    chat = None

    def __init__(self, memory: Memory, *, write: bool = True):
        self.memory = memory
        self.writes = write
        self.incidents = FakeIncidents(memory)
        self.timeline = FakeTimeline(memory)
        self.status_updates = FakeStatusUpdates(memory)
        self.reminders = FakeReminders(memory)
        self.retrospectives = FakeRetrospectives(memory)
        self.events: list[Event] = []

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_event(self, event: Event) -> None:
        self.events.append(event)

    def commit(self) -> list[Announcement]:
        assert self.writes, "a reading unit of work has nothing to commit"
        if self.memory.before_commit is not None:
            hook, self.memory.before_commit = self.memory.before_commit, None
            hook()
        for incident in self.incidents.saved:
            if self.memory.incidents[incident.id].version != incident.version:
                raise ConcurrentUpdate()
        positions = {(e.incident_id, e.id): n for n, e in enumerate(self.memory.timeline)}
        for entry in self.timeline.deleted:
            if self.memory.timeline[positions[entry.incident_id, entry.id]].deleted:
                raise NotFound(f"Timeline entry {entry.id} was deleted already.")
        for entry in self.timeline.deleted:
            self.memory.timeline[positions[entry.incident_id, entry.id]] = copy.deepcopy(entry)
        for reminder, _ in self.reminders.claims:
            if self.memory.reminders.get(reminder.incident_id) != reminder.due_at:
                raise ConcurrentUpdate()
        for reminder, next_due_at in self.reminders.claims:
            self.memory.reminders[reminder.incident_id] = next_due_at
        for event in self.events:
            if isinstance(event, StatusUpdated):
                self.memory.status_updates.append(event.update)
            elif isinstance(event, ReminderDue):
                self.memory.reminders[event.incident_id] = event.due_at
            elif isinstance(event, RetrospectiveSaved):
                self.memory.retrospectives[event.retrospective.incident_id] = copy.deepcopy(event.retrospective)
        for incident in self.incidents.saved:
            incident.version += 1
        for incident in [*self.incidents.added, *self.incidents.saved]:
            self.memory.incidents[incident.id] = copy.deepcopy(incident)
        left = [event for event in self.events if isinstance(event, Announcement)]
        now = self.memory.clock()
        self.timeline.added.extend(entry for event in self.events if not isinstance(event, Announcement)
                                   if (entry := entry_for(event, now)) is not None)
        self.memory.timeline.extend(copy.deepcopy(entry) for entry in self.timeline.added)
        self.memory.events.extend(
            (_NAMES[type(event)], event.action, event.incident.id, event.incident.version, dict(event.properties))
            for event in self.events if isinstance(event, (IncidentEvent, TaskEvent)))
        self.memory.events.extend(("playbook", event.action, event.playbook.id, 0, {})
                                  for event in self.events if isinstance(event, PlaybookEvent))
        self.events = []
        return left


class FakeChatHost:
    """A chat server kept in dicts: every user is in every team; admins are listed; ``down`` makes it fail."""

    shares_database = False

    def __init__(self, admins: frozenset[str] = frozenset(), usernames: dict[str, str] | None = None):
        self.admins = admins
        self.usernames = usernames or {}
        self.members: set[tuple[str, str]] = set()
        self.channels: dict[str, tuple[str, str]] = {}  # id: (team id, name)
        self.posts: list[tuple[str, str]] = []
        self.commands: list[tuple[str, str, str, str]] = []  # (user, team, channel, command) run
        self.down = False

    def is_system_admin(self, user_id: str) -> bool:
        return user_id in self.admins

    def is_team_member(self, team_id: str, user_id: str) -> bool:
        return True

    def is_channel_member(self, channel_id: str, user_id: str) -> bool:
        return (channel_id, user_id) in self.members

    def user_channel_ids(self, user_id: str, team_id: str | None = None) -> frozenset[str]:
        return frozenset(channel for channel, member in self.members if member == user_id)

    def create_channel(self, team_id: str, slug: str, display_name: str, *, public: bool, purpose: str = "",
                       member_ids: Any = ()) -> str:
        if self.down:
            raise HostUnavailable("Mattermost is having trouble right now; try again in a minute.")
        channel_id = f"channel{len(self.channels):019d}"
        self.channels[channel_id] = (team_id, slug)
        self.members.update((channel_id, member) for member in member_ids)
        return channel_id

    def add_channel_member(self, channel_id: str, user_id: str) -> bool:
        added = (channel_id, user_id) not in self.members
        self.members.add((channel_id, user_id))
        return added

    def post(self, channel_id: str, message: str) -> str:
        self.posts.append((channel_id, message))
        return f"post{len(self.posts):022d}"

    def run_command(self, user_id: str, team_id: str, channel_id: str, command: str) -> None:
        if self.down:
            raise HostUnavailable("Mattermost is having trouble right now; try again in a minute.")
        self.commands.append((user_id, team_id, channel_id, command))

    def mention(self, user_id: str) -> str:
        return f"@{self.usernames.get(user_id, user_id)}"

    def server_facts(self) -> ServerFacts:
        return ServerFacts("", "fake", False)

    def find_user_by_username(self, username: str) -> str | None:
        return next((user for user, name in self.usernames.items() if name == username), None)

    def find_channel_by_name(self, team_id: str, name: str) -> str | None:
        return next((c for c, (team, slug) in self.channels.items() if team == team_id and slug == name), None)

    def channel_name(self, channel_id: str) -> str | None:
        return self.channels.get(channel_id, ("", None))[1]

    def can_post(self, channel_id: str, user_id: str) -> bool:
        return self.is_channel_member(channel_id, user_id) or self.is_system_admin(user_id)

    def note_user(self, user_id: str, username: str) -> None:
        self.usernames[user_id] = username

    def posts_in(self, channel_id: str) -> list[str]:
        """The messages posted in a channel, oldest first."""
        return [message for channel, message in self.posts if channel == channel_id]


def service_over(memory: Memory, host: FakeChatHost, **options: Any) -> Any:
    """An IncidentService over these fakes, with one ticking clock for the service and the commits."""
    from plugin.service import IncidentService

    ticks = iter(range(1_000, 1_000_000))
    memory.clock = lambda: next(ticks)
    return IncidentService(lambda **uow_options: FakeUnitOfWork(memory, **uow_options), host, clock=memory.clock,
                           **options)
