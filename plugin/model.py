"""Incidents, stages (checklists) and tasks (items): plain data and their rules.

Only the standard library is imported here. Every rule that decides whether a
change is allowed lives on these classes, so the HTTP API, the slash command and
the tests all get the same answers.
"""
from __future__ import annotations

import enum
import json
import os
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plugin.errors import BadInput, InvalidState, NotFound
# Messages name stages people titled, and are shown as Markdown in the slash replies.
from plugin.markdown import chat_inline

ID_LENGTH = 26
# Matched with fullmatch: "$" would also accept a trailing newline.
ID_PATTERN = re.compile(r"[a-z0-9]{26}")
# Mattermost's id alphabet (base32 without easily confused characters).
_ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
# Each random byte names one character by its low five bits: 256 is a multiple of 32,
# so every character of the alphabet is equally likely.
_BYTE_TO_ID_CHAR = bytes(_ID_ALPHABET[b % 32].encode()[0] for b in range(256))

NAME_MAX = 64
DESCRIPTION_MAX = 4096
# People one request may add to an incident, through the API or the slash command.
MEMBERS_ADD_MAX = 50
TITLE_MAX = 256
COMMAND_MAX = 1024
DEFAULT_CHECKLIST_TITLE = "Checklist"
STATUS_MESSAGE_MAX = 4000
# A reminder's period: from ten seconds (what a drill needs) to thirty days.
REMINDER_MIN_SECONDS = 10
REMINDER_MAX_SECONDS = 30 * 24 * 3600
MAX_BROADCAST_CHANNELS = 20
# Severity levels an admin defines (the SeverityLevels setting): short words, a handful of them.
SEVERITY_NAME_MAX = 32
SEVERITY_LEVELS_MAX = 20
DEFAULT_SEVERITY_LEVELS = ("sev1", "sev2", "sev3", "sev4")
# Ranks count the configured levels from 1 (most severe); these two mean no level, or one no longer configured.
NO_SEVERITY_RANK = -1
REMOVED_SEVERITY_RANK = 0
# A retrospective is posted to the incident channel as one message; a Mattermost post holds at most 16,383
# characters, which leaves room for the line that introduces it.
RETROSPECTIVE_MAX = 16_000
_SEVERITY_NAME = re.compile(r"[^\s,]{1,%d}" % SEVERITY_NAME_MAX)


def now_ms() -> int:
    """The clock every part of the server uses: milliseconds since 1970."""
    return int(time.time() * 1000)


def new_id() -> str:
    """Return a fresh 26-character id in Mattermost's format (its base32 alphabet), 130 random bits.

    Mattermost encodes 128 random bits; 26 independent random characters carry 130
    and look the same to every check of an id (26 characters of the alphabet). One
    random byte per character, mapped by a table, avoids ``base64.b32encode``, which
    is pure Python and runs for every id a create makes.
    """
    return os.urandom(ID_LENGTH).translate(_BYTE_TO_ID_CHAR).decode()


def text_problem(text: str) -> str | None:
    """Why a database could not store this text, or None: the one rule for all text we accept.

    PostgreSQL's text (in a UTF-8 database) refuses NUL and anything that is not valid
    UTF-8; a Python string fails to be UTF-8 only by holding a lone surrogate. SQLite
    would store both, but the same input must get the same answer on either database.
    """
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it contains a lone surrogate)"
    return None


def unstorable_text(data: Any, path: tuple[str, ...] = ()) -> tuple[tuple[str, ...], str] | None:
    """The first text in data (nested dicts, lists, strings) that no database can store.

    Returns the path to it (dict keys and list positions, as text) and what is wrong
    with it, or None. A dict key that cannot be stored counts as its own path. Every
    entry point checks what it receives with this before anything is read or written.
    """
    if isinstance(data, str):
        problem = text_problem(data)
        return (path, problem) if problem else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = (*path, str(key))
            if isinstance(key, str) and (problem := text_problem(key)):
                return where, f"{problem} (in the field name)"
            found = unstorable_text(value, where)
            if found:
                return found
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            found = unstorable_text(value, (*path, str(index)))
            if found:
                return found
    return None


def is_id(value: object) -> bool:
    """True when value looks like a Mattermost id (26 chars of [a-z0-9])."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


class ItemState(str, enum.Enum):
    """The state of a task."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


@dataclass
class ChecklistItem:
    """A task in a stage."""

    id: str
    title: str
    state: ItemState = ItemState.OPEN
    state_modified: int = 0
    assignee_id: str = ""
    command: str = ""
    description: str = ""
    #: When the task's command last ran (ms; 0: never).
    command_last_run: int = 0


@dataclass
class Checklist:
    """A stage: a titled list of tasks."""

    id: str
    title: str
    items: list[ChecklistItem] = field(default_factory=list)

    def item(self, index: int) -> ChecklistItem:
        """Return the task at index, or raise NotFound naming the valid range."""
        if not 0 <= index < len(self.items):
            raise NotFound(
                f"Task {index} does not exist in stage \"{self.title}\": "
                f"it has {len(self.items)} task(s), numbered from 0.",
                {"item": index, "item_count": len(self.items)},
            )
        return self.items[index]

    @property
    def open_item_count(self) -> int:
        """Tasks not yet closed."""
        return sum(1 for item in self.items if item.state is not ItemState.CLOSED)


@dataclass(frozen=True)
class IncidentHead:
    """An incident's row without its stages and tasks: what deciding who may see or change it needs.

    Read where the caller holds the rest already (a fetch of an incident still at the
    version it has kept) or needs none of it (the permission check before a change).
    """

    id: str
    version: int
    channel_id: str
    team_id: str
    public: bool
    commander_user_id: str


@dataclass
class Incident:
    """An incident and its rules; ``version`` counts committed changes (optimistic lock)."""

    id: str
    name: str
    team_id: str
    commander_user_id: str
    channel_id: str
    create_at: int
    description: str = ""
    is_active: bool = True
    end_at: int = 0
    post_id: str = ""
    public: bool = False
    active_stage: int = -1
    checklists: list[Checklist] = field(default_factory=list)
    version: int = 0
    playbook_id: str = ""
    #: Channels that get a copy of every status update (besides the incident channel).
    broadcast_channel_ids: list[str] = field(default_factory=list)
    #: How often the commander is reminded to post a status update; 0: never. The due
    #: time itself is not kept here (see ``Reminder``).
    reminder_seconds: int = 0
    #: One of the configured severity levels, as spelt there when it was set ("" for none). A
    #: level the admins have since removed stays readable (see ``SeverityLevels.rank``).
    severity: str = ""
    #: When the retrospective was last posted to the channel (ms); 0: never.
    retrospective_published_at: int = 0

    @property
    def active_stage_title(self) -> str:
        """Title of the active stage, or empty when there are no stages."""
        if 0 <= self.active_stage < len(self.checklists):
            return self.checklists[self.active_stage].title
        return ""

    @property
    def total_items(self) -> int:
        """Number of tasks over all stages."""
        return sum(len(checklist.items) for checklist in self.checklists)

    def checklist(self, index: int) -> Checklist:
        """Return the stage at index, or raise NotFound naming the valid range."""
        if not 0 <= index < len(self.checklists):
            raise NotFound(
                f"Stage {index} does not exist: this incident has {len(self.checklists)} "
                "stage(s), numbered from 0.",
                {"checklist": index, "checklist_count": len(self.checklists)},
            )
        return self.checklists[index]

    def require_active(self, what: str) -> None:
        """InvalidState unless the incident is active; ``what`` names what an ended incident refuses."""
        if not self.is_active:
            raise InvalidState(f"This incident has ended: it takes no {what}. Restart it first "
                               "(`/incident restart`, or PUT .../restart).", {"is_active": False})

    def next_reminder_at(self, now: int) -> int | None:
        """When the next reminder is due if the clock were reset now, or None when there is none."""
        if not self.is_active or self.reminder_seconds <= 0:
            return None
        return now + self.reminder_seconds * 1000

    def post_status_update(self, reminder_seconds: int | None) -> bool:
        """Accept a status update, setting the reminder period when given; True (an update always counts).

        Refused (InvalidState) once the incident has ended.
        """
        self.require_active("status updates")
        if reminder_seconds is not None:
            self.reminder_seconds = check_reminder_seconds(reminder_seconds)
        return True

    def set_reminder(self, seconds: int) -> bool:
        """Remind every ``seconds`` from now on (0: never); True (the clock restarts even at the same period)."""
        self.require_active("reminders")
        self.reminder_seconds = check_reminder_seconds(seconds)
        return True

    def set_broadcast_channels(self, channel_ids: list[str]) -> bool:
        """Replace the broadcast channels (repeats dropped, order kept); False when they are the same."""
        wanted = check_broadcast_channels(channel_ids)
        if wanted == self.broadcast_channel_ids:
            return False
        self.require_active("changes to its broadcast channels")
        self.broadcast_channel_ids = wanted
        return True

    def set_severity(self, level: str) -> bool:
        """Set the severity (a level already checked with ``SeverityLevels.resolve``); False when unchanged.

        Allowed after the end as well: an incident is often graded again when it is reviewed.
        """
        if level == self.severity:
            return False
        self.severity = level
        return True

    def end(self, now: int) -> bool:
        """End an active incident (True: every change method answers whether it changed anything)."""
        if not self.is_active:
            raise InvalidState("This incident has already ended: only an active incident can be ended.")
        self.is_active = False
        self.end_at = now
        return True

    def restart(self) -> bool:
        """Make an ended incident active again."""
        if self.is_active:
            raise InvalidState("This incident is already active: only an ended incident can be restarted.")
        self.is_active = True
        self.end_at = 0
        return True

    def change_commander(self, user_id: str) -> bool:
        """Set the commander; False (and nothing changed) when it is the same user."""
        if user_id == self.commander_user_id:
            return False
        self.commander_user_id = user_id
        return True

    def set_active_stage(self, index: int) -> bool:
        """Move to the stage at index; False when it is already active."""
        if not 0 <= index < len(self.checklists):
            # A body field out of range is bad input (400), as a path naming no stage is a 404.
            raise BadInput(
                f"active_stage {index} does not exist: use a stage number from 0 to "
                f"{len(self.checklists) - 1}." if self.checklists else
                "This incident has no stages, so it has no active stage to change.",
                {"active_stage": index, "checklist_count": len(self.checklists)},
            )
        if index == self.active_stage:
            return False
        self.active_stage = index
        return True

    def next_stage(self, *, force: bool = False) -> bool:
        """Move from the active stage to the one after it; True (a move that cannot be made raises).

        Refused (InvalidState) from the last stage and, unless forced, while the
        active stage has open tasks.
        """
        if not self.checklists:
            raise InvalidState("This incident has no stages.", {"checklist_count": 0})
        if self.active_stage >= len(self.checklists) - 1:
            raise self._about_stage("{stage} is the last stage.",
                                    {"active_stage": self.active_stage, "last_stage": True})
        open_tasks = self.checklists[self.active_stage].open_item_count if self.active_stage >= 0 else 0
        if open_tasks and not force:
            raise self._about_stage(f"Stage {{stage}} still has {open_tasks} open task(s).",
                                    {"active_stage": self.active_stage, "open_tasks": open_tasks})
        self.active_stage += 1
        return True

    def previous_stage(self) -> bool:
        """Move from the active stage to the one before it; True (refused with InvalidState at the first)."""
        if not self.checklists:
            raise InvalidState("This incident has no stages.", {"checklist_count": 0})
        if self.active_stage <= 0:
            raise self._about_stage("{stage} is already the first stage.",
                                    {"active_stage": self.active_stage, "first_stage": True})
        self.active_stage -= 1
        return True

    def _about_stage(self, sentence: str, details: dict[str, Any]) -> InvalidState:
        """A refusal naming the active stage at ``{stage}``: quoted in the message, bold and escaped in chat."""
        title = self.active_stage_title
        return InvalidState(sentence.format(stage=f'"{title}"'), details,
                            chat=sentence.format(stage=f"**{chat_inline(title)}**"))

    def add_item(self, checklist: int, item: ChecklistItem) -> bool:
        """Append a task to a stage."""
        self.checklist(checklist).items.append(item)
        return True

    def edit_item(self, checklist: int, index: int, *, title: str | None = None,
                  description: str | None = None, command: str | None = None) -> bool:
        """Change a task's texts; False when nothing differs."""
        item = self.checklist(checklist).item(index)
        changed = False
        for name, value in (("title", title), ("description", description), ("command", command)):
            if value is not None and getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        return changed

    def remove_item(self, checklist: int, index: int) -> bool:
        """Remove a task."""
        stage = self.checklist(checklist)
        stage.item(index)
        stage.items.pop(index)
        return True

    def move_item(self, checklist: int, item_num: int, new_location: int) -> bool:
        """Move a task within its stage; False when it stays where it is."""
        stage = self.checklist(checklist)
        # Both numbers come in the body: out of range is bad input (400) naming the field.
        for name, number in (("item_num", item_num), ("new_location", new_location)):
            if not 0 <= number < len(stage.items):
                raise BadInput(
                    f"{name} {number} is out of range: stage {checklist} has {len(stage.items)} task(s), "
                    + (f"so use 0 to {len(stage.items) - 1}." if stage.items else "so none can be moved."),
                    {name: number, "item_count": len(stage.items)},
                )
        if item_num == new_location:
            return False
        stage.items.insert(new_location, stage.items.pop(item_num))
        return True

    def set_item_state(self, checklist: int, index: int, state: ItemState, now: int) -> bool:
        """Set a task's state; False when it already has it."""
        item = self.checklist(checklist).item(index)
        if item.state is state:
            return False
        item.state = state
        item.state_modified = now
        return True

    def toggle_item_state(self, checklist: int, index: int, now: int) -> bool:
        """Open a closed task, or close one that is not; True (it always changes)."""
        closed = self.checklist(checklist).item(index).state is ItemState.CLOSED
        return self.set_item_state(checklist, index, ItemState.OPEN if closed else ItemState.CLOSED, now)

    def task_position(self, item_id: str) -> tuple[int, int] | None:
        """Where the task with this id is now (stage, task), or None when no stage has it."""
        for stage, checklist in enumerate(self.checklists):
            for index, item in enumerate(checklist.items):
                if item.id == item_id:
                    return stage, index
        return None

    def mark_command_run(self, checklist: int, index: int, now: int) -> bool:
        """Record that the task's command ran at now; True (a run is always news)."""
        self.checklist(checklist).item(index).command_last_run = now
        return True

    def set_item_assignee(self, checklist: int, index: int, assignee_id: str) -> bool:
        """Assign (or, with an empty id, unassign) a task; False when unchanged."""
        item = self.checklist(checklist).item(index)
        if item.assignee_id == assignee_id:
            return False
        item.assignee_id = assignee_id
        return True


@dataclass
class Playbook:
    """A template of stages and tasks that incidents start from, and who may use it.

    Rules: the creator is always a member; only members (and system admins) may
    see, use, change or delete a playbook.
    """

    id: str
    title: str
    team_id: str
    description: str = ""
    create_public_incident: bool = False
    checklists: list[Checklist] = field(default_factory=list)
    member_ids: list[str] = field(default_factory=list)
    create_at: int = 0
    update_at: int = 0
    #: Copied into each incident started from the playbook.
    broadcast_channel_ids: list[str] = field(default_factory=list)
    reminder_seconds: int = 0
    #: The severity of incidents started from the playbook when the request gives none ("" for none).
    default_severity: str = ""
    #: Markdown each incident's retrospective starts from; copied into the incident at its start.
    retrospective_template: str = ""
    #: Whether incidents started from it may write and publish their retrospective before they end.
    retrospective_before_end: bool = False

    @property
    def num_stages(self) -> int:
        """Number of stages."""
        return len(self.checklists)

    @property
    def num_tasks(self) -> int:
        """Number of tasks over all stages."""
        return sum(len(checklist.items) for checklist in self.checklists)

    def is_member(self, user_id: str) -> bool:
        """May this user see and use the playbook (system admins aside)?"""
        return user_id in self.member_ids

    def set_members(self, member_ids: list[str], keep: str) -> None:
        """Replace the members, always keeping ``keep`` (the creator or the editor) and dropping repeats."""
        self.member_ids = list(dict.fromkeys([keep, *member_ids]))

    def stage_copies(self, make_id: Callable[[], str]) -> list[Checklist]:
        """Fresh stages for an incident: new ids, every task open and unassigned."""
        return [Checklist(make_id(), stage.title, [
            ChecklistItem(make_id(), item.title, command=item.command, description=item.description)
            for item in stage.items]) for stage in self.checklists]


# What a timeline entry tells: each kind of change writes its own, and people add notes.
TIMELINE_EVENT_TYPES = ("incident_created", "stage_changed", "commander_changed", "task_state_changed",
                        "task_assigned", "status_updated", "incident_ended", "incident_restarted", "note",
                        "severity_changed", "retrospective_published", "task_command_run", "members_added")
SUMMARY_MAX = 1024
# A note's details are a small JSON object, at most this long when written out.
DETAILS_MAX = 8192
# A note may be dated this far past the server's clock: the writer's clock may run a little ahead.
CLOCK_SKEW_MS = 60_000


@dataclass
class TimelineEntry:
    """One line of an incident's timeline: what happened, when and who did it.

    ``summary`` is one line built from ids and names as they were then (or a
    person's note); ``details`` holds the ids and positions behind it. A deleted
    entry is hidden but kept, with who deleted it and when.
    """

    id: str
    incident_id: str
    event_type: str
    event_at: int
    create_at: int
    creator_user_id: str
    summary: str
    subject_user_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    post_id: str = ""
    deleted: bool = False
    deleted_at: int = 0
    deleted_by: str = ""

    @classmethod
    def note(cls, entry_id: str, incident_id: str, user_id: str, summary: str, now: int, *,
             details: dict[str, Any] | None = None, event_at: int | None = None, post_id: str = "") -> TimelineEntry:
        """A note a person adds; BadInput, saying what to fix, unless it is one line of text dated no later than now."""
        summary = summary.strip() if isinstance(summary, str) else summary
        if not isinstance(summary, str) or not summary:
            raise BadInput("A note needs a summary: one line saying what happened.", {"summary": "required"})
        if len(summary) > SUMMARY_MAX:
            raise BadInput(f"The summary is {len(summary)} characters long; use at most {SUMMARY_MAX} and put "
                           "the rest in details.", {"summary": len(summary), "max": SUMMARY_MAX})
        if "\n" in summary or "\r" in summary:
            raise BadInput("The summary must be one line; put more in details.", {"summary": "one line"})
        if problem := text_problem(summary):
            raise BadInput(f"The summary {problem}.", {"summary": problem})
        details = {} if details is None else details
        if not isinstance(details, dict):
            raise BadInput("details must be a JSON object.", {"details": type(details).__name__})
        if len(json.dumps(details)) > DETAILS_MAX:
            raise BadInput(f"details is too large: keep it under {DETAILS_MAX} characters of JSON.",
                           {"details": "too large", "max": DETAILS_MAX})
        if event_at is None:
            event_at = now
        elif event_at > now + CLOCK_SKEW_MS:
            raise BadInput("event_at is in the future: give when it happened, in milliseconds since 1970, "
                           "no later than now.", {"event_at": event_at, "now": now})
        if post_id and not is_id(post_id):
            raise BadInput("post_id must be an id of 26 characters a-z0-9, or empty.", {"post_id": post_id[:40]})
        return cls(id=entry_id, incident_id=incident_id, event_type="note", event_at=event_at, create_at=now,
                   creator_user_id=user_id, summary=summary, details=details, post_id=post_id)

    def delete(self, user_id: str, now: int) -> None:
        """Hide the entry, keeping who hid it and when; NotFound when it is hidden already."""
        if self.deleted:
            raise NotFound(f"Timeline entry {self.id} was deleted already.", {"event_id": self.id})
        self.deleted = True
        self.deleted_at = now
        self.deleted_by = user_id


def check_reminder_seconds(seconds: int) -> int:
    """The period, if it is 0 (never) or within the allowed range; BadInput saying the range otherwise."""
    if seconds != 0 and not REMINDER_MIN_SECONDS <= seconds <= REMINDER_MAX_SECONDS:
        raise BadInput(f"A reminder period is 0 (never) or from {REMINDER_MIN_SECONDS} seconds to "
                       f"{REMINDER_MAX_SECONDS // 86400} days ({REMINDER_MAX_SECONDS} seconds).",
                       {"reminder_seconds": seconds})
    return seconds


def check_broadcast_channels(channel_ids: list[str]) -> list[str]:
    """The channel ids without repeats, if there are not too many; BadInput otherwise."""
    wanted = list(dict.fromkeys(channel_ids))
    if len(wanted) > MAX_BROADCAST_CHANNELS:
        raise BadInput(f"Give at most {MAX_BROADCAST_CHANNELS} broadcast channels.",
                       {"broadcast_channel_ids": len(wanted)})
    return wanted


def check_status_message(message: str) -> str:
    """The message without surrounding whitespace, if it is not blank nor too long; BadInput otherwise."""
    text = message.strip()
    if not text:
        raise BadInput("A status update needs a message: say what changed, e.g. `/incident update "
                       "rolled back, errors dropping`.", {"message": "blank"})
    if len(text) > STATUS_MESSAGE_MAX:
        raise BadInput(f"The status update is {len(text)} characters long; use at most {STATUS_MESSAGE_MAX}.",
                       {"message": len(text)})
    return text


def check_retrospective_text(text: str) -> str:
    """The text, if a database can store it and one chat post can hold it; BadInput saying what to fix otherwise."""
    if len(text) > RETROSPECTIVE_MAX:
        raise BadInput(f"The retrospective is {len(text)} characters long; use at most {RETROSPECTIVE_MAX}: it is "
                       "posted to the incident channel as one message.", {"text": len(text), "max": RETROSPECTIVE_MAX})
    if problem := text_problem(text):
        raise BadInput(f"The retrospective {problem}.", {"text": problem})
    return text


@dataclass
class Retrospective:
    """What an incident's people learnt, in Markdown: written once it has ended, then posted to its channel.

    Kept beside the incident's row, not in it: it can be long and is read on its own.
    ``update_at`` stays 0 while nobody has written it (it holds the playbook's template,
    if any); ``allowed_before_end`` is the playbook's word that it may be written earlier.
    """

    incident_id: str
    text: str = ""
    update_at: int = 0
    updated_by: str = ""
    allowed_before_end: bool = False

    def is_open(self, incident: Incident) -> bool:
        """May it be written and published now: once the incident has ended, or earlier when its playbook allows?"""
        return not incident.is_active or self.allowed_before_end

    def require_open(self, incident: Incident) -> None:
        """InvalidState, saying when it opens, unless it may be written now."""
        if not self.is_open(incident):
            raise InvalidState("The retrospective opens once the incident has ended: end it first (`/incident end`, "
                               "or PUT .../end), or start incidents from a playbook with retrospective_before_end.",
                               {"is_active": True, "retrospective_before_end": False})

    def write(self, text: str, user_id: str, now: int, incident: Incident) -> bool:
        """Replace the text (checked with ``check_retrospective_text``); False when it is already this text."""
        self.require_open(incident)
        if self.update_at and text == self.text:
            return False
        self.text, self.update_at, self.updated_by = text, now, user_id
        return True

    def publish(self, incident: Incident, now: int) -> bool:
        """Mark it published on the incident; InvalidState while it may not be written, or nobody has written it."""
        self.require_open(incident)
        if not self.text.strip():
            raise InvalidState("The retrospective is empty: write it first (PUT .../retrospective {text}), then "
                               "publish it.", {"text": "blank"})
        if not self.update_at:
            raise InvalidState("The retrospective still holds only its playbook's template: write it first "
                               "(PUT .../retrospective {text}), then publish it.", {"text": "template"})
        incident.retrospective_published_at = now
        return True


@dataclass(frozen=True)
class StatusUpdate:
    """What the incident's people told everyone, and when: kept, and posted to the incident's channels."""

    id: str
    incident_id: str
    user_id: str
    message: str
    create_at: int


@dataclass(frozen=True)
class Reminder:
    """A reminder to post a status update that is due at ``due_at`` (ms).

    Kept apart from the incident's row: the servers that fire reminders claim one by
    moving its due time (compare-and-set), while changes to the incident save its
    whole row at its version, so the two never overwrite each other.
    """

    incident_id: str
    due_at: int

    def next_due(self, period_seconds: int, now: int) -> int:
        """When it is due again after firing now: a period after this due time, keeping the rhythm; but a
        period after now when that is already past (a server that was down fires late once, not once per
        missed period)."""
        period = period_seconds * 1000
        following = self.due_at + period
        return following if following > now else now + period


def parse_severity_levels(text: str) -> tuple[str, ...]:
    """The levels of a SeverityLevels value (comma-separated, most severe first); ValueError saying what to fix.

    Each level is one word (no spaces or commas) of at most SEVERITY_NAME_MAX characters;
    no two may differ only in case, since people type them in either case.
    """
    names = [part.strip() for part in text.split(",")]
    if not text.strip():
        raise ValueError("give at least one severity level, most severe first, e.g. sev1,sev2,sev3,sev4")
    if any(not name for name in names):
        raise ValueError("a severity level is empty: separate the levels by single commas, e.g. sev1,sev2,sev3")
    bad = [name for name in names if not _SEVERITY_NAME.fullmatch(name) or text_problem(name)]
    if bad:
        raise ValueError(f"each severity level is one word of 1 to {SEVERITY_NAME_MAX} characters without spaces; "
                         f"not {', '.join(repr(name[:40]) for name in bad[:5])}")
    if len(names) > SEVERITY_LEVELS_MAX:
        raise ValueError(f"give at most {SEVERITY_LEVELS_MAX} severity levels, not {len(names)}")
    seen: dict[str, str] = {}
    for name in names:
        if name.lower() in seen:
            raise ValueError(f"the severity level {name!r} is given twice (levels are matched ignoring case)")
        seen[name.lower()] = name
    return tuple(names)


@dataclass(frozen=True)
class SeverityLevels:
    """The severity levels in force, most severe first: ranks, and the level a person meant.

    A level that was removed from the setting stays on the incidents that hold it:
    its rank is REMOVED_SEVERITY_RANK and it sorts after every configured level.
    """

    names: tuple[str, ...] = DEFAULT_SEVERITY_LEVELS

    def rank(self, level: str) -> int:
        """The level's position, counted from 1 (most severe); 0 for a level no longer configured, -1 for none."""
        if not level:
            return NO_SEVERITY_RANK
        try:
            return self.names.index(level) + 1
        except ValueError:
            return REMOVED_SEVERITY_RANK

    def find(self, level: str) -> str | None:
        """The configured level spelt as in the setting, matched ignoring case; None when there is none."""
        wanted = level.strip().lower()
        return next((name for name in self.names if name.lower() == wanted), None)

    def resolve(self, level: str) -> str:
        """The level to set: as spelt in the setting, or "" (none) for empty; BadInput naming the levels otherwise."""
        if not level.strip():
            return ""
        found = self.find(level)
        if found is None:
            wanted, levels = level.strip()[:40], self.describe()
            raise BadInput(f"'{wanted}' is not a severity level: use one of {levels} (most severe first).",
                           {"severity": level[:40], "levels": list(self.names)},
                           chat=f"'{chat_inline(wanted)}' is not a severity level: use one of "
                                f"{chat_inline(levels)} (most severe first).")
        return found

    def describe(self) -> str:
        """The levels as a sentence lists them: sev1, sev2, sev3 or sev4."""
        return self.names[0] if len(self.names) == 1 else f"{', '.join(self.names[:-1])} or {self.names[-1]}"


PLAYBOOK_SORT_KEYS = ("title", "stages", "tasks")


@dataclass
class PlaybookFilter:
    """Which playbooks to list: a team, an optional member, sort and page."""

    team_id: str
    member_id: str | None = None
    sort: str = "title"
    direction: str = "asc"
    page: int = 0
    per_page: int = 100


def checklists_to_json(checklists: list[Checklist]) -> list[dict[str, Any]]:
    """Stages and tasks as plain JSON."""
    return [
        {"id": c.id, "title": c.title, "items": [
            {"id": i.id, "title": i.title, "state": i.state.value, "state_modified": i.state_modified,
             "assignee_id": i.assignee_id, "command": i.command, "description": i.description,
             "command_last_run": i.command_last_run}
            for i in c.items]}
        for c in checklists
    ]


def checklists_from_json(data: list[dict[str, Any]]) -> list[Checklist]:
    """Stages and tasks from plain JSON."""
    return [
        Checklist(c["id"], c["title"], [
            ChecklistItem(i["id"], i["title"], ItemState(i["state"]), i["state_modified"],
                          i["assignee_id"], i["command"], i["description"], i.get("command_last_run", 0))
            for i in c["items"]])
        for c in data
    ]


def slugify(name: str, max_length: int = 50) -> str:
    """Turn an incident name into a channel-name slug ([a-z0-9-], 2+ chars)."""
    # Accented letters keep their base letter (Ünïcode -> unicode); other scripts drop out.
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:max_length].strip("-")
    return slug if len(slug) >= 2 else "incident"


SORT_KEYS = ("create_at", "end_at", "name", "commander_user_id", "is_active", "severity")
STATUSES = ("all", "active", "ended")


@dataclass
class IncidentFilter:
    """What to list: filters, sort and page, plus the visibility the service adds.

    ``visible_channel_ids`` is None for callers who may see everything (system
    admins); otherwise only incidents in those channels, or public ones when
    ``include_public`` (the caller is a member of the team), are listed.
    """

    team_id: str = ""
    status: str = "all"
    commander_user_id: str = ""
    member_id: str = ""
    search_term: str = ""
    #: Only incidents at one of these levels ("" stands for no severity); empty: any.
    severity: list[str] = field(default_factory=list)
    sort: str = "create_at"
    direction: str = "desc"
    page: int = 0
    per_page: int = 100
    member_channel_ids: frozenset[str] | None = None
    visible_channel_ids: frozenset[str] | None = None
    include_public: bool = False
    #: The levels in force, most severe first: the order of ``sort="severity"`` (set by the service).
    severity_levels: tuple[str, ...] = DEFAULT_SEVERITY_LEVELS
