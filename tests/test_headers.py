"""Security headers on every response; a strict CSP on pages; nothing secret kept in caches."""
from __future__ import annotations

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from helpers import csrf_from

PAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                "X-Frame-Options": "DENY"}


def check(response, *, html: bool, cached: bool = False):
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.request.path)
    policy = response.headers.get("Content-Security-Policy")
    if html:
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["frame-ancestors"] == "'none'"
        assert directives["script-src"] == "'self'"
        assert directives["style-src"] == "'self'"
        assert "unsafe" not in policy
    else:
        assert policy is None or "frame-ancestors 'none'" in policy
    if cached:
        assert response.headers.get("Cache-Control") != "no-store"
    else:
        assert response.headers.get("Cache-Control") == "no-store"
    response.close()


def test_signed_out_responses_carry_the_headers(client, user):
    check(client.get("/login"), html=True)
    check(client.get("/executions"), html=False)  # the redirect to the login
    check(client.get("/api/automations/executions"), html=False)  # 401 JSON
    check(client.get("/static/app.css"), html=False, cached=True)
    check(client.post("/login", data={"email": "a@b.c", "password": "x"}), html=True)  # CSRF 400


def test_signed_in_pages_errors_and_the_api_carry_the_headers(client, logged_in, api):
    for url in ("/", "/executions", "/alerts", "/alerts/log", "/settings",
                "/executions/12345", "/no-such-page"):
        response = client.get(url)
        assert response.mimetype == "text/html", url
        check(response, html=True)
    check(api.get("/api/automations/executions"), html=False)
    check(api.get("/api/automations/executions/12345"), html=False)  # 404 JSON


def test_the_page_that_shows_a_new_token_is_never_stored(client, logged_in):
    page = client.get("/settings")
    response = client.post("/settings/tokens", data={"name": "ci", "scopes": ["read"],
                                                     "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 200
    assert "rw_" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_TIME_LIMIT": 1}


def _issued_earlier(app, client, seconds: int) -> str:
    """This session's CSRF token as a page would have given it `seconds` ago (a form left
    open that long): signed as Flask-WTF signs it, on a clock set back."""
    with client.session_transaction() as session:
        raw = session["csrf_token"]

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return super().get_timestamp() - seconds

    return URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token",
                                  signer=Earlier).dumps(raw)


def test_a_form_token_expires(app, client, logged_in):
    def create_token(name: str, csrf_token: str):
        return client.post("/settings/tokens", data={"name": name, "scopes": ["read"],
                                                     "csrf_token": csrf_token})

    token = csrf_from(client.get("/settings").get_data(as_text=True))
    assert create_token("fresh", token).status_code == 200
    assert create_token("signed now", _issued_earlier(app, client, 0)).status_code == 200
    response = create_token("late", _issued_earlier(app, client, 3))  # the limit is 1 s
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


@pytest.mark.parametrize("method, path, allowed", [
    ("DELETE", "/api/ping", {"GET"}),
    ("TRACE", "/api/automations/executions", {"GET", "POST"}),
    ("PUT", "/api/automations/alerts/1", {"GET", "PATCH", "DELETE"}),
    ("GET", "/v1/traces", {"POST"}),
    ("GET", "/logout", {"POST"}),
    ("GET", "/alerts/rules/1/delete", {"POST"}),
])
def test_a_method_a_url_does_not_answer_gets_405_with_the_ones_it_does(
        logged_in, api, method, path, allowed):
    """RFC 9110: a 405 carries `Allow`, on pages (a session) and the API (a token) alike."""
    caller = api.client if path.startswith(("/api/", "/v1/")) else logged_in
    headers = api.headers if caller is api.client else {}
    response = caller.open(path, method=method, headers=headers)
    assert response.status_code == 405, response.text
    listed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= listed <= allowed | {"HEAD", "OPTIONS"}
    assert method not in listed
