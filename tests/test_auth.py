"""Signing in, the first-run page, API tokens, and what every route does without credentials."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from app import create_app
from helpers import (EMAIL, PASSWORD, TEST_PASSWORD_METHOD, close_database, csrf_from,
                     make_token, parse, routes)
from models.db import connection
from models.users import authenticate, create_user

PUBLIC = {"auth.login", "auth.setup", "health.healthz", "static"}  # /healthz: see test_health.py


def _routes(app):
    """Every (method, path) the app serves, with sample values for the URL arguments."""
    for rule, path in routes(app):
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, path


def _is_api(path: str) -> bool:
    return path.startswith("/api/")


def _is_machine(path: str) -> bool:
    """The API, OpenTelemetry's intake and the metrics: 401 without credentials, never a
    page."""
    return path.startswith(("/api/", "/v1/")) or path == "/metrics"


def test_every_page_redirects_to_login_with_next(app, client, user):
    pages = [(m, p) for m, p in _routes(app) if not _is_machine(p)]
    assert len(pages) >= 5
    for method, path in pages:
        response = client.open(path, method=method)
        assert response.status_code == 302, (method, path, response.status_code)
        location = urlsplit(response.headers["Location"])
        assert location.path == "/login", (method, path)
        assert parse_qs(location.query)["next"] == [path], (method, path)


def test_every_htmx_request_gets_401_with_hx_redirect(app, client, user):
    for method, path in _routes(app):
        if _is_machine(path):
            continue
        response = client.open(path, method=method, headers={"HX-Request": "true"})
        assert response.status_code == 401, (method, path)
        assert response.headers["HX-Redirect"].startswith("/login?next="), (method, path)


@pytest.mark.spec("API-AUTO-EXEC-FILTER-004")
@pytest.mark.spec("API-AUTO-EXEC-DETAIL-004")
@pytest.mark.spec("API-AUTO-EXEC-ALERT-004")
def test_every_api_route_answers_401_json_even_for_unknown_ids(app, client):
    api_routes = [(m, p) for m, p in _routes(app) if _is_api(p)]
    assert any(p == "/api/automations/executions/999999" for _, p in api_routes)
    for method, path in api_routes:
        response = client.open(path, method=method, json={})
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.json["error"]["code"] == "unauthorized", (method, path)


def test_an_unknown_path_asks_for_credentials_before_saying_not_found(client, user):
    assert client.get("/api/automations/nothing-here").status_code == 401
    assert client.get("/nothing-here").status_code == 302


@pytest.mark.parametrize("header", [
    "Bearer rw_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "rw_token-without-scheme",
])
def test_bad_tokens_are_refused(client, user, token, header):
    response = client.get("/api/ping", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_a_live_token_is_accepted_and_a_revoked_one_is_not(app, client, user, token, db):
    from models.users import ApiToken, revoke_token
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/ping", headers=headers).json == {"ok": True, "user": EMAIL}
    row = ApiToken.get()
    assert revoke_token(user, row.id)
    assert client.get("/api/ping", headers=headers).status_code == 401


def test_tokens_are_stored_hashed(user, token, db):
    from models.users import ApiToken
    row = ApiToken.get()
    assert token not in (row.token_hash, row.prefix)
    assert len(row.token_hash) == 64


def test_passwords_are_stored_hashed(user, db):
    from models.users import User
    assert PASSWORD not in User.get().password_hash


@pytest.mark.parametrize("testing", [False, True])
def test_only_a_test_app_may_hash_passwords_cheaply(app_config, testing):
    """The suite's apps hash with one PBKDF2 round; any other app uses scrypt, even when the
    setting asks for less. Either way the account signs in."""
    built = create_app({**app_config, "TESTING": testing})
    try:
        with built.app_context(), connection():
            stored = create_user(EMAIL, PASSWORD).password_hash
            assert authenticate(EMAIL, PASSWORD) is not None
    finally:
        close_database()
    assert stored.startswith(f"{TEST_PASSWORD_METHOD}$" if testing else "scrypt:")


def test_signing_in_leads_to_next(client, auth, user):
    response = auth.login(next="/settings")
    assert response.status_code == 302
    assert response.headers["Location"] == "/settings"
    assert client.get("/settings").status_code == 200


@pytest.mark.parametrize("target", [
    "https://evil.example", "//evil.example", "/\\evil.example", "http:/evil.example",
    "https:evil.example", "\\\\evil.example", " //evil.example", "javascript:alert(1)",
])
def test_next_never_leaves_the_site(client, auth, user, target):
    response = auth.login(next=target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == "/executions", location


def test_a_wrong_password_is_refused_with_a_message(client, auth, user):
    response = auth.login(password="wrong password")
    assert response.status_code == 401
    assert "Wrong e-mail address or password" in response.text
    assert client.get("/settings").status_code == 302


def test_a_form_post_without_csrf_token_is_rejected(logged_in, db):
    from models.users import ApiToken
    response = logged_in.post("/settings/tokens", data={"name": "sneaky"})
    assert response.status_code == 400
    assert ApiToken.select().count() == 0


def test_login_without_csrf_token_is_rejected(client, user):
    response = client.post("/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/settings").status_code == 302


def test_a_session_api_write_needs_the_csrf_header(logged_in, db):
    from models import Execution
    body = {"workflow": "w", "status": "success"}
    assert logged_in.post("/api/automations/executions", json=body).status_code == 400
    assert Execution.select().count() == 0
    token = csrf_from(logged_in.get("/settings").text)
    response = logged_in.post("/api/automations/executions", json=body,
                              headers={"X-CSRFToken": token})
    assert response.status_code == 201


def test_logout_is_a_post_and_ends_the_session(logged_in, auth):
    assert logged_in.get("/logout").status_code == 405
    assert auth.logout().status_code == 302
    assert logged_in.get("/settings").status_code == 302


def test_the_first_visit_offers_the_setup_page_once(client, db):
    response = client.get("/executions")
    assert response.headers["Location"].startswith("/setup")
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                           "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 302
    assert client.get("/settings").status_code == 200
    # Once an account exists, the setup page is gone for everyone.
    other = client.application.test_client()
    assert other.get("/setup").headers["Location"] == "/login"
    response = other.post("/setup", data={"email": "x@example.com", "password": PASSWORD,
                                           "confirm": PASSWORD})
    from models.users import User
    assert User.select().count() == 1
    assert response.status_code in (302, 400)


def test_setup_refuses_mismatched_passwords(client, db):
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                           "password": PASSWORD, "confirm": "different!"})
    assert response.status_code == 400
    assert "The passwords differ" in response.text
    from models.users import User
    assert User.select().count() == 0


@pytest.mark.parametrize("email", [
    "admin", "admin@localhost", "me@@example.com", "me@example..com", "me@.example.com",
    "me@example.", "<me>@example.com", "me,you@example.com", ".me@example.com",
    "me@exa_mple.com", "me@10.0.0.1", "me@-example.com",
])
def test_the_first_run_page_refuses_what_is_no_e_mail_address_beside_the_field(
        client, db, email):
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.text), "email": email,
                                           "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 400
    error = parse(response).by_id("email-error").text
    assert "Enter a valid e-mail address" in error
    assert parse(response).by_id("email").attrs["aria-invalid"] == "true"
    from models.users import User
    assert User.select().count() == 0


@pytest.mark.parametrize("email, stored", [
    ("First.Last+runwatch@Mail.Example.co.uk", "first.last+runwatch@mail.example.co.uk"),
    ("jörg@müller.de", "jörg@müller.de"), ("o'hara@example.ie", "o'hara@example.ie"),
])
def test_the_first_run_page_takes_any_real_address(client, db, email, stored):
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.text), "email": email,
                                           "password": PASSWORD, "confirm": PASSWORD})
    assert response.status_code == 302
    from models.users import User
    assert [u.email for u in User.select()] == [stored]


def test_an_account_made_by_an_older_release_with_a_loose_address_still_signs_in(client, db):
    from models.users import User, authenticate, create_first_user
    user = create_first_user("placeholder@example.com", PASSWORD)
    User.update(email="ops@intranet.").where(User.id == user.id).execute()
    assert authenticate("ops@intranet.", PASSWORD).id == user.id


def test_tokens_are_created_shown_once_and_revoked_in_settings(logged_in, app):
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/tokens", data={"csrf_token": csrf_from(page.text),
                                                        "name": "nightly cron",
                                                        "scopes": ["ingest", "read", "admin"]})
    assert response.status_code == 200
    secret = response.text.split('id="new-token">')[1].split("<")[0]
    # At the top, where it cannot be missed: right under the page's heading.
    main = parse(response).find("main")[0]
    first = [e for e in main.children if e.tag not in ("p",)][:2]
    assert [e.tag for e in first] == ["h1", "article"]
    assert first[1].attrs["id"] == "new-token-panel" and secret in first[1].text
    api = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.get("/api/ping", headers=headers).status_code == 200
    listing = logged_in.get("/settings").text
    assert "nightly cron" in listing and secret not in listing
    form_action = listing.split('action="/settings/tokens/')[1].split('"')[0]
    response = logged_in.post(f"/settings/tokens/{form_action}",
                              data={"csrf_token": csrf_from(listing)})
    assert response.status_code == 302
    assert api.get("/api/ping", headers=headers).status_code == 401


def test_a_user_cannot_revoke_another_users_token(logged_in, app, db):
    from models.users import ApiToken, create_user
    other = create_user("other@example.com", "another password")
    make_token(other, "theirs")
    row = ApiToken.get(ApiToken.user == other)
    page = logged_in.get("/settings")
    logged_in.post(f"/settings/tokens/{row.id}/revoke", data={"csrf_token": csrf_from(page.text)})
    assert ApiToken.get_by_id(row.id).revoked_at is None


def test_pages_escape_what_users_typed(logged_in):
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/tokens", data={"csrf_token": csrf_from(page.text),
                                                        "name": "<script>alert(1)</script>",
                                                        "scopes": "read"})
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_a_signed_in_user_adds_an_account_for_a_colleague(logged_in, app, db):
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/accounts", data={
        "csrf_token": csrf_from(page.text), "email": "colleague@example.com",
        "password": "their own password"})
    assert response.status_code == 302
    assert "colleague@example.com" in logged_in.get("/settings").text
    other = app.test_client()
    login = other.get("/login")
    response = other.post("/login", data={"csrf_token": csrf_from(login.text),
                                          "email": "colleague@example.com",
                                          "password": "their own password"})
    assert response.status_code == 302


@pytest.mark.parametrize("email, password, message", [
    ("not-an-address", "long enough pw", "valid e-mail"),
    (EMAIL, "long enough pw", "already exists"),
    ("new@example.com", "short", "At least 8"),
])
def test_a_bad_new_account_is_refused_beside_its_field(logged_in, db, email, password, message):
    from models.users import User
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/accounts", data={
        "csrf_token": csrf_from(page.text), "email": email, "password": password})
    assert response.status_code == 400
    assert message in response.text
    assert User.select().count() == 1


def test_the_settings_page_lists_accounts_and_tokens_under_its_own_title(logged_in):
    from html.parser import HTMLParser

    class Titles(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.title, self.headings = None, "", []

        def handle_starttag(self, tag, attrs):
            self.inside = tag

        def handle_data(self, data):
            if self.inside == "title":
                self.title += data
            elif self.inside == "h2":
                self.headings.append(data.strip())

        def handle_endtag(self, tag):
            self.inside = None

    parser = Titles()
    parser.feed(logged_in.get("/settings").text)
    assert parser.title.strip() == "Settings · Runwatch"
    # The page's sections, then what every page has (the list of keys).
    assert parser.headings[:4] == ["Account", "API tokens", "Sources", "Accounts"]


def test_a_token_sent_beside_a_session_decides_alone(logged_in, token):
    wrong = logged_in.get("/api/ping", headers={"Authorization": "Bearer rw_not-a-real-token"})
    assert wrong.status_code == 401 and wrong.json["error"]["code"] == "unauthorized"
    right = logged_in.get("/api/ping", headers={"Authorization": f"Bearer {token}"})
    assert right.status_code == 200 and right.json["user"] == EMAIL
    assert logged_in.get("/api/ping").status_code == 200  # the session alone still works


def test_a_token_decides_alone_beside_a_remember_me_cookie(client, user, token):
    page = client.get("/login")
    client.post("/login", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                "password": PASSWORD, "remember": "y"})
    client.delete_cookie("session")
    assert client.get("/api/ping").status_code == 200  # the remember-me cookie alone
    for header, status in ((f"Bearer {token}", 200), ("Bearer rw_not-a-real-token", 401)):
        client.delete_cookie("session")
        assert client.get("/api/ping", headers={"Authorization": header}).status_code == status
