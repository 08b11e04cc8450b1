"""Hostile text in the backstage page: names, descriptions, tasks, updates, notes and usernames
that hold HTML and script show as text, run nothing, add no element, and break no rule of the
page's Content-Security-Policy."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import served_backstage
from tests.browser.test_backstage import api, text_in, wait

pytestmark = pytest.mark.slow

TEAM = "team0000000000000000000000"  # the page's default team with the local chat host
# Each payload marks what it would inject (data-xss) and flags what it would run (window.__xss).
IMG = '<img src=x data-xss onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=1</script>"
SVG = '<svg onload="window.__xss=1" data-xss></svg>'
EVIL_NAME = "<img src=x onerror=window.__xss=1 data-xss>"  # a username, as a chat host may allow
# Collects what the page's policy refused; added by the browser itself, so the policy does not apply to it.
WATCH = ("window.__violations = [];"
         "document.addEventListener('securitypolicyviolation',"
         " (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sample));")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A served backstage whose one incident is full of markup, run by a user whose name is markup."""
    # The command line allows only plain usernames; the chat host keeps whatever name it is given.
    with served_backstage(tmp_path_factory, "hostile", ("evil",), renamed={"evil": EVIL_NAME}) as site:
        base, evil = site["base"], site["users"]["evil"]
        incident = api(base, "POST", "/api/v0/incidents", evil, {
            "name": "db " + IMG, "description": "disk " + SCRIPT, "team_id": TEAM, "commander_user_id": evil,
            "checklists": [{"title": "Stage " + SVG, "items": [{"title": "Task " + IMG, "description": SCRIPT,
                                                              "command": "/run " + SVG}]}]})
        path = f"/api/v0/incidents/{incident['id']}"
        api(base, "POST", path + "/status-updates", evil, {"message": "update " + SVG})
        api(base, "POST", path + "/timeline", evil, {"summary": "note " + IMG, "details": {"text": SCRIPT}})
        yield {"base": base, "evil": evil, "incident": incident}


@pytest.fixture
def watched(page) -> Iterator[object]:
    """The page, recording every Content-Security-Policy violation of each document it loads."""
    script = page.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    yield page
    page.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def assert_nothing_ran_or_was_injected(driver) -> None:
    ran, injected, violations = driver.execute_script(
        "return [window.__xss || 0, document.querySelectorAll('[data-xss], [onerror], [onload], svg').length,"
        " window.__violations]")
    assert (ran, injected, violations) == (0, 0, []), driver.get_log("browser")


def test_markup_in_every_field_and_username_shows_as_text_and_runs_nothing(watched, hostile):
    base, evil, incident = hostile["base"], hostile["evil"], hostile["incident"]
    watched.get(base + "/backstage/")
    select = wait(watched, ec.presence_of_element_located((By.ID, "sign-in-user")), "no sign-in form")
    assert any(EVIL_NAME in option.text for option in Select(select).options)
    assert_nothing_ran_or_was_injected(watched)
    Select(select).select_by_value(evil)
    watched.find_element(By.CSS_SELECTOR, ".sign-in button[type=submit]").click()
    wait(watched, lambda d: text_in(d, ".who", EVIL_NAME), "the header never showed the signed-in user as text")

    watched.get(f"{base}/backstage/#/?team_id={TEAM}")
    wait(watched, lambda d: text_in(d, ".incident-list", "db " + IMG), "the list never showed the name as text")
    assert_nothing_ran_or_was_injected(watched)

    watched.get(f"{base}/backstage/#/incidents/{incident['id']}")
    wait(watched, lambda d: text_in(d, ".timeline", "note " + IMG), "the timeline never showed the note as text")
    shown = watched.find_element(By.TAG_NAME, "main").text
    for text in ("db " + IMG, "disk " + SCRIPT, "Stage " + SVG, "Task " + IMG, "/run " + SVG, "update " + SVG,
                 EVIL_NAME):
        assert text in shown, text
    assert_nothing_ran_or_was_injected(watched)

    # Had the page built HTML from that text, these checks would see it, and the policy would still stop it.
    watched.execute_script("document.querySelector('main').insertAdjacentHTML('beforeend', arguments[0])", IMG)
    wait(watched, lambda d: d.execute_script("return window.__violations.length"), "the policy never refused it")
    ran, injected, violations = watched.execute_script(
        "return [window.__xss || 0, document.querySelectorAll('[data-xss]').length, window.__violations]")
    assert (ran, injected) == (0, 1) and violations[0].startswith("script-src")


def test_the_statistics_page_draws_its_charts_within_the_content_security_policy(watched, hostile):
    base, evil = hostile["base"], hostile["evil"]
    api(base, "PUT", f"/api/v0/incidents/{hostile['incident']['id']}/end", evil)
    watched.get(base + "/backstage/")
    select = wait(watched, ec.presence_of_element_located((By.ID, "sign-in-user")), "no sign-in form")
    Select(select).select_by_value(evil)
    watched.find_element(By.CSS_SELECTOR, ".sign-in button[type=submit]").click()
    wait(watched, lambda d: text_in(d, ".who", EVIL_NAME))
    watched.get(f"{base}/backstage/#/stats?team_id={TEAM}")
    wait(watched, lambda d: d.find_elements(By.CSS_SELECTOR, ".uplot canvas"), "no chart was drawn")
    assert_nothing_ran_or_was_injected(watched)
