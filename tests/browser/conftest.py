"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

The browser and its driver are given by path, so Selenium never looks for or
downloads one. Without them the browser tests skip, unless
``INCIDENT_REQUIRE_BROWSER=1`` (CI), where that is a failure. Pages are served by
a real ``incident-plugin serve`` on a loopback port, with the local chat host.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from plugin.chat.local import LocalChatHost
from plugin.settings import load_settings
from plugin.store import Database
from tests.integration.test_server import CLI, clean_env, serve

CHROMIUM = os.environ.get("INCIDENT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("INCIDENT_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_BROWSER = os.environ.get("INCIDENT_REQUIRE_BROWSER", "") in {"1", "true", "yes"}
ROOT = Path(__file__).resolve().parents[2]
# The screenshots the docs show are rewritten only when asked (INCIDENT_WRITE_SCREENS=1), so a
# test run leaves the working tree as it found it; otherwise they go to a temporary folder.
SCREENS = ROOT / "docs" / "screens"
WRITE_SCREENS = os.environ.get("INCIDENT_WRITE_SCREENS", "") in {"1", "true", "yes"}
# Seconds a page may take to show what a test waits for.
WAIT_SECONDS = 15


def _missing_browser() -> str | None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if not missing:
        return None
    return (f"no headless Chromium: {', '.join(missing)} missing (Debian: apt-get install -y chromium "
            "chromium-driver; python3 dev.py test installs them as root)")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """One headless Chromium for the session; each test starts from a blank page without cookies."""
    problem = _missing_browser()
    if problem:
        if REQUIRE_BROWSER:
            pytest.fail(problem + " (INCIDENT_REQUIRE_BROWSER is set)", pytrace=False)
        pytest.skip(problem)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--lang=en-US", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    # The page's console, for a failing test to show.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """The browser, with no cookies left from an earlier test, at the desktop size."""
    browser.set_window_size(1280, 900)
    yield browser
    browser.delete_all_cookies()
    browser.get("about:blank")


def add_user(env: dict[str, str], cwd: Path, name: str) -> str:
    """Create a user of the local chat host (through the CLI, as a person would); return its id."""
    result = subprocess.run([CLI, "users", "add", name], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.split()[1]


@contextmanager
def served_backstage(tmp_path_factory: pytest.TempPathFactory, name: str, usernames: Sequence[str], *,
                     workers: int = 1, renamed: Mapping[str, str] | None = None) -> Iterator[dict[str, object]]:
    """Serve a backstage (SQLite, local chat host) with these users until the block ends; yield its URL,
    the users' ids by username, its environment and its directory.

    renamed gives users a name the command line refuses but a chat host may keep (markup, say)."""
    problem = _missing_browser()
    if problem and not REQUIRE_BROWSER:
        pytest.skip(problem)
    tmp_path = tmp_path_factory.mktemp(name)
    env = clean_env(tmp_path, INCIDENT_REMINDER_SCAN_SECONDS="0")
    users = {username: add_user(env, tmp_path, username) for username in usernames}
    if renamed:
        db = Database(load_settings(environ=env).database_url)
        try:
            host = LocalChatHost(db, admin_user_ids=frozenset)
            for username, shown in renamed.items():
                host.note_user(users[username], shown)
        finally:
            db.dispose()
    with serve(tmp_path, env, workers=workers) as base:
        yield {"base": base, "users": users, "env": env, "tmp_path": tmp_path}


@pytest.fixture(scope="module")
def backstage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A served backstage (SQLite, local chat host, two users): its URL and the users' ids."""
    with served_backstage(tmp_path_factory, "backstage", ("alice", "bob"), workers=2) as site:
        yield site


def screenshot(driver, name: str, max_height: int = 1800) -> Path:
    """Save the whole page (up to max_height CSS pixels tall) as <name>.png: in docs/screens when
    INCIDENT_WRITE_SCREENS is set, else in a temporary folder (the capture is still exercised)."""
    import base64
    import tempfile

    width, height = driver.execute_script(
        "return [document.documentElement.clientWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": min(height, max_height), "scale": 1}})
    folder = SCREENS if WRITE_SCREENS else Path(tempfile.gettempdir()) / "incident-screens"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
