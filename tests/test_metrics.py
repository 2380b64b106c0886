"""`GET /metrics`: what Prometheus reads there (parsed with prometheus_client's own parser),
exact run totals however old the runs, and who may scrape."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alert_servers import make_rule
from alerts.config import config_from
from alerts.scheduler import scan
from helpers import EMAIL, URL, csrf_from, parse
from history.retention import purge_expired
from metrics.exposition import Collector, render
from metrics.read import read_snapshot
from metrics.totals import DAY, RunTotalMark, fold
from models.db import connection
from models.times import iso, to_micros, utcnow
from models.users import create_token


def scrape(client, headers: dict) -> dict:
    """The scrape, parsed as Prometheus parses it: {family name: family}."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def value(families: dict, family: str, **labels) -> float | None:
    """The value of the one sample of `family` with these labels (None: no such sample)."""
    found = [s.value for s in families[family].samples if s.labels == labels]
    assert len(found) <= 1, (family, labels, found)
    return found[0] if found else None


def run(api, workflow: str, status: str, started, seconds: float | None = None,
        external_id: str | None = None) -> int:
    body = {"workflow": workflow, "status": status, "started_at": iso(started)}
    if seconds is not None:
        body["finished_at"] = iso(started + timedelta(seconds=seconds))
    if external_id:
        body["external_id"] = external_id
    response = api.post(URL, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json["id"]


def test_a_scrape_tells_each_workflows_runs_state_streak_durations_and_the_outbox(app, api, db):
    now = utcnow()
    start = now - timedelta(hours=2)
    run(api, "nightly", "success", start, 10)
    for minute in (10, 20, 30):
        run(api, "nightly", "failure", start + timedelta(minutes=minute), 10)
    run(api, "etl", "success", start, 2)
    run(api, "etl", "success", start + timedelta(minutes=5), 4)
    last = start + timedelta(minutes=40)
    run(api, "etl", "running", last)
    make_rule(3, [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}], workflow="nightly")
    scan(config_from(app))

    families = scrape(api.client, api.headers)
    assert value(families, "runwatch_runs", workflow="nightly", status="failure") == 3
    assert value(families, "runwatch_runs", workflow="nightly", status="success") == 1
    assert value(families, "runwatch_runs", workflow="etl", status="success") == 2
    # runs in progress are counted once they end: a counter never goes down as runs finish
    assert {s.labels["status"] for s in families["runwatch_runs"].samples} == {"success",
                                                                             "failure"}
    assert families["runwatch_runs"].type == "counter"
    states = {(s.labels["workflow"], s.labels["state"]): s.value
              for s in families["runwatch_workflow_state"].samples}
    assert states == {("nightly", "failing"): 1, ("nightly", "late"): 0, ("nightly", "new"): 0,
                      ("nightly", "ok"): 0, ("etl", "failing"): 0, ("etl", "late"): 0,
                      ("etl", "new"): 0, ("etl", "ok"): 1}
    assert value(families, "runwatch_workflow_streak", workflow="nightly") == 3
    assert value(families, "runwatch_workflow_streak", workflow="etl") == 0
    assert value(families, "runwatch_workflow_last_run_timestamp_seconds",
                 workflow="etl") == pytest.approx(to_micros(last) / 1e6, abs=1e-3)
    p95 = value(families, "runwatch_workflow_duration_p95_seconds", workflow="etl")
    assert p95 == pytest.approx(4, rel=0.05)  # the slower of two: bins are 4.5 % wide
    assert 0 <= value(families, "runwatch_alert_scan_lag_seconds") < 60
    assert value(families, "runwatch_outbox_notices", state="pending") == 1
    assert value(families, "runwatch_outbox_notices", state="delivered") == 0
    assert families["runwatch_deliveries"].samples == []  # nothing has ended yet
    [build] = families["runwatch_build_info"].samples
    assert build.value == 1 and build.labels["version"]
    # The text written straight is prometheus_client's own, byte for byte.
    snapshot = read_snapshot(utcnow(), app.config["ALERT_SCAN_SECONDS"])
    registry = CollectorRegistry()
    registry.register(Collector(snapshot))
    assert render(snapshot) == generate_latest(registry)


def test_run_totals_stay_exact_when_days_are_folded_and_old_runs_change_or_go(app, api, db):
    now = utcnow()
    old = now - timedelta(days=10)
    run(api, "backup", "failure", old, 5, external_id="old-1")
    run(api, "backup", "failure", old + timedelta(minutes=1), 5, external_id="old-2")
    run(api, "backup", "success", old + timedelta(minutes=2), 5)
    run(api, "backup", "success", now - timedelta(minutes=5), 5)

    def totals():
        families = scrape(api.client, api.headers)
        return {s.labels["status"]: s.value for s in families["runwatch_runs"].samples
                if s.labels["workflow"] == "backup"}

    assert totals() == {"success": 2, "failure": 2}
    assert fold(now) == 0  # the first pass only sets the mark up
    assert fold(now) >= 1
    through = RunTotalMark.get().through
    assert through == to_micros(now) - to_micros(now) % DAY - 2 * DAY
    assert totals() == {"success": 2, "failure": 2}  # now read from the folded totals
    run(api, "backup", "success", old, 5, external_id="old-1")  # re-reported as a success
    assert totals() == {"success": 3, "failure": 1}
    purged = purge_expired(now, days=5)
    assert purged.runs == 3
    assert totals() == {"success": 1, "failure": 0}
    assert fold(now) == 0  # nothing more to fold


def headers_with(user, *scopes: str) -> dict:
    with connection():
        return {"Authorization": f"Bearer {create_token(user, '+'.join(scopes), scopes)[1]}"}


# Who may scrape is decided before any query: on SQLite alone.
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@sqlite_only
def test_a_metrics_token_scrapes_and_does_nothing_else(app, client, user):
    metrics = headers_with(user, "metrics")
    assert client.get("/metrics", headers=metrics).status_code == 200
    for method, url in (("GET", "/api/ping"), ("GET", URL), ("POST", URL),
                        ("GET", "/api/automations/workflows")):
        response = client.open(url, method=method, headers=metrics, json={})
        assert response.status_code == 403, (method, url)
        assert "the token has metrics" in response.json["error"]["message"]
    for scopes in (("read",), ("admin",), ("ingest", "read", "admin")):
        assert client.get("/metrics", headers=headers_with(user, *scopes)).status_code == 200
    refused = client.get("/metrics", headers=headers_with(user, "ingest"))
    assert refused.status_code == 403
    assert refused.json["error"]["code"] == "forbidden"
    assert "needs the read or metrics or admin scope" in refused.json["error"]["message"]


@sqlite_only
def test_without_a_token_a_scrape_gets_401_even_with_a_session(app, client, auth, user):
    for headers in ({}, {"Authorization": "Bearer rw_not-a-token"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    auth.login()
    assert client.get("/metrics").status_code == 401  # a session is no way in
    assert client.get("/settings").status_code == 200


@sqlite_only
def test_the_metrics_scope_is_offered_by_settings_and_the_command_line(app, logged_in, runner):
    page = logged_in.get("/settings")
    boxes = {b.attrs["value"]: "checked" in b.attrs
             for b in parse(page).find("input", name="scopes")}
    assert boxes == {"ingest": True, "read": True, "metrics": False, "admin": True}
    response = logged_in.post("/settings/tokens", data={
        "csrf_token": csrf_from(page.text), "name": "prometheus", "scopes": ["metrics"]})
    assert response.status_code == 200
    from_form = parse(response).by_id("new-token").text
    result = runner.invoke(args=["tokens", "create", EMAIL, "--scope", "metrics"])
    assert result.exit_code == 0, result.output
    from_cli = result.output.strip().splitlines()[-1]
    client = app.test_client()
    for secret in (from_form, from_cli):
        headers = {"Authorization": f"Bearer {secret}"}
        assert client.get("/metrics", headers=headers).status_code == 200
        assert client.get("/api/ping", headers=headers).status_code == 403
