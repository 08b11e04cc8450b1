"""The timeline: which domain event writes which entry, in one place.

Every change records domain events (``plugin.events``); at commit the unit of work
asks ``entry_for`` for each one's timeline entry and writes them in the change's
own transaction. A new kind of event that belongs on the timeline adds one branch
here; an event without a branch writes no entry.

A summary is one line built from ids and names as they are when the change is made
(the incident's, its stages' and tasks', and the users' as the chat host named them
then), so the timeline reads later as it happened. Summaries live in our database
only: never in telemetry or logs.
"""
from __future__ import annotations

from typing import Any

from plugin.events import Event, IncidentEvent, StatusUpdated, TaskEvent
from plugin.model import ItemState, TimelineEntry, new_id

# How a task's new state reads in a summary.
_STATE_VERBS = {ItemState.OPEN: "reopened", ItemState.IN_PROGRESS: "started", ItemState.CLOSED: "closed"}


def entry_for(event: Event, now: int) -> TimelineEntry | None:
    """The timeline entry an event writes (made at ``now``), or None for an event the timeline does not tell."""
    match event:
        case IncidentEvent(action="create", incident=incident):
            commander = incident.commander_user_id
            summary = (f"{_who(event)} started the incident \"{_line(incident.name)}\" as its commander."
                       if commander == event.user_id else
                       f"{_who(event)} started the incident \"{_line(incident.name)}\" with "
                       f"{_who(event, commander)} as commander.")
            return _entry(event, "incident_created", summary, now, event_at=incident.create_at,
                          subject=commander, details={"public": incident.public, "playbook_id": incident.playbook_id,
                                                        "severity": incident.severity})
        case IncidentEvent(action="change_stage", incident=incident, before=before) if before is not None:
            return _entry(event, "stage_changed",
                          f"{_who(event)} changed the stage from \"{_line(before.active_stage_title)}\" to "
                          f"\"{_line(incident.active_stage_title)}\".", now,
                          details={"from_stage": before.active_stage, "to_stage": incident.active_stage})
        case IncidentEvent(action="change_commander", incident=incident, before=before) if before is not None:
            commander = incident.commander_user_id
            return _entry(event, "commander_changed",
                          f"{_who(event)} changed the commander from {_who(event, before.commander_user_id)} to "
                          f"{_who(event, commander)}.", now, subject=commander,
                          details={"from_user_id": before.commander_user_id, "to_user_id": commander})
        case IncidentEvent(action="change_severity", incident=incident, before=before) if before is not None:
            return _entry(event, "severity_changed", _severity_summary(event, before.severity, incident.severity), now,
                          details={"from_severity": before.severity, "to_severity": incident.severity,
                                   "from_rank": event.properties.get("PreviousSeverityRank", -1),
                                   "to_rank": event.properties.get("SeverityRank", -1)})
        case IncidentEvent(action="publish_retrospective", incident=incident):
            return _entry(event, "retrospective_published", f"{_who(event)} published the retrospective.", now,
                          event_at=incident.retrospective_published_at or now)
        case IncidentEvent(action="end", incident=incident):
            return _entry(event, "incident_ended", f"{_who(event)} ended the incident.", now,
                          event_at=incident.end_at or now)
        case IncidentEvent(action="restart"):
            return _entry(event, "incident_restarted", f"{_who(event)} restarted the incident.", now)
        case IncidentEvent(action="add_members", members=members) if members:
            people = ", ".join(_who(event, member) for member in members)
            return _entry(event, "members_added", f"{_who(event)} added {people} to the incident.", now,
                          subject=members[0] if len(members) == 1 else "", details={"user_ids": list(members)})
        case IncidentEvent(action="add_timeline_event", entry=TimelineEntry() as entry):
            return entry
        case TaskEvent(action="modify_task_state", incident=incident, task=(stage, index)) if stage >= 0:
            item = incident.checklists[stage].items[index]
            return _entry(event, "task_state_changed",
                          f"{_who(event)} {_STATE_VERBS[item.state]} the task \"{_line(item.title)}\" in stage "
                          f"\"{_line(incident.checklists[stage].title)}\".", now,
                          event_at=item.state_modified or now, subject=item.assignee_id,
                          details=_task_details(stage, index, item.id, state=item.state.value))
        case TaskEvent(action="set_assignee_for_task", incident=incident, task=(stage, index)) if stage >= 0:
            item = incident.checklists[stage].items[index]
            summary = (f"{_who(event)} assigned the task \"{_line(item.title)}\" to {_who(event, item.assignee_id)}."
                       if item.assignee_id else f"{_who(event)} unassigned the task \"{_line(item.title)}\".")
            return _entry(event, "task_assigned", summary, now, subject=item.assignee_id,
                          details=_task_details(stage, index, item.id, assignee_id=item.assignee_id))
        case TaskEvent(action="run_task_slash_command", incident=incident, task=(stage, index)) if stage >= 0:
            item = incident.checklists[stage].items[index]
            return _entry(event, "task_command_run",
                          f"{_who(event)} ran the command of the task \"{_line(item.title)}\" in stage "
                          f"\"{_line(incident.checklists[stage].title)}\".", now,
                          event_at=item.command_last_run or now, details=_task_details(stage, index, item.id))
        case StatusUpdated(update=update, author=author):
            who = author or f"@{update.user_id}"
            first = update.message.splitlines()[0] if update.message.strip() else ""
            return TimelineEntry(id=new_id(), incident_id=update.incident_id, event_type="status_updated",
                                 event_at=update.create_at, create_at=now, creator_user_id=update.user_id,
                                 summary=f"{who} posted a status update: {_clip(first)}",
                                 subject_user_id=update.user_id, details={"status_update_id": update.id})
    return None


def _severity_summary(event: IncidentEvent, before: str, after: str) -> str:
    """How a severity change reads: set, changed or cleared."""
    if not before:
        return f"{_who(event)} set the severity to {_line(after)}."
    if not after:
        return f"{_who(event)} cleared the severity (it was {_line(before)})."
    return f"{_who(event)} changed the severity from {_line(before)} to {_line(after)}."


def _clip(text: str, limit: int = 200) -> str:
    """The start of a text for a one-line summary."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _entry(event: IncidentEvent | TaskEvent, event_type: str, summary: str, now: int, *, event_at: int | None = None,
           subject: str = "", details: dict[str, Any] | None = None) -> TimelineEntry:
    return TimelineEntry(id=new_id(), incident_id=event.incident.id, event_type=event_type,
                         event_at=now if event_at is None else event_at, create_at=now,
                         creator_user_id=event.user_id, summary=summary, subject_user_id=subject,
                         details=details or {})


def _who(event: IncidentEvent | TaskEvent, user_id: str | None = None) -> str:
    """The user as the change named them (the user who made it by default), else by id."""
    user_id = event.user_id if user_id is None else user_id
    return event.mentions.get(user_id) or f"@{user_id}"


def _line(text: str) -> str:
    """A name as part of a one-line summary: its line breaks become spaces."""
    return " ".join(text.splitlines())


def _task_details(stage: int, index: int, item_id: str, **more: Any) -> dict[str, Any]:
    return {"checklist": stage, "item": index, "item_id": item_id, **more}
