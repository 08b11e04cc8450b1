"""GET /api/v0/incidents/{id}/report.md: an incident driven through its whole life, checked section by section."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, as_user
from tests.fakes.clock import Clock

MIN = 60_000
T0 = int(datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.fixture
def clock(components, monkeypatch) -> Clock:
    """One clock for the service and for the timeline entries its commits write."""
    moved = Clock(T0)
    monkeypatch.setattr(components.service, "clock", moved)
    monkeypatch.setattr("plugin.store.database.now_ms", moved)
    for user, name in ((ALICE, "alice"), (BOB, "bob_the_builder"), (CAROL, "carol")):
        components.host.note_user(user, name)
    return moved


def sections(markdown: str) -> dict[str, str]:
    """The report cut at its second-level headings: {"": the title and facts, heading: body}."""
    first, *rest = markdown.split("\n## ")
    found = {"": first.strip()}
    for section in rest:
        heading, _, body = section.partition("\n")
        found[heading] = body.strip()
    return found


def act(client, clock: Clock, minutes: int, user: str, method: str, path: str, **body) -> None:
    clock.now = T0 + minutes * MIN
    response = getattr(client, method)(path, headers=as_user(user), **body)
    assert response.status_code in (200, 201), response.json


@pytest.fixture
def lived(client, components, clock) -> dict:
    """db is down: created by alice at 09:00 at sev2, a whole life until bob ends it at 11:00; bob writes the
    retrospective at 11:10 and alice publishes it at 11:20."""
    incident = start(client, name="db | is *down*", description="primary out of disk\n# not a heading",
                     checklists=TWO_STAGES, severity="sev2")
    base = f"/api/v0/incidents/{incident['id']}"
    components.host.add_channel_member(incident["channel_id"], BOB)
    act(client, clock, 10, ALICE, "put", f"{base}/checklists/0/items/0/state", json={"new_state": "closed"})
    act(client, clock, 20, ALICE, "post", f"{base}/status-updates", json={"message": "rolled back\nerrors dropping"})
    act(client, clock, 30, ALICE, "patch", base, json={"active_stage": 1})
    act(client, clock, 35, ALICE, "patch", base, json={"severity": "sev1"})
    act(client, clock, 40, ALICE, "post", f"{base}/commander", json={"commander_id": BOB})
    act(client, clock, 45, ALICE, "put", f"{base}/checklists/1/items/0/assignee", json={"assignee_id": BOB})
    act(client, clock, 50, BOB, "put", f"{base}/checklists/1/items/0/state", json={"new_state": "closed"})
    act(client, clock, 55, BOB, "post", f"{base}/status-updates", json={"message": "- fixed | for now"})
    act(client, clock, 120, BOB, "put", f"{base}/end")
    act(client, clock, 130, BOB, "put", f"{base}/retrospective", json={"text": "## What went well\n- paging | fast"})
    act(client, clock, 140, ALICE, "post", f"{base}/retrospective/publish")
    clock.now = T0 + 600 * MIN
    return incident


def report(client, incident: dict, user: str = ALICE):
    return client.get(f"/api/v0/incidents/{incident['id']}/report.md", headers=as_user(user))


def test_the_report_of_a_whole_life_tells_each_section(client, lived):
    response = report(client, lived)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    found = sections(response.get_data(as_text=True))
    assert list(found) == ["", "Description", "Time in each stage", "Timeline", "Status updates", "Tasks",
                           "Retrospective"]
    assert found[""] == "\n".join([
        "# Incident report: db \\| is \\*down\\*", "",
        "- **Status:** ended",
        "- **Severity:** sev1",
        "- **Commander:** @bob\\_the\\_builder",
        "- **Started:** 2026-11-02 09:00 UTC",
        "- **Ended:** 2026-11-02 11:00 UTC",
        "- **Duration:** 2h 0m"])
    assert found["Description"] == "primary out of disk\\\n\\# not a heading"
    assert found["Time in each stage"] == "\n".join([
        "| # | Stage | Time |", "| ---: | --- | ---: |", "| 1 | Triage | 30m 0s |", "| 2 | Resolve | 1h 30m |"])
    assert found["Timeline"] == "\n".join([
        "| When | What |", "| --- | --- |",
        '| 2026-11-02 09:00 UTC | @alice started the incident "db \\| is \\*down\\*" as its commander. |',
        '| 2026-11-02 09:10 UTC | @alice closed the task "Page the on-call" in stage "Triage". |',
        "| 2026-11-02 09:20 UTC | @alice posted a status update: rolled back |",
        '| 2026-11-02 09:30 UTC | @alice changed the stage from "Triage" to "Resolve". |',
        "| 2026-11-02 09:35 UTC | @alice changed the severity from sev2 to sev1. |",
        "| 2026-11-02 09:40 UTC | @alice changed the commander from @alice to @bob\\_the\\_builder. |",
        '| 2026-11-02 09:45 UTC | @alice assigned the task "Roll back" to @bob\\_the\\_builder. |',
        '| 2026-11-02 09:50 UTC | @bob\\_the\\_builder closed the task "Roll back" in stage "Resolve". |',
        "| 2026-11-02 09:55 UTC | @bob\\_the\\_builder posted a status update: - fixed \\| for now |",
        "| 2026-11-02 11:00 UTC | @bob\\_the\\_builder ended the incident. |",
        "| 2026-11-02 11:20 UTC | @alice published the retrospective. |"])
    assert found["Status updates"] == "\n".join([
        "**2026-11-02 09:20 UTC, @alice:**", "", "rolled back\\", "errors dropping", "",
        "**2026-11-02 09:55 UTC, @bob\\_the\\_builder:**", "", "\\- fixed \\| for now"])
    assert found["Tasks"] == "\n".join([
        "| Stage | Task | State | Assignee | Closed by |", "| --- | --- | --- | --- | --- |",
        "| Triage | Page the on-call | done | — | @alice |",
        "| Triage | Open a status page | open | — | — |",
        "| Resolve | Roll back | done | @bob\\_the\\_builder | @bob\\_the\\_builder |"])
    assert found["Retrospective"] == "\n".join([
        "Last written by @bob\\_the\\_builder, 2026-11-02 11:10 UTC; published 2026-11-02 11:20 UTC.", "",
        "\\#\\# What went well\\", "\\- paging \\| fast"])


def test_a_team_member_outside_the_channel_gets_a_public_incidents_report_without_its_retrospective(
        client, clock):
    incident = start(client, public=True, checklists=TWO_STAGES)
    base = f"/api/v0/incidents/{incident['id']}"
    act(client, clock, 10, ALICE, "put", f"{base}/end")
    act(client, clock, 20, ALICE, "put", f"{base}/retrospective", json={"text": "only for the channel"})
    carol = report(client, incident, CAROL).get_data(as_text=True)
    assert sections(carol)["Retrospective"] == "Only the members of the incident channel may read the retrospective."
    assert "only for the channel" not in carol
    assert "only for the channel" in sections(report(client, incident, ADMIN).get_data(as_text=True))["Retrospective"]


def test_an_entry_deleted_from_the_timeline_leaves_the_report_but_its_stage_time_stays(client, lived):
    base = f"/api/v0/incidents/{lived['id']}"
    moved = client.get(f"{base}/timeline?event_type=stage_changed", headers=as_user(ALICE)).json[0]
    assert client.delete(f"{base}/timeline/{moved['id']}", headers=as_user(ALICE)).status_code == 204
    found = sections(report(client, lived).get_data(as_text=True))
    assert "changed the stage" not in found["Timeline"]
    assert "| 1 | Triage | 30m 0s |" in found["Time in each stage"]


def test_an_active_incidents_report_runs_its_stage_and_duration_until_now(client, clock):
    incident = start(client, name="still going", checklists=TWO_STAGES)
    clock.now = T0 + 90 * MIN
    found = sections(report(client, incident).get_data(as_text=True))
    assert "- **Ended:** not yet (still active)" in found[""]
    assert "- **Duration:** 1h 30m so far" in found[""]
    assert "| 1 | Triage (active) | 1h 30m |" in found["Time in each stage"]
    assert "| 2 | Resolve | — |" in found["Time in each stage"]


@pytest.mark.parametrize("public, user, status", [
    (False, ALICE, 200), (False, ADMIN, 200), (False, CAROL, 403), (True, CAROL, 200),
])
def test_the_report_is_shown_to_whoever_may_view_the_incident_and_to_no_one_else(client, clock, public, user,
                                                                               status):
    incident = start(client, public=public, checklists=TWO_STAGES)
    response = report(client, incident, user)
    assert response.status_code == status
    if status == 403:
        assert response.json == {"error": "You do not have permission to view this incident.", "details": {}}


def test_the_report_of_an_incident_that_does_not_exist_is_a_404_and_a_malformed_id_a_400(client):
    assert client.get(f"/api/v0/incidents/{'z' * 26}/report.md", headers=as_user(ALICE)).status_code == 404
    assert client.get("/api/v0/incidents/nope/report.md", headers=as_user(ALICE)).status_code == 400
    assert client.get(f"/api/v0/incidents/{'z' * 26}/report.md").status_code == 401
