"""Token scopes: `ingest` reports runs, `read` reads, `admin` does everything; a browser
session has every scope; a token without the scope a route needs gets 403."""
from __future__ import annotations

import pytest

from helpers import csrf_from, parse
from models.db import connection
from models.users import create_token

# The routes that report runs, by (method, URL rule): what `ingest` opens.
INGEST_ROUTES = {
    ("POST", "/api/automations/executions"),
    ("POST", "/api/automations/executions/batch"),
    ("PATCH", "/api/automations/executions/<int:execution_id>"),
    ("POST", "/api/automations/executions/<int:execution_id>/steps"),
    ("GET", "/api/ping"),
    ("POST", "/v1/traces"),  # OpenTelemetry intake, where the app has it
}
RUN = {"workflow": "nightly", "status": "failure"}
RULE = {"workflow": "nightly", "threshold": 2,
        "channels": [{"type": "webhook", "url": "https://hooks.example.com/runwatch"}]}


def token_with(user, *scopes: str) -> dict:
    """Headers carrying a new token of `user` with these scopes."""
    with connection():
        secret = create_token(user, "+".join(scopes), scopes)[1]
    return {"Authorization": f"Bearer {secret}"}


def api_routes(app):
    """Every (method, URL rule, path) that takes tokens (under /api and /v1), with sample
    values for its arguments."""
    from werkzeug.routing import IntegerConverter

    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(("/api/", "/v1/")):
            continue
        values = {name: 999999 if isinstance(conv, IntegerConverter) else "x"
                  for name, conv in rule._converters.items()}
        path = adapter.build(rule.endpoint, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule.rule, path


def expected_scopes(method: str, rule: str) -> set[str]:
    allowed = {"admin"}
    if method == "GET" and rule.startswith("/api/"):
        allowed.add("read")
    if (method, rule) in INGEST_ROUTES:
        allowed.add("ingest")
    return allowed


def test_every_api_route_answers_each_scope_as_the_table_says(app, user):
    routes = list(api_routes(app))
    assert len(routes) >= 15
    assert INGEST_ROUTES <= {(m, r) for m, r, _ in routes}
    client = app.test_client()
    for scope in ("ingest", "read", "metrics", "admin"):
        headers = token_with(user, scope)
        for method, rule, path in routes:
            response = client.open(path, method=method, json={}, headers=headers)
            assert response.status_code != 401, (scope, method, path)
            if scope in expected_scopes(method, rule):
                assert response.status_code != 403, (scope, method, path, response.text)
                continue
            assert response.status_code == 403, (scope, method, path, response.status_code)
            if path.startswith("/v1/"):  # OTLP answers with a google.rpc.Status
                error = {"code": "forbidden" if response.json["code"] == 7 else "?",
                         "message": response.json["message"]}
            else:
                error = response.json["error"]
            assert error["code"] == "forbidden", (scope, method, path)
            needed = sorted(expected_scopes(method, rule) - {"admin"}) or ["admin"]
            assert f"the {needed[0]}" in error["message"], error["message"]
            assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


@pytest.mark.own_app
def test_a_route_added_later_is_closed_to_narrow_tokens_by_default(app, user):
    app.add_url_rule("/api/later", "later", lambda: {"ok": True}, methods=["GET", "POST"])
    client = app.test_client()
    ingest, read, admin = (token_with(user, s) for s in ("ingest", "read", "admin"))
    assert client.get("/api/later", headers=ingest).status_code == 403
    assert client.get("/api/later", headers=read).status_code == 200
    assert client.post("/api/later", headers=read).status_code == 403
    assert client.post("/api/later", headers=admin).status_code == 200


def test_an_ingest_token_reports_runs_and_reads_nothing(app, user):
    client, headers = app.test_client(), token_with(user, "ingest")
    created = client.post("/api/automations/executions", json=RUN, headers=headers)
    assert created.status_code == 201
    run_id = created.json["id"]
    patched = client.patch(f"/api/automations/executions/{run_id}",
                           json={"status": "success"}, headers=headers)
    assert patched.status_code == 200
    assert client.get("/api/ping", headers=headers).status_code == 200
    for url in ("/api/automations/executions", f"/api/automations/executions/{run_id}",
                "/api/automations/alerts"):
        response = client.get(url, headers=headers)
        assert response.status_code == 403, url
        assert "needs the read or admin scope" in response.json["error"]["message"]
        assert "the token has ingest" in response.json["error"]["message"]


def test_a_read_token_reads_but_neither_reports_nor_changes_rules(app, user, db):
    from alerts.models import AlertRule
    from models import Execution
    client, read = app.test_client(), token_with(user, "read")
    assert client.get("/api/automations/executions", headers=read).status_code == 200
    refused = client.post("/api/automations/executions", json=RUN, headers=read)
    assert refused.status_code == 403
    assert "needs the ingest or admin scope" in refused.json["error"]["message"]
    assert client.post("/api/automations/alerts", json=RULE, headers=read).status_code == 403
    assert Execution.select().count() == 0 and AlertRule.select().count() == 0


def test_webhook_secrets_are_shown_to_admin_alone(app, user, logged_in):
    client = app.test_client()
    admin, read = token_with(user, "admin"), token_with(user, "read", "ingest")
    created = client.post("/api/automations/alerts", json=RULE, headers=admin)
    assert created.status_code == 201
    secret = created.json["channels"][0]["secret"]
    assert secret.startswith("whsec_")
    rule_url = f"/api/automations/alerts/{created.json['id']}"
    for url in ("/api/automations/alerts", rule_url):
        body = client.get(url, headers=read).text
        assert secret not in body and "whsec_" not in body, url
        assert secret in client.get(url, headers=admin).text, url
        assert secret in logged_in.get(url).text, url  # a browser session has every scope
    shown = client.get(rule_url, headers=read).json["channels"][0]
    # the webhook URL's path is as secret as the signing secret: only its host is shown
    assert shown["url"] == "https://hooks.example.com/••••••" and shown["secret"] == "••••••"
    test = client.post(f"{rule_url}/test", headers=read)
    assert test.status_code == 403


@pytest.mark.own_app
def test_current_scopes_names_what_the_caller_may_do(app, user, auth):
    from views.extensions import current_scopes

    seen = {}
    app.add_url_rule("/api/whoami-scopes", "whoami", lambda: seen.update(s=current_scopes()) or "")
    client = app.test_client()
    client.get("/api/whoami-scopes", headers=token_with(user, "read", "ingest"))
    assert seen["s"] == frozenset({"read", "ingest"})
    auth.login()
    auth.client.get("/api/whoami-scopes")
    assert seen["s"] == frozenset({"ingest", "read", "metrics", "admin"})
    with app.test_request_context("/api/ping"):
        assert current_scopes() == frozenset()


# --- Creating tokens with scopes -----------------------------------------------------------

def test_the_token_form_ticks_every_scope_but_metrics_by_default(logged_in):
    boxes = parse(logged_in.get("/settings")).find("input", name="scopes")
    assert [(b.attrs["value"], "checked" in b.attrs) for b in boxes] == [
        ("ingest", True), ("read", True), ("metrics", False), ("admin", True)]
    for box in boxes:  # each box has a label
        assert parse(logged_in.get("/settings")).find("label", **{"for": box.attrs["id"]})


def test_a_token_made_in_settings_has_the_scopes_ticked_and_the_list_shows_them(logged_in, app):
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/tokens", data={
        "csrf_token": csrf_from(page.text), "name": "ci", "scopes": ["ingest"]})
    assert response.status_code == 200
    secret = parse(response).by_id("new-token").text
    headers = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    assert client.post("/api/automations/executions", json=RUN, headers=headers).status_code == 201
    assert client.get("/api/automations/executions", headers=headers).status_code == 403
    cells = parse(logged_in.get("/settings")).find("td", class_="token-scopes")
    assert [c.text for c in cells] == ["ingest"]


@pytest.mark.parametrize("scopes, message", [([], "Pick at least one scope"),
                                             (["everything"], "not a valid choice")])
def test_a_token_without_a_known_scope_is_refused(logged_in, db, scopes, message):
    from models.users import ApiToken
    page = logged_in.get("/settings")
    response = logged_in.post("/settings/tokens", data={
        "csrf_token": csrf_from(page.text), "name": "ci", "scopes": scopes})
    assert response.status_code == 400
    assert message in response.text
    assert ApiToken.select().count() == 0


def test_tokens_create_on_the_command_line_takes_scopes(runner, user, app):
    client = app.test_client()

    def create(*args):
        result = runner.invoke(args=["tokens", "create", user.email, *args])
        assert result.exit_code == 0, result.output
        return {"Authorization": f"Bearer {result.output.strip().splitlines()[-1]}"}

    everything = create()
    ingest_only = create("--scope", "ingest")
    read_admin = create("--scope", "read, admin")
    assert client.post("/api/automations/alerts", json=RULE, headers=everything).status_code == 201
    assert client.post("/api/automations/executions", json=RUN,
                       headers=ingest_only).status_code == 201
    assert client.get("/api/automations/alerts", headers=ingest_only).status_code == 403
    assert client.post("/api/automations/executions", json=RUN,
                       headers=read_admin).status_code == 201  # admin opens everything
    listing = runner.invoke(args=["tokens", "list", user.email]).output.splitlines()
    assert [line.split("\t")[-1] for line in listing] == [
        "ingest,read,admin", "ingest", "read,admin"]


@pytest.mark.parametrize("scope", ["everything", "", "read,root"])
def test_tokens_create_refuses_unknown_scopes(runner, user, db, scope):
    from models.users import ApiToken
    result = runner.invoke(args=["tokens", "create", user.email, "--scope", scope])
    assert result.exit_code != 0
    assert "scope" in result.output
    assert ApiToken.select().count() == 0
