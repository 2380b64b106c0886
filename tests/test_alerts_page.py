"""The /alerts page: rules with their workflows' state, the form, the watchdog, the log."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from alert_servers import alert_config, form_data, make_rule, report
from alerts.models import AlertRule, Notice, ScanStatus
from alerts.scheduler import scan
from alerts.config import config_from
from helpers import Elements, csrf_from
from models.db import utcnow

ALERT_003 = pytest.mark.spec("API-AUTO-EXEC-ALERT-003")


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


@ALERT_003
def test_the_page_shows_each_covered_workflow_ok_or_failing_with_a_link_to_the_last_failure(
        app, logged_in, db):
    make_rule(3, [{"type": "email", "to": ["ops@example.com"]}])
    failed = report("billing", "SFFF")
    report("crm", "FS")
    scan(config_from(app))
    html = logged_in.get("/alerts").text
    page = Elements(html)
    rule = page.text("rule-1")
    assert "billing FAILING 3 / 3" in rule
    assert "crm OK 0 / 3" in rule
    assert f'href="/executions/{failed[-1]}"' in html


@ALERT_003
def test_a_rule_created_in_the_form_is_saved_and_shown(logged_in, db):
    page = logged_in.get("/alerts").text
    response = logged_in.post("/alerts/rules", data=form_data(
        page, workflow="invoice-sync", threshold="2", email_to="a@example.com, b@example.com",
        webhook_url="https://hooks.example.com/x", notify_recovery=None))
    assert response.status_code == 303
    rule = AlertRule.get()
    assert (rule.workflow_name, rule.threshold, rule.notify_recovery) == ("invoice-sync", 2,
                                                                          False)
    assert [c.type for c in rule.channels] == ["email", "webhook"]
    shown = Elements(logged_in.get(response.headers["Location"]).text).text(f"rule-{rule.id}")
    assert "invoice-sync — 2 failures in a row" in shown
    assert "a@example.com, b@example.com" in shown


@ALERT_003
@pytest.mark.parametrize("fields, error_id, message", [
    ({"threshold": "0"}, "error-threshold", "from 1 to 1000"),
    ({"threshold": "many"}, "error-threshold", "from 1 to 1000"),
    ({"email_to": "ops@example.com nobody"}, "error-email_to", "'nobody' is not an e-mail"),
    ({"email_to": "", "webhook_url": "ftp://example.com"}, "error-webhook_url_0", "http"),
    ({"email_to": "", "webhook_url": "https://x.example", "webhook_secret": "secret"},
     "error-webhook_secret_0", "whsec_"),
    ({"email_to": ""}, "error-channels", "at least one"),
])
def test_a_bad_form_comes_back_400_with_the_error_beside_the_field_and_nothing_saved(
        logged_in, db, fields, error_id, message):
    page = logged_in.get("/alerts").text
    response = logged_in.post("/alerts/rules", data=form_data(
        page, **{"email_to": "ops@example.com", **fields}))
    assert response.status_code == 400
    assert message in Elements(response.text).text(error_id)
    assert AlertRule.select().count() == 0


def test_the_form_is_checked_field_by_field_as_it_changes(logged_in, db):
    page = logged_in.get("/alerts").text
    response = logged_in.post("/alerts/rules/check", headers={"HX-Request": "true"},
                              data=form_data(page, threshold="1001", email_to=""))
    errors = Elements(response.text)
    assert errors.by_id["error-threshold"]["hx-swap-oob"] == "true"
    assert "from 1 to 1000" in errors.text("error-threshold")
    assert errors.text("error-channels") == ""  # not typed yet: no complaint
    assert AlertRule.select().count() == 0


def test_a_rule_is_edited_and_deleted_from_its_page(logged_in, db):
    rule = make_rule(3, [{"type": "webhook", "url": "https://hooks.example.com/a"}], "etl")
    page = logged_in.get(f"/alerts/rules/{rule.id}/edit").text
    assert 'value="https://hooks.example.com/a"' in page
    response = logged_in.post(f"/alerts/rules/{rule.id}", data=form_data(
        page, workflow="etl", threshold="4", webhook_url=["https://hooks.example.com/a", ""],
        webhook_secret=[rule.channels[0].options["secret"], ""], enabled=None))
    assert response.status_code == 303
    rule = AlertRule.get_by_id(rule.id)
    assert (rule.threshold, rule.enabled) == (4, False)
    response = logged_in.post(f"/alerts/rules/{rule.id}/delete",
                              data={"csrf_token": csrf_from(page)})
    assert response.status_code == 303 and AlertRule.select().count() == 0
    assert logged_in.get(f"/alerts/rules/{rule.id}/edit").status_code == 404


@ALERT_003
def test_send_test_from_the_page_shows_the_outcome_and_refreshes_the_log(
        logged_in, db, receiver):
    rule = make_rule(3, [{"type": "webhook", "url": receiver.url}], "etl")
    page = logged_in.get("/alerts").text
    response = logged_in.post(f"/alerts/rules/{rule.id}/test", headers={
        "HX-Request": "true", "X-CSRFToken": csrf_from(page)})
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "notices-changed"
    assert Elements(response.text).text("test-outcome-1").startswith(
        "Test via webhook: delivered — HTTP 200 OK")
    log = Elements(logged_in.get("/alerts/log", headers={"HX-Request": "true"}).text)
    assert "test etl webhook" in log.text("notice-1")
    assert "delivered" in log.text("notice-1")


def test_a_failed_notice_is_redelivered_with_the_button(app, logged_in, db, receiver):
    app.config["DELIVERY_MAX_ATTEMPTS"] = 1
    receiver.status = 500
    rule = make_rule(3, [{"type": "webhook", "url": receiver.url}], "etl")
    page = logged_in.get("/alerts").text
    logged_in.post(f"/alerts/rules/{rule.id}/test", data={"csrf_token": csrf_from(page)})
    assert 'action="/alerts/notices/1/redeliver"' in logged_in.get("/alerts").text
    receiver.status = 200
    response = logged_in.post("/alerts/notices/1/redeliver", data={
        "csrf_token": csrf_from(page)}, headers={"HX-Request": "true"})
    assert "delivered" in Elements(response.text).text("notice-1")
    assert Notice.get_by_id(1).status == "delivered"


def test_the_watchdog_warns_when_the_scan_has_never_run_or_has_stalled(app, logged_in, db):
    warning = Elements(logged_in.get("/alerts/health").text)
    assert "has never run" in warning.text("health")
    scan(config_from(app))
    healthy = Elements(logged_in.get("/alerts/health").text)
    assert "stalled" not in healthy.text("health") and "up to date" in healthy.text("health")
    long_ago = utcnow() - timedelta(minutes=10)
    ScanStatus.update(last_scan_at=long_ago).execute()
    report("a", "F")
    stalled = Elements(logged_in.get("/alerts/health").text)
    assert "The alert scan has stalled" in stalled.text("health")
    assert "1 workflow waiting" in stalled.text("health")


def test_the_watchdog_counts_the_outbox_backlog(app, logged_in, db):
    make_rule(1, [{"type": "webhook", "url": "http://127.0.0.1:9/x"}])
    report("a", "F")
    report("b", "F")
    scan(config_from(app))
    assert "2 to send" in Elements(logged_in.get("/alerts").text).text("health")


def test_names_and_errors_on_the_page_are_escaped(app, logged_in, db):
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]}])
    report("<script>alert(1)</script>", "F", error="<img src=x onerror=alert(2)>")
    scan(config_from(app))
    html = logged_in.get("/alerts").text
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


@pytest.mark.parametrize("url, section", [("/alerts/log", "log"), ("/alerts/health", "health")])
def test_each_section_is_also_a_page_of_its_own_without_javascript(logged_in, db, url,
                                                                   section):
    full = Elements(logged_in.get(url).text)
    partial = Elements(logged_in.get(url, headers={"HX-Request": "true"}).text)
    assert section in full.by_id and "health" not in partial.by_id.keys() - {section}
    assert full.text(section) == partial.text(section)


@pytest.mark.parametrize("cursor", ["abc", "0", "-3"])
def test_a_bad_log_page_parameter_gets_400(logged_in, cursor):
    assert logged_in.get(f"/alerts/log?cursor={cursor}").status_code == 400


def test_the_log_page_filters_and_pages_with_the_api_parameters(logged_in, db, receiver):
    make_rule(1, [{"type": "webhook", "url": receiver.url}])
    for name in "abcde":
        report(name, "F")
    scan(config_from(logged_in.application))
    url, seen, guard = "/alerts/log?type=failing&limit=2", [], 0
    while url and guard < 10:
        response = logged_in.get(url)
        assert response.status_code == 200
        seen += [int(m) for m in re.findall(r'id="notice-(\d+)"', response.text)]
        older = re.search(r'href="([^"]*)"[^>]*>Older notices', response.text)
        url, guard = (html.unescape(older.group(1)) if older else None), guard + 1
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 5
    assert "cursor=" in html.unescape(re.findall(
        r'href="([^"]*)"[^>]*>Older notices', logged_in.get("/alerts/log?limit=2").text)[0])
    assert 'id="notice-' not in logged_in.get("/alerts/log?type=recovered").text
    assert logged_in.get("/alerts/log?status=lost").status_code == 400


def test_the_delivery_log_filters_by_rule_workflow_and_outcome_and_links_workflows(
        app, logged_in, api, db):
    from helpers import parse
    billing_rule = make_rule(1, [{"type": "email", "to": ["ops@example.com"]}], "billing")
    every_rule = make_rule(1, [{"type": "email", "to": ["ops@example.com"]}])
    report("billing", "F")
    report("crm", "F")
    scan(config_from(app))
    delivered = Notice.select().where(Notice.rule == every_rule.id).order_by(Notice.id).first()
    Notice.update(status="delivered").where(Notice.id == delivered.id).execute()

    def shown(query: str) -> list[tuple[int, str]]:
        page = parse(logged_in.get(f"/alerts/log?{query}"))
        return [(int(row.attrs["id"].split("-")[1]), row.find("td")[3].text)
                for row in page.find("tr", class_="notice")]

    assert [w for _, w in shown("")] == ["crm", "billing", "billing"]
    assert [w for _, w in shown(f"rule={billing_rule.id}")] == ["billing"]
    assert [w for _, w in shown("workflow=crm")] == ["crm"]
    assert shown("status=delivered") == [(delivered.id, "billing")]
    assert shown(f"rule={every_rule.id}&workflow=billing&status=pending") == []
    api_rows = api.get("/api/automations/alerts/notices?workflow=crm").json["data"]
    assert [n["workflow"] for n in api_rows] == ["crm"]
    assert api.get("/api/automations/alerts/notices?workflow=a%01b").status_code == 400

    page = parse(logged_in.get(f"/alerts/log?workflow=crm&rule={every_rule.id}"))
    links = [a.attrs["href"] for a in page.find("tr", class_="notice")[0].find("a")]
    assert "/workflows/crm" in links
    form = page.find("form", class_="log-filter")[0]
    assert form.find("input", name="workflow")[0].attrs["value"] == "crm"
    chosen = [o.text for o in form.find("option") if "selected" in o.attrs]
    assert chosen == [f"#{every_rule.id} · every workflow"]
    assert "No notice matches." in parse(logged_in.get("/alerts/log?workflow=nope")).text
    # Its own page has one heading, the log's; within /alerts it is a section of the page.
    headings = [h.text for h in page.find("main")[0].walk() if h.tag in ("h1", "h2", "h3")]
    assert headings == ["Delivery log"] and page.find("h1")
    whole = parse(logged_in.get("/alerts"))
    assert [h.text for h in whole.find("h1")] == ["Alerts"]
    assert [h.text for h in whole.find("h2") if h.text == "Delivery log"] == ["Delivery log"]
