"""The incident use cases. Each change is one unit of work that records what happened as domain events.

Decisions:
- A change reads the incident, decides on that read who may change it (a question
  the chat host may answer over the network, with nothing locked), applies a model
  rule and saves the incident at the version read. When another change committed
  first, it is made again on a fresh read, a few times at most: no update is lost.
- The unit of work turns the events into outbox rows in the commit's transaction.
  A host that keeps its data in our database (the local host) has the channel and
  the post written in that transaction too: an incident, its channel, its event and
  its post commit together or not at all.
- With a remote host (Mattermost) the channel is created before the transaction
  and posts go out after the commit. They are best effort: if the host fails
  after the commit, the incident's change stands and the failure is logged.
- A change that changes nothing (same commander, same stage, same state) commits
  nothing, posts nothing and records no event.
- The timeline is written from the same events: the unit of work asks
  ``plugin.timeline.entry_for`` for each event's entry at commit, so a change and
  its entry commit together, and a change that fails or changes nothing writes none.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Protocol

from plugin.chat import ChatHost
from plugin.errors import BadInput, ConcurrentUpdate, HostUnavailable, InvalidState, NotFound, PermissionDenied
from plugin.events import (Announcement, Before, Event, IncidentEvent, ReminderDue, RetrospectiveSaved, StatusUpdated,
                           TaskEvent)
# Names and titles in a post show as typed; updates and retrospectives keep their Markdown. Neither
# notifies a whole channel.
from plugin.markdown import chat_inline as literal, chat_prose as prose
from plugin.model import (
    DEFAULT_CHECKLIST_TITLE,
    Checklist,
    ChecklistItem,
    Incident,
    IncidentFilter,
    ItemState,
    Playbook,
    PlaybookFilter,
    Reminder,
    Retrospective,
    SeverityLevels,
    StatusUpdate,
    TimelineEntry,
    check_retrospective_text,
    check_status_message,
    new_id,
    now_ms,
    slugify,
)

log = logging.getLogger(__name__)

# Attempts of a change that keeps losing the race: each loss means another change
# committed, so this many allows that many people to change one incident at once.
RETRIES = 32
# Between two attempts a change waits a random time up to this base doubled per loss
# (at most the cap), so that writers who collided do not collide again in step.
RETRY_PAUSE_SECONDS = 0.002
RETRY_PAUSE_MAX_SECONDS = 0.1


class IncidentRepository(Protocol):
    """Incidents within one unit of work: read at once, written at commit."""

    def get(self, incident_id: str) -> Incident | None: ...
    def get_by_channel(self, channel_id: str) -> Incident | None: ...
    def add(self, incident: Incident) -> None: ...
    def save(self, incident: Incident) -> None: ...
    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]: ...


class PlaybookRepository(Protocol):
    """Playbooks within one unit of work: read at once, written at commit."""

    def get(self, playbook_id: str) -> Playbook | None: ...
    def add(self, playbook: Playbook) -> None: ...
    def save(self, playbook: Playbook) -> None: ...
    def delete(self, playbook_id: str) -> None: ...
    def list(self, query: PlaybookFilter) -> tuple[int, list[Playbook]]: ...


class TimelineRepository(Protocol):
    """Timeline entries within one unit of work: read at once, written at commit."""

    def get(self, incident_id: str, entry_id: str) -> TimelineEntry | None: ...
    def list(self, incident_id: str, event_types: Sequence[str] = (),
             last: int | None = None) -> list[TimelineEntry]: ...
    def add(self, entry: TimelineEntry) -> None: ...
    def delete(self, entry: TimelineEntry) -> None: ...


class StatusUpdateRepository(Protocol):
    """Incidents' status updates: read at once (they are added through StatusUpdated events)."""

    def list(self, incident_id: str, page: int, per_page: int) -> tuple[int, list[StatusUpdate]]: ...


class ReminderRepository(Protocol):
    """Incidents' next reminders: read at once; a claim is made at commit (they are set through ReminderDue events).

    ``claim`` moves a reminder on from the due time read; when another unit of work
    moved it first, the commit raises ConcurrentUpdate and writes nothing.
    """

    def due(self, now: int, limit: int) -> list[Reminder]: ...
    def claim(self, reminder: Reminder, next_due_at: int | None) -> None: ...


class RetrospectiveRepository(Protocol):
    """Incidents' retrospectives: read at once (they are written through RetrospectiveSaved events)."""

    def get(self, incident_id: str) -> Retrospective | None: ...


class ChatRepository(Protocol):
    """The chat host's channels and posts, when they live in our database: written at commit."""

    def add_channel(self, team_id: str, slug: str, display_name: str, *, public: bool,
                    member_ids: Sequence[str] = ()) -> str: ...
    def add_post(self, channel_id: str, message: str) -> str: ...


class UnitOfWork(AbstractContextManager, Protocol):
    """One transaction: every write and event waits for ``commit`` and is dropped without it.

    Commit raises ConcurrentUpdate, having written nothing, when an incident saved
    has moved on since it was read, and returns the posts left for the chat host.
    It writes each event's timeline entry (``plugin.timeline.entry_for``) too.
    """

    incidents: IncidentRepository
    playbooks: PlaybookRepository
    timeline: TimelineRepository
    status_updates: StatusUpdateRepository
    reminders: ReminderRepository
    retrospectives: RetrospectiveRepository
    chat: ChatRepository | None

    def add_event(self, event: Event) -> None: ...
    def commit(self) -> list[Announcement]: ...


# A condition the caller of this request puts on the version of the incident a change reads (HTTP's
# If-Match): it raises a DomainError when the version read does not meet it. Checked on the read the
# change is saved at, so a change that commits in between is caught when the change is made again.
VersionCondition = Callable[[int], None]
_version_condition: ContextVar[VersionCondition | None] = ContextVar("version_condition", default=None)


def require_version(condition: VersionCondition | None) -> Token[VersionCondition | None]:
    """Make the changes of this request (context) check condition on the incident they read; returns the token to
    reset with ``release_version``."""
    return _version_condition.set(condition)


def release_version(token: Token[VersionCondition | None]) -> None:
    """Drop the condition ``require_version`` set."""
    _version_condition.reset(token)


def _check_version(incident: Incident) -> None:
    condition = _version_condition.get()
    if condition is not None:
        condition(incident.version)


@dataclass(frozen=True)
class NewItem:
    """A task as given when creating an incident or adding a task."""

    title: str
    description: str = ""
    command: str = ""


@dataclass(frozen=True)
class NewChecklist:
    """A stage as given when creating an incident."""

    title: str
    items: list[NewItem] = field(default_factory=list)


@dataclass(frozen=True)
class NewIncident:
    """What a caller gives to start an incident."""

    name: str
    team_id: str
    commander_user_id: str
    description: str = ""
    public: bool | None = None  # None: the playbook's create_public_incident, else private
    post_id: str = ""
    checklists: list[NewChecklist] | None = None
    playbook_id: str = ""
    severity: str | None = None  # None: the playbook's default_severity, else none; "": none


@dataclass(frozen=True)
class IncidentPatch:
    """One change of an incident's settings: exactly one field is set; None stands for not given."""

    active_stage: int | None = None
    broadcast_channel_ids: list[str] | None = None
    severity: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What a change request did: the incident as the change left it, and whether it changed anything.

    Unchanged (``changed`` false) means the incident, as read for the change, already
    was as asked: nothing was written, posted or recorded.
    """

    incident: Incident
    changed: bool


@dataclass(frozen=True)
class Change:
    """What a change did to an incident: its telemetry event, the post that tells the channel, if any,
    and any further domain events (posts to other channels, a status update, a reminder's due time)."""

    event: IncidentEvent | TaskEvent
    announcement: str | None = None
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class RetrospectiveView:
    """An incident's retrospective as people see it: the text, who last wrote it and when, when it was last
    published (0: never), and whether it may be written now."""

    incident_id: str
    text: str
    update_at: int
    updated_by: str
    published_at: int
    editable: bool

    @classmethod
    def of(cls, retrospective: Retrospective, incident: Incident) -> RetrospectiveView:
        """The view of a retrospective of this incident."""
        return cls(incident.id, retrospective.text, retrospective.update_at, retrospective.updated_by,
                   incident.retrospective_published_at, retrospective.is_open(incident))


def describe_seconds(seconds: int) -> str:
    """A period as people say it: 30 seconds, 15 minutes, 2 hours, 1 day, or 90 minutes."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def check_broadcast_channels_usable(host: ChatHost, user_id: str, channel_ids: Sequence[str]) -> None:
    """PermissionDenied naming every channel that does not exist or that the user cannot post in.

    A broadcast channel gets the bot's copies of status updates; choosing one is
    allowed to whoever could post there themselves (its members and system admins).
    A channel that does not exist gets the same answer as one the user may not post
    in: to someone outside a private channel the two look alike, as in Mattermost.
    """
    refused = [channel_id for channel_id in dict.fromkeys(channel_ids)
               if host.channel_name(channel_id) is None or not host.can_post(channel_id, user_id)]
    if refused:
        raise PermissionDenied("You can choose as broadcast channels only channels you can post in (join them "
                               f"first): {', '.join(refused)}.", {"broadcast_channel_ids": refused})


def _new_item(item: NewItem) -> ChecklistItem:
    return ChecklistItem(id=new_id(), title=item.title, description=item.description, command=item.command)


class IncidentService:
    """Incident use cases over a unit of work and a chat host."""

    def __init__(self, uow_factory: Callable[..., UnitOfWork], host: ChatHost, clock: Callable[[], int] = now_ms,
                 severity_levels: Callable[[], SeverityLevels] = SeverityLevels):
        self.uow_factory = uow_factory
        self.host = host
        self.clock = clock
        #: The severity levels in force (the SeverityLevels setting, read live).
        self.severity_levels = severity_levels

    # ----- permissions -------------------------------------------------------------
    def can_view(self, user_id: str, incident: Incident) -> bool:
        """System admin, channel member, or a team member for a public incident."""
        return (self.host.is_system_admin(user_id)
                or self.host.is_channel_member(incident.channel_id, user_id)
                or (incident.public and self.host.is_team_member(incident.team_id, user_id)))

    def can_edit(self, user_id: str, incident: Incident) -> bool:
        """System admin or member of the incident channel."""
        return self.host.is_system_admin(user_id) or self.host.is_channel_member(incident.channel_id, user_id)

    # ----- reads ---------------------------------------------------------------------
    def get_incident(self, user_id: str, incident_id: str) -> Incident:
        """The incident, if the user may view it."""
        with self.uow_factory(write=False) as uow:
            incident = self._get(uow, incident_id)
        if not self.can_view(user_id, incident):
            raise PermissionDenied("You do not have permission to view this incident.")
        return incident

    def get_incident_by_channel(self, user_id: str, channel_id: str) -> Incident:
        """The incident of a channel; NotFound also when the user may not view it."""
        with self.uow_factory(write=False) as uow:
            incident = uow.incidents.get_by_channel(channel_id)
        if incident is None or not self.can_view(user_id, incident):
            raise NotFound(f"No incident found for channel {channel_id}.")
        return incident

    def list_incidents(self, user_id: str, query: IncidentFilter) -> tuple[int, list[Incident]]:
        """A page of the incidents the user may view, and the total that match."""
        if not self.host.is_system_admin(user_id):
            if not query.team_id:
                raise PermissionDenied("Only system admins may list incidents across teams: give team_id.",
                                       {"team_id": "required"})
            query.visible_channel_ids = self.host.user_channel_ids(user_id, query.team_id)
            query.include_public = self.host.is_team_member(query.team_id, user_id)
        levels = self.severity_levels()
        query.severity_levels = levels.names
        # A level is matched as the setting spells it; one no longer configured, as given.
        query.severity = [levels.find(level) or level for level in query.severity]
        if query.member_id:
            query.member_channel_ids = self.host.user_channel_ids(query.member_id, query.team_id or None)
        with self.uow_factory(write=False) as uow:
            return uow.incidents.list(query)

    # ----- create --------------------------------------------------------------------
    def create_incident(self, user_id: str, new: NewIncident) -> Incident:
        """Start an incident: its channel, its members, the row, the event, the post.

        On a host that keeps its channels in our database they all commit together;
        a remote host's channel is made before the transaction and the post follows it.
        """
        if not self.host.is_team_member(new.team_id, user_id):
            raise PermissionDenied("You must be a member of the team to start an incident in it.")
        if not self.host.is_team_member(new.team_id, new.commander_user_id):
            raise BadInput("The commander must be a member of the incident's team.",
                           {"commander_user_id": new.commander_user_id})
        levels = self.severity_levels()
        severity = "" if new.severity is None else levels.resolve(new.severity)
        playbook = self._playbook_for(user_id, new) if new.playbook_id else None
        if playbook is not None and new.severity is None:
            # A default the admins have since removed from the levels starts the incident without one.
            severity = (levels.find(playbook.default_severity) if playbook.default_severity else None) or ""
        broadcast_channel_ids: list[str] = []
        reminder_seconds = 0
        retrospective: Retrospective | None = None
        if playbook is not None:
            checklists = playbook.stage_copies(new_id)
            public = playbook.create_public_incident if new.public is None else new.public
            broadcast_channel_ids = list(playbook.broadcast_channel_ids)
            reminder_seconds = playbook.reminder_seconds
            if playbook.retrospective_template or playbook.retrospective_before_end:
                # Copied like the stages: a later change to the playbook leaves this incident as it started.
                retrospective = Retrospective("", playbook.retrospective_template,
                                              allowed_before_end=playbook.retrospective_before_end)
        else:
            stages = new.checklists if new.checklists is not None else [NewChecklist(DEFAULT_CHECKLIST_TITLE)]
            checklists = [Checklist(new_id(), stage.title, [_new_item(item) for item in stage.items])
                          for stage in stages]
            public = bool(new.public)
        incident = Incident(
            id=new_id(), name=new.name, description=new.description, team_id=new.team_id,
            commander_user_id=new.commander_user_id, channel_id="", create_at=self.clock(),
            post_id=new.post_id, public=public, active_stage=0 if checklists else -1,
            checklists=checklists, playbook_id=new.playbook_id,
            broadcast_channel_ids=broadcast_channel_ids, reminder_seconds=reminder_seconds, severity=severity,
        )
        members = list(dict.fromkeys((user_id, new.commander_user_id)))
        starter = self.host.mention(user_id)
        commander = starter if new.commander_user_id == user_id else self.host.mention(new.commander_user_id)
        announcement = f"This incident was started by {starter}; the commander is {commander}."
        with self.uow_factory() as uow:
            if uow.chat is not None:
                incident.channel_id = uow.chat.add_channel(new.team_id, slugify(new.name), new.name,
                                                           public=public, member_ids=members)
            else:
                incident.channel_id = self.host.create_channel(new.team_id, slugify(new.name), new.name,
                                                               public=public, purpose=new.description[:250],
                                                               member_ids=members)
            uow.incidents.add(incident)
            uow.add_event(IncidentEvent("create", incident, user_id, {"Public": incident.public,
                                                                      "SeverityRank": levels.rank(incident.severity)},
                                        mentions={user_id: starter, new.commander_user_id: commander}))
            uow.add_event(Announcement(incident.channel_id, announcement))
            # A playbook's reminder period asks for the first update a period after the start.
            if (due_at := incident.next_reminder_at(incident.create_at)) is not None:
                uow.add_event(ReminderDue(incident.id, due_at))
            if retrospective is not None:
                retrospective.incident_id = incident.id
                uow.add_event(RetrospectiveSaved(retrospective))
            self._commit(uow)
        return incident

    def _playbook_for(self, user_id: str, new: NewIncident) -> Playbook:
        """The playbook an incident starts from, if the user may use it for this team."""
        if new.checklists is not None:
            # Two sources of stages would need a merge rule nobody asked for: refuse.
            raise BadInput("Give either playbook_id or checklists, not both: an incident started from a "
                           "playbook gets the playbook's stages and tasks.",
                           {"playbook_id": new.playbook_id, "checklists": "not allowed with playbook_id"})
        with self.uow_factory(write=False) as uow:
            playbook = uow.playbooks.get(new.playbook_id)
        if playbook is None or not (playbook.is_member(user_id) or self.host.is_system_admin(user_id)):
            raise NotFound(f"Playbook {new.playbook_id} does not exist or you are not one of its members.",
                           {"playbook_id": new.playbook_id})
        if playbook.team_id != new.team_id:
            raise InvalidState("The playbook belongs to another team: start the incident in the playbook's team.",
                           {"playbook_id": new.playbook_id, "team_id": new.team_id})
        return playbook

    # ----- incident changes ----------------------------------------------------------
    # Each change is a function of the incident as read for it: it applies a model
    # rule and says what happened (a Change), or None when nothing changed. It runs
    # again on every retry, on that retry's read, so a command relative to the current
    # state ("next stage", "toggle this task") moves from where the incident is when
    # the change commits.
    def end_incident(self, user_id: str, incident_id: str) -> Outcome:
        """End an active incident."""
        def end(incident: Incident) -> Change | None:
            incident.end(self.clock())
            who = self.host.mention(user_id)
            return Change(IncidentEvent("end", incident, user_id, mentions={user_id: who}),
                          f"This incident was ended by {who}.",
                          (ReminderDue(incident.id, None),))  # an ended incident is not reminded
        return self._mutate(user_id, incident_id, end)

    def restart_incident(self, user_id: str, incident_id: str) -> Outcome:
        """Make an ended incident active again; its reminder period, if any, starts again from now."""
        def restart(incident: Incident) -> Change | None:
            incident.restart()
            who = self.host.mention(user_id)
            return Change(IncidentEvent("restart", incident, user_id, mentions={user_id: who}),
                          f"This incident was restarted by {who}.",
                          (ReminderDue(incident.id, incident.next_reminder_at(self.clock())),))
        return self._mutate(user_id, incident_id, restart)

    def change_commander(self, user_id: str, incident_id: str, commander_id: str) -> Outcome:
        """Hand the incident to another channel member (unchanged when they already command it)."""
        def change(incident: Incident) -> Change | None:
            before = Before.of(incident)
            previous = before.commander_user_id
            if commander_id != previous and not self.host.is_channel_member(incident.channel_id, commander_id):
                raise InvalidState("The new commander must be a member of the incident channel; add them first "
                                   "(`/incident add`, or POST .../members).", {"commander_id": commander_id})
            if not incident.change_commander(commander_id):
                return None
            names = {previous: self.host.mention(previous), commander_id: self.host.mention(commander_id)}
            names.setdefault(user_id, self.host.mention(user_id))
            return Change(IncidentEvent("change_commander", incident, user_id, mentions=names, before=before),
                          f"{names[user_id]} changed the incident commander "
                          f"from {names[previous]} to {names[commander_id]}.")
        return self._mutate(user_id, incident_id, change)

    def set_active_stage(self, user_id: str, incident_id: str, stage: int) -> Outcome:
        """Move the incident to the stage at this index (unchanged when it is already there)."""
        return self._change_stage(user_id, incident_id, lambda incident: incident.set_active_stage(stage))

    def next_stage(self, user_id: str, incident_id: str, *, force: bool = False) -> Outcome:
        """Move the incident one stage on from where it is (see Incident.next_stage for refusals)."""
        return self._change_stage(user_id, incident_id, lambda incident: incident.next_stage(force=force))

    def previous_stage(self, user_id: str, incident_id: str) -> Outcome:
        """Move the incident one stage back from where it is (refused at the first stage)."""
        return self._change_stage(user_id, incident_id, Incident.previous_stage)

    def _change_stage(self, user_id: str, incident_id: str, move: Callable[[Incident], bool]) -> Outcome:
        """Make a stage move and post from which stage to which, both as found by the change."""
        def change(incident: Incident) -> Change | None:
            before = Before.of(incident)
            if not move(incident):
                return None
            who = self.host.mention(user_id)
            return Change(IncidentEvent("change_stage", incident, user_id, mentions={user_id: who}, before=before),
                          f"{who} changed the active stage from "
                          f"**{literal(before.active_stage_title)}** to **{literal(incident.active_stage_title)}**.")
        return self._mutate(user_id, incident_id, change)

    def set_severity(self, user_id: str, incident_id: str, level: str) -> Outcome:
        """Set the severity to a configured level, or clear it with ""; BadInput naming the levels otherwise.

        Unchanged when the incident already has that level. Ended incidents may be graded too.
        """
        levels = self.severity_levels()
        wanted = levels.resolve(level)

        def change(incident: Incident) -> Change | None:
            before = Before.of(incident)
            if not incident.set_severity(wanted):
                return None
            who = self.host.mention(user_id)
            if not wanted:
                told = f"{who} cleared the severity (it was **{literal(before.severity)}**)."
            elif before.severity:
                told = f"{who} changed the severity from **{literal(before.severity)}** to **{literal(wanted)}**."
            else:
                told = f"{who} set the severity to **{literal(wanted)}**."
            return Change(IncidentEvent("change_severity", incident, user_id, {
                              "SeverityRank": levels.rank(wanted), "PreviousSeverityRank": levels.rank(before.severity)},
                              mentions={user_id: who}, before=before), told)
        return self._mutate(user_id, incident_id, change)

    def patch_incident(self, user_id: str, incident_id: str, patch: IncidentPatch) -> Outcome:
        """Make the one change a patch gives: the severity, the broadcast channels or the active stage."""
        if patch.severity is not None:
            return self.set_severity(user_id, incident_id, patch.severity)
        if patch.broadcast_channel_ids is not None:
            return self.set_broadcast_channels(user_id, incident_id, patch.broadcast_channel_ids)
        if patch.active_stage is not None:
            return self.set_active_stage(user_id, incident_id, patch.active_stage)
        raise BadInput("Give exactly one of active_stage, broadcast_channel_ids or severity.")

    def add_members(self, user_id: str, incident_id: str, member_ids: list[str]) -> tuple[list[str], list[str]]:
        """Add people to the incident channel; returns (added, already members).

        Channel members and system admins may add others. Membership lives in the chat
        host, so the event is recorded after the host has added them.
        """
        with self.uow_factory(write=False) as uow:
            incident = self._get(uow, incident_id)
        self._check_edit(user_id, incident)
        _check_version(incident)
        wanted = list(dict.fromkeys(member_ids))
        already = [member for member in wanted if self.host.is_channel_member(incident.channel_id, member)]
        # Only the request whose add really made someone a member reports and posts it:
        # others adding the same person at the same time find them already there.
        added = [member for member in wanted
                 if member not in already and self.host.add_channel_member(incident.channel_id, member)]
        already = [member for member in wanted if member not in added]
        if not added:
            return [], already
        names = {member: self.host.mention(member) for member in [user_id, *added]}
        with self.uow_factory() as uow:
            current = self._get(uow, incident_id)
            uow.add_event(IncidentEvent("add_members", current, user_id, {"NumMembersAdded": len(added)},
                                        mentions=names, members=tuple(added)))
            uow.add_event(Announcement(current.channel_id, f"{names[user_id]} added "
                                                           f"{', '.join(names[member] for member in added)} "
                                                           "to the incident."))
            self._commit(uow)
        return added, already

    # ----- status updates, broadcast channels and reminders ---------------------------
    def post_status_update(self, user_id: str, incident_id: str, message: str,
                           reminder_seconds: int | None = None) -> StatusUpdate:
        """Tell the incident channel and the broadcast channels how things stand, and restart the reminder.

        ``reminder_seconds`` sets the reminder period from now on (0: never); without
        it the incident keeps its period (its playbook's, at first). Refused once the
        incident has ended.
        """
        text = check_status_message(message)
        author = self.host.mention(user_id)
        update_id = new_id()
        posted: list[StatusUpdate] = []  # the update as the attempt that commits made it

        def post(incident: Incident) -> Change | None:
            incident.post_status_update(reminder_seconds)
            now = self.clock()
            posted[:] = [StatusUpdate(update_id, incident.id, user_id, text, now)]
            here = self.channel_ref(incident.channel_id)
            copies = tuple(Announcement(channel_id, f"Status update on **{literal(incident.name)}** ({here}) from "
                                                    f"{author}:\n\n{prose(text)}")
                           for channel_id in incident.broadcast_channel_ids if channel_id != incident.channel_id)
            return Change(IncidentEvent("update_status", incident, user_id, {
                              "ReminderSeconds": incident.reminder_seconds,
                              "NumBroadcastChannels": len(incident.broadcast_channel_ids)}),
                          f"Status update from {author}:\n\n{prose(text)}",
                          (StatusUpdated(posted[0], incident, author), *copies,
                           ReminderDue(incident.id, incident.next_reminder_at(now))))
        self._mutate(user_id, incident_id, post)
        return posted[0]

    def list_status_updates(self, user_id: str, incident_id: str, page: int, per_page: int
                            ) -> tuple[int, list[StatusUpdate]]:
        """A page of the incident's status updates, newest first, if the user may view the incident."""
        incident = self.get_incident(user_id, incident_id)
        with self.uow_factory(write=False) as uow:
            return uow.status_updates.list(incident.id, page, per_page)

    def set_reminder(self, user_id: str, incident_id: str, seconds: int) -> Outcome:
        """Remind the commander every ``seconds`` from now (0: never, until an update sets a period)."""
        def snooze(incident: Incident) -> Change | None:
            incident.set_reminder(seconds)
            when = f"every {describe_seconds(seconds)}" if seconds else "no more (until an update sets it)"
            return Change(IncidentEvent("change_reminder", incident, user_id, {"ReminderSeconds": seconds}),
                          f"{self.host.mention(user_id)} set the status update reminder: {when}.",
                          (ReminderDue(incident.id, incident.next_reminder_at(self.clock())),))
        return self._mutate(user_id, incident_id, snooze)

    def set_broadcast_channels(self, user_id: str, incident_id: str, channel_ids: list[str]) -> Outcome:
        """Choose the channels that get a copy of each status update (unchanged when they are the same).

        Each channel added must exist and the user must be able to post in it (a member,
        or a system admin); channels kept from before are not asked about again.
        """
        def change(incident: Incident) -> Change | None:
            before = set(incident.broadcast_channel_ids)
            check_broadcast_channels_usable(self.host, user_id, [c for c in channel_ids if c not in before])
            if not incident.set_broadcast_channels(channel_ids):
                return None
            return Change(IncidentEvent("change_broadcast_channels", incident, user_id,
                                        {"NumBroadcastChannels": len(incident.broadcast_channel_ids)}))
        return self._mutate(user_id, incident_id, change)

    def send_due_reminders(self, limit: int = 100) -> int:
        """Post every reminder due by now (at most limit of them); returns how many this call posted.

        Each is claimed by moving its due time on in the transaction that writes its
        post (with the local host; a remote host's post follows the commit): a reminder
        another server claimed first is skipped, so each due time is posted once.
        """
        now = self.clock()
        with self.uow_factory(write=False) as uow:
            due = uow.reminders.due(now, limit)
        sent = 0
        for reminder in due:
            try:
                sent += self._send_reminder(reminder, now)
            except HostUnavailable:
                # Nothing was claimed: the next scan tries again; the others go out now.
                log.warning("could not send the reminder of incident %s; trying again at the next scan",
                            reminder.incident_id)
        return sent

    def _send_reminder(self, reminder: Reminder, now: int) -> bool:
        with self.uow_factory() as uow:
            incident = uow.incidents.get(reminder.incident_id)
            if incident is None or incident.next_reminder_at(now) is None:
                # Ended or switched off (its own change stops it too): stop it without a post.
                uow.reminders.claim(reminder, None)
                message = None
            else:
                uow.reminders.claim(reminder, reminder.next_due(incident.reminder_seconds, now))
                message = (f"{self.host.mention(incident.commander_user_id)}, please post a status update on "
                           f"**{literal(incident.name)}**: `/incident update <what changed>`. Snooze this reminder "
                           "with `/incident remind 30m`, or stop it with `/incident remind never`.")
                uow.add_event(Announcement(incident.channel_id, message))
            try:
                self._commit(uow)
            except ConcurrentUpdate:
                return False  # another server sent it, or an update or a snooze moved it first
        return message is not None

    def channel_ref(self, channel_id: str) -> str:
        """~name of a channel for a post or a reply, or "its channel" when the host does not say.

        Only decoration: a host that fails here must not turn a change that is done into an error.
        """
        try:
            name = self.host.channel_name(channel_id)
        except HostUnavailable:
            name = None
        return f"~{name}" if name else "its channel"

    # ----- task changes --------------------------------------------------------------
    def add_item(self, user_id: str, incident_id: str, checklist: int, item: NewItem) -> Outcome:
        """Append a task to a stage."""
        return self._change_task(user_id, incident_id, "add_task",
                                 lambda incident: incident.add_item(checklist, _new_item(item)))

    def edit_item(self, user_id: str, incident_id: str, checklist: int, index: int, *, title: str | None = None,
                  description: str | None = None, command: str | None = None) -> Outcome:
        """Change a task's title, description or command."""
        return self._change_task(user_id, incident_id, "rename_task", lambda incident: incident.edit_item(
            checklist, index, title=title, description=description, command=command))

    def remove_item(self, user_id: str, incident_id: str, checklist: int, index: int) -> Outcome:
        """Delete a task."""
        return self._change_task(user_id, incident_id, "remove_task",
                                 lambda incident: incident.remove_item(checklist, index))

    def move_item(self, user_id: str, incident_id: str, checklist: int, item_num: int, new_location: int) -> Outcome:
        """Move a task to another position in its stage."""
        return self._change_task(user_id, incident_id, "move_task",
                                 lambda incident: incident.move_item(checklist, item_num, new_location))

    def set_item_assignee(self, user_id: str, incident_id: str, checklist: int, index: int,
                          assignee_id: str) -> Outcome:
        """Assign a task to a user, or unassign it with an empty id."""
        def change(incident: Incident) -> Change | None:
            if not incident.set_item_assignee(checklist, index, assignee_id):
                return None
            names = {user_id: self.host.mention(user_id)}
            if assignee_id:
                names.setdefault(assignee_id, self.host.mention(assignee_id))
            return Change(TaskEvent("set_assignee_for_task", incident, user_id, mentions=names,
                                    task=(checklist, index)))
        return self._mutate(user_id, incident_id, change)

    def run_item_command(self, user_id: str, incident_id: str, checklist: int, index: int) -> Outcome:
        """Run a task's slash command in the incident channel as the user, then record when it ran.

        The chat host runs it first, outside any transaction; a command it refuses
        records nothing. The record follows the task by its id, so a task moved
        meanwhile is still the one marked; one removed meanwhile is not recorded. A
        version the caller required (If-Match) is checked before the command runs: once
        it has run, its record is made whatever changed meanwhile.
        """
        with self.uow_factory(write=False) as uow:
            incident = self._get(uow, incident_id)
        self._check_edit(user_id, incident)
        _check_version(incident)
        item = incident.checklist(checklist).item(index)
        if not item.command.strip():
            raise BadInput(f"Task {index} of stage {checklist} has no command to run: give it one first "
                           "(its command field, e.g. /deploy rollback).", {"checklist": checklist, "item": index})
        self.host.run_command(user_id, incident.team_id, incident.channel_id, item.command.strip())
        ran_at = self.clock()

        def change(current: Incident) -> Change | None:
            position = current.task_position(item.id)  # where the task is now; None once it was removed
            if position is None or not current.mark_command_run(*position, ran_at):
                return None
            return Change(TaskEvent("run_task_slash_command", current, user_id,
                                    mentions={user_id: self.host.mention(user_id)}, task=position))
        ran = require_version(None)
        try:
            return self._mutate(user_id, incident_id, change)
        finally:
            release_version(ran)

    def _change_task(self, user_id: str, incident_id: str, action: str, apply: Callable[[Incident], bool]) -> Outcome:
        """A task change: its event, no post."""
        def change(incident: Incident) -> Change | None:
            return Change(TaskEvent(action, incident, user_id)) if apply(incident) else None
        return self._mutate(user_id, incident_id, change)

    def set_item_state(self, user_id: str, incident_id: str, checklist: int, index: int,
                       state: ItemState) -> Outcome:
        """Open, start or close a task (unchanged when it already has that state)."""
        return self._change_item_state(user_id, incident_id, checklist, index,
                                       lambda incident, now: incident.set_item_state(checklist, index, state, now))

    def toggle_item_state(self, user_id: str, incident_id: str, checklist: int, index: int) -> Outcome:
        """Open the task if it is closed, else close it, as it is when the change is made."""
        return self._change_item_state(user_id, incident_id, checklist, index,
                                       lambda incident, now: incident.toggle_item_state(checklist, index, now))

    def _change_item_state(self, user_id: str, incident_id: str, checklist: int, index: int,
                           apply: Callable[[Incident, int], bool]) -> Outcome:
        """Change a task's state; its event tells the state the change left and the user's role."""
        def change(incident: Incident) -> Change | None:
            item = incident.checklist(checklist).item(index)
            if not apply(incident, self.clock()):
                return None
            return Change(TaskEvent("modify_task_state", incident, user_id, {
                "NewState": item.state.value, "WasCommander": user_id == incident.commander_user_id,
                "WasAssignee": bool(item.assignee_id) and user_id == item.assignee_id},
                mentions={user_id: self.host.mention(user_id)}, task=(checklist, index)))
        return self._mutate(user_id, incident_id, change)

    # ----- the timeline ----------------------------------------------------------------
    def get_timeline(self, user_id: str, incident_id: str, event_types: Sequence[str] = (),
                     last: int | None = None) -> list[TimelineEntry]:
        """The incident's entries not deleted, oldest first, if the user may view the incident."""
        self.get_incident(user_id, incident_id)
        with self.uow_factory(write=False) as uow:
            return uow.timeline.list(incident_id, event_types, last)

    def add_note(self, user_id: str, incident_id: str, summary: str, *, details: dict[str, Any] | None = None,
                 event_at: int | None = None, post_id: str = "") -> TimelineEntry:
        """Add a person's note to the timeline (those who may change the incident may)."""
        with self.uow_factory() as uow:
            incident = self._get(uow, incident_id)
            self._check_edit(user_id, incident)
            _check_version(incident)
            entry = TimelineEntry.note(new_id(), incident_id, user_id, summary, self.clock(), details=details,
                                       event_at=event_at, post_id=post_id)
            uow.add_event(IncidentEvent("add_timeline_event", incident, user_id, {
                "EventType": entry.event_type, "Backdated": entry.event_at < entry.create_at,
                "HasPost": bool(entry.post_id), "NumDetails": len(entry.details)}, entry=entry))
            self._commit(uow)
        return entry

    def remove_timeline_entry(self, user_id: str, incident_id: str, entry_id: str) -> None:
        """Hide an entry of the incident's timeline, keeping who hid it and when (as for a change)."""
        with self.uow_factory() as uow:
            incident = self._get(uow, incident_id)
            self._check_edit(user_id, incident)
            _check_version(incident)
            entry = uow.timeline.get(incident_id, entry_id)
            if entry is None:
                raise NotFound(f"Incident {incident_id} has no timeline entry {entry_id}.", {"event_id": entry_id})
            entry.delete(user_id, self.clock())
            uow.timeline.delete(entry)
            uow.add_event(IncidentEvent("remove_timeline_event", incident, user_id, {
                "EventType": entry.event_type, "WasCreator": entry.creator_user_id == user_id}, entry=entry))
            self._commit(uow)

    # ----- the retrospective -----------------------------------------------------------
    # Channel members and system admins read, write and publish it. Its writes go
    # through _mutate_in, so they are made at the incident's version like any change:
    # two people saving at once never lose a write silently, and a publication posts
    # the text as it is when the publication commits.
    def get_retrospective(self, user_id: str, incident_id: str) -> RetrospectiveView:
        """The retrospective (the playbook's template until someone writes it), if the user may change the incident."""
        with self.uow_factory(write=False) as uow:
            incident = self._get(uow, incident_id)
            retrospective = uow.retrospectives.get(incident_id) or Retrospective(incident_id)
        if not self.can_edit(user_id, incident):
            raise PermissionDenied("Only members of the incident channel and system admins may read its "
                                   "retrospective; join the channel first." if self.can_view(user_id, incident) else
                                   "You do not have permission to view this incident.")
        return RetrospectiveView.of(retrospective, incident)

    def update_retrospective(self, user_id: str, incident_id: str, text: str) -> RetrospectiveView:
        """Write the retrospective: once the incident has ended, or earlier when its playbook allows (unchanged
        when it already holds this text)."""
        text = check_retrospective_text(text)
        seen: list[RetrospectiveView] = []

        def write(incident: Incident, uow: UnitOfWork) -> Change | None:
            retrospective = uow.retrospectives.get(incident.id) or Retrospective(incident.id)
            changed = retrospective.write(text, user_id, self.clock(), incident)
            seen[:] = [RetrospectiveView.of(retrospective, incident)]
            if not changed:
                return None
            return Change(IncidentEvent("update_retrospective", incident, user_id),
                          events=(RetrospectiveSaved(retrospective),))
        self._mutate_in(user_id, incident_id, write)
        return seen[0]

    def publish_retrospective(self, user_id: str, incident_id: str) -> RetrospectiveView:
        """Post the retrospective to the incident channel and mark it published (again, after edits, as often as
        asked); refused while it is blank or only its playbook's template, or may not be written yet."""
        seen: list[RetrospectiveView] = []

        def publish(incident: Incident, uow: UnitOfWork) -> Change | None:
            retrospective = uow.retrospectives.get(incident.id) or Retrospective(incident.id)
            retrospective.publish(incident, self.clock())
            seen[:] = [RetrospectiveView.of(retrospective, incident)]
            who = self.host.mention(user_id)
            return Change(IncidentEvent("publish_retrospective", incident, user_id, mentions={user_id: who}),
                          f"Retrospective of **{literal(incident.name)}**, published by {who}:\n\n"
                          f"{prose(retrospective.text)}")
        self._mutate_in(user_id, incident_id, publish)
        return seen[0]

    # ----- the one path of a change --------------------------------------------------
    def _mutate(self, user_id: str, incident_id: str, change: Callable[[Incident], Change | None]) -> Outcome:
        """Read the incident, decide on that read who may change it, apply change, save at the version read.

        Nothing is locked while the chat host answers the permission question: the
        save checks the version instead, and when another change committed first
        the whole change is made again on a fresh read (at most RETRIES times).
        """
        return self._mutate_in(user_id, incident_id, lambda incident, _uow: change(incident))

    def _mutate_in(self, user_id: str, incident_id: str,
                   change: Callable[[Incident, UnitOfWork], Change | None]) -> Outcome:
        """``_mutate`` for a change that also reads other rows in its unit of work (the incident's retrospective)."""
        for attempt in range(RETRIES):
            with self.uow_factory() as uow:
                incident = self._get(uow, incident_id)
                self._check_edit(user_id, incident)
                _check_version(incident)
                done = change(incident, uow)
                if done is None:
                    return Outcome(incident, False)
                uow.incidents.save(incident)
                uow.add_event(done.event)
                if done.announcement is not None:
                    uow.add_event(Announcement(incident.channel_id, done.announcement))
                for event in done.events:
                    uow.add_event(event)
                try:
                    self._commit(uow)
                except ConcurrentUpdate:
                    if attempt == RETRIES - 1:
                        raise
                    log.info("incident %s changed concurrently; making the change again", incident_id)
                    time.sleep(random.uniform(0, min(RETRY_PAUSE_MAX_SECONDS, RETRY_PAUSE_SECONDS * 2 ** attempt)))
                    continue
                return Outcome(incident, True)
        raise AssertionError("unreachable: the last attempt returns or raises")

    @staticmethod
    def _get(uow: UnitOfWork, incident_id: str) -> Incident:
        incident = uow.incidents.get(incident_id)
        if incident is None:
            raise NotFound(f"Incident {incident_id} does not exist.")
        return incident

    def _check_edit(self, user_id: str, incident: Incident) -> None:
        """PermissionDenied, saying why, unless the user may change the incident."""
        if not self.can_edit(user_id, incident):
            if self.can_view(user_id, incident):
                raise PermissionDenied("Only members of the incident channel and system admins may change "
                                       "this incident; join the channel first.")
            raise PermissionDenied("You do not have permission to change this incident.")

    def _commit(self, uow: UnitOfWork) -> None:
        """Commit, then send the posts the unit of work left for a remote host: best effort."""
        for post in uow.commit():
            try:
                self.host.post(post.channel_id, post.message)
            except Exception:  # noqa: BLE001 - a failed post must not undo a committed change
                log.exception("could not post to the channel %s", post.channel_id)
