"""A new kind of incident change takes three edits: a model rule, a catalogue entry, a service method.

The test makes those three edits itself (renaming an incident) and nothing else:
the unit of work, the repositories, the outbox and the chat host carry the new
change as they carry every other one. A fourth, one branch in
``plugin.timeline.entry_for``, puts it on the incident's timeline.
"""
from __future__ import annotations

import dataclasses

from plugin import timeline
from plugin.events import Event, IncidentEvent
from plugin.model import Incident, TimelineEntry
from plugin.service import Change, IncidentService, NewChecklist, NewIncident, Outcome
from plugin.telemetry import catalogue
from tests.conftest import ALICE, TEAM
from tests.telemetry.dataplane import wait_until


# 1. The model: a rule that changes the incident and says whether it did.
def rename(incident: Incident, name: str) -> bool:
    """Give the incident another name; False when it already has it."""
    if incident.name == name:
        return False
    incident.name = name
    return True


# 2. The catalogue: the new action of the ``incident`` event (ids and counts only, as every other).
def catalogue_with_rename() -> dict[str, catalogue.Event]:
    incident = catalogue.EVENTS["incident"]
    renamed = dataclasses.replace(incident, actions=(*incident.actions,
                                                     catalogue.Action("rename", "The incident was renamed.")))
    return {**catalogue.EVENTS, "incident": renamed}


# 3. The service: the use case, on the one path every change takes.
def rename_incident(service: IncidentService, user_id: str, incident_id: str, name: str) -> Outcome:
    def change(incident: Incident) -> Change | None:
        if not rename(incident, name):
            return None
        return Change(IncidentEvent("rename", incident, user_id), f"{service.host.mention(user_id)} renamed the incident.")
    return service._mutate(user_id, incident_id, change)


def test_renaming_an_incident_needs_only_a_model_rule_a_catalogue_entry_and_a_service_method(
        tcomponents, dataplane, monkeypatch):
    monkeypatch.setattr(catalogue, "EVENTS", catalogue_with_rename())
    monkeypatch.setattr(catalogue, "_PROPERTIES", {})
    service = tcomponents.service
    incident = service.create_incident(ALICE, NewIncident("db down", TEAM, ALICE, checklists=[NewChecklist("Triage")]))

    outcome = rename_incident(service, ALICE, incident.id, "db back")
    again = rename_incident(service, ALICE, incident.id, "db back")  # nothing to change: nothing recorded

    assert outcome.changed and not again.changed
    stored = service.get_incident(ALICE, incident.id)
    assert (stored.name, stored.version) == ("db back", incident.version + 1)
    assert tcomponents.host.posts(incident.channel_id)[-1] == f"@{ALICE} renamed the incident."
    wait_until(lambda: len(dataplane.delivered()) >= 2)
    tcomponents.telemetry.stop(2.0)
    actions = [message["properties"]["Action"] for message in dataplane.delivered()]
    assert actions == ["create", "rename"]
    assert b"db back" not in dataplane.all_bytes()
    # Without a branch in the timeline's mapping, the change writes no entry.
    assert [e.event_type for e in service.get_timeline(ALICE, incident.id)] == ["incident_created"]


# 4. The timeline: one more branch of entry_for (here wrapped around it, as a test cannot edit it).
def entry_for_with_rename(event: Event, now: int) -> TimelineEntry | None:
    if isinstance(event, IncidentEvent) and event.action == "rename":
        return TimelineEntry(id=timeline.new_id(), incident_id=event.incident.id, event_type="renamed", event_at=now,
                             create_at=now, creator_user_id=event.user_id,
                             summary=f"@{event.user_id} renamed the incident \"{event.incident.name}\".")
    return timeline.entry_for(event, now)


def test_a_change_goes_on_the_timeline_with_one_more_branch_and_nothing_else(tcomponents, monkeypatch):
    monkeypatch.setattr(catalogue, "EVENTS", catalogue_with_rename())
    monkeypatch.setattr(catalogue, "_PROPERTIES", {})
    monkeypatch.setattr("plugin.store.database.entry_for", entry_for_with_rename)
    service = tcomponents.service
    incident = service.create_incident(ALICE, NewIncident("db down", TEAM, ALICE))

    rename_incident(service, ALICE, incident.id, "db back")

    entries = service.get_timeline(ALICE, incident.id)
    assert [(e.event_type, e.summary) for e in entries] == [
        ("incident_created", f'@{ALICE} started the incident "db down" as its commander.'),
        ("renamed", f'@{ALICE} renamed the incident "db back".')]
