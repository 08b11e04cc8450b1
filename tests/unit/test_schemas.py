"""Response schemas: the hand-written stage dump matches the nested schemas it documents."""
from __future__ import annotations

from plugin.api.schemas import ChecklistSchema, IncidentSchema
from plugin.model import Checklist, ChecklistItem, Incident, ItemState


def test_hand_written_checklists_dump_equals_the_nested_schema_dump_key_for_key():
    stages = [Checklist("c" * 26, "Triage", [
        ChecklistItem("i" * 26, "Page", ItemState.IN_PROGRESS, 5, "a" * 26, "/page", "call them"),
        ChecklistItem("j" * 26, "Status page")]), Checklist("d" * 26, "Empty")]
    incident = Incident(id="x" * 26, name="n", team_id="t" * 26, commander_user_id="a" * 26,
                        channel_id="h" * 26, create_at=1, checklists=stages)
    fast = IncidentSchema().dump(incident)["checklists"]
    nested = ChecklistSchema(many=True).dump(stages)
    assert fast == nested
    assert [list(stage) for stage in fast] == [list(stage) for stage in nested]
    assert [list(item) for item in fast[0]["items"]] == [list(item) for item in nested[0]["items"]]
