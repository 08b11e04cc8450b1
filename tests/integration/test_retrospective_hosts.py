"""A retrospective written and published through a running server: on the local host and on the fake Mattermost."""
from __future__ import annotations

import httpx

from tests.conftest import ALICE, TEAM, as_user
from tests.integration.test_slash_local import run
from tests.integration.test_slash_mattermost import world  # noqa: F401 - the fixture

TEXT = "## What happened\n\nThe disk filled up.\n\n## What we change\n\n* alert at 80%"


def test_a_retrospective_is_published_to_the_channel_of_the_local_host(local_backend):
    host = local_backend.components.host
    run(local_backend, "start disk full")
    room = host.find_channel_by_name(TEAM, "disk-full")
    run(local_backend, "end", channel=room)
    incident_id = local_backend.components.service.get_incident_by_channel(ALICE, room).id
    url = f"{local_backend.url}/api/v0/incidents/{incident_id}/retrospective"
    assert httpx.put(url, json={"text": TEXT}, headers=as_user(ALICE)).status_code == 200
    published = httpx.post(f"{url}/publish", headers=as_user(ALICE))
    assert published.status_code == 200
    assert host.posts(room)[-1] == f"Retrospective of **disk full**, published by @alice:\n\n{TEXT}"
    assert run(local_backend, "timeline", channel=room)["text"].endswith("@alice published the retrospective.")


def test_a_retrospective_is_published_through_the_mattermost_api(world):  # noqa: F811
    fake = world.fake
    world.run("start api slow")
    room = fake.channel_named(world.team, "api-slow")["id"]
    world.run("end", channel=room)
    incident = world.incidents()[0]
    auth = {"Authorization": f"Bearer {fake.token_for(world.alice)}"}
    url = f"{world.backend.url}/api/v0/incidents/{incident.id}/retrospective"
    assert httpx.put(url, json={"text": TEXT}, headers=auth).json()["updated_by"] == world.alice
    outsider = {"Authorization": f"Bearer {fake.token_for(world.carol)}"}
    assert httpx.post(f"{url}/publish", headers=outsider).status_code == 403
    posts = list(fake.posts_in(room))
    published = httpx.post(f"{url}/publish", headers=auth)
    assert published.status_code == 200 and published.json()["published_at"] > 0
    assert fake.posts_in(room) == [*posts, f"Retrospective of **api slow**, published by @alice:\n\n{TEXT}"]
    assert {p.user_id for p in fake.state.posts} == {fake.bot_id}
