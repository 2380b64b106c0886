"""Slack, Teams, Discord, PagerDuty and Apprise as channels of a rule: made through the API
(each bad option a 400 naming it), sent by delivery in the service's shape to real
receivers on 127.0.0.1 with the service's answer read, masked for `read` tokens."""
from __future__ import annotations

from datetime import timedelta

import pytest

from alert_servers import alert_config, make_rule, notices, report
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.models import Attempt
from alerts.scheduler import scan
from models.db import connection, utcnow
from models.users import create_token

ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
RULES = "/api/automations/alerts"


@pytest.fixture
def app_config(app_config, smtp_sink, receiver):
    # PagerDuty's events go to the receiver, as RUNWATCH_PAGERDUTY_EVENTS_URL says.
    return {**alert_config(app_config, smtp_sink), "PAGERDUTY_EVENTS_URL": receiver.url}


def channel(kind: str, url: str) -> dict:
    """A channel of `kind` whose messages reach the receiver at `url` (http://127.0.0.1…)."""
    if kind == "pagerduty":
        return {"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "critical"}
    if kind == "apprise":
        return {"type": "apprise", "url": "json://" + url.removeprefix("http://")}
    return {"type": kind, "url": url}


def test_a_slack_channel_that_fails_is_retried_with_backoff_and_gets_the_slack_message(
        app, db, receiver):
    make_rule(2, [channel("slack", receiver.url)], workflow="invoice-sync")
    report("invoice-sync", "FF")
    settings = config_from(app)
    receiver.status, receiver.headers = 429, {"Retry-After": "1"}
    t0 = utcnow()
    scan(settings, t0)
    assert deliver_due(settings, t0).retrying == 1
    receiver.status, receiver.headers = 503, {}
    assert deliver_due(settings, t0 + timedelta(seconds=1)).retrying == 1
    receiver.status = 200
    assert deliver_due(settings, t0 + timedelta(seconds=3)).delivered == 1
    bodies = [r.json() for r in receiver.wait_for(3)]
    assert len(bodies) == 3 and bodies[0] == bodies[2]  # the same message on every try
    header, fields, error, actions, context = bodies[2]["blocks"]
    assert header["text"]["text"] == "invoice-sync is failing: 2 failures in a row"
    assert {"type": "mrkdwn", "text": "*Failures in a row*\n2 (threshold 2)"} in fields["fields"]
    assert "HTTP 502 from billing" in error["text"]["text"]
    assert actions["elements"][0]["style"] == "danger"
    assert "/executions/" in actions["elements"][0]["url"]
    [notice] = notices()
    attempts = Attempt.select().where(Attempt.notice == notice.id).order_by(Attempt.id)
    assert [a.ok for a in attempts] == [False, False, True]
    assert "Slack is limiting the rate of messages (it asks to wait 1 s)" in attempts[0].error


def test_a_slack_url_that_was_removed_fails_for_good_at_the_first_attempt(app, db, receiver):
    make_rule(1, [channel("discord", receiver.url)], workflow="a")
    report("a", "F")
    receiver.status, receiver.answer = 404, b"Unknown Webhook"
    settings = config_from(app)
    scan(settings)
    assert deliver_due(settings).failed == 1
    [notice] = notices()
    assert (notice.status, notice.attempts) == ("failed", 1)
    assert notice.last_error.startswith("Discord refused for good: the URL or key does not exist")


@pytest.mark.parametrize("kind", ["slack", "teams", "discord", "pagerduty", "apprise"])
def test_send_test_goes_through_each_service_in_its_shape(api, db, receiver, kind):
    rule = api.post(RULES, json={"workflow": "invoice-sync", "threshold": 3,
                                 "channels": [channel(kind, receiver.url)]})
    assert rule.status_code == 201, rule.text
    sent = api.post(f"{RULES}/{rule.json['id']}/test")
    assert sent.status_code == 200, sent.text
    [notice] = sent.json["data"]
    assert (notice["status"], notice["channel"]["type"]) == ("delivered", kind), notice
    assert notice["attempts"][0]["ok"] is True
    [received] = receiver.wait_for(1)
    body = received.json()
    title = "Test notice for invoice-sync (rule #%d)" % rule.json["id"]
    if kind == "slack":
        assert body["blocks"][0]["text"]["text"] == title
    elif kind == "teams":
        card = body["attachments"][0]["content"]
        assert (body["type"], card["type"], card["body"][0]["text"]) == (
            "message", "AdaptiveCard", title)
    elif kind == "discord":
        assert (body["embeds"][0]["title"], body["embeds"][0]["color"]) == (title, 0x1976D2)
    elif kind == "pagerduty":
        assert (body["routing_key"], body["event_action"]) == (ROUTING_KEY, "trigger")
        assert (body["payload"]["summary"], body["payload"]["severity"]) == (title, "info")
    else:
        assert (body["title"], body["type"]) == (title, "info")


def test_pagerduty_resolves_the_incident_its_streak_opened(app, db, receiver):
    rule = make_rule(2, [channel("pagerduty", receiver.url)], workflow="invoice-sync")
    settings = config_from(app)
    report("invoice-sync", "FF")
    scan(settings)
    deliver_due(settings)
    report("invoice-sync", "S", first_minute=2)
    scan(settings)
    deliver_due(settings)
    trigger, resolve = [r.json() for r in receiver.wait_for(2)]
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == \
        f"runwatch/rule-{rule.id}/failing-1/invoice-sync"
    assert trigger["payload"]["severity"] == "critical"


def test_read_tokens_and_pages_see_service_secrets_masked(app, api, db, user, logged_in):
    channels = [{"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/secretpath"},
                {"type": "pagerduty", "routing_key": ROUTING_KEY},
                {"type": "apprise", "url": "tgram://123456:s3cr3tbot/987654"}]
    rule = api.post(RULES, json={"threshold": 1, "channels": channels})
    assert rule.status_code == 201, rule.text
    assert rule.json["channels"][0]["url"].endswith("/secretpath")  # the admin sees it whole
    with connection():
        read = {"Authorization": f"Bearer {create_token(user, 'dashboard', ['read'])[1]}"}
    shown = app.test_client().get(f"{RULES}/{rule.json['id']}", headers=read).json["channels"]
    assert shown[0]["url"] == "https://hooks.slack.com/••••••"
    assert shown[1]["routing_key"] == "••••••"
    assert shown[2]["url"] == "tgram://••••••"
    page = logged_in.get("/alerts").get_data(as_text=True)
    for secret in ("secretpath", ROUTING_KEY, "s3cr3tbot"):
        assert secret not in page
    assert "https://hooks.slack.com/••••••" in page


@pytest.mark.parametrize("bad, field", [
    ({"type": "slack", "url": "ftp://hooks.slack.com/x"}, "channels.0.url"),
    ({"type": "teams"}, "channels.0.url"),
    ({"type": "discord", "url": "https://discord.com/x", "extra": 1}, "channels.0.extra"),
    ({"type": "pagerduty", "routing_key": "short"}, "channels.0.routing_key"),
    ({"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "loud"},
     "channels.0.severity"),
    ({"type": "apprise", "url": "nosuchservice://x"}, "channels.0.url"),
    ({"type": "slack", "url": "https://hooks.slack.com/••••••"}, "channels.0.url"),
    ({"type": "sms", "to": "x"}, "channels.0.type"),
])
def test_a_bad_service_option_is_refused_with_400_naming_it(api, db, bad, field):
    response = api.post(RULES, json={"threshold": 1, "channels": [bad]})
    assert response.status_code == 400, response.text
    assert response.json["error"]["field"] == field


def test_the_rule_form_makes_a_slack_channel_and_names_a_bad_key(logged_in, db, receiver):
    page = logged_in.get("/alerts").get_data(as_text=True)
    assert 'name="slack_url"' in page and 'name="pagerduty_routing_key"' in page
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    form = {"csrf_token": token, "workflow": "invoice-sync", "threshold": "2",
            "enabled": "on", "slack_url": receiver.url, "pagerduty_routing_key": "short",
            "pagerduty_severity": "warning"}
    refused = logged_in.post("/alerts/rules", data=form)
    assert refused.status_code == 400
    assert 'aria-describedby="error-pagerduty_routing_key_0"' in refused.get_data(as_text=True)
    assert "String should match pattern" in refused.get_data(as_text=True)
    form["pagerduty_routing_key"] = ROUTING_KEY
    assert logged_in.post("/alerts/rules", data=form).status_code in (302, 303)
    page = logged_in.get("/alerts").get_data(as_text=True)
    assert "Slack <code>http://127.0.0.1:" in page and "severity warning" in page
