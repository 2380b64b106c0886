"""Signing in resists guessing: failed attempts are limited per client address and per
e-mail address, and known and unknown addresses take the same work."""
from __future__ import annotations

import statistics
import time

import pytest

from helpers import EMAIL, PASSWORD, csrf_from, parse

SMALL_LIMIT = "3 per 2 seconds"


def attempt(client, email: str = EMAIL, password: str = "wrong password",
            address: str = "10.0.0.1"):
    """One sign-in from a client address."""
    environ = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=environ)
    return client.post("/login", environ_base=environ, data={
        "csrf_token": csrf_from(page.text), "email": email, "password": password})


@pytest.fixture
def small_limit(app_config):
    app_config["LOGIN_RATE_LIMIT"] = SMALL_LIMIT


def test_the_eleventh_failed_attempt_gets_429_with_retry_after(client, user):
    for number in range(10):
        assert attempt(client).status_code == 401, number
    refused = attempt(client)
    assert refused.status_code == 429
    seconds = int(refused.headers["Retry-After"])
    assert 1 <= seconds <= 60
    alert = parse(refused).find("p", role="alert")
    assert alert and "Too many failed sign-ins" in alert[0].text
    assert f"Try again in {seconds} second" in alert[0].text
    # The message is in the login form, which keeps the address typed.
    form = parse(refused).find("form")[0]
    assert form.find("p", role="alert")
    assert form.find("input", name="email")[0].attrs["value"] == EMAIL


def test_another_client_with_another_address_is_not_blocked(small_limit, client, app, user):
    from models.users import create_user
    from models.db import connection
    with connection():
        create_user("other@example.com", PASSWORD)
    for _ in range(3):
        attempt(client)
    assert attempt(client).status_code == 429
    other = app.test_client()
    assert attempt(other, "other@example.com", address="10.0.0.2").status_code == 401
    assert attempt(other, "other@example.com", PASSWORD, address="10.0.0.2").status_code == 302


def test_one_account_is_limited_whichever_client_address_tries(small_limit, client, app, user):
    for number in range(3):
        assert attempt(client, address=f"10.0.1.{number}").status_code == 401
    assert attempt(app.test_client(), address="10.0.1.99").status_code == 429


def test_one_client_address_is_limited_whichever_account_it_tries(small_limit, client, user):
    for number in range(3):
        assert attempt(client, f"nobody{number}@example.com").status_code == 401
    assert attempt(client, "someone-else@example.com").status_code == 429


def test_the_right_password_waits_until_the_window_has_room(small_limit, client, user):
    for _ in range(3):
        attempt(client)
    refused = attempt(client, password=PASSWORD)
    assert refused.status_code == 429
    assert client.get("/settings").status_code == 302
    time.sleep(int(refused.headers["Retry-After"]) + 0.2)
    assert attempt(client, password=PASSWORD).status_code == 302
    assert client.get("/settings").status_code == 200


def test_successful_sign_ins_are_not_counted(small_limit, client, app, user):
    for _ in range(6):
        assert attempt(app.test_client(), password=PASSWORD).status_code == 302


def test_a_bad_limit_setting_stops_the_app_with_a_message(app_config):
    from app import create_app
    with pytest.raises(SystemExit, match="RUNWATCH_LOGIN_RATE_LIMIT"):
        create_app({**app_config, "LOGIN_RATE_LIMIT": "often"})


# --- The same work for known and unknown addresses --------------------------------------

@pytest.fixture
def generous_limit(app_config):
    app_config["LOGIN_RATE_LIMIT"] = "100000 per minute"


def _seconds(client, email: str, number: int) -> float:
    start = time.perf_counter()
    assert attempt(client, email, address=f"10.1.0.{number}").status_code == 401
    return time.perf_counter() - start


def test_known_and_unknown_addresses_take_about_as_long(generous_limit, client, user):
    attempt(client, "warm-up@example.com")  # the dummy hash is made once per process
    known, unknown = [], []
    for number in range(7):
        known.append(_seconds(client, EMAIL, number))
        unknown.append(_seconds(client, "nobody@example.com", number))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 < ratio < 2, (known, unknown)  # it was 0.03 when only known ones were hashed


@pytest.mark.parametrize("email", [EMAIL, "nobody@example.com", "disabled@example.com",
                                   "not-an-address", "dev\x00@example.com"])
def test_every_failed_sign_in_checks_one_password_hash(client, user, monkeypatch, email):
    import models.users
    from models.db import connection
    with connection():
        models.users.create_user("disabled@example.com", PASSWORD)
        models.users.set_enabled(models.users.User.get(
            models.users.User.email == "disabled@example.com"), False)
    checked = []
    real = models.users.check_password_hash
    monkeypatch.setattr(models.users, "check_password_hash",
                        lambda stored, password: checked.append(stored) or real(stored,
                                                                                  password))
    password = PASSWORD if email == "disabled@example.com" else "wrong password"
    assert attempt(client, email, password).status_code == 401
    assert len(checked) == 1
    assert checked[0].split("$")[0] == user.password_hash.split("$")[0]  # the same method


# --- NUL characters -------------------------------------------------------------------------

@pytest.mark.parametrize("email, password", [("dev\x00@example.com", PASSWORD),
                                             (EMAIL, "correct horse\x00battery"),
                                             ("\x00", "\x00")])
def test_a_nul_in_the_sign_in_form_is_a_wrong_credential(client, user, email, password):
    response = attempt(client, email, password)
    assert response.status_code == 401
    assert "Wrong e-mail address or password" in response.text


@pytest.mark.parametrize("email, password, message", [
    ("first\x00@example.com", PASSWORD, "valid e-mail"),
    (EMAIL, "correct\x00horse battery", "NUL"),
])
def test_a_nul_in_the_setup_form_is_a_400_beside_its_field(client, db, email, password, message):
    from models.users import User
    page = client.get("/setup")
    response = client.post("/setup", data={"csrf_token": csrf_from(page.text), "email": email,
                                           "password": password, "confirm": password})
    assert response.status_code == 400
    assert message in response.text
    assert User.select().count() == 0


@pytest.mark.parametrize("email, password, message", [
    ("new\x00@example.com", PASSWORD, "valid e-mail"),
    ("new@example.com", "correct\x00horse battery", "NUL"),
])
def test_a_nul_in_the_new_account_form_is_a_400_beside_its_field(logged_in, db, email,
                                                                  password, message):
    from models.users import User
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/accounts", data={
        "csrf_token": csrf_from(page.text), "email": email, "password": password})
    assert response.status_code == 400
    assert message in response.text
    assert User.select().count() == 1


# --- Fields that are not text ---------------------------------------------------------------

def field_error(response, name: str) -> str:
    """The error shown beside the field `name`."""
    return parse(response).by_id(f"{name}-error").text


# A JSON body (with the token in X-CSRFToken) can hold numbers, lists of objects and objects
# where text goes; a multipart body can hold a file.
NOT_TEXT = [
    pytest.param({"json": {"email": 5, "password": PASSWORD}}, "email", id="json-email-number"),
    pytest.param({"json": {"email": EMAIL, "password": 7}}, "password",
                 id="json-password-number"),
    pytest.param({"json": {"email": {"a": 1}, "password": PASSWORD}}, "email",
                 id="json-email-object"),
    pytest.param({"json": {"email": EMAIL, "password": [{"a": 1}]}}, "password",
                 id="json-password-list-of-objects"),
    pytest.param({"files": {"email": EMAIL.encode()}, "password": PASSWORD}, "email",
                 id="multipart-email-file"),
    pytest.param({"files": {"password": PASSWORD.encode()}, "email": EMAIL}, "password",
                 id="multipart-password-file"),
]


def send_not_text(client, url: str, page: str, body: dict, **fields):
    """POST `body` (see NOT_TEXT) with the other `fields` and the page's CSRF token."""
    import io
    token = csrf_from(client.get(page).text)
    if "json" in body:
        return client.post(url, json={**fields, **body["json"]},
                           headers={"X-CSRFToken": token})
    files = {name: (io.BytesIO(data), f"{name}.txt") for name, data in body["files"].items()}
    text = {k: v for k, v in body.items() if k != "files"}
    return client.post(url, data={"csrf_token": token, **fields, **text, **files},
                       content_type="multipart/form-data")


@pytest.mark.parametrize("body, field", NOT_TEXT)
def test_a_sign_in_field_that_is_not_text_is_a_400_beside_it_and_counts(small_limit, client,
                                                                        user, body, field):
    for _ in range(3):  # SMALL_LIMIT: 3 failed sign-ins
        response = send_not_text(client, "/login", "/login", body)
        assert response.status_code == 400
        label = {"email": "E-mail address", "password": "Password"}[field]
        assert field_error(response, field) == f"{label} must be text."
    assert attempt(client, password=PASSWORD, address="127.0.0.1").status_code == 429


@pytest.mark.parametrize("body, field", NOT_TEXT)
def test_a_setup_field_that_is_not_text_is_a_400_beside_it(client, db, body, field):
    from models.users import User
    response = send_not_text(client, "/setup", "/setup", body, confirm=PASSWORD)
    assert response.status_code == 400
    assert field_error(response, field).endswith("must be text.")
    assert User.select().count() == 0


@pytest.mark.parametrize("body, field", NOT_TEXT)
def test_a_new_account_field_that_is_not_text_is_a_400_beside_it(logged_in, db, body, field):
    from models.users import User
    response = send_not_text(logged_in, "/settings/accounts", "/settings", body)
    assert response.status_code == 400
    assert field_error(response, field).endswith("must be text.")
    assert User.select().count() == 1


@pytest.mark.parametrize("fields", [{"name": 5, "scopes": ["admin"]},
                                    {"current_password": 5, "new_password": "x" * 9,
                                     "confirm_password": "x" * 9}], ids=["token", "password"])
def test_the_settings_forms_take_text_alone(logged_in, db, fields):
    from models.users import ApiToken, User
    url = "/settings/tokens" if "name" in fields else "/settings/password"
    before = User.get().password_hash, ApiToken.select().count()
    response = logged_in.post(url, json=fields,
                              headers={"X-CSRFToken": csrf_from(logged_in.get("/settings").text)})
    assert response.status_code == 400
    assert field_error(response, next(iter(fields))).endswith("must be text.")
    assert (User.get().password_hash, ApiToken.select().count()) == before


@pytest.mark.long(7)
# --- Attempts at the same moment --------------------------------------------------------------

def _at_once(url: str, sessions: list, data: dict) -> list[int]:
    """POST `data` (with each session's CSRF token) from every session at the same moment;
    the status of each answer."""
    import threading

    start, answers = threading.Barrier(len(sessions)), []

    def post(session, token):
        start.wait()
        answers.append(session.post(url, timeout=60, allow_redirects=False,
                                    data={"csrf_token": token, **data}).status_code)

    threads = [threading.Thread(target=post, args=pair) for pair in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.fixture
def one_process(database_url, tmp_path):
    """A server process with 16 threads (the default memory:// store counts per process)."""
    from helpers import LiveServer
    from models import database

    database.close() if not database.is_closed() else None
    server = LiveServer(database_url, tmp_path, workers=1, threads=16).start()
    yield server
    server.stop()


def test_concurrent_wrong_passwords_check_no_more_passwords_than_the_limit(app, user,
                                                                           one_process):
    """40 wrong passwords for one account at once: at most the limit (10) are answered as a
    wrong password, the rest 429, and then even the right one waits."""
    import requests

    url = one_process.url
    sessions = []
    for _ in range(40):  # each attempt on a session (and CSRF token) of its own
        session = requests.Session()
        token = csrf_from(session.get(f"{url}/login", timeout=10, headers={
            "Connection": "close"}).text)  # no idle connection for the server to drop
        sessions.append((session, token))
    answers = _at_once(f"{url}/login", sessions, {"email": EMAIL, "password": "wrong password"})
    print(f"40 wrong passwords at once: {answers.count(401)} answered 401 (checked), "
          f"{answers.count(429)} answered 429")
    assert sorted(set(answers)) == [401, 429], answers
    assert answers.count(401) <= 10, f"{answers.count(401)} passwords were checked"
    session, token = sessions[0]
    right = session.post(f"{url}/login", allow_redirects=False, timeout=10,
                         data={"csrf_token": token, "email": EMAIL, "password": PASSWORD})
    assert right.status_code == 429


def test_concurrent_wrong_current_passwords_check_no_more_than_the_limit(app, user,
                                                                         one_process):
    """A signed-in session (a stolen cookie) guessing its account's password in a change of
    password, 40 guesses at once: at most the limit (10) are checked, and then even the right
    password waits; the password stays as it was."""
    import requests

    url = one_process.url
    signed_in = requests.Session()
    page = signed_in.get(f"{url}/login", timeout=10)
    assert signed_in.post(f"{url}/login", timeout=10, allow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "email": EMAIL, "password": PASSWORD
    }).status_code == 302
    token = csrf_from(signed_in.get(f"{url}/settings", timeout=10).text)
    sessions = []
    for _ in range(40):
        session = requests.Session()
        session.cookies.update(signed_in.cookies)
        session.headers["Connection"] = "close"
        sessions.append((session, token))
    change = {"new_password": "a brand new password", "confirm_password": "a brand new password"}
    answers = _at_once(f"{url}/settings/password", sessions,
                       {"current_password": "a wrong guess", **change})
    print(f"40 wrong current passwords at once: {answers.count(400)} answered 400 (checked), "
          f"{answers.count(429)} answered 429")
    assert sorted(set(answers)) == [400, 429], answers
    assert answers.count(400) <= 10, f"{answers.count(400)} passwords were checked"
    right = signed_in.post(f"{url}/settings/password", timeout=10, allow_redirects=False,
                           data={"csrf_token": token, "current_password": PASSWORD, **change})
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
    assert "Too many wrong passwords" in right.text
    fresh = requests.Session()
    page = fresh.get(f"{url}/login", timeout=10)
    assert fresh.post(f"{url}/login", timeout=10, allow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "email": EMAIL, "password": PASSWORD
    }).status_code == 302  # the password is unchanged (and sign-ins are counted apart)
