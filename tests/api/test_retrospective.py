"""The retrospective through the API, on SQLite and PostgreSQL: when it may be written, templates, publication."""
from __future__ import annotations

from typing import Any

import pytest

from plugin.model import RETROSPECTIVE_MAX
from tests.api.helpers import start
from tests.api.test_playbooks import make_playbook
from tests.conftest import ADMIN, ALICE, BOB, as_user
from tests.threads import run_in_threads

API = "/api/v0/incidents"


def url(incident: dict[str, Any], tail: str = "") -> str:
    return f"{API}/{incident['id']}/retrospective{tail}"


def get(client: Any, incident: dict[str, Any], user: str = ALICE) -> Any:
    return client.get(url(incident), headers=as_user(user))


def put(client: Any, incident: dict[str, Any], text: Any, user: str = ALICE) -> Any:
    return client.put(url(incident), json={"text": text}, headers=as_user(user))


def publish(client: Any, incident: dict[str, Any], user: str = ALICE) -> Any:
    return client.post(url(incident, "/publish"), headers=as_user(user))


def end(client: Any, incident: dict[str, Any]) -> None:
    assert client.put(f"{API}/{incident['id']}/end", headers=as_user(ALICE)).status_code == 200


def posts(components: Any, incident: dict[str, Any]) -> list[str]:
    return components.host.posts(incident["channel_id"])


def test_a_new_incident_has_an_empty_retrospective_that_opens_when_it_ends(client):
    incident = start(client)
    assert get(client, incident).json == {"incident_id": incident["id"], "text": "", "update_at": 0,
                                          "updated_by": "", "published_at": 0, "editable": False}
    refused = put(client, incident, "what we learnt")
    assert refused.status_code == 409 and "once the incident has ended" in refused.json["error"]
    assert get(client, incident).json["text"] == ""
    end(client, incident)
    assert get(client, incident).json["editable"] is True
    written = put(client, incident, "## What we learnt\n\nMore disk.")
    assert written.status_code == 200
    assert written.json["text"] == "## What we learnt\n\nMore disk." and written.json["updated_by"] == ALICE
    assert written.json["update_at"] > 0
    assert get(client, incident).json == written.json


def test_writing_the_same_text_again_changes_nothing(client):
    incident = start(client)
    end(client, incident)
    first = put(client, incident, "text").json
    etag = client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).headers["ETag"]
    again = put(client, incident, "text").json
    assert again == first
    assert client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).headers["ETag"] == etag


def test_a_retrospective_too_long_is_400_saying_the_limit_and_keeps_the_text(client):
    incident = start(client)
    end(client, incident)
    put(client, incident, "kept")
    response = put(client, incident, "x" * (RETROSPECTIVE_MAX + 1))
    assert response.status_code == 400
    assert f"The retrospective is longer than {RETROSPECTIVE_MAX} characters: shorten it" in response.json["error"]
    assert get(client, incident).json["text"] == "kept"
    assert put(client, incident, "y" * RETROSPECTIVE_MAX).status_code == 200


@pytest.mark.parametrize("body", [{}, {"text": None}, {"text": 3}, {"text": "a", "more": 1}, {"text": "a\x00b"}])
def test_a_bad_retrospective_body_is_400_and_changes_nothing(client, body):
    incident = start(client)
    end(client, incident)
    assert client.put(url(incident), json=body, headers=as_user(ALICE)).status_code == 400
    assert get(client, incident).json["update_at"] == 0


def test_only_channel_members_and_system_admins_may_read_write_or_publish_it(client):
    incident = start(client, public=True)
    end(client, incident)
    refused = get(client, incident, user=BOB)
    assert refused.status_code == 403 and "may read its retrospective; join the channel" in refused.json["error"]
    assert put(client, incident, "x", user=BOB).status_code == 403
    assert publish(client, incident, user=BOB).status_code == 403
    assert put(client, incident, "by the admin", user=ADMIN).json["updated_by"] == ADMIN


def test_an_unknown_incident_is_404(client):
    missing = {"id": "z" * 26}
    assert get(client, missing).status_code == 404
    assert put(client, missing, "x").status_code == 404
    assert publish(client, missing).status_code == 404


def test_publishing_posts_the_text_to_the_channel_and_writes_a_timeline_entry(client, components):
    incident = start(client)
    end(client, incident)
    put(client, incident, "## Timeline\n\nDisk filled at noon.")
    published = publish(client, incident)
    assert published.status_code == 200 and published.json["published_at"] > 0
    assert posts(components, incident)[-1] == (
        f"Retrospective of **db is down**, published by @{ALICE}:\n\n## Timeline\n\nDisk filled at noon.")
    shown = client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).json
    assert shown["retrospective_published_at"] == published.json["published_at"]
    entries = client.get(f"{API}/{incident['id']}/timeline?event_type=retrospective_published",
                         headers=as_user(ALICE)).json
    assert [e["summary"] for e in entries] == [f"@{ALICE} published the retrospective."]


def test_an_incident_never_published_shows_zero(client):
    assert start(client)["retrospective_published_at"] == 0


@pytest.mark.parametrize("text", ["", "  \n\t "])
def test_publishing_a_blank_retrospective_is_409_and_posts_nothing(client, components, text):
    incident = start(client)
    end(client, incident)
    if text:
        put(client, incident, text)
    before = posts(components, incident)
    refused = publish(client, incident)
    assert refused.status_code == 409 and "write it first" in refused.json["error"]
    assert posts(components, incident) == before
    assert client.get(f"{API}/{incident['id']}", headers=as_user(ALICE)).json["retrospective_published_at"] == 0


def test_publishing_before_the_end_is_409(client):
    incident = start(client)
    refused = publish(client, incident)
    assert refused.status_code == 409 and "once the incident has ended" in refused.json["error"]


def test_a_playbooks_template_fills_the_retrospective_and_must_be_saved_before_publishing(client):
    template = "## What happened\n\n## What we learnt\n"
    playbook = make_playbook(client, retrospective_template=template)
    assert playbook["retrospective_template"] == template and playbook["retrospective_before_end"] is False
    incident = start(client, playbook_id=playbook["id"])
    shown = get(client, incident).json
    assert (shown["text"], shown["update_at"], shown["editable"]) == (template, 0, False)
    end(client, incident)
    refused = publish(client, incident)
    assert refused.status_code == 409 and "template" in refused.json["error"]
    put(client, incident, template + "Disks fill up.")
    assert publish(client, incident).status_code == 200


def test_a_playbook_may_allow_the_retrospective_before_the_end(client):
    playbook = make_playbook(client, retrospective_before_end=True)
    incident = start(client, playbook_id=playbook["id"])
    assert get(client, incident).json["editable"] is True
    assert put(client, incident, "notes as we go").status_code == 200
    assert publish(client, incident).status_code == 200


def test_changing_the_playbook_later_leaves_the_incidents_retrospective_as_it_started(client):
    playbook = make_playbook(client, retrospective_template="old template", retrospective_before_end=True)
    incident = start(client, playbook_id=playbook["id"])
    client.put(f"/api/v0/playbooks/{playbook['id']}", headers=as_user(ALICE),
               json={"title": "p", "retrospective_template": "new", "retrospective_before_end": False})
    shown = get(client, incident).json
    assert shown["text"] == "old template" and shown["editable"] is True
    later = get(client, start(client, playbook_id=playbook["id"])).json
    assert later["text"] == "new" and later["editable"] is False


def test_a_template_too_long_is_400(client):
    response = client.post("/api/v0/playbooks", headers=as_user(ALICE), json={
        "title": "p", "team_id": "team".ljust(26, "0"), "retrospective_template": "x" * (RETROSPECTIVE_MAX + 1)})
    assert response.status_code == 400
    assert response.json["details"]["json"]["retrospective_template"] == [
        f"The template is longer than {RETROSPECTIVE_MAX} characters: shorten it."]


def test_a_restarted_incident_keeps_its_retrospective_but_takes_no_writes_until_it_ends_again(client):
    incident = start(client)
    end(client, incident)
    put(client, incident, "first draft")
    assert client.put(f"{API}/{incident['id']}/restart", headers=as_user(ALICE)).status_code == 200
    assert put(client, incident, "second draft").status_code == 409
    assert get(client, incident).json["text"] == "first draft"


def test_publishing_again_posts_again_and_moves_the_publication_time(client, components, ticking_clock):
    incident = start(client)
    end(client, incident)
    put(client, incident, "v1")
    first = publish(client, incident).json["published_at"]
    put(client, incident, "v2")
    second = publish(client, incident).json["published_at"]
    assert second > first
    assert [p.rsplit("\n", 1)[-1] for p in posts(components, incident)[-2:]] == ["v1", "v2"]


def test_concurrent_writes_each_commit_once_and_one_of_them_stands(client, components):
    incident = start(client)
    end(client, incident)
    service = components.service
    version = service.get_incident(ALICE, incident["id"]).version
    texts = [f"draft {n}" for n in range(6)]
    run_in_threads(lambda n: service.update_retrospective(ALICE, incident["id"], texts[n]), len(texts), 60, "writers")
    assert service.get_incident(ALICE, incident["id"]).version == version + len(texts)
    assert get(client, incident).json["text"] in texts
