"""Sessions end when they should: signing out, a password change and disabling end every
session and remember-me cookie of the account; cookies are unique per sign-in and flagged."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
import requests

from helpers import EMAIL, PASSWORD, csrf_from, make_token, parse

OTHER = "colleague@example.com"
OTHER_PASSWORD = "their own password"
COOKIES = ("session", "remember_token")


def sign_in(app, email: str = EMAIL, password: str = PASSWORD, remember: bool = True):
    """A new test client signed in through the login form."""
    client = app.test_client()
    page = client.get("/login")
    data = {"csrf_token": csrf_from(page.text), "email": email, "password": password}
    if remember:
        data["remember"] = "y"
    response = client.post("/login", data=data)
    assert response.status_code == 302, response.text
    return client


def cookies_of(client) -> dict[str, str]:
    """The client's session and remember-me cookies, copied."""
    return {name: client.get_cookie(name).value for name in COOKIES
            if client.get_cookie(name) is not None}


def replay(app, cookies: dict[str, str]):
    """A fresh client that holds only the given cookies."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def assert_signed_out(client):
    page = client.get("/settings")
    assert page.status_code == 302 and page.headers["Location"].startswith("/login"), \
        page.status_code
    api = client.get("/api/ping")
    assert api.status_code == 401 and api.json["error"]["code"] == "unauthorized"


def assert_signed_in(client, email: str = EMAIL):
    page = client.get("/settings")
    assert page.status_code == 200, page.status_code
    assert client.get("/api/ping").json["user"] == email


def post_form(client, url: str, data: dict | None = None, page: str = "/settings"):
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


@pytest.fixture
def colleague(user, db):
    from models.users import create_user
    return create_user(OTHER, OTHER_PASSWORD)


# --- Signing out ------------------------------------------------------------------------

def test_cookies_copied_before_sign_out_no_longer_work_after_it(app, user):
    client = sign_in(app)
    copied = cookies_of(client)
    assert set(copied) == set(COOKIES)
    assert_signed_in(replay(app, copied))
    assert post_form(client, "/logout").status_code == 302
    assert_signed_out(client)
    assert_signed_out(replay(app, copied))
    assert_signed_out(replay(app, {"session": copied["session"]}))
    assert_signed_out(replay(app, {"remember_token": copied["remember_token"]}))


def test_signing_out_ends_the_accounts_sessions_on_every_device(app, user):
    laptop, phone = sign_in(app), sign_in(app, remember=False)
    post_form(laptop, "/logout")
    assert_signed_out(phone)


def test_signing_out_leaves_other_accounts_and_the_tokens_signed_in(app, user, colleague):
    token = make_token(user)
    mine, theirs = sign_in(app), sign_in(app, OTHER, OTHER_PASSWORD)
    post_form(mine, "/logout")
    assert_signed_in(theirs, OTHER)
    ping = app.test_client().get("/api/ping", headers={"Authorization": f"Bearer {token}"})
    assert ping.status_code == 200


def test_no_two_sign_ins_share_a_cookie(app, user):
    first, second = cookies_of(sign_in(app)), cookies_of(sign_in(app))
    assert first["remember_token"] != second["remember_token"]
    assert first["session"] != second["session"]


def test_sessions_made_before_session_generations_existed_are_not_accepted(app, user):
    from flask.sessions import SecureCookieSessionInterface
    from flask_login.utils import encode_cookie

    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    legacy_session = serializer.dumps({"_user_id": str(user.id), "_fresh": True})
    with app.app_context():
        legacy_remember = encode_cookie(str(user.id))
    assert_signed_out(replay(app, {"session": legacy_session}))
    assert_signed_out(replay(app, {"remember_token": legacy_remember}))


# --- Cookie flags --------------------------------------------------------------------------

def set_cookies(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def login_response(app):
    client = app.test_client()
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                       "password": PASSWORD, "remember": "y"})


@pytest.mark.parametrize("base_url, secure", [("https://runwatch.example.com", True),
                                               ("http://runwatch.test", False)])
def test_cookies_are_httponly_samesite_lax_and_secure_on_https(app_config, request, base_url,
                                                               secure):
    app_config["BASE_URL"] = base_url
    app = request.getfixturevalue("app")
    request.getfixturevalue("user")
    cookies = set_cookies(login_response(app))
    # Over https the names carry the __Host- prefix (this host only, Path=/, no Domain).
    names = [("__Host-" if secure else "") + name for name in COOKIES]
    assert set(names) <= set(cookies)
    for name in names:
        flags = [part.strip().lower() for part in cookies[name].split(";")]
        assert "httponly" in flags and "samesite=lax" in flags, cookies[name]
        assert ("secure" in flags) is secure, cookies[name]
        assert "path=/" in flags and not any(f.startswith("domain=") for f in flags)


def test_the_remember_me_cookie_lasts_thirty_days(app, user):
    cookie = set_cookies(login_response(app))["remember_token"]
    expires = next(part.split("=", 1)[1] for part in cookie.split("; ")
                   if part.lower().startswith("expires="))
    left = parsedate_to_datetime(expires) - datetime.now(timezone.utc)
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)


# --- Changing a password -------------------------------------------------------------------

def change_password(client, current: str = PASSWORD, new: str = "a brand new password",
                    confirm: str | None = None):
    return post_form(client, "/settings/password", {
        "current_password": current, "new_password": new,
        "confirm_password": new if confirm is None else confirm})


def test_a_password_change_ends_every_other_session_and_keeps_this_one(app, user):
    here, elsewhere = sign_in(app), sign_in(app)
    copied = cookies_of(here)
    response = change_password(here)
    assert response.status_code == 302, response.text
    assert "Every other session" in here.get("/settings").text
    assert_signed_in(here)
    assert_signed_out(elsewhere)
    assert_signed_out(replay(app, copied))
    # This session got a new remember-me cookie, which works on its own.
    assert_signed_in(replay(app, {"remember_token": cookies_of(here)["remember_token"]}))


def test_after_a_password_change_only_the_new_password_signs_in(app, user, auth):
    change_password(sign_in(app))
    assert auth.login(password=PASSWORD).status_code == 401
    assert auth.login(password="a brand new password").status_code == 302


@pytest.mark.parametrize("current, new, confirm, message", [
    ("not my password", "a brand new password", None, "not your current password"),
    (PASSWORD, "short", None, "At least 8"),
    (PASSWORD, "a brand new password", "something else", "The passwords differ"),
    (PASSWORD, "a brand\x00new password", None, "NUL"),
])
def test_a_refused_password_change_says_why_and_changes_nothing(app, user, auth, current, new,
                                                                 confirm, message):
    client = sign_in(app)
    response = change_password(client, current, new, confirm)
    assert response.status_code == 400
    assert message in response.text
    assert_signed_in(client)
    assert auth.login().status_code == 302


# --- Disabling and enabling accounts --------------------------------------------------------

def account_action(client, email: str, action: str):
    from models.users import User
    user_id = User.get(User.email == email).id
    return post_form(client, f"/settings/accounts/{user_id}/{action}")


def test_disabling_an_account_ends_its_sessions_refuses_sign_in_and_its_tokens(app, user,
                                                                                colleague):
    admin, theirs = sign_in(app), sign_in(app, OTHER, OTHER_PASSWORD)
    copied = cookies_of(theirs)
    token = make_token(colleague)
    headers = {"Authorization": f"Bearer {token}"}
    response = account_action(admin, OTHER, "disable")
    assert response.status_code == 302
    rows = {row.find("td")[0].text: row.find("td")[1].text
            for row in parse(admin.get("/settings")).find("tr", class_="account")}
    assert rows == {EMAIL: "enabled", OTHER: "disabled"}
    assert_signed_out(theirs)
    assert_signed_out(replay(app, copied))
    api = app.test_client().get("/api/ping", headers=headers)
    assert api.status_code == 401 and api.json["error"]["code"] == "unauthorized"
    refused = app.test_client()
    page = refused.get("/login")
    response = refused.post("/login", data={"csrf_token": csrf_from(page.text), "email": OTHER,
                                            "password": OTHER_PASSWORD})
    assert response.status_code == 401
    assert "Wrong e-mail address or password" in response.text

    assert account_action(admin, OTHER, "enable").status_code == 302
    assert app.test_client().get("/api/ping", headers=headers).status_code == 200
    assert_signed_in(sign_in(app, OTHER, OTHER_PASSWORD), OTHER)
    assert_signed_out(replay(app, copied))  # the old sessions stay ended


def test_nobody_disables_their_own_account(app, user, colleague):
    from models.users import User
    client = sign_in(app)
    response = account_action(client, EMAIL, "disable")
    assert response.status_code == 400
    assert "your own account" in response.text
    assert User.get(User.email == EMAIL).disabled_at is None
    assert_signed_in(client)


def test_the_settings_page_offers_no_button_for_ones_own_account(app, user, colleague):
    tree = parse(sign_in(app).get("/settings"))
    forms = {form.attrs.get("action") for form in tree.find("form")}
    assert f"/settings/accounts/{colleague.id}/disable" in forms
    assert f"/settings/accounts/{user.id}/disable" not in forms


def test_an_unknown_account_is_a_404(app, user):
    assert post_form(sign_in(app), "/settings/accounts/999999/disable").status_code == 404


def test_the_last_enabled_account_is_never_disabled(app, user, colleague, db):
    from models.users import AccountError, User, set_enabled
    set_enabled(colleague, False)
    with pytest.raises(AccountError, match="last enabled account"):
        set_enabled(user, False)
    assert User.get(User.email == EMAIL).disabled_at is None


# --- Over HTTP, against a real server -------------------------------------------------------

def test_a_live_servers_cookies_stop_working_after_sign_out(live_server, user):
    session = requests.Session()
    page = session.get(f"{live_server.url}/login", timeout=10)
    response = session.post(f"{live_server.url}/login", timeout=10, allow_redirects=False,
                            data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                  "password": PASSWORD, "remember": "y"})
    assert response.status_code == 302
    copied = session.cookies.get_dict()
    assert set(COOKIES) <= set(copied)
    settings = session.get(f"{live_server.url}/settings", timeout=10)
    assert settings.status_code == 200
    session.post(f"{live_server.url}/logout", timeout=10, allow_redirects=False,
                 data={"csrf_token": csrf_from(settings.text)})
    replayed = requests.get(f"{live_server.url}/settings", cookies=copied, timeout=10,
                            allow_redirects=False)
    assert replayed.status_code == 302 and "/login" in replayed.headers["Location"]
    api = requests.get(f"{live_server.url}/api/ping", cookies=copied, timeout=10)
    assert api.status_code == 401


def test_wrong_current_passwords_are_limited_like_sign_ins(app_config, request):
    app_config["LOGIN_RATE_LIMIT"] = "3 per 2 seconds"
    app = request.getfixturevalue("app")
    request.getfixturevalue("user")
    client = sign_in(app)
    for _ in range(3):
        assert change_password(client, current="a wrong guess").status_code == 400
    refused = change_password(client)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Try again in" in refused.text
    assert_signed_in(client)


# --- A CSRF token from before signing in ---------------------------------------------------

def _tokens_and_accounts() -> tuple[int, int]:
    from models.users import ApiToken, User
    from models.db import connection
    with connection():
        return ApiToken.select().count(), User.select().count()


def _forms_refuse_the_old_token_and_take_a_fresh_one(client, old_token: str):
    """The token of the anonymous session is refused on the forms that create a token and an
    account (nothing is created); the signed-in session's own token works."""
    before = _tokens_and_accounts()
    refused = [client.post("/settings/tokens", data={"csrf_token": old_token, "name": "planted",
                                                     "scopes": "admin"}),
               client.post("/settings/accounts", data={
                   "csrf_token": old_token, "email": "planted@example.com",
                   "password": "planted password"})]
    assert [r.status_code for r in refused] == [400, 400]
    assert _tokens_and_accounts() == before
    fresh = csrf_from(client.get("/settings").text)
    assert fresh != old_token
    created = client.post("/settings/tokens", data={"csrf_token": fresh, "name": "mine",
                                                    "scopes": "admin"})
    assert created.status_code in (200, 302), created.text
    assert _tokens_and_accounts()[0] == before[0] + 1


def test_a_csrf_token_from_before_signing_in_is_refused_after_it(app, user):
    client = app.test_client()  # someone planted this anonymous session and read its token
    planted = csrf_from(client.get("/login").text)
    signed_in = client.post("/login", data={"csrf_token": planted, "email": EMAIL,
                                            "password": PASSWORD})
    assert signed_in.status_code == 302
    _forms_refuse_the_old_token_and_take_a_fresh_one(client, planted)


def test_a_csrf_token_from_before_the_first_run_setup_is_refused_after_it(app):
    client = app.test_client()
    planted = csrf_from(client.get("/setup").text)
    created = client.post("/setup", data={"csrf_token": planted, "email": EMAIL,
                                          "password": PASSWORD, "confirm": PASSWORD})
    assert created.status_code == 302
    _forms_refuse_the_old_token_and_take_a_fresh_one(client, planted)


def test_a_csrf_token_from_before_a_password_change_is_refused_after_it(app, user):
    client = sign_in(app)
    before = csrf_from(client.get("/settings").text)
    changed = client.post("/settings/password", data={
        "csrf_token": before, "current_password": PASSWORD,
        "new_password": "a brand new password", "confirm_password": "a brand new password"})
    assert changed.status_code == 302
    _forms_refuse_the_old_token_and_take_a_fresh_one(client, before)
