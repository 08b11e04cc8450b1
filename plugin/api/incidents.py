"""Incident routes: load with a schema, call one service method, dump with a schema."""
from __future__ import annotations

from typing import Any

from flask import current_app, g, request, url_for

import plugin
from plugin.api import Blueprint, authenticate, page_of
from plugin.api.schemas import (
    AddMembersSchema,
    AssigneeChange,
    AssigneeSchema,
    CommanderChange,
    CommanderSchema,
    CreateIncidentSchema,
    EditItemSchema,
    IncidentPageSchema,
    IncidentSchema,
    ItemStateSchema,
    ListQuerySchema,
    MembersAddedSchema,
    NewItemSchema,
    NewMembers,
    NewNote,
    NewNoteSchema,
    NewStatusUpdate,
    NewStatusUpdateSchema,
    PatchIncidentSchema,
    ReminderChange,
    ReminderSchema,
    ReorderSchema,
    StatusUpdateListQuerySchema,
    StatusUpdatePageSchema,
    StatusUpdateSchema,
    TaskEdit,
    TaskMove,
    TaskStateChange,
    TimelineEntrySchema,
    TimelineQuerySchema,
)
from plugin.errors import BadInput, PreconditionFailed
from plugin.model import IncidentFilter
from plugin.service import IncidentPatch, NewIncident, NewItem, VersionCondition, release_version, require_version

ITEM = "/<id:incident_id>/checklists/<stage:checklist>/items/<task:item>"


def etag(version: int) -> str:
    """The entity tag of an incident's representation: this server's version and the incident's."""
    return f"{plugin.__version__}.{version}"


def _if_match_condition() -> VersionCondition | None:
    """The request's If-Match as a condition on the incident's version, or None when it sets none (absent, or *).

    If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches. A header
    that holds no tag at all (``"``, ``,``) is refused rather than read as no condition.
    """
    tags = request.if_match
    given = request.headers.get("If-Match", "").strip()
    if given and not tags:
        raise BadInput("The If-Match header holds no entity tag: send the ETag that GET /api/v0/incidents/{id} "
                       "answered, quotes included, or leave the header out.", {"if_match": given[:40]})
    if not tags or tags.star_tag:
        return None

    def check(version: int) -> None:
        current = etag(version)
        if not tags.contains(current):
            raise PreconditionFailed(
                "The incident has changed since the version named in If-Match: fetch it again (GET "
                "/api/v0/incidents/{id} gives its ETag), check the change still makes sense, and send it with "
                "the new ETag.", {"etag": f'"{current}"'})
    return check


def honour_if_match(blp: Blueprint) -> None:
    """Make every change on the blueprint's routes go ahead only while the incident is at the If-Match version."""

    @blp.before_request
    def _require_version() -> None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            g.version_token = require_version(_if_match_condition())

    @blp.teardown_request
    def _release_version(_error: BaseException | None) -> None:
        token = g.pop("version_token", None)
        if token is not None:
            release_version(token)


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/incidents blueprint bound to the app's service."""
    blp = Blueprint("incidents", __name__, url_prefix="/api/v0/incidents",
                    description="Incidents, their stages and tasks.")
    service = components.service
    schema = IncidentSchema()

    @blp.before_request
    def _authenticate() -> None:
        authenticate(components.settings.current.host_secret)

    honour_if_match(blp)

    @blp.route("", methods=["POST"])
    @blp.arguments(CreateIncidentSchema)
    @blp.response(201, IncidentSchema)
    def create(new: NewIncident) -> Any:
        """Start an incident: creates its channel and posts who started it."""
        incident = service.create_incident(g.user_id, new)
        return incident, 201, {"Location": url_for("incidents.get", incident_id=incident.id)}

    @blp.route("", methods=["GET"])
    @blp.arguments(ListQuerySchema, location="query")
    @blp.response(200, IncidentPageSchema)
    def list_(query: IncidentFilter) -> Any:
        """List the incidents the caller may see, filtered, sorted and paged."""
        total, items = service.list_incidents(g.user_id, query)
        return page_of(items, total, query.page, query.per_page)

    @blp.route("/<id:incident_id>", methods=["GET"])
    @blp.response(200, IncidentSchema)
    @blp.alt_response(304, description="Not Modified: the incident is still at the version of If-None-Match.")
    def get(incident_id: str) -> Any:
        """One incident (with an ETag; If-None-Match answers 304 while it is unchanged)."""
        incident = service.get_incident(g.user_id, incident_id)
        tag = etag(incident.version)
        # If-None-Match compares weakly (RFC 9110 13.1.2): a proxy that compresses may have made the tag weak.
        if request.if_none_match.contains_weak(tag):
            response = current_app.response_class(status=304)
        else:
            response = current_app.json.response(schema.dump(incident))
        response.set_etag(tag)
        return response

    @blp.route("/channel/<id:channel_id>", methods=["GET"])
    @blp.response(200, IncidentSchema)
    def get_by_channel(channel_id: str) -> Any:
        """The incident whose channel this is (404 when the caller may not see it), with its ETag for If-Match."""
        incident = service.get_incident_by_channel(g.user_id, channel_id)
        response = current_app.json.response(schema.dump(incident))
        response.set_etag(etag(incident.version))
        return response

    @blp.route("/<id:incident_id>/end", methods=["PUT"])
    @blp.response(200, IncidentSchema)
    def end(incident_id: str) -> Any:
        """End an active incident."""
        return service.end_incident(g.user_id, incident_id).incident

    @blp.route("/<id:incident_id>/restart", methods=["PUT"])
    @blp.response(200, IncidentSchema)
    def restart(incident_id: str) -> Any:
        """Restart an ended incident."""
        return service.restart_incident(g.user_id, incident_id).incident

    @blp.route("/<id:incident_id>/commander", methods=["POST"])
    @blp.arguments(CommanderSchema)
    @blp.response(200, IncidentSchema)
    def commander(change: CommanderChange, incident_id: str) -> Any:
        """Change the commander (who must be a member of the incident channel)."""
        return service.change_commander(g.user_id, incident_id, change.commander_id).incident

    @blp.route("/<id:incident_id>/members", methods=["POST"])
    @blp.arguments(AddMembersSchema)
    @blp.response(200, MembersAddedSchema)
    def add_members(members: NewMembers, incident_id: str) -> Any:
        """Add people to the incident channel (channel members and system admins may)."""
        added, already = service.add_members(g.user_id, incident_id, members.user_ids)
        return {"added": added, "already_members": already}

    @blp.route("/<id:incident_id>", methods=["PATCH"])
    @blp.arguments(PatchIncidentSchema)
    @blp.response(200, IncidentSchema)
    def patch(patch: IncidentPatch, incident_id: str) -> Any:
        """Change the active stage, the channels that get a copy of each status update, or the severity.

        An active_stage the incident does not have is a 400 naming its stages' numbers (from 0).
        """
        return service.patch_incident(g.user_id, incident_id, patch).incident

    @blp.route("/<id:incident_id>/status-updates", methods=["POST"])
    @blp.arguments(NewStatusUpdateSchema)
    @blp.response(201, StatusUpdateSchema)
    def post_status_update(update: NewStatusUpdate, incident_id: str) -> Any:
        """Post a status update to the incident channel and its broadcast channels; restart the reminder.

        409 when the incident has ended.
        """
        return service.post_status_update(g.user_id, incident_id, update.message, update.reminder_seconds)

    @blp.route("/<id:incident_id>/status-updates", methods=["GET"])
    @blp.arguments(StatusUpdateListQuerySchema, location="query")
    @blp.response(200, StatusUpdatePageSchema)
    def list_status_updates(query: dict[str, Any], incident_id: str) -> Any:
        """The incident's status updates, newest first, paged."""
        total, items = service.list_status_updates(g.user_id, incident_id, query["page"], query["per_page"])
        return page_of(items, total, query["page"], query["per_page"])

    @blp.route("/<id:incident_id>/reminder", methods=["POST"])
    @blp.arguments(ReminderSchema)
    @blp.response(200, IncidentSchema)
    def reminder(change: ReminderChange, incident_id: str) -> Any:
        """Remind the commander every `seconds` from now, or never (0)."""
        return service.set_reminder(g.user_id, incident_id, change.seconds).incident

    @blp.route("/<id:incident_id>/checklists/<stage:checklist>/items", methods=["POST"])
    @blp.arguments(NewItemSchema)
    @blp.response(200, IncidentSchema)
    def add_item(new: NewItem, incident_id: str, checklist: int) -> Any:
        """Add a task at the end of a stage."""
        return service.add_item(g.user_id, incident_id, checklist, new).incident

    @blp.route(ITEM, methods=["PUT"])
    @blp.arguments(EditItemSchema)
    @blp.response(200, IncidentSchema)
    def edit_item(edit: TaskEdit, incident_id: str, checklist: int, item: int) -> Any:
        """Rename a task or change its description or command."""
        return service.edit_item(g.user_id, incident_id, checklist, item, title=edit.title,
                                 description=edit.description, command=edit.command).incident

    @blp.route(ITEM, methods=["DELETE"])
    @blp.response(200, IncidentSchema)
    def remove_item(incident_id: str, checklist: int, item: int) -> Any:
        """Remove a task."""
        return service.remove_item(g.user_id, incident_id, checklist, item).incident

    @blp.route("/<id:incident_id>/checklists/<stage:checklist>/reorder", methods=["PUT"])
    @blp.arguments(ReorderSchema)
    @blp.response(200, IncidentSchema)
    def reorder(move: TaskMove, incident_id: str, checklist: int) -> Any:
        """Move a task to another position in its stage.

        404 when the path's stage does not exist; 400 naming item_num or new_location when it is past the stage's
        last task.
        """
        return service.move_item(g.user_id, incident_id, checklist, move.item_num, move.new_location).incident

    @blp.route(ITEM + "/state", methods=["PUT"])
    @blp.arguments(ItemStateSchema)
    @blp.response(200, IncidentSchema)
    def item_state(change: TaskStateChange, incident_id: str, checklist: int, item: int) -> Any:
        """Set a task's state: open, in_progress or closed."""
        return service.set_item_state(g.user_id, incident_id, checklist, item, change.new_state).incident

    @blp.route(ITEM + "/assignee", methods=["PUT"])
    @blp.arguments(AssigneeSchema)
    @blp.response(200, IncidentSchema)
    def item_assignee(change: AssigneeChange, incident_id: str, checklist: int, item: int) -> Any:
        """Assign a task (an empty assignee_id unassigns it)."""
        return service.set_item_assignee(g.user_id, incident_id, checklist, item, change.assignee_id).incident

    @blp.route(ITEM + "/run", methods=["POST"])
    @blp.response(200, IncidentSchema)
    def run_item(incident_id: str, checklist: int, item: int) -> Any:
        """Run the task's slash command in the incident channel as the caller; the task's command_last_run is set."""
        return service.run_item_command(g.user_id, incident_id, checklist, item).incident

    @blp.route("/<id:incident_id>/timeline", methods=["GET"])
    @blp.arguments(TimelineQuerySchema, location="query")
    @blp.response(200, TimelineEntrySchema(many=True))
    def timeline(query: dict[str, Any], incident_id: str) -> Any:
        """The incident's timeline, oldest first (deleted entries hidden); whoever may view the incident may."""
        return service.get_timeline(g.user_id, incident_id, query["event_type"])

    @blp.route("/<id:incident_id>/timeline", methods=["POST"])
    @blp.arguments(NewNoteSchema)
    @blp.response(201, TimelineEntrySchema)
    def add_note(note: NewNote, incident_id: str) -> Any:
        """Add a note to the timeline (those who may change the incident may)."""
        return service.add_note(g.user_id, incident_id, note.summary, details=note.details, event_at=note.event_at,
                                post_id=note.post_id)

    @blp.route("/<id:incident_id>/timeline/<id:event_id>", methods=["DELETE"])
    @blp.response(204)
    def remove_timeline_entry(incident_id: str, event_id: str) -> Any:
        """Delete an entry of the timeline: hidden from then on, kept with who deleted it and when."""
        service.remove_timeline_entry(g.user_id, incident_id, event_id)

    return blp
