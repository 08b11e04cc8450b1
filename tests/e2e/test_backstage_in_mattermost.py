"""The backstage page inside a real Mattermost, in a real Chromium, signed in by Mattermost's own session.

The browser carries the session cookies Mattermost set at log-in; Mattermost checks
them, forwards the page's requests to the plugin with ``Mattermost-User-ID``, and
requires its CSRF token (the ``MMCSRF`` cookie, which the page sends as
``X-CSRF-Token``) on the changes.
"""
from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import WAIT_SECONDS, browser, page  # noqa: F401 - the fixtures
from tests.e2e.conftest import PLUGIN_ID, World
from tests.e2e.mattermost import password_for

pytestmark = pytest.mark.slow


def test_the_backstage_page_inside_mattermost_uses_its_session_to_tick_a_task(world: World, page):  # noqa: F811
    made = world.alice.plugin(PLUGIN_ID, "POST", "/api/v0/incidents", json={
        "name": "Backstage in Mattermost", "team_id": world.team_id, "commander_user_id": world.alice_id,
        "checklists": [{"title": "Triage", "items": [{"title": "Check the dashboards"}]}]})
    assert made.status_code == 201, made.text
    incident = made.json()
    # Logged in as Mattermost's web client logs in, which is answered with the session cookies.
    login = httpx.post(f"{world.server.url}/api/v4/users/login", timeout=60,
                       headers={"X-Requested-With": "XMLHttpRequest"},
                       json={"login_id": "alice", "password": password_for("alice")})
    assert login.status_code == 200, login.text
    cookies = {cookie.split("=", 1)[0]: cookie.split("=", 1)[1].split(";", 1)[0]
               for cookie in login.headers.get_list("set-cookie")}
    page.get(f"{world.server.url}/api/v4/system/ping")
    for name in ("MMAUTHTOKEN", "MMUSERID", "MMCSRF"):
        page.add_cookie({"name": name, "value": cookies[name], "path": "/"})

    page.get(f"{world.server.url}/plugins/{PLUGIN_ID}/backstage/#/incidents/{incident['id']}")
    wait = WebDriverWait(page, WAIT_SECONDS)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".who") and "@alice" in d.find_element(
        By.CSS_SELECTOR, ".who").text, "the page never showed the Mattermost user")
    assert not page.find_elements(By.CSS_SELECTOR, ".badge--dev")
    wait.until(lambda d: d.find_elements(By.ID, "task-0-0"), "the incident's tasks never showed").pop().click()
    wait.until(lambda d: "Check the dashboards" in d.find_element(By.CSS_SELECTOR, ".timeline").text,
               "the ticked task never reached the timeline")
    current = world.alice.plugin(PLUGIN_ID, "GET", f"/api/v0/incidents/{incident['id']}").json()
    assert current["checklists"][0]["items"][0]["state"] == "closed"
    # The same change without Mattermost's CSRF token is refused by Mattermost itself.
    status = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'PUT', credentials: 'same-origin', headers: {"
        "'X-Requested-With': 'XMLHttpRequest', 'Content-Type': 'application/json'},"
        "body: JSON.stringify({new_state: 'open'})}).then((r) => done(r.status), () => done(0));",
        f"{world.server.url}/plugins/{PLUGIN_ID}/api/v0/incidents/{incident['id']}/checklists/0/items/0/state")
    assert status == 401
