"""The backstage page and its development sign-in, as a hostile visitor or site would try them.

Each test either shows a defence holding or pins the fix of a hole: forged or
missing CSRF tokens, cookies replayed after sign-out, sign-ins that must be off,
missing security headers, and odd paths on the static files.
"""
from __future__ import annotations

import re
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

from plugin import backstage
from plugin.app import create_app
from plugin.chat.mattermost import MattermostChatHost
from tests.conftest import ADMIN, ALICE, BOB, TEAM, as_user
from tests.threads import run_in_threads

PAGE = {"X-Requested-With": "XMLHttpRequest"}
COOKIE = "incident_backstage"
SOME_ID = "x" * 26
# Routes a cookie can never reach: the slash command authenticates by its own token, the launcher's by its secret.
NOT_COOKIE_ROUTES = {"/command", "/launcher/membership-left", "/launcher/environment"}


@pytest.fixture
def people(components):
    components.host.note_user(ALICE, "alice")
    components.host.note_user(BOB, "bob")
    components.host.note_user(ADMIN, "admin")


def sign_in(client, user_id: str, token: str = "") -> str:
    """Sign in as user_id from the page (with the current session's token, if any); return the new token."""
    response = client.post("/backstage/api/sign-in", json={"user_id": user_id},
                           headers={**PAGE, "X-CSRF-Token": token})
    assert response.status_code == 200, response.json
    return response.json["csrf_token"]


def cookie_of(client) -> str:
    return client.get_cookie(COOKIE).value


def start(client, headers: dict[str, str]) -> dict:
    response = client.post("/api/v0/incidents", json={"name": "db is down", "team_id": TEAM,
                                                       "commander_user_id": ALICE}, headers=headers)
    return response


def write_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route that changes something, its placeholders filled with a well-formed id."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule in NOT_COOKIE_ROUTES:
            continue
        path = re.sub(r"<(?:id:)?[^>]+>", SOME_ID, re.sub(r"<int:[^>]+>", "0", rule.rule))
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}):
            found.append((method, path))
    return found


# ----- CSRF ---------------------------------------------------------------------------------------
def test_every_change_route_refuses_the_sign_in_cookie_without_the_csrf_token(app, client, people):
    sign_in(client, ADMIN)
    routes = write_routes(app)
    # The API's incidents, playbooks, timeline, updates, retrospective, settings and webhooks, and the sign-in's own.
    assert len(routes) > 25 and ("POST", "/backstage/api/sign-out") in routes
    for method, path in routes:
        for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "guessed"}):
            response = client.open(path, method=method, json={}, headers={**PAGE, **headers})
            assert response.status_code == 403, (method, path, headers, response.status_code, response.json)
            assert "X-CSRF-Token" in response.json["error"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_simple_cross_site_request_with_the_cookie_changes_nothing(app, client, people, content_type):
    sign_in(client, ADMIN)
    for method, path in write_routes(app):
        for data in ('{"name": "x"}', ""):
            response = client.open(path, method=method, data=data, content_type=content_type)
            # The sign-in's own routes first ask for the page's X-Requested-With header (a 400).
            refusals = (400, 403) if path.startswith("/backstage/") else (403, 415)
            assert response.status_code in refusals, (method, path, content_type, response.status_code)
    assert client.get(f"/api/v0/incidents?team_id={TEAM}").json["total_count"] == 0
    assert client.get("/backstage/api/session").json["user_id"] == ADMIN  # not even signed out


def test_a_csrf_token_of_one_session_does_not_work_for_another(app, client, people):
    alice_token = sign_in(client, ALICE)
    with app.test_client() as other:
        bob_token = sign_in(other, BOB)
        assert bob_token != alice_token
        refused = start(other, {"X-CSRF-Token": alice_token})
        assert refused.status_code == 403
        assert start(other, {"X-CSRF-Token": bob_token}).status_code == 201


def test_a_signed_session_without_a_csrf_token_cannot_change_anything(app, client, people):
    # A cookie the server signed but that holds no token must not match an empty header.
    sign_in(client, ALICE)
    serializer = app.session_interface.get_signing_serializer(app)
    forged = dict(serializer.loads(cookie_of(client)))
    forged.pop("csrf")
    client.set_cookie(COOKIE, serializer.dumps(forged))
    assert start(client, {"X-CSRF-Token": ""}).status_code in (401, 403)
    assert start(client, {}).status_code in (401, 403)


def test_signing_out_and_switching_user_need_the_sessions_csrf_token(client, people):
    token = sign_in(client, ALICE)
    assert client.post("/backstage/api/sign-out", headers=PAGE).status_code == 403
    assert client.post("/backstage/api/sign-in", json={"user_id": BOB}, headers=PAGE).status_code == 403
    assert client.get("/backstage/api/session").json["user_id"] == ALICE
    assert sign_in(client, BOB, token) != token
    assert client.get("/backstage/api/session").json["user_id"] == BOB


# ----- the session cookie ---------------------------------------------------------------------------
def test_the_session_cookie_is_httponly_samesite_lax_and_lives_at_most_twelve_hours(client, people):
    response = client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1)).timestamp()
    assert time.time() + 11.9 * 3600 < expires <= time.time() + 12 * 3600 + 5


def test_the_session_cookie_is_secure_when_the_page_came_over_https(app, people):
    with app.test_client() as secure:
        response = secure.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE,
                               base_url="https://incidents.example.com")
        assert "Secure" in response.headers["Set-Cookie"]


def test_a_forwarded_proto_header_alone_does_not_make_the_cookie_secure(client, people):
    # No proxy is trusted: a header any client can send decides nothing.
    response = client.post("/backstage/api/sign-in", json={"user_id": ALICE},
                           headers={**PAGE, "X-Forwarded-Proto": "https"})
    assert "Secure" not in response.headers["Set-Cookie"]


def test_a_session_older_than_its_lifetime_signs_no_one_in(app, client, people):
    app.permanent_session_lifetime = timedelta(seconds=1)
    sign_in(client, ALICE)
    assert client.get("/backstage/api/session").json["user_id"] == ALICE
    time.sleep(2.1)
    assert client.get("/backstage/api/session").json["user_id"] is None
    assert client.get(f"/api/v0/incidents?team_id={TEAM}").status_code == 401


def test_a_cookie_replayed_after_sign_out_signs_no_one_in(app, client, people):
    token = sign_in(client, ALICE)
    old = cookie_of(client)
    assert client.post("/backstage/api/sign-out", headers={**PAGE, "X-CSRF-Token": token}).status_code == 200
    with app.test_client() as thief:
        thief.set_cookie(COOKIE, old)
        assert thief.get("/backstage/api/session").json["user_id"] is None
        assert thief.get(f"/api/v0/incidents?team_id={TEAM}").status_code == 401
        assert start(thief, {"X-CSRF-Token": token}).status_code == 401


def test_sign_outs_of_one_user_racing_in_several_browsers_all_succeed_and_end_every_session(app, people):
    browsers = [app.test_client() for _ in range(6)]
    tokens = [sign_in(browser, ALICE) for browser in browsers]
    cookies = [cookie_of(browser) for browser in browsers]
    answers: list[int] = []

    def sign_out(number: int) -> None:
        answers.append(browsers[number].post("/backstage/api/sign-out",
                                             headers={**PAGE, "X-CSRF-Token": tokens[number]}).status_code)

    run_in_threads(sign_out, len(browsers), timeout=30, what="sign-outs")
    assert answers == [200] * len(browsers)
    with app.test_client() as thief:
        for cookie in cookies:
            thief.set_cookie(COOKIE, cookie)
            assert thief.get("/backstage/api/session").json["user_id"] is None


def test_signing_in_again_after_signing_out_works(client, people):
    token = sign_in(client, ALICE)
    client.post("/backstage/api/sign-out", headers={**PAGE, "X-CSRF-Token": token})
    token = sign_in(client, ALICE)
    assert start(client, {"X-CSRF-Token": token}).status_code == 201


def test_signing_in_gives_a_fresh_session_whatever_cookie_came_before(app, client, people):
    # A visitor arriving with a cookie someone else planted gets a session of their own.
    with app.test_client() as attacker:
        planted_token = sign_in(attacker, BOB)
        planted = cookie_of(attacker)
    client.set_cookie(COOKIE, planted)
    token = sign_in(client, ALICE, planted_token)
    assert token != planted_token and cookie_of(client) != planted
    assert start(client, {"X-CSRF-Token": planted_token}).status_code == 403
    with app.test_client() as attacker:
        attacker.set_cookie(COOKIE, planted)
        assert attacker.get("/backstage/api/session").json["user_id"] == BOB  # still only the attacker's own


# ----- the development sign-in when it must be off ---------------------------------------------------
@pytest.mark.parametrize("change", [{"DevSignIn": "off"}, {"HostSecret": "s3cret-of-the-host"},
                                    {"HostSecret": "s3cret-of-the-host", "DevSignIn": "off"}])
def test_a_switched_off_development_sign_in_is_neither_offered_nor_accepted(client, components, people, change):
    components.settings_admin.apply(change, origin="test")
    assert client.get("/backstage/api/session").json["dev_sign_in"] is False
    assert client.get("/backstage/api/users").status_code == 403
    for headers in (PAGE, {}):
        response = client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=headers)
        assert response.status_code in (400, 403) and COOKIE not in response.headers.get("Set-Cookie", "")


def test_with_a_mattermost_host_the_development_sign_in_is_never_offered_even_when_on(settings, people):
    host = MattermostChatHost(lambda: "http://127.0.0.1:9", lambda: "token", retries=0, timeout=0.5)
    app = create_app(settings, host=host, migrate_db=False)
    try:
        app.extensions["incident"].settings_admin.apply({"DevSignIn": "on"}, origin="test")
        with app.test_client() as client:
            assert client.get("/backstage/api/session").json["dev_sign_in"] is False
            assert client.get("/backstage/api/users").status_code == 403
            response = client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE)
            assert response.status_code == 403
            # Not even a cookie signed with the stored key signs anyone in there.
            serializer = app.session_interface.get_signing_serializer(app)
            client.set_cookie(COOKIE, serializer.dumps({"user_id": ALICE, "csrf": "t"}))
            assert client.get("/api/v0/incidents", query_string={"team_id": TEAM}).status_code == 401
    finally:
        app.extensions["incident"].db.dispose()


@pytest.mark.parametrize("body", [
    {"user_id": "nobody00000000000000000000"}, {"user_id": ALICE.upper()}, {"user_id": ALICE + " "},
    {"user_id": 12345}, {"user_id": None}, {"user_id": [ALICE]}, {"user_id": {"$ne": ""}}, {}, [ALICE], ALICE,
    {"user_id": ALICE[:25] + "\u0000"}, {"user_id": "../../" + ALICE[:20]},
])
def test_signing_in_as_an_unknown_or_malformed_user_is_a_400_and_signs_no_one_in(client, people, body):
    response = client.post("/backstage/api/sign-in", json=body, headers=PAGE)
    assert response.status_code == 400, response.json
    assert COOKIE not in response.headers.get("Set-Cookie", "")
    assert client.get("/backstage/api/session").json["user_id"] is None


@pytest.mark.parametrize("data, content_type", [("user_id=" + ALICE, "application/x-www-form-urlencoded"),
                                                  ('{"user_id": "' + ALICE + '"}', "text/plain"),
                                                  ("{not json", "application/json")])
def test_a_sign_in_body_that_is_not_json_is_a_4xx_and_signs_no_one_in(client, people, data, content_type):
    response = client.post("/backstage/api/sign-in", data=data, content_type=content_type, headers=PAGE)
    assert 400 <= response.status_code < 500
    assert client.get("/backstage/api/session").json["user_id"] is None


@pytest.mark.parametrize("username", ["bob\u0000", "\u0000", "@\u0000"])
def test_a_username_lookup_with_text_no_database_can_store_is_a_400_naming_the_parameter(client, people, username):
    response = client.get("/backstage/api/lookup", query_string={"username": username}, headers=as_user(ALICE))
    assert response.status_code == 400, response.json
    assert "username" in response.json["error"] and set(response.json) == {"error", "details"}


# ----- response headers -----------------------------------------------------------------------------
def csp_of(response) -> dict[str, str]:
    return {part.split()[0]: " ".join(part.split()[1:]) for part in
            response.headers["Content-Security-Policy"].split(";") if part.strip()}


def test_the_page_allows_only_its_own_scripts_styles_and_connections_and_no_framing(client):
    response = client.get("/backstage/")
    policy = csp_of(response)
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'" and policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_uses_no_inline_script_or_style(client):
    html = client.get("/backstage/").data.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) and "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)


def test_assets_and_answers_are_never_sniffed_as_another_type(client, people):
    script = next(name for name in (backstage.DIST / "assets").iterdir() if name.suffix == ".js")
    for path, headers in ((f"/backstage/assets/{script.name}", {}), ("/backstage/assets/nothing.js", {}),
                          ("/backstage/api/session", {}), (f"/api/v0/incidents?team_id={TEAM}", as_user(ALICE)),
                          ("/api/v0/nothing", {})):
        response = client.get(path, headers=headers)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path


def test_authenticated_answers_are_never_kept_by_a_shared_cache(client, people):
    token = sign_in(client, ALICE)
    made = start(client, {"X-CSRF-Token": token}).json
    for path in ("/backstage/api/session", f"/api/v0/incidents?team_id={TEAM}", f"/api/v0/incidents/{made['id']}",
                 f"/backstage/api/names?ids={ALICE}"):
        cache = client.get(path).headers.get("Cache-Control", "")
        assert "private" in cache or "no-store" in cache, (path, cache)
    # The session carries the CSRF token: not even the browser keeps it.
    assert "no-store" in client.get("/backstage/api/session").headers["Cache-Control"]
    assert "private" in client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE)).headers[
        "Cache-Control"]


def test_the_mattermost_panel_links_to_the_page_rather_than_framing_it():
    # So the page may refuse every frame (frame-ancestors 'none') without breaking Mattermost.
    source = "".join(path.read_text() for path in (backstage.DIST.parents[1] / "src" / "plugin").iterdir()
                     if path.is_file())
    assert "iframe" not in source.lower() and "target: '_blank'" in source


# ----- odd paths on the static files --------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/backstage/assets/../index.html", "/backstage/assets/../../plugin/backstage.py",
    "/backstage/assets/%2e%2e/%2e%2e/plugin/backstage.py", "/backstage/assets/..%2f..%2fplugin%2fbackstage.py",
    "/backstage/assets/%2e%2e%2f%2e%2e%2fplugin.json", "/backstage/assets/..\\..\\plugin\\backstage.py",
    "/backstage/assets/..%5c..%5cplugin.json", "/backstage/assets//etc/passwd", "/backstage/assets/%2fetc%2fpasswd",
    "/backstage/assets/x%00.js", "/backstage/assets/%00", "/backstage/assets/" + "a" * 5000 + ".js",
    "/backstage/assets/" + "a/" * 2000 + "b.js", "/backstage/assets/.", "/backstage/assets/..",
    "/backstage/assets/", "/backstage/assets/%c0%ae%c0%ae/plugin.json", "/backstage/assets/%ff%fe.js",
    "/backstage/%2e%2e/plugin.json", "/backstage/index.html/..", "/backstage/assets/~/.bashrc",
])
def test_an_odd_asset_path_is_a_4xx_never_a_file_outside_the_build_nor_a_500(client, path):
    response = client.get(path, follow_redirects=True)  # werkzeug merges repeated slashes with a redirect
    assert response.status_code in (400, 404), (path, response.status_code)
    assert b"import " not in response.data and b"root:" not in response.data and b"<!doctype" not in response.data


# ----- the page's source ----------------------------------------------------------------------------
HTML_FROM_STRINGS = re.compile(r"dangerouslySetInnerHTML|innerHTML|outerHTML|insertAdjacentHTML|document\.write"
                               r"|\beval\(|new Function|createContextualFragment|DOMParser")


@pytest.mark.parametrize("folder", ["backstage", "plugin"])
def test_the_page_and_the_panel_never_build_html_from_strings(folder):
    sources = [path for path in (backstage.DIST.parents[1] / "src" / folder).rglob("*") if path.suffix in (".js", ".jsx")]
    assert sources
    for path in sources:
        found = HTML_FROM_STRINGS.search(path.read_text())
        assert found is None, f"{path.name}: {found.group(0) if found else ''}"
