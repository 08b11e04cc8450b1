"""/incident start --severity and /incident severity, through the local host and the fake Mattermost."""
from __future__ import annotations

from tests.conftest import TEAM
from tests.integration.test_slash_local import incidents, run
from tests.integration.test_slash_mattermost import world  # noqa: F401 - the fixture

LEVELS = "use one of sev1, sev2, sev3 or sev4"


def test_severity_is_set_on_start_and_changed_in_the_channel_on_the_local_host(local_backend):
    host = local_backend.components.host
    reply = run(local_backend, "start disk full --severity SEV2")["text"]
    assert reply.startswith("Incident **disk full** started at severity **sev2** in ~disk-full")
    room = host.find_channel_by_name(TEAM, "disk-full")
    assert run(local_backend, "severity sev1", channel=room)["text"] == "The severity of **disk full** is now **sev1**."
    assert host.posts(room)[-1] == "@alice changed the severity from **sev2** to **sev1**."
    assert "is **sev1**. Levels, most severe first: sev1, sev2, sev3 or sev4" in run(
        local_backend, "severity", channel=room)["text"]
    timeline = run(local_backend, "timeline", channel=room)["text"]
    assert timeline.endswith("@alice changed the severity from sev2 to sev1.")


def test_an_unknown_level_gets_the_levels_in_an_ephemeral_reply_and_changes_nothing_on_the_local_host(local_backend):
    host = local_backend.components.host
    refused = run(local_backend, "start disk full --severity p1")
    assert refused["response_type"] == "ephemeral" and LEVELS in refused["text"]
    assert incidents(local_backend) == []
    run(local_backend, "start disk full --severity sev3")
    room = host.find_channel_by_name(TEAM, "disk-full")
    posts = host.posts(room)
    refused = run(local_backend, "severity urgent", channel=room)
    assert refused["response_type"] == "ephemeral" and LEVELS in refused["text"]
    assert [i.severity for i in incidents(local_backend)] == ["sev3"] and host.posts(room) == posts


def test_severity_through_the_mattermost_api_posts_the_change_and_refuses_unknown_levels(world):  # noqa: F811
    fake = world.fake
    reply = world.run("start api slow --severity sev4")
    assert "started at severity **sev4**" in reply["text"]
    room = fake.channel_named(world.team, "api-slow")["id"]
    assert world.run("severity sev2", channel=room)["text"] == "The severity of **api slow** is now **sev2**."
    assert fake.posts_in(room)[-1] == "@alice changed the severity from **sev4** to **sev2**."
    posts = list(fake.posts_in(room))
    refused = world.run("severity sev7", channel=room)
    assert refused["response_type"] == "ephemeral" and LEVELS in refused["text"]
    assert world.run("severity none", channel=room)["text"] == "The severity of **api slow** is cleared."
    assert fake.posts_in(room) == [*posts, "@alice cleared the severity (it was **sev2**)."]
    assert [i.severity for i in world.incidents()] == [""]
