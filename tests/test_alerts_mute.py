"""Mute: a workflow's `muted_until` holds its failing and missed notices until then; one is
sent when the mute ends and its episode goes on, none when it has ended — through the real
outbox and a webhook receiver on 127.0.0.1, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alert_servers import (T0, alert_config, iso, make_rule, notices, payload, report,
                           scan_and_deliver, scan_in_two_threads, statuses)
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.models import AlertChannel
from alerts.notices import queue_notices
from helpers import csrf_from, parse
from models.db import connection
from models.executions import Workflow
from models.times import utcnow

API = "/api/automations/workflows"
NOTICES = "/api/automations/alerts/notices"
UTC = timezone.utc


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def mute(api, name: str, until: datetime | None):
    return api.patch(f"{API}/{name}", json={"muted_until": iso(until) if until else None})


def held_failure(app, api, channels: list[dict], runs: str = "FF", **rule) -> None:
    """A rule of threshold 2 for billing, muted until T0 + 1 h, failing `runs` from T0: its
    failing notice held by the scan at T0 + 10 min."""
    with connection():
        make_rule(2, channels, workflow="billing", **rule)
    mute(api, "billing", T0 + timedelta(hours=1))
    with connection():
        report("billing", runs)
    scan_and_deliver(app, T0 + timedelta(minutes=10))


@pytest.mark.parametrize("value", [
    "2026-12-08T06:00:00",           # no offset
    "2100-01-01T00:00:00Z",          # not before 2100
    "2100-01-01T05:00:00+04:00",     # 2100-01-01T01:00Z
    "tomorrow", "", 1_800_000_000, True, ["2026-12-08T06:00:00Z"],
    "2026-12-08T06:00:00Z\u0000",
], ids=["no-offset", "2100", "offset-2100", "words", "empty", "number", "bool", "list",
        "nul"])
def test_a_bad_muted_until_is_refused_naming_it(app, api, value):
    answer = api.patch(f"{API}/billing", json={"muted_until": value})
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["field"] == "muted_until"


def test_muted_until_is_set_shown_on_each_workflow_and_null_once_passed(app, api):
    until = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    answer = api.patch(f"{API}/billing", json={"muted_until": until.isoformat()})
    assert answer.status_code == 201 and answer.json["muted_until"] == iso(until)
    assert api.get(f"{API}/billing").json["muted_until"] == iso(until)
    [listed] = api.get(API).json["data"]
    assert listed["muted_until"] == iso(until)
    # A mute written with another offset is the same moment.
    later = until + timedelta(hours=1)
    answer = api.patch(f"{API}/billing", json={
        "muted_until": later.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()})
    assert answer.json["muted_until"] == iso(later)
    # A mute that has passed reads as none.
    assert mute(api, "billing", utcnow() - timedelta(minutes=1)).json["muted_until"] is None
    assert mute(api, "billing", None).json["muted_until"] is None
    with connection():
        assert Workflow.get(Workflow.name == "billing").muted_until is None


def test_a_muted_workflow_failing_past_its_threshold_sends_nothing_until_the_mute_ends(
        app, api, logged_in, receiver):
    with connection():
        make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="billing")
        report("billing", "S")
    mute(api, "billing", T0 + timedelta(hours=1))
    with connection():
        report("billing", "FFFF", first_minute=1)
    for minutes in (10, 20, 59):
        scan_and_deliver(app, T0 + timedelta(minutes=minutes))
    assert statuses() == ["held"] and receiver.requests == []
    with connection():
        [held] = notices()
        assert held.next_attempt_at == T0 + timedelta(hours=1)
    listed = api.get(NOTICES, query_string={"status": "held"}).json["data"]
    assert [n["next_attempt_at"] for n in listed] == [iso(T0 + timedelta(hours=1))]
    log = parse(logged_in.get("/alerts/log", query_string={"status": "held"}))
    [row] = log.find("tr", class_="notice-held")
    assert "held while the workflow is quiet" in row.text

    # The mute ends with the streak still going (one more failure meanwhile): one notice.
    with connection():
        report("billing", "F", first_minute=30)
    ended = T0 + timedelta(hours=1, minutes=1)
    scan_and_deliver(app, ended)
    for minutes in (2, 3):
        scan_and_deliver(app, T0 + timedelta(hours=1, minutes=minutes))
    [request] = receiver.wait_for(1)
    body = request.json()
    assert body["type"] == "workflow.failing" and body["data"]["workflow"] == "billing"
    assert body["timestamp"] == iso(ended)  # sent when the mute ended
    assert body["data"]["failure_count"] >= 3
    assert statuses() == ["delivered"]
    assert len(receiver.requests) == 1


def test_a_streak_that_recovered_during_the_mute_sends_nothing_at_all(app, api, receiver):
    held_failure(app, api, [{"type": "webhook", "url": receiver.url}], "FFF")
    assert statuses() == ["held"]
    with connection():
        report("billing", "S", first_minute=20)
    scan_and_deliver(app, T0 + timedelta(minutes=30))  # the recovery is decided while muted
    scan_and_deliver(app, T0 + timedelta(hours=2))     # and the mute ends
    assert statuses("failing") == ["dropped"] and statuses("recovered") == ["dropped"]
    assert receiver.requests == []
    dropped = api.get(NOTICES, query_string={"status": "dropped"}).json["data"]
    assert sorted(n["type"] for n in dropped) == ["failing", "recovered"]


def test_an_episode_that_ended_before_the_mute_ended_is_dropped_when_it_does(app, api,
                                                                             receiver):
    held_failure(app, api, [{"type": "webhook", "url": receiver.url}], notify_recovery=False)
    with connection():
        report("billing", "S", first_minute=20)
    scan_and_deliver(app, T0 + timedelta(hours=1, minutes=5))
    assert statuses() == ["dropped"] and receiver.requests == []


def test_a_mute_extended_keeps_holding_and_one_notice_goes_at_its_new_end(app, api, receiver):
    held_failure(app, api, [{"type": "webhook", "url": receiver.url}])
    with connection():
        Workflow.update(muted_until=T0 + timedelta(hours=3)).where(
            Workflow.name == "billing").execute()
    scan_and_deliver(app, T0 + timedelta(hours=1, minutes=1))
    with connection():
        [held] = notices()
        assert held.status == "held" and held.next_attempt_at == T0 + timedelta(hours=3)
    scan_and_deliver(app, T0 + timedelta(hours=3))
    assert statuses() == ["delivered"] and len(receiver.wait_for(1)) == 1


def test_unmuting_early_sends_the_held_notice_on_the_next_scan(app, api, receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="billing")
    now = utcnow().replace(microsecond=0)
    mute(api, "billing", now + timedelta(hours=8))
    for minutes in (3, 2):
        api.post("/api/automations/executions", json={
            "workflow": "billing", "status": "failure",
            "started_at": iso(now - timedelta(minutes=minutes)),
            "finished_at": iso(now - timedelta(minutes=minutes) + timedelta(seconds=5))})
    scan_and_deliver(app, now)
    assert statuses() == ["held"]
    assert mute(api, "billing", None).status_code == 200
    with connection():
        assert notices()[0].next_attempt_at <= utcnow()
    scan_and_deliver(app, utcnow())
    assert statuses() == ["delivered"] and len(receiver.wait_for(1)) == 1


def test_two_scans_racing_release_a_held_notice_once(app, api, receiver):
    held_failure(app, api, [{"type": "webhook", "url": receiver.url},
                            {"type": "webhook", "url": receiver.url + "/2"}])
    assert statuses() == ["held", "held"]
    with connection():
        assert scan_in_two_threads(config_from(app), T0 + timedelta(hours=1, minutes=1)) == []
        deliver_due(config_from(app), T0 + timedelta(hours=1, minutes=1))
    assert statuses() == ["delivered", "delivered"]
    assert len(receiver.wait_for(2)) == 2
    with connection():
        assert all(payload(n)["timestamp"] == iso(T0 + timedelta(hours=1, minutes=1))
                   for n in notices())


def test_a_missed_run_of_a_muted_workflow_is_held_and_told_when_the_mute_ends(app, api,
                                                                              receiver):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{API}/cron", json={"schedule": "0 * * * *", "grace_seconds": 0})
    expected = datetime.fromisoformat(api.get(f"{API}/cron").json["next_expected_at"]
                                      .replace("Z", "+00:00"))
    mute(api, "cron", expected + timedelta(minutes=30))
    scan_and_deliver(app, expected + timedelta(seconds=1))
    assert statuses("missed") == ["held"]
    scan_and_deliver(app, expected + timedelta(minutes=31))
    assert statuses("missed") == ["delivered"]
    assert receiver.wait_for(1)[0].json()["type"] == "workflow.missed"


def test_a_reminder_decided_while_muted_is_not_written(app, api, receiver):
    with connection():
        rule = make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="billing")
        report("billing", "F")
    mute(api, "billing", utcnow() + timedelta(hours=1))
    with connection():
        workflow = Workflow.get(Workflow.name == "billing")
        channels = list(AlertChannel.select().where(AlertChannel.rule == rule.id))
        body = {"type": "workflow.reminder", "timestamp": iso(utcnow()),
                "data": {"workflow": "billing"}}
        assert queue_notices(channels, "reminder", body, utcnow(), workflow_id=workflow.id,
                             episode=1) == 0
        assert notices() == []


def test_the_settings_form_mutes_for_an_hour_and_unmutes(app, logged_in):
    with connection():
        report("billing", "S")
    page = logged_in.get("/workflows/billing")
    assert page.status_code == 200
    before = utcnow()
    answer = logged_in.post("/workflows/billing", data={
        "csrf_token": csrf_from(page.text), "mute": "1h"})
    assert answer.status_code == 303, answer.text
    with connection():
        until = Workflow.get(Workflow.name == "billing").muted_until
    assert before + timedelta(minutes=59) < until <= utcnow() + timedelta(hours=1)
    page = logged_in.get("/workflows/billing")
    assert 'name="muted_until"' in page.text and iso(until.replace(microsecond=0))[:16] in \
        page.text
    answer = logged_in.post("/workflows/billing", data={
        "csrf_token": csrf_from(page.text), "mute": "off"})
    assert answer.status_code == 303
    with connection():
        assert Workflow.get(Workflow.name == "billing").muted_until is None
    answer = logged_in.post("/workflows/billing", data={
        "csrf_token": csrf_from(page.text), "muted_until": "next week"})
    assert answer.status_code == 400 and 'id="muted_until-error"' in answer.text


def test_reminders_wait_through_the_mute_and_count_from_the_notice_sent_at_its_end(
        app, api, receiver):
    held_failure(app, api, [{"type": "webhook", "url": receiver.url}],
                 remind_every_minutes=10)
    for minutes in (25, 40, 55):  # reminders fall due while muted: none is written
        scan_and_deliver(app, T0 + timedelta(minutes=minutes))
    with connection():
        assert [n.kind for n in notices()] == ["failing"]
    scan_and_deliver(app, T0 + timedelta(hours=1, minutes=1))
    scan_and_deliver(app, T0 + timedelta(hours=1, minutes=6))
    assert statuses() == ["delivered"]  # no reminder on the heels of the notice
    scan_and_deliver(app, T0 + timedelta(hours=1, minutes=11))
    assert [r.json()["type"] for r in receiver.wait_for(2)] == ["workflow.failing",
                                                               "workflow.reminder"]
    assert receiver.requests[1].json()["data"]["reminder_number"] == 1
