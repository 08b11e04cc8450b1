"""The backstage page's files and its development sign-in, through the Flask client."""
from __future__ import annotations

import pytest

from plugin import backstage
from tests.conftest import ALICE, BOB, TEAM, as_user

PAGE = {"X-Requested-With": "XMLHttpRequest"}


@pytest.fixture
def people(components):
    components.host.note_user(ALICE, "alice")
    components.host.note_user(BOB, "bob")


def sign_in(client, user_id: str) -> str:
    """Sign in as user_id from the page; return the session's CSRF token."""
    response = client.post("/backstage/api/sign-in", json={"user_id": user_id}, headers=PAGE)
    assert response.status_code == 200, response.json
    return response.json["csrf_token"]


def start(client, headers: dict[str, str]) -> dict:
    return client.post("/api/v0/incidents", json={"name": "db is down", "team_id": TEAM, "commander_user_id": ALICE},
                       headers=headers)


def test_signing_in_sets_an_httponly_samesite_lax_cookie_that_the_api_accepts(client, people):
    response = client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE)
    cookie = response.headers["Set-Cookie"]
    assert "incident_backstage=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert start(client, as_user(ALICE)).status_code == 201
    listed = client.get(f"/api/v0/incidents?team_id={TEAM}")
    assert listed.status_code == 200 and listed.json["total_count"] == 1
    session = client.get("/backstage/api/session").json
    assert (session["user_id"], session["username"], session["signed_in_via"]) == (ALICE, "alice", "dev")


def test_a_change_with_the_sign_in_cookie_but_without_the_csrf_token_is_refused_and_changes_nothing(client, people):
    token = sign_in(client, ALICE)
    refused = start(client, {})
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.json["error"]
    assert start(client, {"X-CSRF-Token": "not-the-token"}).status_code == 403
    assert client.get(f"/api/v0/incidents?team_id={TEAM}").json["total_count"] == 0
    made = start(client, {"X-CSRF-Token": token})
    assert made.status_code == 201 and made.json["commander_user_id"] == ALICE


def test_with_a_host_secret_the_development_sign_in_is_off_and_an_earlier_cookie_stops_working(
        client, components, people):
    sign_in(client, ALICE)
    components.settings_admin.apply({"HostSecret": "s3cret-of-the-host"}, origin="test")
    assert client.get("/backstage/api/session").json["dev_sign_in"] is False
    assert client.get("/backstage/api/users").status_code == 403
    assert client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE).status_code == 403
    assert client.get(f"/api/v0/incidents?team_id={TEAM}").status_code == 401


def test_the_dev_sign_in_setting_turns_it_on_even_with_a_host_secret(client, components, people):
    components.settings_admin.apply({"HostSecret": "s3cret-of-the-host", "DevSignIn": "on"}, origin="test")
    sign_in(client, BOB)
    assert client.get("/backstage/api/session").json["user_id"] == BOB


def test_the_dev_sign_in_setting_off_refuses_it_without_a_host_secret(client, components, people):
    components.settings_admin.apply({"DevSignIn": "off"}, origin="test")
    assert client.post("/backstage/api/sign-in", json={"user_id": ALICE}, headers=PAGE).status_code == 403


@pytest.mark.parametrize(("body", "headers", "fix"), [
    ({"user_id": "nobody000000000000000000000"[:26]}, PAGE, "No such user"),
    ({"user_id": "not an id"}, PAGE, "user id of 26 characters"),
    ({"user_id": ALICE, "admin": True}, PAGE, "admin"),
    ({"user_id": ALICE}, {}, "X-Requested-With"),
])
def test_a_bad_sign_in_is_a_400_saying_what_to_fix_and_signs_no_one_in(client, people, body, headers, fix):
    response = client.post("/backstage/api/sign-in", json=body, headers=headers)
    assert response.status_code == 400 and fix in response.json["error"]
    assert client.get("/backstage/api/session").json["user_id"] is None


def test_signing_out_ends_the_session(client, people):
    token = sign_in(client, ALICE)
    assert client.post("/backstage/api/sign-out", headers={**PAGE, "X-CSRF-Token": token}).status_code == 200
    assert client.get(f"/api/v0/incidents?team_id={TEAM}").status_code == 401


def test_a_request_from_the_chat_host_is_signed_in_by_its_header_with_no_csrf_token(client, people):
    session = client.get("/backstage/api/session", headers=as_user(BOB)).json
    assert (session["user_id"], session["signed_in_via"], session["csrf_token"]) == (BOB, "host", "")


def test_names_and_lookup_answer_signed_in_users_only(client, people):
    assert client.get(f"/backstage/api/names?ids={ALICE}").status_code == 401
    assert client.get(f"/backstage/api/names?ids={ALICE},{BOB}", headers=as_user(BOB)).json == {
        ALICE: "alice", BOB: "bob"}
    assert client.get("/backstage/api/lookup?username=@Bob", headers=as_user(ALICE)).json["id"] == BOB
    assert client.get("/backstage/api/lookup?username=nobody", headers=as_user(ALICE)).status_code == 404
    assert client.get("/backstage/api/names?ids=bad", headers=as_user(ALICE)).status_code == 400


def test_the_page_is_served_at_backstage_with_a_content_security_policy(client):
    assert client.get("/backstage").status_code == 308
    response = client.get("/backstage/")
    assert response.status_code == 200 and b'<div id="app">' in response.data
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    script = next(name for name in (backstage.DIST / "assets").iterdir() if name.suffix == ".js")
    assert client.get(f"/backstage/assets/{script.name}").status_code == 200
    assert client.get("/backstage/assets/nothing.js").status_code == 404


def test_requests_without_the_sign_in_cookie_never_read_the_session_key(app, client, people):
    assert client.get("/healthz").status_code == 200
    assert client.get(f"/api/v0/incidents?team_id={TEAM}", headers=as_user(ALICE)).status_code == 200
    assert app.secret_key is None
    sign_in(client, ALICE)
    assert app.secret_key


def test_every_worker_signs_with_the_key_kept_in_the_database(settings, client, people):
    from plugin.app import create_app

    sign_in(client, ALICE)
    other = create_app(settings, migrate_db=False)  # another worker process on the same database
    try:
        with other.test_client() as second:
            second.set_cookie("incident_backstage", client.get_cookie("incident_backstage").value)
            assert second.get("/backstage/api/session").json["user_id"] == ALICE
    finally:
        other.extensions["incident"].db.dispose()


def test_the_session_names_the_severity_levels_in_force(client, components, people):
    assert client.get("/backstage/api/session").json["severity_levels"] == ["sev1", "sev2", "sev3", "sev4"]
    components.settings_admin.apply({"SeverityLevels": "critical,minor"}, origin="test")
    assert client.get("/backstage/api/session").json["severity_levels"] == ["critical", "minor"]
