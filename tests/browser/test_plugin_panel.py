"""The webapp bundle's right-hand panel in a real Chromium, loaded the way Mattermost loads it.

A stand-in for Mattermost's web client (tests/browser/host/, built from
webapp_stub/src/mattermost-host) gives the bundle React 18 as window.React and
window.ReactDOM and a ``window.registerPlugin``, loads ``webapp_stub/dist/main.js``
with a script tag, initializes the plugin with a registry and a store, and renders
what it registered. A loopback proxy plays Mattermost's part for the plugin's
requests: it serves the files, cuts ``/plugins/<id>`` from the path, drops cookies
and sets ``Mattermost-User-ID`` before passing them to a real server.
"""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import ROOT, WAIT_SECONDS, screenshot
from tests.browser.test_backstage import api

pytestmark = pytest.mark.slow

PLUGIN_ID = json.loads((ROOT / "plugin.json").read_text())["id"]
HOST = Path(__file__).resolve().parent / "host"
BUNDLE = ROOT / "webapp_stub" / "dist" / "main.js"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def mattermost_proxy(backend: str, user_id: str) -> ThreadingHTTPServer:
    """A loopback server that serves the stand-in and forwards plugin requests as Mattermost does."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            prefix = f"/plugins/{PLUGIN_ID}"
            if path.startswith(prefix + "/"):
                return self._forward(self.path[len(prefix):])
            if path == "/static/plugins/main.js":
                return self._send(200, BUNDLE.read_bytes(), TYPES[".js"])
            name = "index.html" if path == "/" else path.lstrip("/")
            file = (HOST / name).resolve()
            if HOST in file.parents and file.is_file():
                return self._send(200, file.read_bytes(), TYPES.get(file.suffix, "application/octet-stream"))
            return self._send(404, b"not found", "text/plain")

        def _forward(self, rest: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {"Mattermost-User-ID": user_id}
            # Mattermost passes the other headers on both ways, the conditional ones among them.
            for name in ("Content-Type", "If-Match", "If-None-Match"):
                if self.headers.get(name):
                    headers[name] = self.headers[name]
            request = urllib.request.Request(backend + rest, data=body, method=self.command, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status, data, answered = response.status, response.read(), response.headers
            except urllib.error.HTTPError as error:
                status, data, answered = error.code, error.read(), error.headers
            extra = {"ETag": answered["ETag"]} if answered.get("ETag") else {}
            self._send(status, data, answered.get("Content-Type") or "application/json", extra)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


@pytest.fixture
def chat(backstage) -> Iterator[str]:
    """The stand-in's origin, signed in as alice."""
    server = mattermost_proxy(backstage["base"], backstage["users"]["alice"])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def wait_for(driver, condition, message: str):
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message)


def rhs_text(driver) -> str:
    return driver.find_element(By.ID, "rhs").text


def test_the_panel_registered_with_the_hosts_react_shows_the_incident_and_runs_its_actions(page, backstage, chat):
    alice = backstage["users"]["alice"]
    incident = api(backstage["base"], "POST", "/api/v0/incidents", alice, {
        "name": "payments failing", "team_id": "team0000000000000000000000", "commander_user_id": alice,
        "checklists": [{"title": "Triage", "items": [{"title": "Check the provider"}]},
                       {"title": "Resolve", "items": [{"title": "Fail over"}]}]})
    profiles = json.dumps({alice: {"id": alice, "username": "alice"}})
    page.get(f"{chat}/?bundle=/static/plugins/main.js&channel={incident['channel_id']}&"
             + urllib.parse.urlencode({"profiles": profiles}))
    wait_for(page, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-plugins-loaded") == "1",
             "the bundle never registered a plugin")
    registered = page.execute_script(
        "const r = window.mattermostHost.registered; return [r.buttons.length, r.sidebars.length, "
        "window.mattermostHost.plugins[0].id]")
    assert registered == [1, 1, PLUGIN_ID]

    page.find_element(By.CSS_SELECTOR, "button[aria-label='Show the incident of this channel']").click()
    wait_for(page, lambda d: "payments failing" in rhs_text(d) and "Commander: @alice" in rhs_text(d),
             "the panel never showed the channel's incident")
    assert "Stage: Triage (1 of 2)" in rhs_text(page)
    screenshot(page, "rhs")

    page.find_element(By.ID, "incident-rhs-task-0").click()
    wait_for(page, lambda d: "Tasks: 1 of 2 tasks done" in rhs_text(d), "the ticked task never counted")

    page.find_element(By.XPATH, "//aside//button[text()='Next stage']").click()
    wait_for(page, lambda d: "Stage: Resolve (2 of 2)" in rhs_text(d), "the stage never moved")

    page.find_element(By.ID, "incident-rhs-update").send_keys("failed over to the second provider")
    page.find_element(By.XPATH, "//aside//button[text()='Post update']").click()
    wait_for(page, lambda d: "failed over to the second provider" in
             d.find_element(By.CSS_SELECTOR, "aside p[style]").text, "the update never showed as the last one")

    link = page.find_element(By.LINK_TEXT, "Open in backstage").get_attribute("href")
    assert link == f"{chat}/plugins/{PLUGIN_ID}/backstage/#/incidents/{incident['id']}?team_id=team0000000000000000000000"

    page.find_element(By.XPATH, "//aside//button[text()='End incident']").click()
    wait_for(page, lambda d: "Status: Ended" in rhs_text(d), "the incident never showed as ended")
    timeline = api(backstage["base"], "GET", f"/api/v0/incidents/{incident['id']}/timeline", alice)
    assert [entry["event_type"] for entry in timeline][-1] == "incident_ended"


def test_the_backstage_page_served_under_the_plugin_path_uses_the_forwarded_user(page, backstage, chat):
    page.get(f"{chat}/plugins/{PLUGIN_ID}/backstage/")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".who") and "@alice" in d.find_element(
        By.CSS_SELECTOR, ".who").text, "the page never showed the user the proxy signed in")
    assert not page.find_elements(By.CSS_SELECTOR, ".badge--dev")
    wait_for(page, lambda d: d.find_elements(By.CSS_SELECTOR, ".incident-row"), "the list never showed")


def test_the_panel_ticks_no_other_task_once_the_incident_changed_behind_it(page, backstage, chat):
    alice = backstage["users"]["alice"]
    incident = api(backstage["base"], "POST", "/api/v0/incidents", alice, {
        "name": "queue backed up", "team_id": "team0000000000000000000000", "commander_user_id": alice,
        "checklists": [{"title": "Triage", "items": [{"title": "Find the producer"}, {"title": "Drain the queue"}]}]})
    profiles = json.dumps({alice: {"id": alice, "username": "alice"}})
    page.get(f"{chat}/?bundle=/static/plugins/main.js&channel={incident['channel_id']}&"
             + urllib.parse.urlencode({"profiles": profiles}))
    wait_for(page, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-plugins-loaded") == "1",
             "the bundle never registered a plugin")
    page.find_element(By.CSS_SELECTOR, "button[aria-label='Show the incident of this channel']").click()
    wait_for(page, lambda d: "Tasks: 0 of 2 tasks done" in rhs_text(d), "the panel never showed the tasks")

    # Someone else removes the first task: the panel's task 0 is now "Drain the queue".
    api(backstage["base"], "DELETE", f"/api/v0/incidents/{incident['id']}/checklists/0/items/0", alice)
    page.find_element(By.ID, "incident-rhs-task-0").click()
    wait_for(page, lambda d: "Someone changed this incident meanwhile" in rhs_text(d),
             "the panel never said the incident had changed")
    assert "Tasks: 0 of 1 tasks done" in rhs_text(page)
    now = api(backstage["base"], "GET", f"/api/v0/incidents/{incident['id']}", alice)
    assert [item["state"] for item in now["checklists"][0]["items"]] == ["open"]
