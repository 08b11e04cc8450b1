"""The incident use cases. Each mutation is one transaction that also records its
telemetry event; chat posts go out after the commit.

Decisions:
- Permission questions go to the chat host before the transaction starts, so no
  row lock is held while a remote server answers.
- A mutation locks the incident row (PostgreSQL ``FOR UPDATE``; SQLite's write
  lock) and also checks the row's version, retrying a few times if another writer
  got in first: concurrent edits never lose an update.
- A host that keeps its data in our database (the local host) writes the channel
  and the post in the mutation's own transaction: an incident, its channel, its
  event and its post commit together, as one write transaction.
- With a remote host (Mattermost) the channel is created before the transaction
  and posts go out after the commit. They are best effort: if the host fails
  after the commit, the incident's change stands and the failure is logged (the
  post is not retried).
- A change that changes nothing (same commander, same stage, same state) commits
  nothing, posts nothing and records no event.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from plugin.chat import ChatHost
from plugin.errors import BadInput, ConcurrentUpdate, DomainError, InvalidState, NotFound, PermissionDenied
from plugin.model import (
    DEFAULT_CHECKLIST_TITLE,
    Checklist,
    ChecklistItem,
    Incident,
    IncidentFilter,
    IncidentHead,
    ItemState,
    Playbook,
    PlaybookFilter,
    new_id,
    now_ms,
    slugify,
)
from plugin.telemetry import NoopTelemetry, Telemetry

log = logging.getLogger(__name__)

RETRIES = 5
Found = TypeVar("Found")


class IncidentRepository(Protocol):
    """Persistence of incidents within one unit of work."""

    def get(self, incident_id: str, *, for_update: bool = False) -> Incident | None: ...
    def get_head(self, incident_id: str) -> IncidentHead | None: ...
    def adopt(self, incident: Incident) -> Incident: ...
    def get_by_channel(self, channel_id: str) -> Incident | None: ...
    def add(self, incident: Incident) -> None: ...
    def save(self, incident: Incident) -> None: ...
    def list(self, query: IncidentFilter) -> tuple[int, list[Incident]]: ...


class PlaybookRepository(Protocol):
    """Persistence of playbooks within one unit of work."""

    def get(self, playbook_id: str) -> Playbook | None: ...
    def add(self, playbook: Playbook) -> None: ...
    def save(self, playbook: Playbook) -> None: ...
    def delete(self, playbook_id: str) -> None: ...
    def list(self, query: PlaybookFilter) -> tuple[int, list[Playbook]]: ...


class UnitOfWork(AbstractContextManager, Protocol):
    """One transaction: rolls back unless ``commit`` is called.

    Asked for with ``optimistic=True`` and granted (``optimistic`` is then true), a
    read ``for_update`` takes no lock, and commit raises ConcurrentUpdate, having
    written nothing, when the incident saved has moved on since that read.
    """

    incidents: IncidentRepository
    playbooks: PlaybookRepository
    optimistic: bool

    def commit(self) -> None: ...


@dataclass
class NewItem:
    """A task as given when creating an incident or adding a task."""

    title: str
    description: str = ""
    command: str = ""


@dataclass
class NewChecklist:
    """A stage as given when creating an incident."""

    title: str
    items: list[NewItem] = field(default_factory=list)


@dataclass
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


@dataclass(frozen=True)
class Outcome:
    """What a change request did: the incident as the change left it, and whether it changed anything.

    Unchanged (``changed`` false) means the incident, as read for the change, already
    was as asked: nothing was written, posted or recorded.
    """

    incident: Incident
    changed: bool




def _new_item(item: NewItem) -> ChecklistItem:
    return ChecklistItem(id=new_id(), title=item.title, description=item.description, command=item.command)


class IncidentService:
    """Incident use cases over a store, a chat host and telemetry."""

    def __init__(self, uow_factory: Callable[..., UnitOfWork], host: ChatHost,
                 telemetry: Telemetry | None = None, clock: Callable[[], int] = now_ms):
        self.uow_factory = uow_factory
        self.host = host
        self.telemetry = telemetry or NoopTelemetry()
        self.clock = clock

    # ----- permissions -------------------------------------------------------------
    def can_view(self, user_id: str, incident: Incident | IncidentHead) -> bool:
        """System admin, channel member, or a team member for a public incident."""
        return (self.host.is_system_admin(user_id)
                or self.host.is_channel_member(incident.channel_id, user_id)
                or (incident.public and self.host.is_team_member(incident.team_id, user_id)))

    def can_edit(self, user_id: str, incident: Incident | IncidentHead) -> bool:
        """System admin or member of the incident channel."""
        return self.host.is_system_admin(user_id) or self.host.is_channel_member(incident.channel_id, user_id)

    # ----- reads ---------------------------------------------------------------------
    def get_incident(self, user_id: str, incident_id: str) -> Incident:
        """The incident, if the user may view it."""
        incident = self._read(incident_id)
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
        if query.member_id:
            query.member_channel_ids = self.host.user_channel_ids(query.member_id, query.team_id or None)
        with self.uow_factory(write=False) as uow:
            return uow.incidents.list(query)

    # ----- create --------------------------------------------------------------------
    def create_incident(self, user_id: str, new: NewIncident) -> Incident:
        """Start an incident: its channel, its members, the row, the event, the post."""
        if not self.host.is_team_member(new.team_id, user_id):
            raise PermissionDenied("You must be a member of the team to start an incident in it.")
        if not self.host.is_team_member(new.team_id, new.commander_user_id):
            raise BadInput("The commander must be a member of the incident's team.",
                           {"commander_user_id": new.commander_user_id})
        playbook = self._playbook_for(user_id, new) if new.playbook_id else None
        if playbook is not None:
            checklists = playbook.stage_copies(new_id)
            public = playbook.create_public_incident if new.public is None else new.public
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
        )
        members = list(dict.fromkeys((user_id, new.commander_user_id)))
        starter = self.host.mention(user_id)
        commander = starter if new.commander_user_id == user_id else self.host.mention(new.commander_user_id)
        announcement = f"This incident was started by {starter}; the commander is {commander}."
        create_channel = partial(self.host.create_channel, new.team_id, slugify(new.name), new.name,
                                 public=public, purpose=new.description[:250], member_ids=members)
        if self.host.shares_database:
            with self.uow_factory() as uow:
                # Every write here waits for the commit (write_at_commit): on SQLite the
                # write lock is held for the commit only, on PostgreSQL the create is
                # one statement; a channel name already taken is retried there.
                incident.channel_id = new_id()
                self._add(uow, incident, user_id)
                self.host.post(incident.channel_id, announcement, uow=uow)
                create_channel(uow=uow, channel_id=incident.channel_id)
                uow.commit()
            return incident
        incident.channel_id = create_channel()
        with self.uow_factory() as uow:
            self._add(uow, incident, user_id)
            uow.commit()
        self._post(incident, announcement)
        return incident

    def _add(self, uow: UnitOfWork, incident: Incident, user_id: str) -> None:
        uow.incidents.add(incident)
        self.telemetry.track_incident(uow, "create", incident, user_id, Public=incident.public)

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
    # A change may be given ``seen``: the incident as the caller read it earlier in
    # the same request (the slash command reads it to answer). Its channel, which
    # never changes, decides who may change it, so it is not read a second time.
    # What the change does is decided on the row read for it, again on every retry,
    # never on seen: a command relative to the current state ("next stage", "toggle
    # this task") moves from where the incident is when the change is made.
    def end_incident(self, user_id: str, incident_id: str, *, seen: Incident | None = None) -> Outcome:
        """End an active incident."""
        actor = self.host.mention(user_id)
        return self._mutate(user_id, incident_id, lambda i: i.end(self.clock()) or True, "incident", "end",
                            seen=seen, announce=lambda _: f"This incident was ended by {actor}.")

    def restart_incident(self, user_id: str, incident_id: str, *, seen: Incident | None = None) -> Outcome:
        """Make an ended incident active again."""
        actor = self.host.mention(user_id)
        return self._mutate(user_id, incident_id, lambda i: i.restart() or True, "incident", "restart",
                            seen=seen, announce=lambda _: f"This incident was restarted by {actor}.")

    def change_commander(self, user_id: str, incident_id: str, commander_id: str, *,
                         seen: Incident | None = None) -> Outcome:
        """Hand the incident to another channel member (unchanged when they already command it)."""
        incident = self._read_for_edit(user_id, incident_id, seen)
        if commander_id != incident.commander_user_id and not self.host.is_channel_member(
                incident.channel_id, commander_id):
            raise InvalidState("The new commander must be a member of the incident channel; add them first "
                               "(`/incident add`, or POST .../members).",
                           {"commander_id": commander_id})
        previous: dict[str, str] = {}

        def apply(incident: Incident) -> bool:
            previous["id"] = incident.commander_user_id
            return incident.change_commander(commander_id)

        # Names are looked up only for a real change, from the commander the change replaced.
        return self._mutate(user_id, incident_id, apply, "incident", "change_commander", checked=True, seen=seen,
                            announce=lambda _: f"{self.host.mention(user_id)} changed the incident commander "
                            f"from {self.host.mention(previous['id'])} to {self.host.mention(commander_id)}.")

    def set_active_stage(self, user_id: str, incident_id: str, stage: int, *,
                         seen: Incident | None = None) -> Outcome:
        """Move the incident to the stage at this index (unchanged when it is already there)."""
        return self._change_stage(user_id, incident_id, lambda i: i.set_active_stage(stage), seen)

    def next_stage(self, user_id: str, incident_id: str, *, force: bool = False,
                   seen: Incident | None = None) -> Outcome:
        """Move the incident one stage on from where it is (see Incident.next_stage for refusals)."""
        return self._change_stage(user_id, incident_id, lambda i: i.next_stage(force=force), seen)

    def previous_stage(self, user_id: str, incident_id: str, *, seen: Incident | None = None) -> Outcome:
        """Move the incident one stage back from where it is (refused at the first stage)."""
        return self._change_stage(user_id, incident_id, Incident.previous_stage, seen)

    def _change_stage(self, user_id: str, incident_id: str, move: Callable[[Incident], bool],
                      seen: Incident | None) -> Outcome:
        """Make a stage move and post from which stage to which, both as found by the change."""
        before: dict[str, str] = {}

        def apply(incident: Incident) -> bool:
            before["title"] = incident.active_stage_title
            return move(incident)

        actor = self.host.mention(user_id)
        return self._mutate(user_id, incident_id, apply, "incident", "change_stage", seen=seen,
                            announce=lambda incident: f"{actor} changed the active stage from "
                            f"**{before['title']}** to **{incident.active_stage_title}**.")

    def add_members(self, user_id: str, incident_id: str, member_ids: list[str], *,
                    seen: Incident | None = None) -> tuple[list[str], list[str]]:
        """Add people to the incident channel; returns (added, already members).

        Channel members and system admins may add others. Membership lives in the chat
        host, so the event is recorded after the host has added them.
        """
        incident = self._read_for_edit(user_id, incident_id, seen)
        wanted = list(dict.fromkeys(member_ids))
        already = [member for member in wanted if self.host.is_channel_member(incident.channel_id, member)]
        added = [member for member in wanted if member not in already]
        if not added:
            return [], already
        for member in added:
            self.host.add_channel_member(incident.channel_id, member)
        current = self._read(incident_id)
        with self.uow_factory() as uow:
            self.telemetry.track_incident(uow, "add_members", current, user_id, NumMembersAdded=len(added))
            uow.commit()
        names = ", ".join(self.host.mention(member) for member in added)
        self._post(current, f"{self.host.mention(user_id)} added {names} to the incident.")
        return added, already

    # ----- task changes --------------------------------------------------------------
    def add_item(self, user_id: str, incident_id: str, checklist: int, item: NewItem) -> Outcome:
        """Append a task to a stage."""
        return self._mutate(user_id, incident_id, lambda i: i.add_item(checklist, _new_item(item)) or True,
                            "tasks", "add_task")

    def edit_item(self, user_id: str, incident_id: str, checklist: int, index: int, *, title: str | None = None,
                  description: str | None = None, command: str | None = None) -> Outcome:
        """Change a task's title, description or command."""
        return self._mutate(user_id, incident_id, lambda i: i.edit_item(
            checklist, index, title=title, description=description, command=command), "tasks", "rename_task")

    def remove_item(self, user_id: str, incident_id: str, checklist: int, index: int) -> Outcome:
        """Delete a task."""
        return self._mutate(user_id, incident_id, lambda i: bool(i.remove_item(checklist, index)),
                            "tasks", "remove_task")

    def move_item(self, user_id: str, incident_id: str, checklist: int, item_num: int, new_location: int) -> Outcome:
        """Move a task to another position in its stage."""
        return self._mutate(user_id, incident_id, lambda i: i.move_item(checklist, item_num, new_location),
                            "tasks", "move_task")

    def set_item_state(self, user_id: str, incident_id: str, checklist: int, index: int,
                       state: ItemState, *, seen: Incident | None = None) -> Outcome:
        """Open, start or close a task (unchanged when it already has that state)."""
        return self._change_item_state(user_id, incident_id, checklist, index, seen,
                                       lambda i, now: i.set_item_state(checklist, index, state, now))

    def toggle_item_state(self, user_id: str, incident_id: str, checklist: int, index: int, *,
                          seen: Incident | None = None) -> Outcome:
        """Open the task if it is closed, else close it, as it is when the change is made."""
        return self._change_item_state(user_id, incident_id, checklist, index, seen,
                                       lambda i, now: i.toggle_item_state(checklist, index, now))

    def _change_item_state(self, user_id: str, incident_id: str, checklist: int, index: int,
                           seen: Incident | None, change: Callable[[Incident, int], bool]) -> Outcome:
        """Change a task's state; its event tells the state the change left and the user's role."""
        extra: dict[str, Any] = {}

        def apply(incident: Incident) -> bool:
            item = incident.checklist(checklist).item(index)
            if not change(incident, self.clock()):
                return False
            extra.update(NewState=item.state.value, WasCommander=user_id == incident.commander_user_id,
                         WasAssignee=bool(item.assignee_id) and user_id == item.assignee_id)
            return True

        return self._mutate(user_id, incident_id, apply, "tasks", "modify_task_state", extra=extra, seen=seen)

    def set_item_assignee(self, user_id: str, incident_id: str, checklist: int, index: int,
                          assignee_id: str) -> Outcome:
        """Assign a task to a user, or unassign it with an empty id."""
        return self._mutate(user_id, incident_id, lambda i: i.set_item_assignee(checklist, index, assignee_id),
                            "tasks", "set_assignee_for_task")

    # ----- machinery -----------------------------------------------------------------
    def _read(self, incident_id: str) -> Incident:
        return self._existing(incident_id, lambda incidents: incidents.get(incident_id))

    def _existing(self, incident_id: str, read: Callable[[IncidentRepository], Found | None]) -> Found:
        """What read finds in a reading unit of work, or NotFound."""
        with self.uow_factory(write=False) as uow:
            found = read(uow.incidents)
        if found is None:
            raise NotFound(f"Incident {incident_id} does not exist.")
        return found

    def _read_for_edit(self, user_id: str, incident_id: str, seen: Incident | None = None) -> Incident | IncidentHead:
        """The incident (seen, when given and it is this one, else its head), if the user may change it.

        Only the head is read: the change itself reads the whole incident under its lock.
        """
        incident: Incident | IncidentHead = (
            seen if seen is not None and seen.id == incident_id
            else self._existing(incident_id, lambda incidents: incidents.get_head(incident_id)))
        self._check_edit(user_id, incident)
        return incident

    def _check_edit(self, user_id: str, incident: Incident | IncidentHead) -> None:
        """PermissionDenied, saying why, unless the user may change the incident."""
        if not self.can_edit(user_id, incident):
            if self.can_view(user_id, incident):
                raise PermissionDenied("Only members of the incident channel and system admins may change "
                                       "this incident; join the channel first.")
            raise PermissionDenied("You do not have permission to change this incident.")

    def _mutate(self, user_id: str, incident_id: str, apply: Callable[[Incident], bool], event: str,
                action: str, *, extra: dict[str, Any] | None = None, seen: Incident | None = None,
                checked: bool = False, announce: Callable[[Incident], str] | None = None) -> Outcome:
        """Check the user may change it (on seen, if given; not again when checked); apply a
        change to the incident as read for it; record its event; post what announce says; commit.

        apply decides what to change from the incident it is given, and is called again
        on every attempt with that attempt's read. Nothing is posted when nothing changed.

        The first attempt asks for an optimistic unit of work: the incident is read
        without a lock (or seen, a read of this request, is taken as that read), who
        may change it is decided on that read, and the commit writes only if nobody
        changed the incident in between. A change that seen refuses or makes no
        difference to is decided again on a fresh read, since seen may be older than
        the incident. Every retry (after a concurrent change, or such a second look)
        reads the incident under its lock. Where a unit of work is not optimistic, who
        may change it is decided first, on seen or on the head: a permission check may
        ask the chat server, and no lock is held while it does.
        """
        if not checked and seen is not None and seen.id == incident_id:
            self._check_edit(user_id, seen)
            checked = True
        in_transaction = announce is not None and self.host.shares_database
        for attempt in range(RETRIES):
            try:
                with self.uow_factory(optimistic=attempt == 0) as uow:
                    if not checked and not uow.optimistic:
                        self._read_for_edit(user_id, incident_id)  # nothing is locked yet
                        checked = True
                    adopted = uow.optimistic and seen is not None and seen.id == incident_id
                    incident = (uow.incidents.adopt(seen) if adopted  # type: ignore[arg-type]
                                else uow.incidents.get(incident_id, for_update=True))
                    if incident is None:
                        raise NotFound(f"Incident {incident_id} does not exist.")
                    if not checked:
                        self._check_edit(user_id, incident)  # read without a lock
                        checked = True
                    try:
                        changed = apply(incident)
                    except DomainError:
                        if not adopted:
                            raise
                        changed = False
                    if not changed:
                        if adopted:
                            # seen may be older than the incident: refuse or skip only on a fresh read.
                            continue
                        return Outcome(incident, False)
                    uow.incidents.save(incident)
                    track = self.telemetry.track_incident if event == "incident" else self.telemetry.track_task
                    track(uow, action, incident, user_id, **(extra or {}))
                    if in_transaction:
                        self.host.post(incident.channel_id, announce(incident), uow=uow)
                    uow.commit()
                break
            except ConcurrentUpdate:
                if attempt == RETRIES - 1:
                    raise
                log.info("incident %s changed concurrently; retrying %s", incident_id, action)
        if announce is not None and not in_transaction:
            self._post(incident, announce(incident))
        return Outcome(incident, True)

    def _post(self, incident: Incident, message: str) -> None:
        """Post after the commit (remote hosts): best effort."""
        try:
            self.host.post(incident.channel_id, message)
        except Exception:  # noqa: BLE001 - a failed post must not undo a committed change
            log.exception("could not post to the channel of incident %s", incident.id)
