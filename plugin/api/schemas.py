"""Marshmallow schemas: all parsing and dumping of the HTTP API happens here."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from plugin import model
from plugin.model import ID_PATTERN, SORT_KEYS, STATUSES, TIMELINE_EVENT_TYPES, ItemState, is_id
from plugin.playbooks import NewPlaybook, PlaybookChanges
from plugin.service import IncidentPatch, NewChecklist, NewIncident, NewItem

SERVER_SET_FIELDS = ("id", "channel_id", "create_at", "end_at", "is_active", "active_stage",
                     "active_stage_title")
MAX_STAGES = 50
MAX_ITEMS_PER_STAGE = 200


class Text(fields.String):
    """Text people type; the parser has already refused any no database can store (see plugin.api.Parser)."""

    def __init__(self, **kwargs: Any):
        # The document states the NUL rule as a pattern; lone surrogates cannot be written
        # as a portable pattern, so the description names them.
        metadata = {"pattern": "^[^\\u0000]*$", "description": "Text without NUL characters or lone surrogates.",
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)


class Trimmed(Text):
    """Text with surrounding whitespace removed; when a length of at least 1 is required, not blank."""

    def __init__(self, **kwargs: Any):
        validators = kwargs.get("validate")
        validators = validators if isinstance(validators, list) else [validators]
        if any(isinstance(v, validate.Length) and (v.min or 0) >= 1 for v in validators):
            # Python's strip also removes \x1c-\x1f and \x85, which JSON Schema's \s does not name.
            kwargs["metadata"] = {"pattern": "^[^\\u0000]*[^\\s\\u0000\\u001c-\\u001f\\u0085][^\\u0000]*$",
                                  **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


NO_NUL = "^[^\\u0000]*$"


FLAT = "Must be text, a number or true/false: details is a flat object."


def _check_scalar(value: Any) -> None:
    if isinstance(value, (dict, list)):
        raise ValidationError(FLAT)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Must be a finite number (JSON has no NaN or Infinity).")


class Details(fields.Dict):
    """A flat JSON object of facts: text keys; text, number or true/false values (``document_details``)."""

    def __init__(self, **kwargs: Any):
        super().__init__(keys=fields.String(), values=fields.Raw(validate=_check_scalar, error_messages={
            "null": FLAT}), error_messages={"invalid": "Must be a JSON object."}, **kwargs)


def document_details(_converter: Any, field: Any, **_: Any) -> dict[str, Any]:
    """What a Details field's values may be, for the document (an attribute function of apispec's converter).

    OpenAPI 3.0 has no way to state a rule on property names, so the document cannot
    say that a key holding a NUL is refused (as all text is, see plugin.api.Parser).
    """
    if not isinstance(field, Details):
        return {}
    return {"additionalProperties": {
        "anyOf": [{"type": "string", "pattern": NO_NUL}, {"type": "number"}, {"type": "boolean"}]}}


def _check_id(value: str) -> None:
    if not is_id(value):
        raise ValidationError("Must be an id of 26 characters a-z0-9.")


def _check_optional_id(value: str) -> None:
    if value and not is_id(value):
        raise ValidationError("Must be an id of 26 characters a-z0-9, or empty.")


def Id(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    """A Mattermost id: 26 characters of a-z and 0-9."""
    metadata = {"pattern": f"^{ID_PATTERN.pattern}$", "example": "a" * 26, **kwargs.pop("metadata", {})}
    return fields.String(validate=_check_id, metadata=metadata, **kwargs)


def OptionalId(**kwargs: Any) -> fields.String:  # noqa: N802
    """An id, or the empty string for none."""
    metadata = {"pattern": f"^({ID_PATTERN.pattern})?$", **kwargs.pop("metadata", {})}
    return fields.String(validate=_check_optional_id, metadata=metadata, **kwargs)


class QueryNumber(fields.Integer):
    """A whole number in a query string, written as path numbers are: the digits 0-9 only.

    ``int()`` alone would also read a sign, spaces, ``_`` and other scripts' digits.
    """

    default_error_messages = {"invalid": "Must be a whole number from 0, written with the digits 0-9 only."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictSchema(Schema):
    """Unknown fields are an error, so a typo never passes silently.

    ``body_rules`` holds JSON Schema keywords for rules over the whole body that the
    schema checks in code (``validates_schema``), so the published document states them.
    """

    body_rules: dict[str, Any] = {}

    class Meta:
        unknown = RAISE


# ----- requests ---------------------------------------------------------------------------
class NewItemSchema(StrictSchema):
    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    description = Text(load_default="", validate=validate.Length(0, model.DESCRIPTION_MAX))
    command = Trimmed(load_default="", validate=validate.Length(0, model.COMMAND_MAX))

    @post_load
    def to_item(self, data: dict[str, Any], **_: Any) -> NewItem:
        return NewItem(**data)


class NewChecklistSchema(StrictSchema):
    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    items = fields.List(fields.Nested(NewItemSchema), load_default=list,
                        validate=validate.Length(0, MAX_ITEMS_PER_STAGE))

    @post_load
    def to_checklist(self, data: dict[str, Any], **_: Any) -> NewChecklist:
        return NewChecklist(**data)


# Marks a property whose values are the severity levels in force: the document lists them (see document_severity_levels).
SEVERITY_MARK = "x-severity-levels"


def Severity(**kwargs: Any) -> Trimmed:  # noqa: N802 - reads like a field class
    """A severity level as typed: one of the SeverityLevels setting (checked by the service), or empty for none."""
    metadata = {"pattern": "^\\s*[^\\s,\\u0000]{0,%d}\\s*$" % model.SEVERITY_NAME_MAX, SEVERITY_MARK: True,
                "enum": ["", *model.DEFAULT_SEVERITY_LEVELS], **kwargs.pop("metadata", {})}
    return Trimmed(validate=validate.Length(0, model.SEVERITY_NAME_MAX), metadata=metadata, **kwargs)


def document_severity_levels(schemas: dict[str, dict[str, Any]], levels: model.SeverityLevels) -> None:
    """Make the document's severity properties list the levels in force ("" for none); admins change them at run time.

    ``schemas`` are the document's component schemas. Each list is replaced whole (no
    key is added), so a document being written out meanwhile sees the old list or the new.
    """
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            if prop.get(SEVERITY_MARK):
                prop["enum"] = ["", *levels.names]


class CreateIncidentSchema(StrictSchema):
    name = Trimmed(required=True, validate=validate.Length(1, model.NAME_MAX))
    description = Text(load_default="", validate=validate.Length(0, model.DESCRIPTION_MAX))
    team_id = Id(required=True)
    commander_user_id = Id(required=True)
    public = fields.Boolean(load_default=None, metadata={
        "description": "Open channel and visible to the team; default: the playbook's create_public_incident, "
                       "or false."})
    post_id = OptionalId(load_default="")
    checklists = fields.List(fields.Nested(NewChecklistSchema), load_default=None, allow_none=True,
                             validate=validate.Length(0, MAX_STAGES))
    playbook_id = OptionalId(load_default="", metadata={
        "description": "Start from this playbook's stages and tasks (not together with checklists)."})
    severity = Severity(load_default=None, metadata={
        "description": "A level of the SeverityLevels setting, or empty for none; default: the playbook's "
                       "default_severity, or none."})

    body_rules = {"not": {"required": ["playbook_id", "checklists"]}}

    @pre_load
    def refuse_two_sources_of_stages(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and "playbook_id" in data and "checklists" in data:
            raise ValidationError("Give either playbook_id or checklists, not both: an incident started from a "
                                  "playbook gets the playbook's stages and tasks.", "checklists")
        return data

    @pre_load
    def refuse_server_fields(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            given = {key: "Set by the server; remove it from the request." for key in SERVER_SET_FIELDS
                     if key in data}
            if given:
                raise ValidationError(given)
        return data

    @post_load
    def to_incident(self, data: dict[str, Any], **_: Any) -> NewIncident:
        return NewIncident(**data)


class PagingSchema(StrictSchema):
    """Which page of a list, counted from 0, and how long a page is."""

    page = QueryNumber(load_default=0, validate=validate.Range(0, 100_000))
    per_page = QueryNumber(load_default=100, validate=validate.Range(1, 200))


class PageSchema(Schema):
    """One page of a list and how many items the whole list holds."""

    total_count = fields.Integer()
    page_count = fields.Integer()
    has_more = fields.Boolean()


class ListQuerySchema(PagingSchema):
    team_id = Id(load_default="")
    status = fields.String(load_default="all", validate=validate.OneOf(STATUSES))
    commander_user_id = Id(load_default="")
    member_id = Id(load_default="")
    search_term = Text(load_default="", validate=validate.Length(0, model.NAME_MAX))
    severity = fields.List(Text(validate=validate.Length(0, model.SEVERITY_NAME_MAX)), load_default=list, metadata={
        "description": "Only incidents at these severity levels (repeat the parameter for more; an empty value "
                       "stands for no severity). Levels no longer configured may be given too."})
    sort = fields.String(load_default="create_at", validate=validate.OneOf(SORT_KEYS), metadata={
        "description": "severity orders by the SeverityLevels setting: descending, the most severe first, then "
                       "levels no longer configured, then incidents without a severity; ties newest first."})
    direction = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))

    @post_load
    def to_filter(self, data: dict[str, Any], **_: Any) -> model.IncidentFilter:
        return model.IncidentFilter(**data)


@dataclass(frozen=True)
class CommanderChange:
    """Who is to command the incident."""

    commander_id: str


class CommanderSchema(StrictSchema):
    commander_id = Id(required=True)

    @post_load
    def to_change(self, data: dict[str, Any], **_: Any) -> CommanderChange:
        return CommanderChange(**data)


@dataclass(frozen=True)
class NewMembers:
    """People to add to the incident channel."""

    user_ids: list[str]


class AddMembersSchema(StrictSchema):
    user_ids = fields.List(Id(), required=True, validate=validate.Length(min=1, max=model.MEMBERS_ADD_MAX))

    @post_load
    def to_members(self, data: dict[str, Any], **_: Any) -> NewMembers:
        return NewMembers(**data)


class MembersAddedSchema(Schema):
    added = fields.List(fields.String())
    already_members = fields.List(fields.String())


def _check_reminder_seconds(value: int) -> None:
    if value != 0 and not model.REMINDER_MIN_SECONDS <= value <= model.REMINDER_MAX_SECONDS:
        raise ValidationError(f"Must be 0 (never) or from {model.REMINDER_MIN_SECONDS} to "
                              f"{model.REMINDER_MAX_SECONDS} seconds.")


def ReminderSeconds(**kwargs: Any) -> fields.Integer:  # noqa: N802 - reads like a field class
    """A reminder period in seconds: 0 for never, else within the model's range."""
    metadata = {"description": f"Seconds between reminders: 0 for never, else {model.REMINDER_MIN_SECONDS} "
                               f"to {model.REMINDER_MAX_SECONDS}.",
                "anyOf": [{"enum": [0]}, {"minimum": model.REMINDER_MIN_SECONDS}], **kwargs.pop("metadata", {})}
    return fields.Integer(strict=True, validate=[validate.Range(0, model.REMINDER_MAX_SECONDS),
                                                 _check_reminder_seconds], metadata=metadata, **kwargs)


def BroadcastChannels(**kwargs: Any) -> fields.List:  # noqa: N802
    """Channel ids that get a copy of each status update."""
    return fields.List(Id(), validate=validate.Length(0, model.MAX_BROADCAST_CHANNELS), **kwargs)


class PatchIncidentSchema(StrictSchema):
    """One change per request: the active stage, the broadcast channels, or the severity."""

    body_rules = {"minProperties": 1, "maxProperties": 1}
    active_stage = fields.Integer(strict=True, validate=validate.Range(0), metadata={
        "description": "The stage to make active, numbered from 0; one the incident lacks is a 400 naming its "
                       "stages' numbers."})
    broadcast_channel_ids = BroadcastChannels(metadata={
        "description": "Replaces the list. Each channel added must exist and the caller must be able to post "
                       "in it."})
    severity = Severity(metadata={
        "description": "A level of the SeverityLevels setting (400 names them otherwise), or empty to clear it."})

    @validates_schema
    def require_one(self, data: dict[str, Any], **_: Any) -> None:
        if len(data) != 1:
            raise ValidationError("Give exactly one of active_stage, broadcast_channel_ids or severity.", "_schema")

    @post_load
    def to_patch(self, data: dict[str, Any], **_: Any) -> IncidentPatch:
        return IncidentPatch(**data)


@dataclass(frozen=True)
class NewStatusUpdate:
    """A status update to post, and the reminder period from then on (None: the incident's current one)."""

    message: str
    reminder_seconds: int | None


class NewStatusUpdateSchema(StrictSchema):
    message = Trimmed(required=True, validate=validate.Length(1, model.STATUS_MESSAGE_MAX))
    reminder_seconds = ReminderSeconds(load_default=None, metadata={
        "description": "The reminder period from now on (0: never); default: the incident's current period."})

    @post_load
    def to_update(self, data: dict[str, Any], **_: Any) -> NewStatusUpdate:
        return NewStatusUpdate(**data)


class StatusUpdateListQuerySchema(PagingSchema):
    """A page of an incident's status updates."""


@dataclass(frozen=True)
class ReminderChange:
    """How often to remind the commander from now on (0: never)."""

    seconds: int


class ReminderSchema(StrictSchema):
    seconds = ReminderSeconds(required=True)

    @post_load
    def to_change(self, data: dict[str, Any], **_: Any) -> ReminderChange:
        return ReminderChange(**data)


@dataclass(frozen=True)
class TaskEdit:
    """New text for a task: None stands for a field not given, which keeps its value."""

    title: str | None = None
    description: str | None = None
    command: str | None = None


class EditItemSchema(StrictSchema):
    body_rules = {"minProperties": 1}
    title = Trimmed(validate=validate.Length(1, model.TITLE_MAX))
    description = Text(validate=validate.Length(0, model.DESCRIPTION_MAX))
    command = Trimmed(validate=validate.Length(0, model.COMMAND_MAX))

    @validates_schema
    def require_something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of title, description or command.", "_schema")

    @post_load
    def to_edit(self, data: dict[str, Any], **_: Any) -> TaskEdit:
        return TaskEdit(**data)


@dataclass(frozen=True)
class TaskMove:
    """Which task of a stage to move, and to which position."""

    item_num: int
    new_location: int


class ReorderSchema(StrictSchema):
    item_num = fields.Integer(required=True, strict=True, validate=validate.Range(0), metadata={
        "description": "The task to move, numbered from 0; one the stage lacks is a 400 naming its tasks' numbers."})
    new_location = fields.Integer(required=True, strict=True, validate=validate.Range(0), metadata={
        "description": "Where the task goes, from 0 to the stage's last task; past it is a 400."})

    @post_load
    def to_move(self, data: dict[str, Any], **_: Any) -> TaskMove:
        return TaskMove(**data)


@dataclass(frozen=True)
class TaskStateChange:
    """The state a task is to be in."""

    new_state: ItemState


class ItemStateSchema(StrictSchema):
    new_state = fields.String(required=True, validate=validate.OneOf([s.value for s in ItemState]))

    @post_load
    def to_change(self, data: dict[str, Any], **_: Any) -> TaskStateChange:
        return TaskStateChange(ItemState(data["new_state"]))


@dataclass(frozen=True)
class AssigneeChange:
    """Who is to do a task ("" for nobody)."""

    assignee_id: str


class AssigneeSchema(StrictSchema):
    assignee_id = OptionalId(required=True)

    @post_load
    def to_change(self, data: dict[str, Any], **_: Any) -> AssigneeChange:
        return AssigneeChange(**data)


class TimelineQuerySchema(StrictSchema):
    event_type = fields.List(fields.String(validate=validate.OneOf(TIMELINE_EVENT_TYPES)), load_default=list,
                             metadata={"description": "Only entries of these types (repeat the parameter for more)."})


@dataclass(frozen=True)
class NewNote:
    """A note for the timeline: what happened, further facts, when (None: now) and the post it is about."""

    summary: str
    details: dict[str, Any]
    event_at: int | None
    post_id: str


class NewNoteSchema(StrictSchema):
    """A note for the timeline; the rules that need the clock (no date in the future) are the model's."""

    # The pattern: one line once the surrounding whitespace is trimmed, no NUL.
    summary = Trimmed(required=True, validate=validate.Length(1, model.SUMMARY_MAX), metadata={
        "description": "One line saying what happened.",
        "pattern": "^\\s*[^\\s\\u0000]([^\\u0000\\n\\r]*[^\\s\\u0000])?\\s*$"})
    details = Details(load_default=dict, metadata={
        "description": "A flat JSON object of further facts (text, numbers, true/false), at most "
                       f"{model.DETAILS_MAX} characters written out."})
    event_at = fields.Integer(load_default=None, strict=True, validate=validate.Range(0, 2 ** 53), metadata={
        "description": "When it happened, in milliseconds since 1970 (default: now); not in the future."})
    post_id = OptionalId(load_default="", metadata={"description": "The post the note is about, if any."})

    @validates_schema
    def one_line(self, data: dict[str, Any], **_: Any) -> None:
        if "\n" in data.get("summary", "") or "\r" in data.get("summary", ""):
            raise ValidationError("Must be one line; put more in details.", "summary")

    @post_load
    def to_note(self, data: dict[str, Any], **_: Any) -> NewNote:
        return NewNote(**data)


# ----- responses --------------------------------------------------------------------------
class ItemSchema(Schema):
    id = fields.String()
    title = fields.String()
    state = fields.Function(lambda item: item.state.value)
    state_modified = fields.Integer()
    assignee_id = fields.String()
    command = fields.String()
    description = fields.String()
    command_last_run = fields.Integer(metadata={"description": "When the task's command last ran (ms; 0: never)."})


class ChecklistSchema(Schema):
    id = fields.String()
    title = fields.String()
    items = fields.List(fields.Nested(ItemSchema))


class ChecklistsField(fields.List):
    """Stages and tasks: documented as a list of ChecklistSchema, dumped by hand.

    Dumping every task field by field through marshmallow dominates listing a page
    of incidents; this writes the same keys in the same order (a unit test keeps the
    two in step).
    """

    def __init__(self, **kwargs: Any):
        super().__init__(fields.Nested(ChecklistSchema), **kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> list[dict[str, Any]] | None:
        return None if value is None else model.checklists_to_json(value)


class IncidentSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    is_active = fields.Boolean()
    commander_user_id = fields.String()
    team_id = fields.String()
    channel_id = fields.String()
    post_id = fields.String()
    public = fields.Boolean()
    create_at = fields.Integer()
    end_at = fields.Integer()
    active_stage = fields.Integer()
    active_stage_title = fields.String()
    checklists = ChecklistsField()
    playbook_id = fields.String()
    broadcast_channel_ids = fields.List(fields.String())
    reminder_seconds = fields.Integer()
    severity = fields.String(metadata={"description": "The severity level, \"\" for none; it may be a level since "
                                                      "removed from the SeverityLevels setting."})
    retrospective_published_at = fields.Integer(metadata={
        "description": "When the retrospective was last posted to the channel, in ms since 1970; 0: never."})


@dataclass(frozen=True)
class RetrospectiveEdit:
    """The retrospective's new text ("" clears it)."""

    text: str


class RetrospectiveTextSchema(StrictSchema):
    text = Text(required=True, validate=validate.Length(0, model.RETROSPECTIVE_MAX, error=(
        "The retrospective is longer than {max} characters: shorten it (it is posted to the channel as one "
        "message).")), metadata={"description": "Markdown; empty clears it."})

    @post_load
    def to_edit(self, data: dict[str, Any], **_: Any) -> RetrospectiveEdit:
        return RetrospectiveEdit(**data)


class RetrospectiveSchema(Schema):
    incident_id = fields.String()
    text = fields.String(metadata={"description": "The playbook's template until someone writes it."})
    update_at = fields.Integer(metadata={"description": "When it was last written, in ms; 0: never."})
    updated_by = fields.String(metadata={"description": "Who last wrote it; empty: nobody yet."})
    published_at = fields.Integer(metadata={"description": "When it was last posted to the channel, in ms; 0: never."})
    editable = fields.Boolean(metadata={
        "description": "Whether it may be written and published now: once the incident has ended, or earlier when "
                       "its playbook allows."})


class TimelineEntrySchema(Schema):
    id = fields.String()
    incident_id = fields.String()
    event_type = fields.String(metadata={"enum": list(TIMELINE_EVENT_TYPES)})
    event_at = fields.Integer(metadata={"description": "When it happened, in milliseconds since 1970."})
    create_at = fields.Integer(metadata={"description": "When the entry was written, in milliseconds since 1970."})
    subject_user_id = fields.String(metadata={"description": "The user the entry is about (\"\" for none)."})
    creator_user_id = fields.String(metadata={"description": "The user who made the change or wrote the note."})
    summary = fields.String()
    details = fields.Dict()
    post_id = fields.String()
    deleted = fields.Boolean()


class IncidentPageSchema(PageSchema):
    items = fields.List(fields.Nested(IncidentSchema))


class StatusUpdateSchema(Schema):
    id = fields.String()
    incident_id = fields.String()
    user_id = fields.String()
    message = fields.String()
    create_at = fields.Integer()


class StatusUpdatePageSchema(PageSchema):
    items = fields.List(fields.Nested(StatusUpdateSchema))


# ----- playbooks --------------------------------------------------------------------------
def RetrospectiveTemplate(**kwargs: Any) -> Text:  # noqa: N802 - reads like a field class
    """Markdown an incident's retrospective starts from, copied into each incident started from the playbook."""
    return Text(validate=validate.Length(0, model.RETROSPECTIVE_MAX, error=(
        "The template is longer than {max} characters: shorten it.")), metadata={
        "description": "Markdown each incident's retrospective starts from."}, **kwargs)


class CreatePlaybookSchema(StrictSchema):
    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    team_id = Id(required=True)
    description = Text(load_default="", validate=validate.Length(0, model.DESCRIPTION_MAX))
    create_public_incident = fields.Boolean(load_default=False)
    checklists = fields.List(fields.Nested(NewChecklistSchema), load_default=list,
                             validate=validate.Length(0, MAX_STAGES))
    member_ids = fields.List(Id(), load_default=list, validate=validate.Length(0, 1000))
    broadcast_channel_ids = BroadcastChannels(load_default=list, metadata={
        "description": "Copied to each incident started from the playbook; the caller must be able to post in each."})
    reminder_seconds = ReminderSeconds(load_default=0, metadata={
        "description": "Each incident started from the playbook reminds its commander this often (0: never)."})
    default_severity = Severity(load_default="", metadata={
        "description": "The severity of incidents started from the playbook when they give none (a level of "
                       "SeverityLevels, or empty for none)."})
    retrospective_template = RetrospectiveTemplate(load_default="")
    retrospective_before_end = fields.Boolean(load_default=False, metadata={
        "description": "Whether incidents started from the playbook may write and publish their retrospective "
                       "before they end."})

    @post_load
    def to_playbook(self, data: dict[str, Any], **_: Any) -> NewPlaybook:
        return NewPlaybook(**data)


class UpdatePlaybookSchema(StrictSchema):
    """Fields left out keep their values; the team never changes."""

    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    description = Text(load_default=None, validate=validate.Length(0, model.DESCRIPTION_MAX))
    create_public_incident = fields.Boolean(load_default=None)
    checklists = fields.List(fields.Nested(NewChecklistSchema), load_default=None,
                             validate=validate.Length(0, MAX_STAGES))
    member_ids = fields.List(Id(), load_default=None, validate=validate.Length(0, 1000))
    broadcast_channel_ids = BroadcastChannels(load_default=None)
    reminder_seconds = ReminderSeconds(load_default=None)
    default_severity = Severity(load_default=None)
    retrospective_template = RetrospectiveTemplate(load_default=None)
    retrospective_before_end = fields.Boolean(load_default=None)

    @post_load
    def to_changes(self, data: dict[str, Any], **_: Any) -> PlaybookChanges:
        return PlaybookChanges(**data)


class PlaybookListQuerySchema(PagingSchema):
    team_id = Id(required=True)
    sort = fields.String(load_default="title", validate=validate.OneOf(model.PLAYBOOK_SORT_KEYS))
    direction = fields.String(load_default="asc", validate=validate.OneOf(("asc", "desc")))

    @post_load
    def to_filter(self, data: dict[str, Any], **_: Any) -> model.PlaybookFilter:
        return model.PlaybookFilter(**data)


class TemplateItemSchema(Schema):
    id = fields.String()
    title = fields.String()
    command = fields.String()
    description = fields.String()


class TemplateChecklistSchema(Schema):
    id = fields.String()
    title = fields.String()
    items = fields.List(fields.Nested(TemplateItemSchema))


class PlaybookSchema(Schema):
    id = fields.String()
    title = fields.String()
    description = fields.String()
    team_id = fields.String()
    create_public_incident = fields.Boolean()
    checklists = fields.List(fields.Nested(TemplateChecklistSchema))
    member_ids = fields.List(fields.String())
    num_stages = fields.Integer()
    num_tasks = fields.Integer()
    create_at = fields.Integer()
    update_at = fields.Integer()
    broadcast_channel_ids = fields.List(fields.String())
    reminder_seconds = fields.Integer()
    default_severity = fields.String()
    retrospective_template = fields.String()
    retrospective_before_end = fields.Boolean()


class PlaybookPageSchema(PageSchema):
    items = fields.List(fields.Nested(PlaybookSchema))


# ----- settings ---------------------------------------------------------------------------
class SettingSchema(Schema):
    key = fields.String()
    value = fields.Raw(metadata={"description": "The value in force; secrets show as ******** when set."})
    type = fields.String()
    secret = fields.Boolean()
    source = fields.String(metadata={"description": "default, config, saved or environment"})
    env_var = fields.String()
    read_only = fields.Boolean(metadata={"description": "Fixed by an environment variable or needs a restart."})
    requires_restart = fields.Boolean()


class SettingsSchema(Schema):
    settings = fields.List(fields.Nested(SettingSchema))


@dataclass(frozen=True)
class SettingsChange:
    """New values of settings by key, all or none to be saved (checked by the settings code)."""

    values: dict[str, Any]


class SettingsChangeSchema(Schema):
    """A JSON object of setting keys to new values (checked by the settings code, not here)."""

    body_rules = {"minProperties": 1}

    class Meta:
        unknown = INCLUDE

    @post_load
    def to_change(self, data: dict[str, Any], **_: Any) -> SettingsChange:
        return SettingsChange(data)


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "What is wrong and how to fix it."})
    details = fields.Dict(metadata={"description": "Structured details, e.g. the message of each bad field."})


# ----- statistics -------------------------------------------------------------------------
def Millis(**kwargs: Any) -> QueryNumber:  # noqa: N802 - reads like a field class
    """A moment in milliseconds since 1970, in a query string."""
    return QueryNumber(validate=validate.Range(0, 2 ** 53), **kwargs)


class StatsQuerySchema(StrictSchema):
    """A team and a window of time; from <= to, at most ten years apart (the service checks, with the defaults)."""

    team_id = Id(required=True)
    from_ms = Millis(data_key="from", load_default=None, metadata={
        "description": "Start of the window, ms since 1970, included; default: 90 days before `to`."})
    to_ms = Millis(data_key="to", load_default=None, metadata={
        "description": "End of the window, ms since 1970, included; default: now."})


class PercentilesSchema(Schema):
    p50 = fields.Integer(allow_none=True)
    p90 = fields.Integer(allow_none=True)


class StageStatsSchema(Schema):
    name = fields.String(metadata={"description": "A stage title; stages of the same title are counted together."})
    p50_ms = fields.Integer(allow_none=True, metadata={"description": "Median time spent in the stage."})
    count = fields.Integer(metadata={"description": "Incidents ended in the window that entered the stage."})


class SeverityCountSchema(Schema):
    severity = fields.String(metadata={"description": "A level, or \"\" for none."})
    count = fields.Integer()


class WeekStatsSchema(Schema):
    week_start = fields.Integer(metadata={"description": "Monday 00:00 UTC, ms since 1970."})
    started = fields.Integer()
    ended = fields.Integer()


class StatsSchema(Schema):
    team_id = fields.String()
    from_ms = fields.Integer(data_key="from")
    to_ms = fields.Integer(data_key="to")
    started = fields.Integer(metadata={"description": "Incidents started in the window."})
    ended = fields.Integer(metadata={"description": "Incidents ended in the window (and not restarted since)."})
    active = fields.Integer(metadata={"description": "Incidents active now that started by the end of the window."})
    time_to_end_ms = fields.Nested(PercentilesSchema, attribute="time_to_end", metadata={"description": "Of the incidents ended in the window: percentiles of end minus start, in ms "
                                 "(nearest rank; null when none ended)."})
    stages = fields.List(fields.Nested(StageStatsSchema))
    severity = fields.List(fields.Nested(SeverityCountSchema), metadata={
        "description": "Incidents started in the window per severity: every configured level in order (zeros "
                       "included), then levels no longer configured that incidents hold, then \"\" for none."})
    weeks = fields.List(fields.Nested(WeekStatsSchema), metadata={
        "description": "Every week that overlaps the window, oldest first."})
