"""Marshmallow schemas: all parsing and dumping of the HTTP API happens here."""
from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from plugin import model
from plugin.model import ID_PATTERN, SORT_KEYS, STATUSES, ItemState

SERVER_SET_FIELDS = ("id", "channel_id", "create_at", "end_at", "is_active", "active_stage",
                     "active_stage_title")
MAX_STAGES = 50
MAX_ITEMS_PER_STAGE = 200


class Trimmed(fields.String):
    """A string with surrounding whitespace removed."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def Id(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    """A Mattermost id: 26 characters of a-z and 0-9."""
    return fields.String(validate=validate.Regexp(ID_PATTERN, error="Must be an id of 26 characters a-z0-9."),
                         metadata={"pattern": ID_PATTERN.pattern, "example": "a" * 26}, **kwargs)


def OptionalId(**kwargs: Any) -> fields.String:  # noqa: N802
    """An id, or the empty string for none."""
    return fields.String(validate=validate.Regexp(r"^([a-z0-9]{26})?$",
                                                  error="Must be an id of 26 characters a-z0-9, or empty."),
                         **kwargs)


class StrictSchema(Schema):
    """Unknown fields are an error, so a typo never passes silently."""

    class Meta:
        unknown = RAISE


# ----- requests ---------------------------------------------------------------------------
class NewItemSchema(StrictSchema):
    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    description = fields.String(load_default="", validate=validate.Length(0, model.DESCRIPTION_MAX))
    command = Trimmed(load_default="", validate=validate.Length(0, model.COMMAND_MAX))


class NewChecklistSchema(StrictSchema):
    title = Trimmed(required=True, validate=validate.Length(1, model.TITLE_MAX))
    items = fields.List(fields.Nested(NewItemSchema), load_default=list,
                        validate=validate.Length(0, MAX_ITEMS_PER_STAGE))


class CreateIncidentSchema(StrictSchema):
    name = Trimmed(required=True, validate=validate.Length(1, model.NAME_MAX))
    description = fields.String(load_default="", validate=validate.Length(0, model.DESCRIPTION_MAX))
    team_id = Id(required=True)
    commander_user_id = Id(required=True)
    public = fields.Boolean(load_default=False)
    post_id = OptionalId(load_default="")
    checklists = fields.List(fields.Nested(NewChecklistSchema), load_default=None, allow_none=True,
                             validate=validate.Length(0, MAX_STAGES))

    @pre_load
    def refuse_server_fields(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict):
            given = {key: "Set by the server; remove it from the request." for key in SERVER_SET_FIELDS
                     if key in data}
            if given:
                raise ValidationError(given)
        return data


class ListQuerySchema(StrictSchema):
    team_id = Id(load_default="")
    status = fields.String(load_default="all", validate=validate.OneOf(STATUSES))
    commander_user_id = Id(load_default="")
    member_id = Id(load_default="")
    search_term = fields.String(load_default="", validate=validate.Length(0, model.NAME_MAX))
    sort = fields.String(load_default="create_at", validate=validate.OneOf(SORT_KEYS))
    direction = fields.String(load_default="desc", validate=validate.OneOf(("asc", "desc")))
    page = fields.Integer(load_default=0, validate=validate.Range(0, 100_000))
    per_page = fields.Integer(load_default=100, validate=validate.Range(1, 200))

    @post_load
    def to_filter(self, data: dict[str, Any], **_: Any) -> model.IncidentFilter:
        return model.IncidentFilter(**data)


class CommanderSchema(StrictSchema):
    commander_id = Id(required=True)


class StageSchema(StrictSchema):
    active_stage = fields.Integer(required=True, strict=True)


class EditItemSchema(StrictSchema):
    title = Trimmed(validate=validate.Length(1, model.TITLE_MAX))
    description = fields.String(validate=validate.Length(0, model.DESCRIPTION_MAX))
    command = Trimmed(validate=validate.Length(0, model.COMMAND_MAX))

    @validates_schema
    def require_something(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of title, description or command.", "_schema")


class ReorderSchema(StrictSchema):
    item_num = fields.Integer(required=True, strict=True, validate=validate.Range(0))
    new_location = fields.Integer(required=True, strict=True, validate=validate.Range(0))


class ItemStateSchema(StrictSchema):
    new_state = fields.String(required=True, validate=validate.OneOf([s.value for s in ItemState]))


class AssigneeSchema(StrictSchema):
    assignee_id = OptionalId(required=True)


# ----- responses --------------------------------------------------------------------------
class ItemSchema(Schema):
    id = fields.String()
    title = fields.String()
    state = fields.Function(lambda item: item.state.value)
    state_modified = fields.Integer()
    assignee_id = fields.String()
    command = fields.String()
    description = fields.String()


class ChecklistSchema(Schema):
    id = fields.String()
    title = fields.String()
    items = fields.List(fields.Nested(ItemSchema))


class ChecklistsField(fields.List):
    """Stages and tasks: documented as a list of ChecklistSchema, dumped by hand.

    Dumping tasks field by field was most of the cost of listing a page of
    incidents; this writes the same keys in the same order (a unit test keeps the
    two in step).
    """

    def __init__(self, **kwargs: Any):
        super().__init__(fields.Nested(ChecklistSchema), **kwargs)

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> list[dict[str, Any]] | None:
        if value is None:
            return None
        return [{"id": stage.id, "title": stage.title, "items": [
            {"id": item.id, "title": item.title, "state": item.state.value, "state_modified": item.state_modified,
             "assignee_id": item.assignee_id, "command": item.command, "description": item.description}
            for item in stage.items]} for stage in value]


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


class IncidentPageSchema(Schema):
    total_count = fields.Integer()
    page_count = fields.Integer()
    has_more = fields.Boolean()
    items = fields.List(fields.Nested(IncidentSchema))


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"description": "What is wrong and how to fix it."})
    details = fields.Dict(metadata={"description": "Structured details, e.g. the message of each bad field."})
