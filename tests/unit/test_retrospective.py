"""The retrospective's rules and use cases over in-memory fakes: no Flask, no database."""
from __future__ import annotations

import pytest

from plugin.errors import BadInput, InvalidState, PermissionDenied
from plugin.model import RETROSPECTIVE_MAX, Incident, Retrospective, check_retrospective_text
from plugin.service import IncidentService, NewIncident
from tests.fakes.store import FakeChatHost, Memory, service_over

ALICE, BOB, TEAM = "alice".ljust(26, "0"), "bob".ljust(26, "0"), "team".ljust(26, "0")


def incident(active: bool = True) -> Incident:
    return Incident(id="i" * 26, name="db", team_id=TEAM, commander_user_id=ALICE, channel_id="c" * 26,
                    create_at=1, is_active=active)


# ----- the rules ---------------------------------------------------------------------------------
def test_a_retrospective_opens_when_the_incident_ends_or_earlier_when_allowed():
    assert not Retrospective("i").is_open(incident())
    assert Retrospective("i").is_open(incident(active=False))
    assert Retrospective("i", allowed_before_end=True).is_open(incident())
    with pytest.raises(InvalidState, match="opens once the incident has ended"):
        Retrospective("i").write("x", ALICE, 5, incident())


def test_writing_records_who_and_when_and_the_same_text_again_is_no_change():
    retrospective = Retrospective("i")
    assert retrospective.write("notes", ALICE, 5, incident(active=False))
    assert (retrospective.text, retrospective.update_at, retrospective.updated_by) == ("notes", 5, ALICE)
    assert not retrospective.write("notes", BOB, 6, incident(active=False))
    assert retrospective.updated_by == ALICE


def test_saving_the_template_unchanged_counts_as_writing_it():
    retrospective = Retrospective("i", "## Template")
    assert retrospective.write("## Template", BOB, 7, incident(active=False))
    assert retrospective.update_at == 7


@pytest.mark.parametrize("retrospective,says", [
    (Retrospective("i"), "is empty"),
    (Retrospective("i", " \n", update_at=3), "is empty"),
    (Retrospective("i", "## Template"), "only its playbook's template"),
])
def test_publishing_needs_text_someone_wrote(retrospective, says):
    ended = incident(active=False)
    with pytest.raises(InvalidState, match=says):
        retrospective.publish(ended, 9)
    assert ended.retrospective_published_at == 0


def test_publishing_marks_the_incident_published():
    ended = incident(active=False)
    assert Retrospective("i", "notes", update_at=3).publish(ended, 9)
    assert ended.retrospective_published_at == 9


def test_a_text_longer_than_one_post_or_with_nul_is_refused_saying_what_to_fix():
    assert check_retrospective_text("x" * RETROSPECTIVE_MAX) == "x" * RETROSPECTIVE_MAX
    with pytest.raises(BadInput, match=f"use at most {RETROSPECTIVE_MAX}"):
        check_retrospective_text("x" * (RETROSPECTIVE_MAX + 1))
    with pytest.raises(BadInput, match="NUL"):
        check_retrospective_text("a\x00b")


# ----- the use cases -----------------------------------------------------------------------------
@pytest.fixture
def host() -> FakeChatHost:
    return FakeChatHost(usernames={ALICE: "alice", BOB: "bob"})


@pytest.fixture
def service(memory: Memory, host: FakeChatHost) -> IncidentService:
    return service_over(memory, host)


@pytest.fixture
def ended(service: IncidentService) -> Incident:
    started = service.create_incident(ALICE, NewIncident("db is down", TEAM, ALICE))
    return service.end_incident(ALICE, started.id).incident


def test_update_keeps_the_text_and_records_only_that_it_happened(service, memory, ended):
    view = service.update_retrospective(ALICE, ended.id, "## What we learnt")
    assert (view.text, view.updated_by, view.editable, view.published_at) == ("## What we learnt", ALICE, True, 0)
    assert memory.retrospectives[ended.id].text == "## What we learnt"
    assert memory.events[-1][1:2] == ("update_retrospective",) and memory.events[-1][4] == {}
    assert service.get_retrospective(ALICE, ended.id) == view


def test_update_writes_no_timeline_entry_and_posts_nothing(service, memory, host, ended):
    entries, posts = len(memory.timeline), len(host.posts)
    service.update_retrospective(ALICE, ended.id, "draft")
    assert len(memory.timeline) == entries and len(host.posts) == posts


def test_the_same_text_again_commits_nothing(service, memory, ended):
    service.update_retrospective(ALICE, ended.id, "draft")
    version, events = memory.incidents[ended.id].version, len(memory.events)
    service.update_retrospective(ALICE, ended.id, "draft")
    assert memory.incidents[ended.id].version == version and len(memory.events) == events


def test_an_update_that_lost_the_race_is_made_again_after_the_winning_write(service, memory, host, ended):
    host.add_channel_member(ended.channel_id, BOB)
    version = memory.incidents[ended.id].version

    def other_saves_first() -> None:
        service.update_retrospective(BOB, ended.id, "bob's text")
    memory.before_commit = other_saves_first
    service.update_retrospective(ALICE, ended.id, "alice's text")
    assert memory.retrospectives[ended.id].text == "alice's text"
    assert memory.incidents[ended.id].version == version + 2
    assert [action for _, action, *_ in memory.events].count("update_retrospective") == 2


def test_publish_posts_the_text_writes_an_entry_and_records_the_event(service, memory, host, ended):
    service.update_retrospective(ALICE, ended.id, "Disks fill up.")
    view = service.publish_retrospective(ALICE, ended.id)
    assert view.published_at > 0 and memory.incidents[ended.id].retrospective_published_at == view.published_at
    assert host.posts_in(ended.channel_id)[-1] == (
        "Retrospective of **db is down**, published by @alice:\n\nDisks fill up.")
    entry = memory.timeline[-1]
    assert (entry.event_type, entry.summary, entry.event_at) == (
        "retrospective_published", "@alice published the retrospective.", view.published_at)
    assert memory.events[-1][1] == "publish_retrospective" and memory.events[-1][4] == {}


def test_a_refused_publication_changes_nothing(service, memory, host, ended):
    events, posts = len(memory.events), len(host.posts)
    with pytest.raises(InvalidState, match="is empty"):
        service.publish_retrospective(ALICE, ended.id)
    assert len(memory.events) == events and len(host.posts) == posts
    assert memory.incidents[ended.id].retrospective_published_at == 0


def test_someone_outside_the_channel_may_not_read_or_write_it(service, ended):
    with pytest.raises(PermissionDenied):
        service.get_retrospective(BOB, ended.id)
    with pytest.raises(PermissionDenied):
        service.update_retrospective(BOB, ended.id, "x")
