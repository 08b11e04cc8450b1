"""Playbook routes: load with a schema, call one service method, dump with a schema."""
from __future__ import annotations

from typing import Any

from flask import g, url_for

from plugin.api import Blueprint, authenticate, page_of
from plugin.api.schemas import (
    CreatePlaybookSchema,
    PlaybookListQuerySchema,
    PlaybookPageSchema,
    PlaybookSchema,
    UpdatePlaybookSchema,
)
from plugin.model import PlaybookFilter
from plugin.playbooks import NewPlaybook, PlaybookChanges


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0/playbooks blueprint bound to the app's playbook service."""
    blp = Blueprint("playbooks", __name__, url_prefix="/api/v0/playbooks",
                    description="Playbooks: templates of stages and tasks that incidents start from.")
    service = components.playbooks

    @blp.before_request
    def _authenticate() -> None:
        authenticate(components.settings.current.host_secret)

    @blp.route("", methods=["POST"])
    @blp.arguments(CreatePlaybookSchema)
    @blp.response(201, PlaybookSchema)
    def create(new: NewPlaybook) -> Any:
        """Create a playbook in a team; the creator is always a member."""
        playbook = service.create(g.user_id, new)
        return playbook, 201, {"Location": url_for("playbooks.get", playbook_id=playbook.id)}

    @blp.route("", methods=["GET"])
    @blp.arguments(PlaybookListQuerySchema, location="query")
    @blp.response(200, PlaybookPageSchema)
    def list_(query: PlaybookFilter) -> Any:
        """List a team's playbooks the caller may see, sorted by title, stages or tasks, and paged."""
        total, items = service.list(g.user_id, query)
        return page_of(items, total, query.page, query.per_page)

    @blp.route("/<id:playbook_id>", methods=["GET"])
    @blp.response(200, PlaybookSchema)
    def get(playbook_id: str) -> Any:
        """One playbook (members and system admins only)."""
        return service.get(g.user_id, playbook_id)

    @blp.route("/<id:playbook_id>", methods=["PUT"])
    @blp.arguments(UpdatePlaybookSchema)
    @blp.response(200, PlaybookSchema)
    def update(changes: PlaybookChanges, playbook_id: str) -> Any:
        """Change a playbook: title, and any of description, public default, stages, members."""
        return service.update(g.user_id, playbook_id, changes)

    @blp.route("/<id:playbook_id>", methods=["DELETE"])
    @blp.response(204)
    def delete(playbook_id: str) -> Any:
        """Delete a playbook; incidents started from it keep their stages and tasks."""
        service.delete(g.user_id, playbook_id)
        return None

    return blp
