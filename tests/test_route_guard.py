"""Every route of the URL map, walked: none but the open ones answers without credentials,
and no form or API write goes through on a session without its CSRF token.

The walk reads Flask's URL map, so a route added later is checked without anyone
remembering to list it here.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.routing import AnyConverter, IntegerConverter, PathConverter

from alert_servers import make_rule, report
from helpers import csrf_from, make_token
from models import database

# What answers without credentials: signing in, the first-run account and static files;
# `/healthz` too, once it exists. Nothing else, whoever adds a route.
OPEN_ENDPOINTS = {"auth.login", "auth.setup", "static"}
OPEN_PATHS = {"/healthz"}
MACHINE_PREFIXES = ("/api/", "/v1/")  # answered with 401, never a redirect to a page
TOKEN_ONLY_PREFIX = "/v1/"  # OpenTelemetry's intake: a bearer token alone, never a session
TOKEN_ONLY_PATHS = {"/metrics"}  # Prometheus' scrape: the same


def _sample(converter) -> str:
    """A plausible value for a URL argument: ids of things that exist, real file names."""
    if isinstance(converter, IntegerConverter):
        return "1"
    if isinstance(converter, AnyConverter):
        return sorted(converter.items)[0]
    if isinstance(converter, PathConverter):
        return "app.css"
    return "nightly-backup"


def walk(app):
    """(rule, method, url) for every rule of the URL map and every method it answers."""
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        values = {name: _sample(conv) for name, conv in rule._converters.items()}
        url = adapter.build(rule.endpoint, values, method=next(iter(rule.methods)))
        for method in sorted(rule.methods):
            yield rule, method, url


def _is_open(rule) -> bool:
    return rule.endpoint in OPEN_ENDPOINTS or rule.rule in OPEN_PATHS


def _is_machine(url: str) -> bool:
    return url.startswith(MACHINE_PREFIXES) or url in TOKEN_ONLY_PATHS


@pytest.fixture
def things(db):
    """A run and a rule, so that the ids in the walked URLs exist."""
    report("nightly-backup", "F")
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]}])


def _row_counts() -> dict[str, int]:
    return {table: database.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
            for table in database.get_tables()}


def test_the_walk_covers_every_kind_of_route(app):
    kinds = {(rule.endpoint.partition(".")[0], method) for rule, method, _ in walk(app)}
    assert {("history", "GET"), ("ingest", "POST"), ("alerts", "DELETE"),
            ("settings", "POST"), ("executions", "GET"), ("static", "GET")} <= kinds
    assert sum(1 for _ in walk(app)) >= 100


def test_without_credentials_only_the_open_routes_answer(app, client, user, things):
    answered = []
    for rule, method, url in walk(app):
        response = client.open(url, method=method)
        if _is_machine(url):
            guarded = response.status_code == 401
            if url.startswith("/api/"):
                assert response.mimetype == "application/json", (method, url)
                if method != "HEAD":  # which has no body
                    assert response.json["error"]["code"] == "unauthorized", (method, url)
                assert response.headers["WWW-Authenticate"].startswith("Bearer"), (method, url)
        else:
            location = urlsplit(response.headers.get("Location", ""))
            guarded = (response.status_code == 302 and location.path == "/login"
                       and parse_qs(location.query).get("next") == [url])
        if not guarded:
            answered.append((rule.endpoint, method, url, response.status_code))
        response.close()  # a static file's answer holds the file open
    unexpected = [call for call in answered
                  if call[0] not in OPEN_ENDPOINTS and urlsplit(call[2]).path not in OPEN_PATHS]
    assert not unexpected, f"routes that answer without credentials: {unexpected}"
    # and the open ones really are open
    open_answers = {(endpoint, method): status for endpoint, method, _, status in answered}
    assert open_answers[("auth.login", "GET")] == 200
    assert open_answers[("static", "GET")] == 200


def test_without_credentials_htmx_gets_401_with_the_way_to_sign_in(app, client, user):
    for rule, method, url in walk(app):
        if _is_open(rule) or _is_machine(url):
            continue
        response = client.open(url, method=method, headers={"HX-Request": "true"})
        assert response.status_code == 401, (method, url)
        target = urlsplit(response.headers["HX-Redirect"])
        assert target.path == "/login" and parse_qs(target.query)["next"] == [url]


def test_with_a_session_every_write_without_its_csrf_token_is_refused(app, logged_in, things):
    before = _row_counts()
    writes = [(rule, method, url) for rule, method, url in walk(app)
              if method not in ("GET", "HEAD", "OPTIONS")]
    assert len(writes) >= 20
    for rule, method, url in writes:
        response = logged_in.open(url, method=method, data={"name": "sneaky"})
        if url.startswith(TOKEN_ONLY_PREFIX):  # refused whatever the CSRF token
            assert response.status_code == 401, (method, url, response.status_code)
            continue
        assert response.status_code == 400, (method, url, response.status_code)
        if url.startswith("/api/"):
            assert response.json["error"]["code"] == "csrf", (method, url)
        # a JSON body without the X-CSRFToken header is no way round it
        response = logged_in.open(url, method=method, json={"workflow": "w", "status": "success"})
        assert response.status_code == 400, (method, url, response.status_code)
    assert _row_counts() == before
    assert logged_in.get("/settings").status_code == 200  # signing out needed the token too


def test_a_browser_session_cannot_send_traces_even_with_its_csrf_token(app, logged_in, things):
    before = _row_counts()
    token = csrf_from(logged_in.get("/settings").text)
    response = logged_in.post("/v1/traces", json={"resourceSpans": []},
                              headers={"X-CSRFToken": token})
    assert response.status_code == 401
    assert response.mimetype == "application/json"
    assert "Authorization: Bearer" in response.json["message"]  # a google.rpc.Status
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _row_counts() == before


def test_a_bearer_token_sends_traces_without_a_csrf_token_beside_a_session(app, logged_in,
                                                                          user):
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    response = logged_in.post("/v1/traces", json={"resourceSpans": []}, headers=headers)
    assert response.status_code == 200, response.data
    assert response.json == {}
