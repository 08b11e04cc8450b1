"""The report, the statistics, severity and the retrospective against hostile callers: people outside a private
incident, odd input, and several people changing the same incident at once."""
from __future__ import annotations

import logging
import time

import pytest
from markdown_it import MarkdownIt

from plugin import reports as reports_module
from tests.api.helpers import TWO_STAGES, start
from tests.conftest import ADMIN, ALICE, BOB, CAROL, TEAM, as_user
from tests.threads import run_in_threads

DAY = 24 * 3600 * 1000
PARSER = MarkdownIt("commonmark").enable("table").enable("strikethrough")
# Typed into every field people fill in: each line tries another way out of plain text.
HOSTILE = ("x # h\n## Injected heading\n| a | b |\n> quote\n- item\n1. first\n===\n---\n    code\n```\n"
           "<script>alert(1)</script> <img src=x onerror=alert(1)> [link](http://evil.example) ![i](y) "
           "*em* _u_ `c` ~~s~~ &lt; &#60; \\")


def base(incident: dict) -> str:
    return f"/api/v0/incidents/{incident['id']}"


def stats(client, user: str, window: tuple[int, int]) -> dict:
    response = client.get(f"/api/v0/stats?team_id={TEAM}&from={window[0]}&to={window[1]}", headers=as_user(user))
    assert response.status_code == 200, response.json
    return response.json


def set_levels(client, levels: str) -> None:
    assert client.put("/api/v0/settings", json={"SeverityLevels": levels},
                      headers=as_user(ADMIN)).status_code == 200


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, response.json
    return response.json


# ----- statistics: a private incident leaves no trace for those outside it -----------------
def test_a_private_incident_through_its_whole_life_moves_no_figure_of_someone_outside_its_channel(client):
    now = int(time.time() * 1000)
    window = (now - DAY, now + DAY)
    start(client, BOB, public=True, checklists=TWO_STAGES)  # something bob does see
    set_levels(client, "sev1,sev2,sev3,sev4,secretlevel")
    bob_before, admin_before = stats(client, BOB, window), stats(client, ADMIN, window)

    private = start(client, ALICE, public=False, checklists=TWO_STAGES, severity="secretlevel",
                    name="Private Stage Name")
    assert stats(client, BOB, window) == bob_before
    assert stats(client, ADMIN, window)["started"] == admin_before["started"] + 1  # the incident is in the window
    ok(client.patch(base(private), json={"active_stage": 1}, headers=as_user(ALICE)))
    ok(client.put(f"{base(private)}/end", headers=as_user(ALICE)))
    set_levels(client, "sev1,sev2,sev3,sev4")  # the private incident alone holds a removed level
    # Bob's figures are those before, less the configured zero of the level the admins removed.
    expected = {**bob_before, "severity": [level for level in bob_before["severity"]
                                           if level["severity"] != "secretlevel"]}
    assert stats(client, BOB, window) == expected
    admin_after = stats(client, ADMIN, window)
    assert admin_after["ended"] == admin_before["ended"] + 1
    assert {"severity": "secretlevel", "count": 1} in admin_after["severity"]
    assert stats(client, ALICE, window) == admin_after  # a channel member sees it like an admin


def test_a_public_incident_counts_for_team_members_so_the_private_test_would_see_a_leak(client):
    now = int(time.time() * 1000)
    window = (now - DAY, now + DAY)
    before = stats(client, BOB, window)
    start(client, ALICE, public=True)
    assert stats(client, BOB, window)["started"] == before["started"] + 1


# ----- the report: who may fetch it, what it holds, its headers ----------------------------
@pytest.mark.parametrize("public", [False, True])
def test_the_report_answers_a_caller_who_may_not_view_the_incident_as_fetching_the_incident_does(client, public):
    incident = start(client, ALICE, public=public)
    if public:
        # A team member views a public incident; on the local host everyone is in every team.
        assert client.get(f"{base(incident)}/report.md", headers=as_user(CAROL)).status_code == 200
        return
    fetched = client.get(base(incident), headers=as_user(CAROL))
    reported = client.get(f"{base(incident)}/report.md", headers=as_user(CAROL))
    assert (reported.status_code, reported.json) == (fetched.status_code, fetched.json) == (
        403, {"error": "You do not have permission to view this incident.", "details": {}})
    assert "db is down" not in reported.get_data(as_text=True)


def test_the_report_is_a_markdown_file_that_a_browser_neither_sniffs_nor_caches(client):
    incident = start(client, ALICE, name='quote" and\r\nX-Injected: 1')
    response = client.get(f"{base(incident)}/report.md", headers=as_user(ALICE))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    # The file name comes from the id, never from the name people typed (no header injection).
    assert response.headers["Content-Disposition"] == f'inline; filename="incident-{incident["id"]}.md"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "X-Injected" not in response.headers


def test_hostile_text_in_every_field_people_type_stays_text_in_the_report(client, components):
    components.host.note_user(ALICE, "<b>*alice*</b>|")
    set_levels(client, "sev1,<script>x</script>")
    checklists = [{"title": HOSTILE, "items": [{"title": HOSTILE, "description": HOSTILE}]}]
    incident = start(client, ALICE, name=HOSTILE[:64], description=HOSTILE, checklists=checklists,
                     severity="<script>x</script>")
    ok(client.put(f"{base(incident)}/checklists/0/items/0/assignee", json={"assignee_id": ALICE},
                  headers=as_user(ALICE)))
    ok(client.put(f"{base(incident)}/checklists/0/items/0/state", json={"new_state": "closed"},
                  headers=as_user(ALICE)))
    ok(client.post(f"{base(incident)}/status-updates", json={"message": HOSTILE}, headers=as_user(ALICE)), 201)
    summary = " ".join(HOSTILE.splitlines())  # a summary is one line
    ok(client.post(f"{base(incident)}/timeline", json={"summary": summary}, headers=as_user(ALICE)), 201)
    ok(client.put(f"{base(incident)}/end", headers=as_user(ALICE)))
    ok(client.put(f"{base(incident)}/retrospective", json={"text": HOSTILE}, headers=as_user(ALICE)))

    text = client.get(f"{base(incident)}/report.md", headers=as_user(ALICE)).get_data(as_text=True)
    parsed = PARSER.parse(text)
    found = [token.type for token in parsed] + [child.type for token in parsed for child in token.children or []]
    assert not {"html_block", "html_inline", "link_open", "image", "code_block", "fence", "blockquote_open",
                "ordered_list_open", "hr", "em_open", "s_open", "code_inline"} & set(found)
    headings = [parsed[i + 1].content for i, token in enumerate(parsed) if token.type == "heading_open"]
    assert headings[1:] == ["Description", "Time in each stage", "Timeline", "Status updates", "Tasks",
                            "Retrospective"]
    assert "<script>" not in PARSER.render(text) and "<img" not in PARSER.render(text)
    assert found.count("bullet_list_open") == 1  # the facts list alone
    # Each table keeps its column count: stage (3), timeline (2), tasks (5).
    widths, row = [], 0
    for token in parsed:
        if token.type == "tr_open":
            row = 0
        elif token.type in ("td_open", "th_open"):
            row += 1
        elif token.type == "tr_close":
            widths.append(row)
    assert set(widths) == {3, 2, 5}


def test_a_deleted_notes_text_appears_nowhere_in_the_report(client):
    incident = start(client, ALICE)
    note = ok(client.post(f"{base(incident)}/timeline", json={"summary": "password is hunter2"},
                          headers=as_user(ALICE)), 201)
    assert client.delete(f"{base(incident)}/timeline/{note['id']}", headers=as_user(ALICE)).status_code == 204
    for user in (ALICE, ADMIN):
        assert "hunter2" not in client.get(f"{base(incident)}/report.md", headers=as_user(user)).get_data(as_text=True)


def test_a_large_incidents_report_is_bounded_and_says_what_it_left_out(client, monkeypatch):
    monkeypatch.setattr(reports_module, "REPORT_STATUS_UPDATES", 3)
    monkeypatch.setattr(reports_module, "REPORT_TIMELINE_ENTRIES", 4)
    incident = start(client, ALICE)
    for n in range(5):
        ok(client.post(f"{base(incident)}/status-updates", json={"message": f"update {n}"},
                       headers=as_user(ALICE)), 201)
    response = client.get(f"{base(incident)}/report.md", headers=as_user(ALICE))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    timeline = text.split("## Timeline", 1)[1].split("## Status updates", 1)[0]
    updates = text.split("## Status updates", 1)[1].split("## Tasks", 1)[0]
    # The newest are kept; the report says how many earlier ones it left out.
    assert [f"update {n}" in updates for n in range(5)] == [False, False, True, True, True]
    assert "The 2 earliest status updates are left out" in updates
    assert timeline.count("\n| 20") == 4 and "Earlier entries are left out" in timeline


# ----- bad input: a 400 naming the field, nothing changed, nothing logged --------------------
@pytest.mark.parametrize("body, says", [
    ({"severity": "x" * 100}, "severity: Length must be between 0 and 32"),
    ({"severity": ["sev1"]}, "severity: Not a valid string"),
    ({"severity": None}, "severity: Field may not be null"),
    ({"severity": 2}, "severity: Not a valid string"),
    ({"severity": {"level": "sev1"}}, "severity: Not a valid string"),
    ({"severity": "sev1\u0000"}, "severity: Must not contain NUL"),
    ({"severity": "sev 1"}, "is not a severity level"),
    ({"severity": "s\u0435v1"}, "is not a severity level"),  # a Cyrillic e
])
def test_a_bad_severity_is_a_400_naming_the_field_and_changes_nothing(client, caplog, body, says):
    incident = start(client, ALICE, severity="sev3")
    before = ok(client.get(f"{base(incident)}/timeline", headers=as_user(ALICE)))
    with caplog.at_level(logging.DEBUG):
        response = client.patch(base(incident), json=body, headers=as_user(ALICE))
    assert response.status_code == 400 and says in response.json["error"]
    assert ok(client.get(base(incident), headers=as_user(ALICE)))["severity"] == "sev3"
    assert ok(client.get(f"{base(incident)}/timeline", headers=as_user(ALICE))) == before
    value = body["severity"]
    if isinstance(value, str):
        assert value.replace("\u0000", "") not in caplog.text


@pytest.mark.parametrize("given, stored", [(" SEV1 ", "sev1"), ("Sev2", "sev2"), ("\tsev4\n", "sev4"), ("   ", "")])
def test_a_severity_is_matched_ignoring_case_and_surrounding_whitespace(client, given, stored):
    incident = start(client, ALICE, severity="sev3")
    assert ok(client.patch(base(incident), json={"severity": given}, headers=as_user(ALICE)))["severity"] == stored


@pytest.mark.parametrize("query, says", [
    ("from=20&to=10", "from (20) is after to (10)"),
    ("from=1.5", "from: Must be a whole number from 0"),
    ("to=1e3", "to: Must be a whole number from 0"),
    ("from=-1", "from: Must be a whole number from 0"),
    ("to=99999999999999999999999", "to: Must be greater than or equal to 0"),
    ("from=0&to=9007199254740992", "longer than 3660 days"),
    ("from=", "from: Must be a whole number from 0"),
    ("from=secretvalue", "from: Must be a whole number from 0"),
])
def test_a_bad_stats_window_is_a_400_naming_the_parameter_and_never_logged(client, caplog, query, says):
    with caplog.at_level(logging.DEBUG):
        response = client.get(f"/api/v0/stats?team_id={TEAM}&{query}", headers=as_user(ALICE))
    assert response.status_code == 400 and says in response.json["error"]
    assert "secretvalue" not in caplog.text


@pytest.mark.parametrize("team", ["secretteam", "", "A" * 26, "team0000000000000000000000x", "../../x"])
def test_a_malformed_team_id_is_a_400_naming_team_id(client, team):
    response = client.get(f"/api/v0/stats?team_id={team}", headers=as_user(ALICE))
    assert response.status_code == 400 and "team_id" in response.json["error"]


def test_stats_of_a_window_in_the_far_future_are_zeros(client):
    far = 2 ** 53 - 10 * DAY
    seen = stats(client, ALICE, (far, far + 7 * DAY))
    assert (seen["started"], seen["ended"], seen["active"]) == (0, 0, 0)
    assert 1 <= len(seen["weeks"]) <= 2


@pytest.mark.parametrize("body, says", [
    ({"text": "a\u0000b"}, "text: Must not contain NUL"),
    ({"text": "x" * 16_001}, "longer than 16000 characters"),
    ({"text": 5}, "text: Not a valid string"),
    ({"text": ["a"]}, "text: Not a valid string"),
    ({"text": None}, "text: Field may not be null"),
    ({"text": "ok", "extra": 1}, "extra: Unknown field"),
])
def test_a_bad_retrospective_is_a_400_naming_the_field_keeps_the_text_and_logs_none_of_it(client, caplog, body,
                                                                                           says):
    incident = start(client, ALICE)
    ok(client.put(f"{base(incident)}/end", headers=as_user(ALICE)))
    ok(client.put(f"{base(incident)}/retrospective", json={"text": "kept"}, headers=as_user(ALICE)))
    with caplog.at_level(logging.DEBUG):
        response = client.put(f"{base(incident)}/retrospective", json=body, headers=as_user(ALICE))
    assert response.status_code == 400 and says in response.json["error"]
    assert ok(client.get(f"{base(incident)}/retrospective", headers=as_user(ALICE)))["text"] == "kept"
    assert "x" * 100 not in caplog.text


# ----- races -------------------------------------------------------------------------------
def test_severity_changes_racing_leave_a_chain_of_entries_that_ends_at_the_final_level(client, components):
    incident = start(client, ALICE, severity="sev4")
    levels = ["sev1", "sev2", "sev3", "", "sev1", "sev2"]
    run_in_threads(lambda n: components.service.set_severity(ALICE, incident["id"], levels[n]), len(levels), 60,
                   "severity writers")
    final = ok(client.get(base(incident), headers=as_user(ALICE)))["severity"]
    entries = ok(client.get(f"{base(incident)}/timeline?event_type=severity_changed", headers=as_user(ALICE)))
    assert entries, "at least one change was written"
    chain = [(entry["details"]["from_severity"], entry["details"]["to_severity"]) for entry in entries]
    assert chain[0][0] == "sev4" and chain[-1][1] == final
    assert all(after[0] == before[1] for before, after in zip(chain, chain[1:])), chain
    assert all(old != new for old, new in chain)
    ranks = {"sev1": 1, "sev2": 2, "sev3": 3, "sev4": 4, "": -1}
    assert all(entry["details"]["from_rank"] == ranks[entry["details"]["from_severity"]]
               and entry["details"]["to_rank"] == ranks[entry["details"]["to_severity"]] for entry in entries)


def test_a_publication_racing_an_edit_posts_a_text_that_was_saved_and_reports_what_it_posted(client, components):
    incident = start(client, ALICE)
    ok(client.put(f"{base(incident)}/end", headers=as_user(ALICE)))
    ok(client.put(f"{base(incident)}/retrospective", json={"text": "first"}, headers=as_user(ALICE)))
    service = components.service
    seen: dict[str, str] = {}

    def work(n: int) -> None:
        if n % 2:
            service.update_retrospective(ALICE, incident["id"], f"edit {n}")
        else:
            seen[str(n)] = service.publish_retrospective(ALICE, incident["id"]).text

    run_in_threads(work, 6, 60, "publishers and editors")
    posted = [post.rsplit("\n", 1)[-1] for post in components.host.posts(incident["channel_id"])
              if post.startswith("Retrospective of")]
    saved = {"first", "edit 1", "edit 3", "edit 5"}
    assert len(posted) == 3 and set(posted) <= saved
    assert sorted(seen.values()) == sorted(posted)  # each publication answered with the text it posted


def test_concurrent_retrospective_writes_each_answer_the_text_they_committed(client, components):
    incident = start(client, ALICE)
    ok(client.put(f"{base(incident)}/end", headers=as_user(ALICE)))
    answers: dict[int, str] = {}

    def write(n: int) -> None:
        answers[n] = components.service.update_retrospective(ALICE, incident["id"], f"draft {n}").text

    run_in_threads(write, 6, 60, "writers")
    assert answers == {n: f"draft {n}" for n in range(6)}
    assert ok(client.get(f"{base(incident)}/retrospective", headers=as_user(ALICE)))["text"] in answers.values()


def test_removing_a_level_while_incidents_hold_it_keeps_them_readable_and_refuses_setting_it_again(client):
    held = start(client, ALICE, severity="sev4")
    set_levels(client, "sev1,sev2,sev3")
    assert ok(client.get(base(held), headers=as_user(ALICE)))["severity"] == "sev4"
    refused = client.patch(base(held), json={"severity": "sev4"}, headers=as_user(ALICE))
    assert refused.status_code == 400 and "sev1, sev2 or sev3" in refused.json["error"]
    assert "- **Severity:** sev4" in client.get(f"{base(held)}/report.md", headers=as_user(ALICE)).get_data(as_text=True)
    moved = ok(client.patch(base(held), json={"severity": "sev1"}, headers=as_user(ALICE)))
    assert moved["severity"] == "sev1"
    entry = ok(client.get(f"{base(held)}/timeline?event_type=severity_changed", headers=as_user(ALICE)))[-1]
    assert (entry["details"]["from_severity"], entry["details"]["from_rank"]) == ("sev4", 0)


def test_levels_changing_while_severities_are_set_never_fail_a_request_with_a_500(app, client):
    incident = start(client, ALICE, severity="sev1")
    statuses: list[int] = []

    def work(n: int) -> None:
        own = app.test_client()  # one client per thread
        if n % 2:
            set_levels(own, "sev1,sev2,sev3" if n % 4 == 1 else "sev1,sev2,sev3,sev4")
        else:
            statuses.append(own.patch(base(incident), json={"severity": "sev4"},
                                      headers=as_user(ALICE)).status_code)

    run_in_threads(work, 8, 60, "level changes and severity writers")
    assert set(statuses) <= {200, 400}
