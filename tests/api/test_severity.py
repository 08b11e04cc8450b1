"""Severity through the API, on SQLite and PostgreSQL: start, change, list, sort, playbooks and the setting."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import start
from tests.api.test_playbooks import make_playbook
from tests.conftest import ADMIN, ALICE, BOB, TEAM, as_user

API = "/api/v0/incidents"


def patch(client: Any, incident: dict[str, Any], body: Any, user: str = ALICE) -> Any:
    return client.patch(f"{API}/{incident['id']}", json=body, headers=as_user(user))


def set_levels(client: Any, levels: str) -> Any:
    return client.put("/api/v0/settings", json={"SeverityLevels": levels}, headers=as_user(ADMIN))


def listed(client: Any, query: str, user: str = ALICE) -> list[str]:
    response = client.get(f"{API}?team_id={TEAM}&{query}", headers=as_user(user))
    assert response.status_code == 200, response.json
    return [item["name"] for item in response.json["items"]]


def severity_entries(client: Any, incident: dict[str, Any]) -> list[dict[str, Any]]:
    response = client.get(f"{API}/{incident['id']}/timeline?event_type=severity_changed", headers=as_user(ALICE))
    return response.json


def test_an_incident_shows_an_empty_severity_until_one_is_given(client):
    assert start(client)["severity"] == ""
    graded = start(client, severity=" SEV2 ")
    assert graded["severity"] == "sev2"
    assert client.get(f"{API}/{graded['id']}", headers=as_user(ALICE)).json["severity"] == "sev2"


def test_start_with_an_unknown_level_is_400_naming_the_levels_and_starts_nothing(client):
    response = client.post(API, headers=as_user(ALICE), json={
        "name": "db", "team_id": TEAM, "commander_user_id": ALICE, "severity": "p1"})
    assert response.status_code == 400
    assert "use one of sev1, sev2, sev3 or sev4" in response.json["error"]
    assert response.json["details"]["levels"] == ["sev1", "sev2", "sev3", "sev4"]
    assert listed(client, "") == []


@pytest.mark.parametrize("severity", ["sev 1", "x" * 33, 1, None, ["sev1"]])
def test_a_severity_that_is_not_one_short_word_is_400(client, severity):
    incident = start(client)
    assert patch(client, incident, {"severity": severity}).status_code == 400
    assert client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).json["severity"] == ""
    assert severity_entries(client, incident) == []


def test_patch_sets_changes_and_clears_the_severity_each_with_a_timeline_entry(client):
    incident = start(client)
    assert patch(client, incident, {"severity": "sev3"}).json["severity"] == "sev3"
    assert patch(client, incident, {"severity": "Sev1"}).json["severity"] == "sev1"
    assert patch(client, incident, {"severity": ""}).json["severity"] == ""
    entries = severity_entries(client, incident)
    assert [e["summary"] for e in entries] == [
        f"@{ALICE} set the severity to sev3.", f"@{ALICE} changed the severity from sev3 to sev1.",
        f"@{ALICE} cleared the severity (it was sev1)."]
    assert entries[1]["details"] == {"from_severity": "sev3", "to_severity": "sev1", "from_rank": 3, "to_rank": 1}


def test_patch_to_the_same_severity_is_200_and_writes_nothing(client):
    incident = start(client, severity="sev2")
    assert patch(client, incident, {"severity": "sev2"}).status_code == 200
    assert severity_entries(client, incident) == []


def test_patch_with_an_unknown_level_is_400_naming_the_levels_and_changes_nothing(client):
    incident = start(client, severity="sev2")
    response = patch(client, incident, {"severity": "sev9"})
    assert response.status_code == 400
    assert response.json["error"] == "'sev9' is not a severity level: use one of sev1, sev2, sev3 or sev4 " \
                                     "(most severe first)."
    assert client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).json["severity"] == "sev2"
    assert severity_entries(client, incident) == []


def test_patch_of_severity_with_another_change_is_400(client):
    incident = start(client)
    response = patch(client, incident, {"severity": "sev1", "active_stage": 0})
    assert response.status_code == 400 and "exactly one of" in response.json["error"] + str(response.json)


def test_only_channel_members_and_admins_may_change_the_severity(client):
    incident = start(client, public=True, severity="sev4")
    assert patch(client, incident, {"severity": "sev1"}, user=BOB).status_code == 403
    assert patch(client, incident, {"severity": "sev1"}, user=ADMIN).json["severity"] == "sev1"


def test_list_filters_by_one_or_more_levels_and_by_no_severity(client):
    for name, severity in (("a", "sev1"), ("b", "sev2"), ("c", ""), ("d", "sev2")):
        start(client, name=name, severity=severity)
    assert sorted(listed(client, "severity=sev2")) == ["b", "d"]
    assert sorted(listed(client, "severity=SEV1&severity=sev2")) == ["a", "b", "d"]
    assert listed(client, "severity=") == ["c"]


@pytest.mark.usefixtures("ticking_clock")
def test_sort_by_severity_puts_the_most_severe_first_and_ties_newest_first(client):
    for name, severity in (("none", ""), ("low", "sev4"), ("top1", "sev1"), ("mid", "sev2"), ("top2", "sev1")):
        start(client, name=name, severity=severity)
    assert listed(client, "sort=severity") == ["top2", "top1", "mid", "low", "none"]
    assert listed(client, "sort=severity&direction=asc") == ["none", "low", "mid", "top1", "top2"]
    assert listed(client, "sort=severity&per_page=2&page=1") == ["mid", "low"]


@pytest.mark.usefixtures("ticking_clock")
def test_a_level_removed_from_the_setting_stays_readable_and_sorts_after_the_known_ones(client):
    for name, severity in (("old", "sev3"), ("top", "sev1"), ("none", ""), ("two", "sev2")):
        start(client, name=name, severity=severity)
    assert set_levels(client, "sev1,sev2").status_code == 200
    assert listed(client, "sort=severity") == ["top", "two", "old", "none"]
    assert listed(client, "severity=sev3") == ["old"]
    old = client.get(f"{API}?team_id={TEAM}&severity=sev3", headers=as_user(ALICE)).json["items"][0]
    assert old["severity"] == "sev3"
    # The removed level is no longer one to choose, but the incident can move to a level in force.
    assert patch(client, old, {"severity": "sev3"}).status_code == 400
    assert patch(client, old, {"severity": "sev2"}).json["severity"] == "sev2"
    assert severity_entries(client, old)[0]["details"] == {
        "from_severity": "sev3", "to_severity": "sev2", "from_rank": 0, "to_rank": 2}


def test_levels_set_by_an_admin_are_the_ones_offered_and_their_order_is_the_sort(client):
    assert set_levels(client, "critical, major,minor").status_code == 200
    start(client, name="m", severity="minor")
    start(client, name="c", severity="CRITICAL")
    assert listed(client, "sort=severity") == ["c", "m"]
    response = client.post(API, headers=as_user(ALICE), json={
        "name": "x", "team_id": TEAM, "commander_user_id": ALICE, "severity": "sev1"})
    assert response.status_code == 400 and "critical, major or minor" in response.json["error"]


@pytest.mark.parametrize("levels,says", [
    ("", "at least one"), ("sev1,,sev2", "empty"), ("sev1,Sev1", "given twice"), ("sev 1", "one word"),
    ("x" * 40, "1 to 32 characters"),
])
def test_bad_severity_levels_are_400_saying_what_to_fix_and_keep_the_levels(client, components, levels, says):
    response = set_levels(client, levels)
    assert response.status_code == 400 and says in response.json["error"]
    assert components.settings.current.severity_levels.names == ("sev1", "sev2", "sev3", "sev4")


def test_a_playbooks_default_severity_applies_when_the_request_gives_none(client):
    playbook = make_playbook(client, default_severity="SEV2")
    assert playbook["default_severity"] == "sev2"
    assert start(client, playbook_id=playbook["id"])["severity"] == "sev2"
    assert start(client, playbook_id=playbook["id"], severity="sev1")["severity"] == "sev1"
    assert start(client, playbook_id=playbook["id"], severity="")["severity"] == ""


def test_a_playbook_with_an_unknown_default_severity_is_400_and_an_update_may_change_it(client):
    response = client.post("/api/v0/playbooks", headers=as_user(ALICE), json={
        "title": "p", "team_id": TEAM, "default_severity": "p0"})
    assert response.status_code == 400 and "use one of sev1" in response.json["error"]
    playbook = make_playbook(client)
    assert playbook["default_severity"] == ""
    updated = client.put(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE),
                         json={"title": "p", "default_severity": "sev4"})
    assert updated.json["default_severity"] == "sev4"


def test_a_playbook_default_no_longer_configured_starts_the_incident_without_a_severity(client):
    playbook = make_playbook(client, default_severity="sev4")
    assert set_levels(client, "sev1,sev2,sev3").status_code == 200
    assert start(client, playbook_id=playbook["id"])["severity"] == ""


def test_the_created_entry_tells_the_severity_the_incident_started_with(client):
    incident = start(client, severity="sev1")
    created = client.get(f"{API}/{incident['id']}/timeline", headers=as_user(ALICE)).json[0]
    assert created["details"]["severity"] == "sev1"


def test_the_published_document_lists_the_levels_in_force_for_each_severity_field(client):
    def enums() -> dict[str, list[str]]:
        schemas = client.get("/api/v0/openapi.json").json["components"]["schemas"]
        return {f"{name}.{key}": prop["enum"] for name, schema in schemas.items()
                for key, prop in schema.get("properties", {}).items() if key in ("severity", "default_severity")
                and "enum" in prop}
    assert enums() == {key: ["", "sev1", "sev2", "sev3", "sev4"] for key in (
        "CreateIncident.severity", "PatchIncident.severity", "CreatePlaybook.default_severity",
        "UpdatePlaybook.default_severity")}
    assert set_levels(client, "critical,major").status_code == 200
    assert set(map(tuple, enums().values())) == {("", "critical", "major")}
