"""The playbook use cases. Each mutation is one unit of work that also records its
telemetry event (``playbook`` with ``create``/``update``/``delete``; ids and counts only).

Decisions:
- A playbook belongs to one team; its creator must be a member of that team.
- Members may see, use, change and delete it; the creator is always a member, and
  whoever changes the member list stays a member (no one locks themselves out).
  System admins may do everything with every playbook.
- Listing is per team: system admins see every playbook of the team, others only
  those they are members of. A playbook that the caller may not see answers 404,
  so its existence is not revealed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from plugin.chat import ChatHost
from plugin.errors import NotFound, PermissionDenied
from plugin.model import (Checklist, ChecklistItem, Playbook, PlaybookFilter, SeverityLevels,
                          check_broadcast_channels, check_reminder_seconds, check_retrospective_text, new_id, now_ms)
from plugin.events import PlaybookEvent
from plugin.service import NewChecklist, UnitOfWork, check_broadcast_channels_usable


@dataclass(frozen=True)
class NewPlaybook:
    """What a caller gives to create a playbook."""

    title: str
    team_id: str
    description: str = ""
    create_public_incident: bool = False
    checklists: list[NewChecklist] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    broadcast_channel_ids: list[str] = field(default_factory=list)
    reminder_seconds: int = 0
    default_severity: str = ""
    retrospective_template: str = ""
    retrospective_before_end: bool = False


@dataclass(frozen=True)
class PlaybookChanges:
    """A change to a playbook: None keeps a field as it is."""

    title: str
    description: str | None = None
    create_public_incident: bool | None = None
    checklists: list[NewChecklist] | None = None
    member_ids: list[str] | None = None
    broadcast_channel_ids: list[str] | None = None
    reminder_seconds: int | None = None
    default_severity: str | None = None
    retrospective_template: str | None = None
    retrospective_before_end: bool | None = None


def _stages(stages: list[NewChecklist]) -> list[Checklist]:
    return [Checklist(new_id(), stage.title, [
        ChecklistItem(new_id(), item.title, command=item.command, description=item.description)
        for item in stage.items]) for stage in stages]


class PlaybookService:
    """Playbook use cases over a store, a chat host (for permissions) and telemetry."""

    def __init__(self, uow_factory: Callable[..., UnitOfWork], host: ChatHost, clock: Callable[[], int] = now_ms,
                 severity_levels: Callable[[], SeverityLevels] = SeverityLevels):
        self.uow_factory = uow_factory
        self.host = host
        self.clock = clock
        #: The severity levels in force: a default severity must be one of them when it is set.
        self.severity_levels = severity_levels

    def create(self, user_id: str, new: NewPlaybook) -> Playbook:
        """Create a playbook in a team the caller belongs to; the caller becomes a member."""
        if not self.host.is_team_member(new.team_id, user_id):
            raise PermissionDenied("You must be a member of the team to create a playbook in it.")
        check_broadcast_channels_usable(self.host, user_id, new.broadcast_channel_ids)
        default_severity = self.severity_levels().resolve(new.default_severity)
        now = self.clock()
        playbook = Playbook(id=new_id(), title=new.title, team_id=new.team_id, description=new.description,
                            create_public_incident=new.create_public_incident, checklists=_stages(new.checklists),
                            create_at=now, update_at=now,
                            broadcast_channel_ids=check_broadcast_channels(new.broadcast_channel_ids),
                            reminder_seconds=check_reminder_seconds(new.reminder_seconds),
                            default_severity=default_severity,
                            retrospective_template=check_retrospective_text(new.retrospective_template),
                            retrospective_before_end=new.retrospective_before_end)
        playbook.set_members(new.member_ids, keep=user_id)
        with self.uow_factory() as uow:
            uow.playbooks.add(playbook)
            uow.add_event(PlaybookEvent("create", playbook, user_id))
            uow.commit()
        return playbook

    def get(self, user_id: str, playbook_id: str) -> Playbook:
        """The playbook, if the caller may see it (404 otherwise)."""
        with self.uow_factory(write=False) as uow:
            return self._usable(uow.playbooks.get(playbook_id), playbook_id, user_id,
                                admin=self.host.is_system_admin(user_id))

    @staticmethod
    def _usable(playbook: Playbook | None, playbook_id: str, user_id: str, *, admin: bool) -> Playbook:
        """The playbook when the caller (a system admin, or not) may use it; else NotFound, which hides it."""
        if playbook is None or not (admin or playbook.is_member(user_id)):
            raise NotFound(f"Playbook {playbook_id} does not exist or you are not one of its members.",
                           {"playbook_id": playbook_id})
        return playbook

    def list(self, user_id: str, query: PlaybookFilter) -> tuple[int, list[Playbook]]:
        """A page of the team's playbooks the caller may see, and how many there are in all."""
        if not self.host.is_system_admin(user_id):
            if not self.host.is_team_member(query.team_id, user_id):
                raise PermissionDenied("You must be a member of the team to list its playbooks.")
            query.member_id = user_id
        with self.uow_factory(write=False) as uow:
            return uow.playbooks.list(query)

    def update(self, user_id: str, playbook_id: str, changes: PlaybookChanges) -> Playbook:
        """Change a playbook's title and any of its description, public default, stages and members."""
        admin = self.host.is_system_admin(user_id)  # asked before the transaction: no lock held meanwhile
        default_severity = (None if changes.default_severity is None
                            else self.severity_levels().resolve(changes.default_severity))
        if changes.broadcast_channel_ids is not None:
            with self.uow_factory(write=False) as uow:
                current = self._usable(uow.playbooks.get(playbook_id), playbook_id, user_id, admin=admin)
            added = [channel for channel in changes.broadcast_channel_ids
                     if channel not in current.broadcast_channel_ids]
            check_broadcast_channels_usable(self.host, user_id, added)
        with self.uow_factory() as uow:
            playbook = self._usable(uow.playbooks.get(playbook_id), playbook_id, user_id, admin=admin)
            playbook.title = changes.title
            if changes.broadcast_channel_ids is not None:
                playbook.broadcast_channel_ids = check_broadcast_channels(changes.broadcast_channel_ids)
            if changes.reminder_seconds is not None:
                playbook.reminder_seconds = check_reminder_seconds(changes.reminder_seconds)
            if default_severity is not None:
                playbook.default_severity = default_severity
            if changes.retrospective_template is not None:
                playbook.retrospective_template = check_retrospective_text(changes.retrospective_template)
            if changes.retrospective_before_end is not None:
                playbook.retrospective_before_end = changes.retrospective_before_end
            if changes.description is not None:
                playbook.description = changes.description
            if changes.create_public_incident is not None:
                playbook.create_public_incident = changes.create_public_incident
            if changes.checklists is not None:
                playbook.checklists = _stages(changes.checklists)
            playbook.set_members(playbook.member_ids if changes.member_ids is None else changes.member_ids,
                                 keep=user_id)
            playbook.update_at = self.clock()
            uow.playbooks.save(playbook)
            uow.add_event(PlaybookEvent("update", playbook, user_id))
            uow.commit()
        return playbook

    def delete(self, user_id: str, playbook_id: str) -> None:
        """Delete a playbook; incidents started from it keep their stages and tasks."""
        admin = self.host.is_system_admin(user_id)  # asked before the transaction: no lock held meanwhile
        with self.uow_factory() as uow:
            playbook = self._usable(uow.playbooks.get(playbook_id), playbook_id, user_id, admin=admin)
            uow.playbooks.delete(playbook_id)
            uow.add_event(PlaybookEvent("delete", playbook, user_id))
            uow.commit()
