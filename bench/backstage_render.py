"""How long the backstage page takes to render a list of 100 incidents in headless Chromium.

Starts ``incident-plugin serve`` on a loopback port with a fresh SQLite database,
starts 100 incidents, signs in through the development sign-in, and loads the
list ``--runs`` times. Each load reports the page's own measure
``incident-list-render``: from the moment the list's data is in the page to the
moment its rows are in the document (performance marks in main.jsx). Prints the
median, the 90th percentile and the largest, in milliseconds, as JSON.

    python3 dev.py run python bench/backstage_render.py --runs 20
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CLI = str(Path(sys.executable).with_name("incident-plugin"))
TEAM = "benchteam00000000000000000"


def call(base: str, method: str, path: str, user: str, body=None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Mattermost-User-ID": user, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with tempfile.TemporaryDirectory() as folder:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")},
               "INCIDENT_DATA_DIR": folder, "INCIDENT_REMINDER_SCAN_SECONDS": "0"}
        added = subprocess.run([CLI, "users", "add", "alice"], env=env, cwd=folder, capture_output=True, text=True,
                               check=True, timeout=60)
        alice = added.stdout.split()[1]
        log = open(Path(folder) / "server.log", "wb")
        server = subprocess.Popen([CLI, "serve", "--port", "0", "--workers", "2"], env=env, cwd=folder,
                                  stdout=log, stderr=subprocess.STDOUT)
        driver = None
        try:
            deadline = time.monotonic() + 60
            while not (found := re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)",
                                          (Path(folder) / "server.log").read_bytes())):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            base = f"http://127.0.0.1:{found.group(1).decode()}"
            time.sleep(1)
            for n in range(100):
                call(base, "POST", "/api/v0/incidents", alice, {
                    "name": f"incident {n}", "team_id": TEAM, "commander_user_id": alice,
                    "checklists": [{"title": "Triage", "items": [{"title": "Page"}]}]})
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
                options.add_argument(argument)
            driver = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
            wait = WebDriverWait(driver, 30)
            driver.get(base + "/backstage/")
            wait.until(lambda d: d.find_elements("id", "sign-in-user"))
            Select(driver.find_element("id", "sign-in-user")).select_by_visible_text("@alice")
            driver.find_element("css selector", ".sign-in button[type=submit]").click()
            wait.until(lambda d: d.find_elements("css selector", ".who"))
            durations = []
            for _ in range(args.runs):
                driver.get("about:blank")
                driver.get(f"{base}/backstage/#/?team_id={TEAM}")
                wait.until(lambda d: len(d.find_elements("css selector", ".incident-row")) == 100)
                durations.append(driver.execute_script(
                    "return performance.getEntriesByName('incident-list-render').pop().duration"))
        finally:
            if driver is not None:
                driver.quit()
            server.terminate()
            server.wait(timeout=30)
            log.close()
    durations.sort()
    print(json.dumps({"runs": len(durations), "median_ms": round(statistics.median(durations), 1),
                      "p90_ms": round(durations[int(0.9 * (len(durations) - 1))], 1),
                      "max_ms": round(durations[-1], 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
