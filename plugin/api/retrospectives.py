"""Retrospective routes: an incident's retrospective as a resource of its own, and its publication."""
from __future__ import annotations

from typing import Any

from flask import g

from plugin.api import Blueprint, authenticate
from plugin.api.incidents import honour_if_match
from plugin.api.schemas import RetrospectiveEdit, RetrospectiveSchema, RetrospectiveTextSchema

PATH = "/<id:incident_id>/retrospective"


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/incidents/{id}/retrospective routes bound to the app's service."""
    blp = Blueprint("retrospectives", __name__, url_prefix="/api/v0/incidents",
                    description="An incident's retrospective: written once it has ended, then posted to its channel.")
    service = components.service

    @blp.before_request
    def _authenticate() -> None:
        authenticate(components.settings.current.host_secret)

    honour_if_match(blp)

    @blp.route(PATH, methods=["GET"])
    @blp.response(200, RetrospectiveSchema)
    def get(incident_id: str) -> Any:
        """The retrospective (the playbook's template until someone writes it); channel members and admins."""
        return service.get_retrospective(g.user_id, incident_id)

    @blp.route(PATH, methods=["PUT"])
    @blp.arguments(RetrospectiveTextSchema)
    @blp.response(200, RetrospectiveSchema)
    def put(edit: RetrospectiveEdit, incident_id: str) -> Any:
        """Write the retrospective; 409 while the incident is active, unless its playbook allows it earlier."""
        return service.update_retrospective(g.user_id, incident_id, edit.text)

    @blp.route(PATH + "/publish", methods=["POST"])
    @blp.response(200, RetrospectiveSchema)
    def publish(incident_id: str) -> Any:
        """Post the retrospective to the incident channel; 409 while it is not written or not yet allowed."""
        return service.publish_retrospective(g.user_id, incident_id)

    return blp
