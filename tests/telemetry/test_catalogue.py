"""The catalogue is the allow-list: exact keys per event, values of the right kind only."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from plugin import cli
from plugin.telemetry.catalogue import EVENTS, Refused, allowed_properties
from plugin.telemetry.docs import DOCS_PATH, render

ROOT = Path(__file__).resolve().parents[2]
ID = "a" * 26
COMMON = ["diagnosticID", "serverVersion", "pluginVersion", "eventTimeStamp"]
METADATA = ["incidentID", "IsActive", "CommanderUserID", "TeamID", "CreatedAt", "PostID", "NumChecklists",
            "TotalChecklistItems", "ActiveStage", "UserActualID"]
PLAYBOOK = ["PlaybookID", "TeamID", "NumChecklists", "TotalChecklistItems", "IsPublic", "NumMembers",
            "UserActualID"]


def _incident_values(**changes):
    values = {"incidentID": ID, "IsActive": True, "CommanderUserID": ID, "TeamID": ID, "CreatedAt": 1,
              "PostID": "", "NumChecklists": 2, "TotalChecklistItems": 3, "ActiveStage": 0, "UserActualID": ID,
              "diagnosticID": ID, "serverVersion": "9.11.1", "pluginVersion": "0.1.0", "eventTimeStamp": 2}
    return {**values, **changes}


def test_catalogue_holds_exactly_the_published_events_and_actions():
    assert {name: [a.name for a in event.actions] for name, event in EVENTS.items()} == {
        "incident": ["create", "end", "restart", "change_commander", "change_stage", "add_members",
                     "add_timeline_event", "remove_timeline_event", "update_status", "change_reminder",
                     "change_broadcast_channels", "change_severity", "update_retrospective",
                     "publish_retrospective"],
        "tasks": ["add_task", "remove_task", "rename_task", "modify_task_state", "move_task",
                  "set_assignee_for_task", "run_task_slash_command"],
        "playbook": ["create", "update", "delete"],
    }


@pytest.mark.parametrize("event,action,extra,metadata", [
    ("incident", "create", ["Public", "SeverityRank"], METADATA),
    ("incident", "change_severity", ["SeverityRank", "PreviousSeverityRank"], METADATA),
    ("incident", "update_retrospective", [], METADATA),
    ("incident", "publish_retrospective", [], METADATA),
    ("incident", "end", [], METADATA),
    ("incident", "add_members", ["NumMembersAdded"], METADATA),
    ("incident", "add_timeline_event", ["EventType", "Backdated", "HasPost", "NumDetails"], METADATA),
    ("incident", "remove_timeline_event", ["EventType", "WasCreator"], METADATA),
    ("incident", "update_status", ["ReminderSeconds", "NumBroadcastChannels"], METADATA),
    ("incident", "change_reminder", ["ReminderSeconds"], METADATA),
    ("incident", "change_broadcast_channels", ["NumBroadcastChannels"], METADATA),
    ("tasks", "modify_task_state", ["NewState", "WasCommander", "WasAssignee"], METADATA),
    ("tasks", "add_task", [], METADATA),
    ("playbook", "update", [], PLAYBOOK),
])
def test_each_action_allows_exactly_the_keys_of_the_public_contract(event, action, extra, metadata):
    keys = [prop.key for prop in EVENTS[event].properties(action)]
    assert keys == ["Action", *extra, *metadata, *COMMON]


@pytest.mark.parametrize("rank", ["sev1", "1", 1.0, True, -2, 1001, None])
def test_a_severity_rank_is_refused_unless_it_is_a_position_so_no_level_name_is_sent(rank, caplog):
    values = _incident_values(SeverityRank=rank, PreviousSeverityRank=1)
    with caplog.at_level(logging.WARNING):
        sent = allowed_properties("incident", "change_severity", values)
    assert "SeverityRank" not in sent and sent["PreviousSeverityRank"] == 1
    assert "sev1" not in caplog.text


@pytest.mark.parametrize("rank", [-1, 0, 1, 4, 20])
def test_a_severity_rank_from_none_to_a_position_is_sent_as_it_is(rank):
    sent = allowed_properties("incident", "change_severity", _incident_values(SeverityRank=rank,
                                                                              PreviousSeverityRank=-1))
    assert (sent["SeverityRank"], sent["PreviousSeverityRank"]) == (rank, -1)


def test_allowed_values_pass_through_unchanged():
    values = _incident_values(Public=True, SeverityRank=2)
    assert allowed_properties("incident", "create", values) == {"Action": "create", **values}


@pytest.mark.parametrize("key,value", [
    ("incidentID", "CANARY name of the incident"),
    ("incidentID", "A" * 26),
    ("PostID", "short"),
    ("IsActive", "yes"),
    ("NumChecklists", True),
    ("NumChecklists", -3),
    ("CreatedAt", 1.5),
    ("ActiveStage", -2),
    ("serverVersion", "CANARY 1.0"),
    ("TeamID", None),
])
def test_a_value_of_the_wrong_kind_is_refused_and_logged_without_its_content(key, value, caplog):
    with caplog.at_level(logging.WARNING, logger="plugin.telemetry.catalogue"):
        clean = allowed_properties("incident", "end", _incident_values(**{key: value}))
    assert key not in clean
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert key in caplog.text and "CANARY" not in caplog.text and "short" not in caplog.text


def test_modify_task_state_accepts_only_the_three_task_states(caplog):
    values = _incident_values(WasCommander=True, WasAssignee=False)
    assert allowed_properties("tasks", "modify_task_state", {**values, "NewState": "closed"})["NewState"] == "closed"
    with caplog.at_level(logging.WARNING):
        assert "NewState" not in allowed_properties("tasks", "modify_task_state", {**values, "NewState": "done!"})
    assert "done!" not in caplog.text


def test_a_key_outside_the_catalogue_is_dropped_and_logged(caplog):
    with caplog.at_level(logging.WARNING):
        clean = allowed_properties("incident", "end", _incident_values(Name="CANARY"))
    assert "Name" not in clean and "not in the catalogue" in caplog.text and "CANARY" not in caplog.text


def test_a_missing_key_does_not_hide_an_extra_one(caplog):
    values = _incident_values(Name="CANARY")
    del values["PostID"]
    with caplog.at_level(logging.WARNING):
        clean = allowed_properties("incident", "end", values)
    assert "Name" not in clean and "PostID" not in clean
    assert "missing property PostID" in caplog.text and "refused property Name" in caplog.text


def test_an_action_the_event_does_not_have_is_refused():
    with pytest.raises(Refused):
        allowed_properties("incident", "add_task", _incident_values())
    with pytest.raises(Refused):
        allowed_properties("feedback", "create", {})


def test_committed_docs_page_matches_the_catalogue():
    assert (ROOT / DOCS_PATH).read_text(encoding="utf-8") == render(), (
        "docs/telemetry.md is out of date: run `incident-plugin telemetry docs`")


def test_docs_table_lists_every_allowed_key_of_every_action():
    page = render()
    for event in EVENTS.values():
        for action in event.actions:
            keys = ", ".join(f"`{prop.key}`" for prop in event.properties(action.name))
            assert f"| `{event.name}` | `{action.name}` | {keys} | {event.source_file} |" in page


def test_docs_command_writes_the_page_and_check_detects_drift(tmp_path, capsys):
    page = tmp_path / "telemetry.md"
    assert cli.main(["telemetry", "docs", "--output", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == render()
    assert cli.main(["telemetry", "docs", "--output", str(page), "--check"]) == 0
    page.write_text(render().replace("`NumMembers`", "`NumMember`"), encoding="utf-8")
    assert cli.main(["telemetry", "docs", "--output", str(page), "--check"]) == 1
    assert "differs from the event catalogue" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_source_file_of_each_event_exists_and_records_it(name):
    event = EVENTS[name]
    path = ROOT / event.source_file
    text = path.read_text(encoding="utf-8")
    assert {"incident": "IncidentEvent(", "tasks": "TaskEvent(", "playbook": "PlaybookEvent("}[name] in text
