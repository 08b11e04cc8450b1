"""The backstage page in a real Chromium: sign in, run an incident from start to end, and see it.

Each test takes the screenshots the docs show (docs/screens/ with INCIDENT_WRITE_SCREENS=1).
"""
from __future__ import annotations

import json
import urllib.request

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.conftest import WAIT_SECONDS, screenshot

pytestmark = pytest.mark.slow


def wait(driver, condition, message: str = ""):
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def text_in(driver, selector: str, text: str) -> bool:
    """Does the element at selector (when it exists) show text?"""
    found = driver.find_elements(By.CSS_SELECTOR, selector)
    return bool(found) and text in found[0].text


def sign_in(driver, base: str, username: str) -> None:
    driver.get(base + "/backstage/")
    wait(driver, ec.presence_of_element_located((By.ID, "sign-in-user")), "no sign-in form")
    Select(driver.find_element(By.ID, "sign-in-user")).select_by_visible_text("@" + username)
    driver.find_element(By.CSS_SELECTOR, ".sign-in button[type=submit]").click()
    wait(driver, lambda d: text_in(d, ".who", "@" + username), "the header never showed the signed-in user")


def api(base: str, method: str, path: str, user: str, body=None) -> dict:
    """A request as the chat host makes it for user (to set up what a test needs besides the page)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Mattermost-User-ID": user, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def test_a_person_signs_in_runs_an_incident_to_its_end_and_sees_each_step(page, backstage):
    base = backstage["base"]
    page.get(base + "/backstage/")
    wait(page, ec.presence_of_element_located((By.ID, "sign-in-user")))
    assert "For development only" in page.find_element(By.CSS_SELECTOR, ".dev-note").text
    screenshot(page, "sign-in")
    sign_in(page, base, "alice")

    page.find_element(By.LINK_TEXT, "Start an incident").click()
    wait(page, ec.presence_of_element_located((By.ID, "new-name"))).send_keys("db is down")
    page.find_element(By.ID, "new-description").send_keys("primary out of disk")
    page.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait(page, lambda d: text_in(d, "main.incident h1", "db is down"), "the new incident's page never showed")
    assert "Triage" in page.find_element(By.CSS_SELECTOR, ".stage--active h3").text

    page.find_element(By.ID, "task-0-0").click()
    wait(page, lambda d: d.find_element(By.ID, "task-0-0").is_selected()
         and text_in(d, ".timeline", "Page the on-call"), "the ticked task never showed as done")

    page.find_element(By.XPATH, "//button[text()='Move to the next stage']").click()
    wait(page, lambda d: text_in(d, ".stage--active h3", "Resolve"), "the stage never moved")

    page.find_element(By.ID, "update-message").send_keys("rolled back the deploy")
    page.find_element(By.XPATH, "//button[text()='Post the update']").click()
    wait(page, lambda d: text_in(d, ".updates", "rolled back the deploy")
         and text_in(d, ".timeline", "posted a status update: rolled back the deploy"),
         "the status update never showed in the updates and the timeline")
    screenshot(page, "incident")

    page.find_element(By.XPATH, "//button[text()='End the incident']").click()
    wait(page, lambda d: text_in(d, "main.incident .heading-row", "Ended"), "the incident never showed as ended")
    assert page.find_element(By.ID, "task-1-0").is_enabled() is False

    # A few more, so the list looks like a team's.
    users = backstage["users"]
    for name, commander, severity in (("checkout errors", "bob", "sev2"), ("search latency above 2 s", "alice", ""),
                                      ("certificate expires in 3 days", "bob", "sev3")):
        api(base, "POST", "/api/v0/incidents", users[commander], {
            "name": name, "team_id": "team0000000000000000000000", "commander_user_id": users[commander],
            "public": True, "severity": severity,
            "checklists": [{"title": "Triage", "items": [{"title": "Look"}]}, {"title": "Resolve", "items": []}]})
    page.find_element(By.LINK_TEXT, "← All incidents").click()
    wait(page, lambda d: text_in(d, ".incident-list", "db is down") and text_in(d, ".incident-list", "checkout"))
    screenshot(page, "list")


def test_the_commander_changes_from_the_incident_page(page, backstage):
    base, users = backstage["base"], backstage["users"]
    incident = api(base, "POST", "/api/v0/incidents", users["alice"], {
        "name": "checkout errors", "team_id": "team0000000000000000000000", "commander_user_id": users["alice"],
        "checklists": [{"title": "Triage", "items": [{"title": "Look at the graphs"}]}]})
    api(base, "POST", f"/api/v0/incidents/{incident['id']}/members", users["alice"], {"user_ids": [users["bob"]]})
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/incidents/{incident['id']}")
    field = wait(page, ec.presence_of_element_located((By.ID, "new-commander")))
    field.send_keys("@bob", Keys.ENTER)
    wait(page, lambda d: text_in(d, ".facts", "@bob") and text_in(d, ".timeline", "@bob"),
         "the new commander never showed")


def test_a_tasks_command_has_a_run_button_that_says_why_the_embedded_host_cannot_run_it(page, backstage):
    base, users = backstage["base"], backstage["users"]
    incident = api(base, "POST", "/api/v0/incidents", users["alice"], {
        "name": "deploy stuck", "team_id": "team0000000000000000000000", "commander_user_id": users["alice"],
        "checklists": [{"title": "Resolve", "items": [{"title": "Roll back", "command": "/deploy rollback"},
                                                      {"title": "Look at the graphs"}]}]})
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/incidents/{incident['id']}")
    run = (By.CSS_SELECTOR, "button[aria-label='Run the command of Roll back']")
    button = wait(page, ec.element_to_be_clickable(run), "no Run button")
    assert len(page.find_elements(By.CSS_SELECTOR, ".tasks button")) == 1  # a task without a command has none
    button.click()
    wait(page, lambda d: text_in(d, "[role=alert]", "Could not run the command: The embedded chat host runs no "
                                                     "slash commands"), "the refusal never showed")


def test_the_list_filters_by_status_and_search_and_pages(page, backstage):
    base, users = backstage["base"], backstage["users"]
    team = "filterteam0000000000000000"
    ids = [api(base, "POST", "/api/v0/incidents", users["bob"], {
        "name": f"disk full {n:03d}", "team_id": team, "commander_user_id": users["bob"]})["id"] for n in range(105)]
    api(base, "PUT", f"/api/v0/incidents/{ids[0]}/end", users["bob"])
    sign_in(page, base, "bob")
    page.get(f"{base}/backstage/#/?team_id={team}")
    wait(page, lambda d: text_in(d, ".count", "105 incidents, page 1 of 2"), "the count never showed")
    assert len(page.find_elements(By.CSS_SELECTOR, ".incident-row")) == 100
    page.find_element(By.XPATH, "//button[text()='Next page']").click()
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".incident-row")) == 5, "page 2 never showed")

    Select(page.find_element(By.ID, "filter-status")).select_by_visible_text("Ended")
    wait(page, lambda d: text_in(d, ".count", "1 incident") and text_in(d, ".incident-list", "disk full 000"))
    Select(page.find_element(By.ID, "filter-status")).select_by_visible_text("All")
    search = page.find_element(By.ID, "filter-search")
    search.send_keys("full 10", Keys.ENTER)  # 100 to 104
    wait(page, lambda d: text_in(d, ".count", "5 incidents"), "the search never narrowed the list")


def test_a_hundred_incidents_render_quickly_in_the_browser(page, backstage):
    base, users = backstage["base"], backstage["users"]
    team = "speedteam00000000000000000"
    for n in range(100):
        api(base, "POST", "/api/v0/incidents", users["alice"], {
            "name": f"latency spike {n}", "team_id": team, "commander_user_id": users["alice"]})
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/?team_id={team}")
    wait(page, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".incident-row")) == 100)
    measures = page.execute_script(
        "return performance.getEntriesByName('incident-list-render').map(e => e.duration)")
    assert measures, "the page recorded no render measure"
    # The goal is 200 ms (bench/README.md records the figures); the bound is generous so a
    # busy machine does not fail the run.
    assert measures[-1] < 1000, measures


def test_on_a_narrow_screen_the_list_and_the_incident_fit_without_sideways_scrolling(page, backstage):
    base = backstage["base"]
    sign_in(page, base, "alice")
    page.set_window_size(390, 844)
    page.get(base + "/backstage/")
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".incident-row"))
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "list-narrow")
    page.find_elements(By.CSS_SELECTOR, ".incident-row__name")[0].click()
    wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, "main.incident h1")))
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_keyboard_alone_reaches_and_ticks_a_task(page, backstage):
    base, users = backstage["base"], backstage["users"]
    incident = api(base, "POST", "/api/v0/incidents", users["alice"], {
        "name": "keyboard only", "team_id": "team0000000000000000000000", "commander_user_id": users["alice"],
        "checklists": [{"title": "Triage", "items": [{"title": "Page the DBA"}]}]})
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/incidents/{incident['id']}")
    wait(page, ec.presence_of_element_located((By.ID, "task-0-0")))
    body = page.find_element(By.TAG_NAME, "body")
    for _ in range(40):
        body = page.switch_to.active_element
        if body.get_attribute("id") == "task-0-0":
            break
        body.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("id") == "task-0-0"
    page.switch_to.active_element.send_keys(Keys.SPACE)
    wait(page, lambda d: d.find_element(By.ID, "task-0-0").is_selected() and text_in(d, ".timeline", "Page the DBA"))
    # Every form field has a label the screen reader reads.
    unlabelled = page.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id)")
    assert unlabelled == []


def test_the_statistics_page_says_there_is_no_data_for_a_team_without_incidents(page, backstage):
    sign_in(page, backstage["base"], "alice")
    page.get(backstage["base"] + "/backstage/#/stats?team_id=emptyteam00000000000000000")
    wait(page, lambda d: text_in(d, "main", "No data"), "the statistics page never said it had no data")
    assert page.find_element(By.ID, "stats-period").is_displayed()


# Text whose colour against its nearest opaque background is below WCAG AA (4.5:1);
# disabled buttons are exempt, as WCAG allows.
LOW_CONTRAST = """
const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
const luminance = (rgb) => 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]);
const parse = (text) => { const p = text.match(/rgba?\\(([^)]+)\\)/)[1].split(',').map(Number);
  return {rgb: p.slice(0, 3), alpha: p.length > 3 ? p[3] : 1}; };
const background = (el) => { for (; el; el = el.parentElement) { const c = parse(getComputedStyle(el).backgroundColor);
  if (c.alpha > 0.5) return c.rgb; } return [255, 255, 255]; };
const low = [];
for (const el of document.querySelectorAll('body *')) {
  if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
  if (el.closest('button:disabled, .uplot')) continue;
  const a = luminance(parse(getComputedStyle(el).color).rgb), b = luminance(background(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) low.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
}
return low;
"""


def test_text_on_every_page_meets_the_wcag_aa_contrast_ratio(page, backstage):
    base, users = backstage["base"], backstage["users"]
    incident = api(base, "POST", "/api/v0/incidents", users["alice"], {
        "name": "contrast check", "team_id": "team0000000000000000000000", "commander_user_id": users["alice"],
        "checklists": [{"title": "Triage", "items": [{"title": "Look", "command": "/look"}]}]})
    page.get(base + "/backstage/")
    wait(page, ec.presence_of_element_located((By.ID, "sign-in-user")))
    assert page.execute_script(LOW_CONTRAST) == []
    sign_in(page, base, "alice")
    for path, ready in ((f"#/incidents/{incident['id']}", "main.incident h1"), ("#/", ".incident-row"),
                        ("#/stats", "#stats-period"), ("#/new", "#new-name")):
        page.get(f"{base}/backstage/{path}")
        wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
        assert page.execute_script(LOW_CONTRAST) == [], path


def test_the_list_filters_by_severity_and_the_incident_page_changes_it(page, backstage):
    base, users = backstage["base"], backstage["users"]
    team = "sevteam0000000000000000000"
    made = {severity: api(base, "POST", "/api/v0/incidents", users["alice"], {
        "name": f"graded {severity or 'none'}", "team_id": team, "commander_user_id": users["alice"],
        "severity": severity})["id"] for severity in ("sev1", "sev2", "")}
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/?team_id={team}")
    wait(page, lambda d: text_in(d, ".count", "3 incidents"))
    Select(page.find_element(By.ID, "filter-severity")).select_by_visible_text("sev1")
    wait(page, lambda d: text_in(d, ".count", "1 incident") and text_in(d, ".incident-list", "graded sev1"))
    Select(page.find_element(By.ID, "filter-severity")).select_by_visible_text("None set")
    wait(page, lambda d: text_in(d, ".count", "1 incident") and text_in(d, ".incident-list", "graded none"))

    page.get(f"{base}/backstage/#/incidents/{made['']}")
    Select(wait(page, ec.presence_of_element_located((By.ID, "incident-severity")))).select_by_visible_text("sev2")
    wait(page, lambda d: text_in(d, "main.incident .heading-row", "sev2") and text_in(d, ".timeline", "sev2"),
         "the new severity never showed")
    assert api(base, "GET", f"/api/v0/incidents/{made['']}", users["alice"])["severity"] == "sev2"
