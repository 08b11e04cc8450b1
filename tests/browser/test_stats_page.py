"""The statistics page in a real Chromium, over incidents started, moved and ended through the API.

Where the server has no statistics endpoint (GET /api/v0/stats answers 404), the
page must say so instead of charting anything; with it, the figures must match.
"""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from tests.browser.test_backstage import api, screenshot, sign_in, text_in, wait

pytestmark = pytest.mark.slow


def stats_served(base: str, user: str, team: str) -> bool:
    """Does the server answer GET /api/v0/stats (rather than 404, no such endpoint)?"""
    request = urllib.request.Request(f"{base}/api/v0/stats?team_id={team}", headers={"Mattermost-User-ID": user})
    try:
        with urllib.request.urlopen(request, timeout=10):
            return True
    except urllib.error.HTTPError as error:
        return error.code != 404


def test_the_statistics_page_charts_a_teams_weeks_and_stages_or_says_there_are_none(page, backstage):
    base, users = backstage["base"], backstage["users"]
    team = "statsteam00000000000000000"
    stages = [{"title": "Triage", "items": [{"title": "Page"}]}, {"title": "Resolve", "items": [{"title": "Fix"}]}]
    for n, severity in enumerate(("sev1", "sev2", "")):
        incident = api(base, "POST", "/api/v0/incidents", users["alice"], {
            "name": f"outage {n}", "team_id": team, "commander_user_id": users["alice"], "public": True,
            "severity": severity, "checklists": stages})
        if n < 2:
            api(base, "PATCH", f"/api/v0/incidents/{incident['id']}", users["alice"], {"active_stage": 1})
            api(base, "PUT", f"/api/v0/incidents/{incident['id']}/end", users["alice"])
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/stats?team_id={team}")
    if not stats_served(base, users["alice"], team):
        wait(page, lambda d: text_in(d, "main", "No data: the statistics are not available"),
             "the page never said the server has no statistics")
        assert not page.find_elements(By.CSS_SELECTOR, ".chart canvas")
        screenshot(page, "stats")
        return
    wait(page, lambda d: text_in(d, ".facts--big", "Started\n3") and text_in(d, ".facts--big", "Ended\n2")
         and text_in(d, ".facts--big", "Active\n1"), "the figures never showed")
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart canvas")) == 2, "the two charts never drew")
    page.find_element(By.XPATH, "//summary[text()='The figures as a table']").click()
    weeks = page.find_element(By.ID, "weeks-table").text
    assert "3 2" in weeks.replace("\n", " "), weeks
    assert "Triage" in page.find_element(By.ID, "stages-table").text
    severity = page.find_element(By.CSS_SELECTOR, "section[aria-labelledby=severity-heading]").text
    assert "sev1 1" in severity.replace("\n", " ") and "none 1" in severity.replace("\n", " "), severity
    screenshot(page, "stats")
