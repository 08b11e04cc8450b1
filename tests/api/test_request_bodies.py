"""Every request body is loaded by its schema into a frozen dataclass, so no view picks keys out of a dict."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from apispec.ext.marshmallow import resolver
from marshmallow import Schema

import plugin.app  # noqa: F401 - imports every module that defines a schema
from plugin.backstage import SignInSchema
from plugin.launcher import EnvironmentSchema
from plugin.membership import LeftSchema
from plugin.service import NewChecklist, NewItem
from tests.conftest import ALICE, BOB, TEAM

STAGES = [{"title": "Triage", "items": [{"title": "Page the on-call", "command": "/page"}]}, {"title": "Fix"}]

# A valid body for each request schema of the published document, by its component name.
EXAMPLES: dict[str, dict[str, Any]] = {
    "CreateIncident": {"name": "db down", "team_id": TEAM, "commander_user_id": ALICE, "checklists": STAGES},
    "PatchIncident": {"active_stage": 1},
    "Commander": {"commander_id": BOB},
    "AddMembers": {"user_ids": [BOB]},
    "NewStatusUpdate": {"message": "all good", "reminder_seconds": 0},
    "Reminder": {"seconds": 600},
    "NewItem": {"title": "Roll back"},
    "EditItem": {"command": "/deploy rollback"},
    "Reorder": {"item_num": 0, "new_location": 1},
    "ItemState": {"new_state": "closed"},
    "Assignee": {"assignee_id": ""},
    "NewNote": {"summary": "paged the DBA", "details": {"pages": 1}},
    "RetrospectiveText": {"text": "# What happened"},
    "CreatePlaybook": {"title": "db", "team_id": TEAM, "checklists": STAGES},
    "UpdatePlaybook": {"title": "db", "checklists": STAGES},
    "SettingsChange": {"EnableTelemetry": False},
    "CreateWebhook": {"url": "https://example.com/hook", "events": ["*"]},
    "UpdateWebhook": {"team_id": ""},
}

# Routes with a body that the published document leaves out, by endpoint: their schema and a valid body.
UNDOCUMENTED: dict[str, tuple[type[Schema], dict[str, Any]]] = {
    "backstage.sign_in": (SignInSchema, {"user_id": ALICE}),
    "launcher.environment_coming": (EnvironmentSchema, {"environment": {"INCIDENT_ENABLE_TELEMETRY": "false"}}),
    "membership.membership_left": (LeftSchema, {"user_id": ALICE, "team_id": TEAM}),
}
# Undocumented routes that take no body a schema loads.
WITHOUT_SCHEMA = {
    "backstage.sign_out",  # no body
    "command.command",  # a slash command's form fields, read one by one
}


def _schema_classes() -> dict[str, list[type[Schema]]]:
    """Every schema class of the plugin by the component name the document gives it."""
    found: dict[str, list[type[Schema]]] = {}
    pending = [Schema]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.__module__.startswith("plugin."):
            found.setdefault(resolver(cls), []).append(cls)
    return found


def _documented_bodies(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method, path) -> component name of each operation's JSON request body."""
    bodies = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and "requestBody" in operation:
                ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                bodies[(method.upper(), path)] = ref.rsplit("/", 1)[1]
    return bodies


def _assert_frozen_dataclass(loaded: Any, what: str) -> None:
    assert dataclasses.is_dataclass(loaded) and not isinstance(loaded, type), (
        f"{what} loads into {type(loaded).__name__}: give its schema a post_load returning the request's dataclass")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(loaded, dataclasses.fields(loaded)[0].name, None)


def test_every_route_that_takes_a_body_loads_it_into_a_frozen_dataclass(app, client):
    document = client.get("/api/v0/openapi.json").json
    bodies = _documented_bodies(document)
    classes = _schema_classes()
    assert set(bodies.values()) == set(EXAMPLES), "give each request schema of the document a valid example here"
    checked = 0
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            if (method, path) in bodies:
                name = bodies[(method, path)]
                assert len(classes[name]) == 1, f"component {name} names {classes[name]}"
                schema, example = classes[name][0], EXAMPLES[name]
            elif path in document["paths"]:
                continue  # documented without a body
            elif rule.endpoint in UNDOCUMENTED:
                schema, example = UNDOCUMENTED[rule.endpoint]
            else:
                assert rule.endpoint in WITHOUT_SCHEMA, f"{method} {rule.rule}: say here how its body is loaded"
                continue
            _assert_frozen_dataclass(schema().load(example), f"{method} {rule.rule}")
            checked += 1
    assert checked == len(bodies) + len(UNDOCUMENTED)


@pytest.mark.parametrize("name", ["CreateIncident", "CreatePlaybook", "UpdatePlaybook"])
def test_stages_in_a_body_load_as_the_service_stages_and_tasks(name):
    (schema,) = _schema_classes()[name]
    loaded = schema().load(EXAMPLES[name])
    assert loaded.checklists == [NewChecklist("Triage", [NewItem("Page the on-call", command="/page")]),
                                 NewChecklist("Fix")]
