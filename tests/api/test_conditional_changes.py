"""Changing an incident with If-Match: made only while the incident is still at the ETag the caller saw."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ALICE, BOB, as_user
from tests.threads import run_in_threads

API = "/api/v0/incidents"

# (method, path tail, body) of changes of an incident, each valid on a fresh active incident of TWO_STAGES.
CHANGES = [
    ("PATCH", "", {"active_stage": 1}),
    ("PATCH", "", {"severity": "sev2"}),
    ("PUT", "/end", None),
    ("POST", "/commander", {"commander_id": ALICE}),
    ("POST", "/status-updates", {"message": "still down"}),
    ("POST", "/reminder", {"seconds": 600}),
    ("POST", "/checklists/0/items", {"title": "Call the vendor"}),
    ("PUT", "/checklists/0/items/0", {"title": "Page the DBA"}),
    ("DELETE", "/checklists/0/items/0", None),
    ("PUT", "/checklists/0/reorder", {"item_num": 0, "new_location": 1}),
    ("PUT", "/checklists/0/items/0/state", {"new_state": "closed"}),
    ("PUT", "/checklists/0/items/0/assignee", {"assignee_id": ALICE}),
    ("POST", "/members", {"user_ids": [BOB]}),
    ("POST", "/timeline", {"summary": "paged the DBA"}),
]


def tag_of(client: Any, incident_id: str) -> str:
    return client.get(f"{API}/{incident_id}", headers=as_user(ALICE)).headers["ETag"]


def seen(client: Any, incident_id: str) -> tuple[Any, Any]:
    """The incident and its timeline as the API shows them."""
    return (client.get(f"{API}/{incident_id}", headers=as_user(ALICE)).json,
            client.get(f"{API}/{incident_id}/timeline", headers=as_user(ALICE)).json)


def change(client: Any, incident_id: str, method: str, tail: str, body: Any, **headers: str) -> Any:
    return client.open(f"{API}/{incident_id}{tail}", method=method, json=body,
                       headers={**as_user(ALICE), **headers})


@pytest.mark.parametrize("method, tail, body", CHANGES)
def test_a_change_with_a_stale_if_match_is_a_412_and_changes_nothing(client, method, tail, body):
    incident = start(client, checklists=TWO_STAGES)
    stale = tag_of(client, incident["id"])
    assert change(client, incident["id"], "PATCH", "", {"active_stage": 1}).status_code == 200
    before = seen(client, incident["id"])
    refused = change(client, incident["id"], method, tail, body, **{"If-Match": stale})
    assert refused.status_code == 412, refused.json
    assert "If-Match" in refused.json["error"] and refused.json["details"]["etag"] == tag_of(client, incident["id"])
    assert seen(client, incident["id"]) == before


@pytest.mark.parametrize("method, tail, body", CHANGES)
def test_a_change_with_the_current_etag_in_if_match_is_made(client, method, tail, body):
    incident = start(client, checklists=TWO_STAGES)
    current = tag_of(client, incident["id"])
    made = change(client, incident["id"], method, tail, body, **{"If-Match": f'"other", {current}'})
    assert made.status_code in (200, 201), made.json


@pytest.mark.parametrize("if_match", ['"0.0.0.0"', '"not-a-tag"', "W/{tag}"])
def test_if_match_with_a_tag_this_incident_never_had_or_a_weak_one_is_a_412(client, if_match):
    # If-Match compares strongly: a weak tag never matches.
    incident = start(client, checklists=TWO_STAGES)
    header = if_match.format(tag=tag_of(client, incident["id"]))
    refused = change(client, incident["id"], "PATCH", "", {"active_stage": 1}, **{"If-Match": header})
    assert refused.status_code == 412
    assert seen(client, incident["id"])[0]["active_stage"] == 0


def test_if_match_star_or_no_if_match_changes_whatever_the_version(client):
    incident = start(client, checklists=TWO_STAGES)
    assert change(client, incident["id"], "PATCH", "", {"active_stage": 1}, **{"If-Match": "*"}).status_code == 200
    assert change(client, incident["id"], "PATCH", "", {"active_stage": 0}).status_code == 200


def test_the_retrospective_is_written_only_at_the_if_match_version(client):
    incident = start(client, checklists=TWO_STAGES)
    assert change(client, incident["id"], "PUT", "/end", None).status_code == 200
    current = tag_of(client, incident["id"])
    written = change(client, incident["id"], "PUT", "/retrospective", {"text": "first"}, **{"If-Match": current})
    assert written.status_code == 200
    stale = change(client, incident["id"], "PUT", "/retrospective", {"text": "second"}, **{"If-Match": current})
    assert stale.status_code == 412
    published = change(client, incident["id"], "POST", "/retrospective/publish", None, **{"If-Match": current})
    assert published.status_code == 412
    retrospective = client.get(f"{API}/{incident['id']}/retrospective", headers=as_user(ALICE)).json
    assert (retrospective["text"], retrospective["published_at"]) == ("first", 0)


def test_an_outsider_with_a_stale_tag_is_refused_for_who_they_are_not_for_the_tag(client):
    incident = start(client, checklists=TWO_STAGES)
    refused = client.patch(f"{API}/{incident['id']}", json={"active_stage": 1},
                           headers={**as_user(BOB), "If-Match": '"stale"'})
    assert refused.status_code == 403 and "etag" not in refused.json["details"]


def test_of_two_racing_changes_from_the_same_etag_exactly_one_is_made(app, client):
    incident = start(client, checklists=TWO_STAGES)
    tag = tag_of(client, incident["id"])
    statuses: list[int] = []

    def move(number: int) -> None:
        response = app.test_client().patch(f"{API}/{incident['id']}", json={"severity": f"sev{number % 4 + 1}"},
                                           headers={**as_user(ALICE), "If-Match": tag})
        statuses.append(response.status_code)

    run_in_threads(move, 6, 60, "changes")
    assert sorted(statuses) == [200] + [412] * 5, statuses
    timeline = client.get(f"{API}/{incident['id']}/timeline?event_type=severity_changed", headers=as_user(ALICE))
    assert len(timeline.json) == 1


@pytest.mark.parametrize("header", ['"', ",", ", ,", '"unclosed, '])
@pytest.mark.parametrize("method, tail, body", CHANGES[:4])
def test_an_if_match_that_holds_no_entity_tag_is_a_400_and_changes_nothing(client, method, tail, body, header):
    # Read as no condition at all, it would let through a change the caller meant to make conditional.
    incident = start(client, checklists=TWO_STAGES)
    before = seen(client, incident["id"])
    refused = change(client, incident["id"], method, tail, body, **{"If-Match": header})
    assert refused.status_code == 400
    assert refused.json == {"error": "The If-Match header holds no entity tag: send the ETag that GET "
                                     "/api/v0/incidents/{id} answered, quotes included, or leave the header out.",
                            "details": {"if_match": header.strip()}}
    assert seen(client, incident["id"]) == before


def test_the_incident_by_channel_carries_the_etag_a_change_may_name(client):
    incident = start(client, checklists=TWO_STAGES)
    by_channel = client.get(f"{API}/channel/{incident['channel_id']}", headers=as_user(ALICE))
    assert by_channel.headers["ETag"] == tag_of(client, incident["id"])
    moved = change(client, incident["id"], "PATCH", "", {"active_stage": 1}, **{"If-Match": by_channel.headers["ETag"]})
    assert moved.status_code == 200
    again = change(client, incident["id"], "PATCH", "", {"active_stage": 0}, **{"If-Match": by_channel.headers["ETag"]})
    assert again.status_code == 412
