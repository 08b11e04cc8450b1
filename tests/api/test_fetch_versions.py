"""Fetching an incident: the ETag and If-None-Match, decided on the incident as it is now."""
from __future__ import annotations

from plugin.app import create_app
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ALICE, BOB, as_user


def _get(client, incident_id: str, user: str = ALICE, **headers: str):
    return client.get(f"/api/v0/incidents/{incident_id}", headers={**as_user(user), **headers})


def test_a_fetch_carries_an_etag_and_if_none_match_answers_304_until_the_incident_changes(client):
    incident = start(client, checklists=TWO_STAGES)
    first = _get(client, incident["id"])
    assert first.status_code == 200 and first.headers["ETag"]
    assert first.json == incident
    unchanged = _get(client, incident["id"], **{"If-None-Match": first.headers["ETag"]})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == first.headers["ETag"]
    moved = client.patch(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE), json={"active_stage": 1})
    assert moved.status_code == 200
    again = _get(client, incident["id"], **{"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 200 and again.headers["ETag"] != first.headers["ETag"]
    assert again.json == moved.json and again.json["active_stage"] == 1


def test_a_fetch_shows_a_change_another_process_made(settings, client):
    incident = start(client, checklists=TWO_STAGES)
    assert _get(client, incident["id"]).json["active_stage"] == 0
    other = create_app(settings, migrate_db=False)  # another worker process on the same database
    try:
        changed = other.test_client().patch(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE),
                                            json={"active_stage": 1})
        assert changed.status_code == 200
    finally:
        other.extensions["incident"].db.dispose()
    fetched = _get(client, incident["id"])
    assert fetched.json == changed.json and fetched.json["active_stage"] == 1


def test_who_may_see_it_is_decided_on_every_fetch_even_with_a_known_tag(client):
    incident = start(client, checklists=TWO_STAGES)  # private: only its channel's members
    assert _get(client, incident["id"]).status_code == 200
    refused = _get(client, incident["id"], user=BOB)
    assert refused.status_code == 403 and "incident" not in refused.json
    # Not even a 304 for an outsider who guessed the tag.
    tagged = _get(client, incident["id"], user=BOB, **{"If-None-Match": _get(client, incident["id"]).headers["ETag"]})
    assert tagged.status_code == 403


def test_if_none_match_with_the_weak_form_of_the_tag_answers_304_as_http_compares_it_weakly(client):
    # A proxy that compresses answers (nginx with gzip) turns the ETag weak; the browser then sends W/"...".
    incident = start(client, checklists=TWO_STAGES)
    tag = _get(client, incident["id"]).headers["ETag"]
    assert _get(client, incident["id"], **{"If-None-Match": f"W/{tag}"}).status_code == 304
    assert _get(client, incident["id"], **{"If-None-Match": f'"other", W/{tag}'}).status_code == 304
    client.patch(f"/api/v0/incidents/{incident['id']}", headers=as_user(ALICE), json={"active_stage": 1})
    assert _get(client, incident["id"], **{"If-None-Match": f"W/{tag}"}).status_code == 200
