"""The event catalogue: the one source of event names, actions and allowed properties.

The recorder, the allow-list and the published page (``docs/telemetry.md``) are all
built from the tables below, so what the code sends and what the page promises
cannot drift apart. Every property has a *kind*; a value that does not fit its kind
(an id, a bool, a whole number, a version string or one of a fixed set of words) is
refused before anything is recorded, so free text such as names, descriptions,
stage or task titles can never slip through.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from plugin.model import TIMELINE_EVENT_TYPES

log = logging.getLogger(__name__)

_ID = re.compile(r"^[a-z0-9]{26}$")
# Mattermost versions ("9.11.1", "10.0.0-rc1") or the embedded host's "local".
_VERSION = re.compile(r"^(local|\d{1,4}(\.\d{1,4}){1,3}([-+][0-9A-Za-z.]{1,20})?)$")
ITEM_STATES = ("open", "in_progress", "closed")


@dataclass(frozen=True)
class Kind:
    """What a property value may be: an id, optional id, bool, int, stage index, version or enum."""

    name: str
    choices: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        """True when value fits this kind (and so carries no free text)."""
        check = _CHECKS.get(self.name)
        return check is not None and check(self, value)

    def describe(self) -> str:
        """How the published page names this kind."""
        if self.name == "enum":
            return "one of " + ", ".join(f"`{choice}`" for choice in self.choices)
        return {"id": "id", "optional id": "id or empty", "bool": "true/false", "int": "number",
                "stage index": "number (-1: none)", "version": "version",
                "severity rank": "number (1: the most severe level; 0: a level no longer configured; -1: none)",
                }[self.name]


def _is_int(value: Any) -> bool:
    return type(value) is int  # noqa: E721 - bool is a subclass of int and must not pass


# One check per kind, looked up once per value: recording runs in every mutation's request.
_CHECKS = {
    "bool": lambda _kind, value: value is True or value is False,
    "int": lambda _kind, value: _is_int(value) and 0 <= value < 2 ** 53,
    "stage index": lambda _kind, value: _is_int(value) and -1 <= value < 10_000,
    "severity rank": lambda _kind, value: _is_int(value) and -1 <= value <= 1_000,
    "id": lambda _kind, value: type(value) is str and _ID.match(value) is not None,  # noqa: E721
    "optional id": lambda _kind, value: type(value) is str and (  # noqa: E721
        value == "" or _ID.match(value) is not None),
    "version": lambda _kind, value: type(value) is str and _VERSION.match(value) is not None,  # noqa: E721
    "enum": lambda kind, value: type(value) is str and value in kind.choices,  # noqa: E721
}

ID = Kind("id")
OPTIONAL_ID = Kind("optional id")
BOOL = Kind("bool")
INT = Kind("int")
# The active stage's position, -1 when the incident has no stages.
STAGE_INDEX = Kind("stage index")
VERSION = Kind("version")
# A severity level's position in the SeverityLevels setting, counted from 1 (the most
# severe): never the level's name, which the admins chose and so is content.
SEVERITY_RANK = Kind("severity rank")


def enum(*choices: str) -> Kind:
    """A kind that accepts only these words."""
    return Kind("enum", tuple(choices))


@dataclass(frozen=True)
class Prop:
    """One allowed property: its exact key, its kind, and what it means."""

    key: str
    kind: Kind
    meaning: str


@dataclass(frozen=True)
class Action:
    """One value of an event's ``Action`` property, with the properties only it adds."""

    name: str
    meaning: str
    extra: tuple[Prop, ...] = ()


@dataclass(frozen=True)
class Event:
    """One Rudder event name: its actions, the metadata it carries, and where it is recorded."""

    name: str
    actions: tuple[Action, ...]
    metadata: tuple[Prop, ...]
    source_file: str

    def action(self, name: str) -> Action | None:
        """The action called name, or None."""
        return next((action for action in self.actions if action.name == name), None)

    def properties(self, action: str) -> tuple[Prop, ...]:
        """Every property an event with this action carries, in sending order."""
        found = self.action(action)
        if found is None:
            raise KeyError(action)
        action_prop = Prop("Action", enum(*(a.name for a in self.actions)), "What happened.")
        return (action_prop, *found.extra, *self.metadata, *COMMON)


COMMON = (
    Prop("diagnosticID", ID, "Unique identifier of the chat server the plugin runs on (a server, never a person)."),
    Prop("serverVersion", VERSION, "Version of the chat server."),
    Prop("pluginVersion", VERSION, "Version of the plugin."),
    Prop("eventTimeStamp", INT, "When the event was recorded, in milliseconds since 1970."),
)

INCIDENT_METADATA = (
    Prop("incidentID", ID, "Unique identifier of the incident."),
    Prop("IsActive", BOOL, "Whether the incident is active."),
    Prop("CommanderUserID", ID, "Unique identifier of the incident's commander."),
    Prop("TeamID", ID, "Unique identifier of the team of the incident channel."),
    Prop("CreatedAt", INT, "When the incident was created, in milliseconds since 1970."),
    Prop("PostID", OPTIONAL_ID, "Unique identifier of the post the incident was started from, if any."),
    Prop("NumChecklists", INT, "Number of stages."),
    Prop("TotalChecklistItems", INT, "Number of tasks over all stages."),
    Prop("ActiveStage", STAGE_INDEX, "Position of the active stage (-1 when there is none)."),
    Prop("UserActualID", ID, "Unique identifier of the user who made the change."),
)

PLAYBOOK_METADATA = (
    Prop("PlaybookID", ID, "Unique identifier of the playbook."),
    Prop("TeamID", ID, "Unique identifier of the playbook's team."),
    Prop("NumChecklists", INT, "Number of stages."),
    Prop("TotalChecklistItems", INT, "Number of tasks over all stages."),
    Prop("IsPublic", BOOL, "Whether incidents started from the playbook are public."),
    Prop("NumMembers", INT, "Number of members of the playbook."),
    Prop("UserActualID", ID, "Unique identifier of the user who made the change."),
)

EVENTS: dict[str, Event] = {
    "incident": Event("incident", (
        Action("create", "An incident was started.", (
            Prop("Public", BOOL, "Whether the incident channel is public."),
            Prop("SeverityRank", SEVERITY_RANK, "The severity it started with, as its position in the "
                                                "configured levels (1: the most severe)."),
        )),
        Action("end", "An incident was ended."),
        Action("restart", "An ended incident was restarted."),
        Action("change_commander", "The commander changed."),
        Action("change_stage", "The active stage changed."),
        Action("add_members", "People were added to the incident channel.",
               (Prop("NumMembersAdded", INT, "How many people were added."),)),
        Action("add_timeline_event", "A person added a note to the incident's timeline.", (
            Prop("EventType", enum(*TIMELINE_EVENT_TYPES), "The kind of timeline entry added."),
            Prop("Backdated", BOOL, "Whether the entry is dated earlier than when it was added."),
            Prop("HasPost", BOOL, "Whether the entry points to a post."),
            Prop("NumDetails", INT, "How many fields the entry's details hold."),
        )),
        Action("remove_timeline_event", "An entry of the incident's timeline was deleted (hidden, kept for audit).", (
            Prop("EventType", enum(*TIMELINE_EVENT_TYPES), "The kind of timeline entry deleted."),
            Prop("WasCreator", BOOL, "Whether the user who deleted it is the one who made it."),
        )),
        Action("update_status", "A status update was posted (its message is never sent).", (
            Prop("ReminderSeconds", INT, "The reminder period in force after the update, in seconds (0: none)."),
            Prop("NumBroadcastChannels", INT, "How many broadcast channels got a copy."),
        )),
        Action("change_reminder", "The status update reminder was set, snoozed or switched off.",
               (Prop("ReminderSeconds", INT, "The new reminder period, in seconds (0: none)."),)),
        Action("change_broadcast_channels", "The channels that get a copy of each status update changed.",
               (Prop("NumBroadcastChannels", INT, "How many broadcast channels the incident has now."),)),
        Action("change_severity", "The severity was set, changed or cleared.", (
            Prop("SeverityRank", SEVERITY_RANK, "The new severity, as its position in the configured levels "
                                                "(1: the most severe)."),
            Prop("PreviousSeverityRank", SEVERITY_RANK, "The severity before the change, the same way."),
        )),
        Action("update_retrospective", "The retrospective was written (neither its text nor its length is sent)."),
        Action("publish_retrospective", "The retrospective was posted to the incident channel."),
    ), INCIDENT_METADATA, "plugin/service.py"),
    "tasks": Event("tasks", (
        Action("add_task", "A task was added."),
        Action("remove_task", "A task was removed."),
        Action("rename_task", "A task's title, description or command changed."),
        Action("modify_task_state", "A task was opened, started or closed.", (
            Prop("NewState", enum(*ITEM_STATES), "The task's new state."),
            Prop("WasCommander", BOOL, "Whether the user who changed it is the commander."),
            Prop("WasAssignee", BOOL, "Whether the user who changed it is the task's assignee."),
        )),
        Action("move_task", "A task moved within its stage."),
        Action("set_assignee_for_task", "A task was assigned or unassigned."),
        Action("run_task_slash_command", "A task's slash command was run."),
    ), INCIDENT_METADATA, "plugin/service.py"),
    "playbook": Event("playbook", (
        Action("create", "A playbook was created."),
        Action("update", "A playbook was changed."),
        Action("delete", "A playbook was deleted."),
    ), PLAYBOOK_METADATA, "plugin/playbooks.py"),
}


class Refused(ValueError):
    """An event or a property the catalogue does not allow; the message never holds the value."""


def allowed_properties(event: str, action: str, values: dict[str, Any]) -> dict[str, Any]:
    """Only the catalogued keys of values, each checked against its kind.

    Raises :class:`Refused` for an unknown event or action. A property that is not
    catalogued, or whose value does not fit its kind, is left out and the refusal is
    logged (key and kind only, never the value's content).
    """
    props = _properties_of(event, action)
    clean: dict[str, Any] = {}
    values = {**values, "Action": action}
    present = 0
    for prop in props:
        if prop.key not in values:
            log.warning("telemetry: %s/%s is missing property %s; recorded without it", event, action, prop.key)
            continue
        present += 1
        value = values[prop.key]
        if not prop.kind.accepts(value):
            log.warning("telemetry: refused property %s of %s/%s: a %s value does not fit kind %s",
                        prop.key, event, action, type(value).__name__, prop.kind.name)
            continue
        clean[prop.key] = value
    if len(values) > present:
        for key in values.keys() - {prop.key for prop in props}:
            log.warning("telemetry: refused property %s of %s/%s: not in the catalogue", key[:40], event, action)
    return clean


_PROPERTIES: dict[tuple[str, str], tuple[Prop, ...]] = {}


def _properties_of(event: str, action: str) -> tuple[Prop, ...]:
    """The properties of event/action, from the catalogue (looked up once per pair)."""
    found = _PROPERTIES.get((event, action))
    if found is None:
        spec = EVENTS.get(event)
        if spec is None or spec.action(action) is None:
            raise Refused(f"telemetry event {event!r} with action {action!r} is not in the catalogue")
        found = _PROPERTIES[(event, action)] = spec.properties(action)
    return found
