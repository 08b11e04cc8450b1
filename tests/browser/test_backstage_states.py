"""The incident page in the states people meet besides the happy path: a slow or absent
network, a page gone stale while someone else changed the incident, focus after a change,
very long words on a phone, and right-to-left text."""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from tests.browser.conftest import add_user
from tests.browser.test_backstage import api, sign_in, text_in, wait

pytestmark = pytest.mark.slow

TEAM = "team0000000000000000000000"  # the page's default team with the local chat host


@pytest.fixture
def network(page) -> Iterator[object]:
    """The page, with a way to make its network slow or absent; normal again after the test."""
    page.execute_cdp_cmd("Network.enable", {})

    def emulate(offline: bool = False, latency_ms: int = 0, blocked: tuple[str, ...] = ()) -> None:
        page.execute_cdp_cmd("Network.emulateNetworkConditions", {
            "offline": offline, "latency": latency_ms, "downloadThroughput": -1, "uploadThroughput": -1})
        page.execute_cdp_cmd("Network.setBlockedURLs", {"urls": list(blocked)})

    yield emulate
    emulate()
    page.execute_cdp_cmd("Network.disable", {})


def start(base: str, user: str, name: str, stages: list[dict], **fields) -> dict:
    return api(base, "POST", "/api/v0/incidents", user, {
        "name": name, "team_id": TEAM, "commander_user_id": user, "checklists": stages, **fields})


def open_incident(driver, base: str, incident: dict) -> None:
    driver.get(f"{base}/backstage/#/incidents/{incident['id']}")
    wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, "main.incident h1")), "the incident never showed")


def test_a_double_click_on_post_the_update_over_a_slow_network_posts_it_once(page, backstage, network):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "slow network", [{"title": "Triage", "items": []}])
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    page.find_element(By.ID, "update-message").send_keys("still looking")
    network(latency_ms=1500)
    page.execute_script("const b = [...document.querySelectorAll('button')]"
                        ".find(e => e.textContent === 'Post the update'); b.click(); b.click();")
    wait(page, lambda d: text_in(d, ".updates", "still looking"), "the update never showed")
    network()
    time.sleep(3)  # a second request, had one been sent, has landed by now
    updates = api(base, "GET", f"/api/v0/incidents/{incident['id']}/status-updates", alice)
    assert updates["total_count"] == 1


def test_a_button_shows_it_is_busy_while_its_change_is_on_its_way(page, backstage, network):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "busy button", [{"title": "Triage", "items": []}])
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    network(latency_ms=1500)
    page.find_element(By.XPATH, "//button[text()='End the incident']").click()
    wait(page, lambda d: d.find_element(By.CSS_SELECTOR, "main.incident").get_attribute("aria-busy") == "true",
         "the page never said it was busy")
    assert not page.find_element(By.XPATH, "//button[text()='End the incident']").is_enabled()
    wait(page, lambda d: text_in(d, "main.incident .heading-row", "Ended"), "the incident never showed as ended")
    assert page.find_element(By.CSS_SELECTOR, "main.incident").get_attribute("aria-busy") in (None, "false")


def test_a_task_ticked_on_a_stale_page_ticks_no_other_task_and_says_to_look_again(page, backstage):
    base, alice, bob = backstage["base"], backstage["users"]["alice"], backstage["users"]["bob"]
    incident = start(base, alice, "stale page", [{"title": "Triage", "items": [
        {"title": "Page the on-call"}, {"title": "Open a status page"}, {"title": "Call the vendor"}]}])
    api(base, "POST", f"/api/v0/incidents/{incident['id']}/members", alice, {"user_ids": [bob]})
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    wait(page, ec.presence_of_element_located((By.ID, "task-0-2")))
    # Meanwhile bob removes the first task: the page still shows three.
    api(base, "DELETE", f"/api/v0/incidents/{incident['id']}/checklists/0/items/0", bob)
    page.find_element(By.ID, "task-0-1").click()  # "Open a status page", as the page shows it
    wait(page, lambda d: text_in(d, "[role=alert]", "changed"), "the page never said the incident had changed")
    alert = page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "Could not tick the task" in alert and "again" in alert, alert
    now = api(base, "GET", f"/api/v0/incidents/{incident['id']}", alice)
    assert [item["state"] for item in now["checklists"][0]["items"]] == ["open", "open"]
    # The page now shows the incident as it is, so the next tick is the one meant.
    wait(page, lambda d: not d.find_elements(By.ID, "task-0-2"), "the page never showed the two tasks left")
    assert page.find_element(By.CSS_SELECTOR, "label[for=task-0-0]").text == "Open a status page"
    page.find_element(By.ID, "task-0-0").click()
    wait(page, lambda d: text_in(d, ".timeline", "Open a status page"), "the second tick never showed")
    now = api(base, "GET", f"/api/v0/incidents/{incident['id']}", alice)
    assert [item["state"] for item in now["checklists"][0]["items"]] == ["closed", "open"]


def test_without_a_network_a_change_says_the_server_was_not_reached_and_what_to_do(page, backstage, network):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "offline", [{"title": "Triage", "items": []}])
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    network(offline=True)
    page.find_element(By.XPATH, "//button[text()='End the incident']").click()
    wait(page, lambda d: text_in(d, "[role=alert]", "Could not end the incident"), "no error showed")
    alert = page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "Could not reach the server" in alert and "try again" in alert, alert
    assert api(base, "GET", f"/api/v0/incidents/{incident['id']}", alice)["is_active"] is True


def test_a_page_that_cannot_reach_the_server_says_what_to_do(page, backstage, network):
    sign_in(page, backstage["base"], "alice")
    network(blocked=("*/backstage/api/*",))  # the page loads; what it asks the server fails
    page.refresh()
    wait(page, lambda d: text_in(d, "[role=alert]", "Could not reach the server"), "no error showed")
    assert "try again" in page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert page.find_element(By.XPATH, "//button[text()='Reload the page']").is_displayed()


def test_focus_lands_on_the_result_when_the_button_pressed_goes_away(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "focus", [{"title": "Triage", "items": []}, {"title": "Resolve", "items": []}])
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    button = page.find_element(By.XPATH, "//button[text()='Move to the next stage']")
    page.execute_script("arguments[0].focus()", button)
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda d: text_in(d, ".stage--active h3", "Resolve"), "the stage never moved")
    wait(page, lambda d: "Done: move the stage" in d.switch_to.active_element.text,
         "focus was lost with the button")


def test_very_long_words_fit_a_narrow_screen(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    word = "x" * 200
    incident = start(base, alice, "y" * 64, [{"title": word, "items": [{"title": word, "command": "/" + word}]}],
                     description=word, public=True)
    api(base, "POST", f"/api/v0/incidents/{incident['id']}/status-updates", alice, {"message": word})
    sign_in(page, base, "alice")
    page.set_window_size(390, 844)
    for path, ready in ((f"#/incidents/{incident['id']}", ".updates"), (f"#/?team_id={TEAM}", ".incident-row")):
        page.get(f"{base}/backstage/{path}")
        wait(page, ec.presence_of_element_located((By.CSS_SELECTOR, ready)))
        wide = page.execute_script("return [...document.querySelectorAll('main *')]"
                                   ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
                                   ".map(e => e.tagName + '.' + e.className)")
        assert wide == [], path
        assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path


def test_the_longest_username_fits_the_header_of_a_narrow_screen(page, backstage):
    longest = "u" * 64
    add_user(backstage["env"], backstage["tmp_path"], longest)
    sign_in(page, backstage["base"], longest)
    page.set_window_size(390, 844)
    wide = page.execute_script("return [...document.querySelectorAll('header *')]"
                               ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
                               ".map(e => e.tagName + '.' + e.className)")
    assert wide == []
    assert page.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_right_to_left_text_reads_right_to_left(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    hebrew = "השרת נפל!"
    incident = start(base, alice, hebrew, [{"title": "בדיקה", "items": [{"title": "להתקשר לספק"}]}],
                     description="הדיסק מלא.", public=True)
    api(base, "POST", f"/api/v0/incidents/{incident['id']}/status-updates", alice,
        {"message": "עדיין בודקים."})
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    wait(page, lambda d: text_in(d, ".updates", "עדיין"))
    ltr = page.execute_script(
        "return ['main.incident h1', '.description', '.stage h3 .stage__title', 'label[for=task-0-0]', '.updates p']"
        ".filter(s => { const e = document.querySelector(s); return !e || !e.matches(':dir(rtl)'); })")
    assert ltr == []
    page.get(f"{base}/backstage/#/?team_id={TEAM}")
    row = wait(page, ec.presence_of_element_located((By.XPATH, f"//a[text()='{hebrew}']")))
    assert page.execute_script("return arguments[0].matches(':dir(rtl)')", row)


def test_a_link_to_an_incident_id_that_is_no_id_says_to_check_the_link(page, backstage):
    sign_in(page, backstage["base"], "alice")
    page.get(backstage["base"] + "/backstage/#/incidents/..%2F..%2Fsettings")
    wait(page, lambda d: text_in(d, "[role=alert]", "check the link"), "no error showed")


def test_a_sign_in_that_has_ended_says_to_reload_and_sign_in_again(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "expired sign-in", [{"title": "Triage", "items": []}])
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    page.delete_cookie("incident_backstage")  # as when its 12 hours are up
    page.find_element(By.XPATH, "//button[text()='End the incident']").click()
    wait(page, lambda d: text_in(d, "[role=alert]", "Could not end the incident"), "no error showed")
    alert = page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "sign-in has ended" in alert and "reload the page" in alert and "Mattermost-User-ID" not in alert, alert


@pytest.mark.parametrize("who, expected", [("bob", "Ask its commander to add you"), ("alice", "does not exist")])
def test_an_incident_one_may_not_see_or_that_is_not_there_says_what_to_do(page, backstage, who, expected):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "private one", [{"title": "Triage", "items": []}])
    incident_id = incident["id"] if who == "bob" else "abcdefghijklmnopqrstuvwxyz"
    sign_in(page, base, who)
    page.get(f"{base}/backstage/#/incidents/{incident_id}")
    wait(page, lambda d: text_in(d, "[role=alert]", expected), "no error showed")
    assert "list" in page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert "private one" not in page.find_element(By.TAG_NAME, "body").text


def test_following_a_link_names_the_new_page_and_moves_focus_to_its_content(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    start(base, alice, "title and focus", [{"title": "Triage", "items": []}], public=True)
    sign_in(page, base, "alice")
    assert page.title.startswith("Incidents · ")
    link = wait(page, ec.presence_of_element_located((By.XPATH, "//a[text()='title and focus']")))
    page.execute_script("arguments[0].focus()", link)
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda d: text_in(d, "main.incident h1", "title and focus"), "the incident never showed")
    wait(page, lambda d: d.title.startswith("title and focus · "), "the title never named the incident")
    assert page.switch_to.active_element.get_attribute("id") == "main"
    page.switch_to.active_element.send_keys(Keys.TAB)  # the next stop is the page's first link
    assert page.switch_to.active_element.text == "← All incidents"
    page.switch_to.active_element.send_keys(Keys.ENTER)
    wait(page, lambda d: d.title.startswith("Incidents · "), "the title never said Incidents again")
    assert page.switch_to.active_element.get_attribute("id") == "main"


def test_an_incident_with_more_updates_than_shown_says_where_the_rest_are(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    incident = start(base, alice, "chatty", [{"title": "Triage", "items": []}])
    for n in range(101):
        api(base, "POST", f"/api/v0/incidents/{incident['id']}/status-updates", alice, {"message": f"update {n}"})
    sign_in(page, base, "alice")
    open_incident(page, base, incident)
    wait(page, lambda d: text_in(d, ".updates", "update 100"))
    assert len(page.find_elements(By.CSS_SELECTOR, ".updates > li")) == 100
    assert "The newest 100 of 101 status updates" in page.find_element(By.ID, "updates-shown").text
    assert text_in(page, ".timeline", "update 0")


def test_a_task_line_too_long_is_named_by_its_line_and_nothing_starts(page, backstage):
    base, alice = backstage["base"], backstage["users"]["alice"]
    sign_in(page, base, "alice")
    page.get(f"{base}/backstage/#/new")
    wait(page, ec.presence_of_element_located((By.ID, "new-name"))).send_keys("too long a task")
    stages = page.find_element(By.ID, "new-stages")
    stages.clear()
    stages.send_keys("# Triage", Keys.ENTER, "Page the on-call", Keys.ENTER, "y" * 300)
    page.find_element(By.CSS_SELECTOR, "form.stack button[type=submit]").click()
    wait(page, lambda d: text_in(d, "[role=alert]", "Line 3"), "the long line was never named")
    assert "256" in page.find_element(By.CSS_SELECTOR, "[role=alert]").text
    listed = api(base, "GET", f"/api/v0/incidents?team_id={TEAM}&search_term=too%20long", alice)
    assert listed["total_count"] == 0
