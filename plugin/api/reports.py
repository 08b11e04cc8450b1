"""Report and statistics routes: reads only, with the same visibility as fetching and listing incidents."""
from __future__ import annotations

from typing import Any

from flask import current_app, g

from plugin.api import Blueprint, authenticate
from plugin.api.schemas import StatsQuerySchema, StatsSchema
from plugin.reports import StatsQuery

MARKDOWN = "text/markdown; charset=utf-8"


def create_blueprint(components: Any) -> Blueprint:
    """The /api/v0 report and statistics routes bound to the app's report service."""
    blp = Blueprint("reports", __name__, url_prefix="/api/v0",
                    description="An incident's Markdown report, and a team's statistics.")
    reports = components.reports

    @blp.before_request
    def _authenticate() -> None:
        authenticate(components.settings.current.host_secret)

    @blp.route("/incidents/<id:incident_id>/report.md", methods=["GET"])
    @blp.doc(responses={"200": {"description": "The report, a Markdown document.",
                                "content": {"text/markdown": {"schema": {"type": "string"}}}}})
    def report(incident_id: str) -> Any:
        """The incident as one Markdown document to file: facts, time per stage, timeline, updates, tasks,
        retrospective. 404 when the incident does not exist, 403 when the caller may not view it."""
        text = reports.report(g.user_id, incident_id)
        # A file to save or read as text: named by the id (never by what people typed), never sniffed as
        # HTML, and, as it may be private, kept by no cache.
        return current_app.response_class(text, status=200, content_type=MARKDOWN, headers={
            "Content-Disposition": f'inline; filename="incident-{incident_id}.md"',
            "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"})

    @blp.route("/stats", methods=["GET"])
    @blp.arguments(StatsQuerySchema, location="query")
    @blp.response(200, StatsSchema)
    def stats(query: dict[str, Any]) -> Any:
        """A team's incidents in a window: started, ended, active, time to end, time per stage, severity, weeks.

        Counts only the incidents the caller could list."""
        return reports.stats(g.user_id, StatsQuery(**query))

    return blp
