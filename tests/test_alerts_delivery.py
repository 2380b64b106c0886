"""Delivery: signed webhooks and multipart e-mail, retries with backoff, exactly once."""
from __future__ import annotations

from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from alert_servers import alert_config, make_rule, notices, report
from alerts.delivery import claim, deliver_due, lease
from alerts.models import Attempt, Notice
from alerts.scheduler import scan
from alerts.config import config_from
from app import create_app
from models import database
from models.db import utcnow

ALERT_002 = pytest.mark.spec("API-AUTO-EXEC-ALERT-002")
ALERT_003 = pytest.mark.spec("API-AUTO-EXEC-ALERT-003")
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def decide_and_deliver(app, now=None):
    settings = config_from(app)
    scan(settings, now)
    return deliver_due(settings, now)


@ALERT_002
@ALERT_003
def test_the_webhook_is_signed_with_the_rules_secret_and_names_workflow_count_and_link(
        app, db, receiver):
    rule = make_rule(3, [{"type": "webhook", "url": receiver.url, "secret": SECRET}],
                     workflow="invoice-sync")
    ids = report("invoice-sync", "FFF")
    decide_and_deliver(app)
    [request] = receiver.wait_for(1)
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "workflow.failing"
    assert body["data"]["workflow"] == "invoice-sync"
    assert body["data"]["failure_count"] == 3
    assert body["data"]["threshold"] == 3
    assert body["data"]["rule_id"] == rule.id
    assert body["data"]["execution_url"] == f"http://runwatch.test/executions/{ids[-1]}"
    assert request.headers["Content-Type"] == "application/json"


@ALERT_003
def test_a_forged_signature_does_not_verify(app, db, receiver):
    make_rule(1, [{"type": "webhook", "url": receiver.url, "secret": SECRET}], workflow="a")
    report("a", "F")
    decide_and_deliver(app)
    [request] = receiver.wait_for(1)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(request.body, request.headers)


@ALERT_002
@ALERT_003
def test_the_email_is_multipart_and_its_subject_holds_workflow_and_count(app, db, smtp_sink):
    make_rule(2, [{"type": "email", "to": ["ops@example.com", "lead@example.com"]}],
              workflow="nightly-backup")
    ids = report("nightly-backup", "FF")
    decide_and_deliver(app)
    [message] = smtp_sink.wait_for(1)
    assert "nightly-backup" in message["Subject"] and "2 failures" in message["Subject"]
    assert smtp_sink.inbox.envelopes[0][1] == ["ops@example.com", "lead@example.com"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    link = f"http://runwatch.test/executions/{ids[-1]}"
    for part in (text, html):
        assert link in part
        assert "nightly-backup" in part
        assert "HTTP 502 from billing (minute 1)" in part
    assert notices()[0].status == "delivered"


@ALERT_003
def test_a_recovery_is_announced_by_email_and_webhook(app, db, smtp_sink, receiver):
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]},
                  {"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "FF")
    decide_and_deliver(app)
    report("a", "S", first_minute=2)
    decide_and_deliver(app)
    assert "recovered after 2 failures" in smtp_sink.wait_for(2)[1]["Subject"]
    assert receiver.wait_for(2)[1].json()["type"] == "workflow.recovered"


def test_a_webhook_without_a_secret_gets_one(app, db):
    rule = make_rule(1, [{"type": "webhook", "url": "https://example.com/hook"}])
    assert rule.channels[0].options["secret"].startswith("whsec_")


@ALERT_003
def test_a_receiver_that_is_down_is_retried_with_backoff_and_gets_the_notice_once(
        app, db, receiver):
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    receiver.stop()
    t0 = utcnow()
    assert decide_and_deliver(app, t0).retrying == 1
    settings = config_from(app)
    assert deliver_due(settings, t0 + timedelta(seconds=0.5)).retrying == 0  # not due yet
    assert deliver_due(settings, t0 + timedelta(seconds=1)).retrying == 1    # 2nd try, 1 s on
    assert deliver_due(settings, t0 + timedelta(seconds=2.5)).retrying == 0  # waits 2 s now
    receiver.start()
    assert deliver_due(settings, t0 + timedelta(seconds=3)).delivered == 1
    for later in (4, 60, 3600):
        deliver_due(settings, t0 + timedelta(seconds=later))
    assert len(receiver.wait_for(1)) == 1
    [notice] = notices()
    outcomes = [a.ok for a in Attempt.select().order_by(Attempt.id)]
    assert (notice.status, notice.attempts, outcomes) == ("delivered", 3, [False, False, True])


@ALERT_003
def test_a_receiver_that_stays_down_marks_the_notice_failed_after_the_last_attempt(
        app, db, receiver):
    receiver.status = 503
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    t0 = utcnow()
    decide_and_deliver(app, t0)
    settings = config_from(app)
    deliver_due(settings, t0 + timedelta(seconds=1))
    assert deliver_due(settings, t0 + timedelta(seconds=3)).failed == 1
    assert deliver_due(settings, t0 + timedelta(days=1)) == deliver_due(settings)
    [notice] = notices()
    assert (notice.status, notice.attempts) == ("failed", 3)
    assert len(receiver.requests) == 3
    assert [a.response for a in Attempt.select()] == ["HTTP 503 Service Unavailable"] * 3


@ALERT_003
def test_the_app_restarted_between_deciding_and_delivering_sends_the_notice_once(
        app, app_config, db, receiver):
    make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "FF")
    scan(config_from(app))
    database.close()
    restarted = create_app(app_config)
    database.connect(reuse_if_open=True)
    settings = config_from(restarted)
    assert deliver_due(settings).delivered == 1
    assert deliver_due(settings).delivered == 0
    scan(settings)
    deliver_due(settings)
    assert len(receiver.wait_for(1)) == 1


@ALERT_003
def test_a_notice_claimed_by_a_process_that_died_is_sent_once_when_its_lease_runs_out(
        app, db, receiver):
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    settings = config_from(app)
    scan(settings)
    [notice] = notices()
    t0 = utcnow()
    assert claim(notice.id, t0, settings)  # the process that claimed it dies here
    assert not claim(notice.id, t0, settings)
    held = lease(settings)
    assert deliver_due(settings, t0 + held / 2).delivered == 0
    assert deliver_due(settings, t0 + held + timedelta(seconds=1)).delivered == 1
    deliver_due(settings, t0 + held * 3)
    assert len(receiver.wait_for(1)) == 1


@ALERT_003
def test_one_failing_channel_does_not_hold_back_the_others(app, db, smtp_sink, receiver):
    make_rule(1, [{"type": "webhook", "url": "http://127.0.0.1:9/closed"},
                  {"type": "email", "to": ["ops@example.com"]},
                  {"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    result = decide_and_deliver(app)
    assert (result.delivered, result.retrying) == (2, 1)
    assert "Connection refused" in Notice.select().where(
        Notice.status == "pending").get().last_error


def test_without_a_mail_server_an_email_attempt_fails_and_says_why(app_config, db):
    app = create_app({**app_config, "SMTP_HOST": None})
    database.connect(reuse_if_open=True)
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]}], workflow="a")
    report("a", "F")
    decide_and_deliver(app)
    assert "RUNWATCH_SMTP_HOST" in notices()[0].last_error


def test_a_channel_that_cannot_work_as_configured_fails_at_once_without_retries(app_config, db):
    app = create_app({**app_config, "SMTP_HOST": None})
    database.connect(reuse_if_open=True)
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]}], workflow="a")
    report("a", "F")
    result = decide_and_deliver(app)
    assert (result.delivered, result.retrying, result.failed) == (0, 0, 1)
    [notice] = notices()
    assert notice.status == "failed" and notice.attempts == 1
    assert Attempt.select().where(Attempt.notice == notice.id).count() == 1
