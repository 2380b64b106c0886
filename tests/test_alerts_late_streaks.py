"""Streaks that runs reported (or changed) late complete after a success has ended them.

F, F, S examined, then an older F reported: ordered by start the workflow failed three times
in a row. The scan sends one failing notice that says the streak has already recovered,
then its recovery, through every channel, once; and never a second alert for a streak that
was already told of.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from alert_servers import (alert_config, make_rule, notices, payload, report,
                           scan_in_two_threads)
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from alerts.watchdog import health
from models.db import connection, iso, utcnow
from models.ingest import patch_execution
from models.schemas import ExecutionPatch

ALERT_001 = pytest.mark.spec("API-AUTO-EXEC-ALERT-001")


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


@pytest.fixture
def channels(receiver):
    return [{"type": "webhook", "url": receiver.url},
            {"type": "email", "to": ["ops@example.com"]}]


def scan_and_deliver(app) -> None:
    settings = config_from(app)
    scan(settings)
    scan(settings)  # scanning again decides nothing more
    deliver_due(settings)


def report_each(workflow: str, statuses: str, first_minute: int = 0) -> list[int]:
    """Report runs one request each, one a minute from `first_minute`; their ids."""
    return [report(workflow, letter, first_minute=first_minute + offset)[0]
            for offset, letter in enumerate(statuses)]


def received(receiver, smtp_sink, count: int) -> tuple[list[dict], list[str]]:
    """The webhook bodies and e-mail subjects received, once `count` of each arrived."""
    bodies = [request.json() for request in receiver.wait_for(count)]
    subjects = [str(message["Subject"]) for message in smtp_sink.wait_for(count)]
    return bodies, subjects


def told() -> list[tuple[str, str, int]]:
    """(kind, channel type, failure count) of every notice decided, oldest first."""
    return [(n.kind, n.channel_type, payload(n)["data"]["failure_count"]) for n in notices()]


@ALERT_001
def test_a_late_failure_completing_an_ended_streak_is_alerted_as_recovered_then_recovers(
        app, db, channels, receiver, smtp_sink):
    rule = make_rule(3, channels, workflow="invoice-sync")
    ids = report_each("invoice-sync", "FFS", first_minute=2)
    scan_and_deliver(app)
    assert notices() == []
    report("invoice-sync", "F", first_minute=1, error="cut by a crash")  # re-sent late
    assert health(30).waiting_workflows == 1  # its run's mark is not a second workflow
    scan_and_deliver(app)
    scan_and_deliver(app)

    bodies, subjects = received(receiver, smtp_sink, 2)
    assert [b["type"] for b in bodies] == ["workflow.failing", "workflow.recovered"]
    failing, recovered = bodies[0]["data"], bodies[1]["data"]
    streak = {"workflow": "invoice-sync", "failure_count": 3, "threshold": 3,
              "first_failure_at": "2026-11-01T08:01:00Z",
              "last_failure_at": "2026-11-01T08:03:00Z",
              "last_error": "HTTP 502 from billing (minute 3)",
              "execution_url": f"http://runwatch.test/executions/{ids[1]}",
              "rule_id": rule.id}
    assert failing == {**streak, "already_recovered": True,
                       "recovered_at": "2026-11-01T08:04:00Z"}
    assert recovered == streak  # an ordinary recovery
    assert "already recovered" in subjects[0] and "3 times in a row" in subjects[0]
    assert "recovered after 3 failures" in subjects[1]
    [mail] = [m for m in smtp_sink.messages if "already recovered" in m["Subject"]]
    for part in (mail.get_body(("plain",)).get_content(),
                 mail.get_body(("html",)).get_content()):
        assert "already recovered" in part and "2026-11-01T08:04:00Z" in part
    assert sorted(told()) == [("failing", "email", 3), ("failing", "webhook", 3),
                              ("recovered", "email", 3), ("recovered", "webhook", 3)]
    assert len(receiver.requests) == 2 and len(smtp_sink.messages) == 2


@ALERT_001
def test_without_recovery_notices_only_the_failing_notice_is_sent(app, db, channels):
    make_rule(2, channels, workflow="a", notify_recovery=False)
    report_each("a", "FS", first_minute=2)
    scan_and_deliver(app)
    report("a", "F", first_minute=1)
    scan_and_deliver(app)
    assert sorted(told()) == [("failing", "email", 2), ("failing", "webhook", 2)]


@ALERT_001
def test_a_re_sent_run_turning_a_success_into_a_failure_completes_an_ended_streak(
        app, db, channels, receiver):
    make_rule(3, channels, workflow="a")
    ids = report_each("a", "SFSFS")
    scan_and_deliver(app)
    assert notices() == []
    patch_execution(ids[2], ExecutionPatch(status="failure"))  # F, F, F, S now
    scan_and_deliver(app)
    bodies = [r.json() for r in receiver.wait_for(2)]
    assert [(b["type"], b["data"]["failure_count"], b["data"]["first_failure_at"])
            for b in bodies] == [("workflow.failing", 3, "2026-11-01T08:01:00Z"),
                                 ("workflow.recovered", 3, "2026-11-01T08:01:00Z")]
    assert bodies[0]["data"]["already_recovered"] is True


@ALERT_001
def test_two_late_failures_into_one_ended_streak_alert_it_once(app, db, channels):
    make_rule(3, channels, workflow="a")
    report_each("a", "SFS", first_minute=0)
    scan_and_deliver(app)
    report("a", "F", first_minute=1)  # between the success and the failure: 2 in a row
    scan_and_deliver(app)
    assert notices() == []
    report("a", "F", first_minute=1)  # 3 in a row now
    scan_and_deliver(app)
    report("a", "F", first_minute=1)  # 4: the same streak, told already
    scan_and_deliver(app)
    assert sorted(told()) == [("failing", "email", 3), ("failing", "webhook", 3),
                              ("recovered", "email", 3), ("recovered", "webhook", 3)]


@ALERT_001
@pytest.mark.parametrize("late_minute", [0, 2], ids=["before-it", "inside-it"])
def test_a_streak_alerted_while_open_is_not_alerted_again_when_a_late_failure_joins_it(
        app, db, channels, late_minute):
    make_rule(3, channels, workflow="a")
    report_each("a", "F", first_minute=1)
    report_each("a", "FF", first_minute=3)
    scan_and_deliver(app)
    report("a", "S", first_minute=5)
    scan_and_deliver(app)
    assert sorted(told()) == [("failing", "email", 3), ("failing", "webhook", 3),
                              ("recovered", "email", 3), ("recovered", "webhook", 3)]
    report("a", "F", first_minute=late_minute)  # after its recovery
    scan_and_deliver(app)
    assert len(notices()) == 4


@ALERT_001
def test_a_late_failure_into_a_streak_no_scan_has_passed_is_alerted_once_in_order(
        app, db, channels):
    make_rule(3, channels, workflow="a")
    report("a", "S")
    scan_and_deliver(app)
    report_each("a", "FFS", first_minute=2)
    report("a", "F", first_minute=1)  # before the scan reads any of them
    scan_and_deliver(app)
    assert [(n.kind, payload(n)["data"].get("already_recovered")) for n in notices()
            if n.channel_type == "webhook"] == [("failing", None), ("recovered", None)]


@ALERT_001
def test_a_late_failure_into_an_ended_streak_below_the_threshold_sends_nothing(
        app, db, channels):
    make_rule(3, channels, workflow="a")
    report_each("a", "SFSFS")
    scan_and_deliver(app)
    report("a", "F", first_minute=3)  # F, F before the last success: two in a row
    report("a", "S", first_minute=-1)  # an older success: nothing to tell
    scan_and_deliver(app)
    assert notices() == []


@ALERT_001
def test_two_scans_at_once_decide_the_ended_streak_once(app, db, channels, receiver,
                                                        smtp_sink):
    make_rule(3, channels, workflow="a")
    for other in "bcdefgh":
        make_rule(2, channels, workflow=other)
    report_each("a", "FFS", first_minute=2)
    for other in "bcdefgh":
        report_each(other, "FS", first_minute=2)
    settings = config_from(app)
    scan(settings)
    report("a", "F", first_minute=1)
    for other in "bcdefgh":
        report(other, "F", first_minute=1)
    assert scan_in_two_threads(settings) == []
    deliver_due(settings)
    bodies, _ = received(receiver, smtp_sink, 16)
    assert sorted((b["data"]["workflow"], b["type"]) for b in bodies) == sorted(
        (name, kind) for name in "abcdefgh"
        for kind in ("workflow.failing", "workflow.recovered"))
    assert len(notices()) == 32


@ALERT_001
def test_a_hung_run_timed_out_behind_a_success_completes_the_ended_streak_it_began(
        app, api, receiver):
    with connection():
        make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="export")
    api.patch("/api/automations/workflows/export", json={"max_duration_seconds": 600})
    now = utcnow().replace(microsecond=0)
    for minutes, status in ((30, "running"), (25, "failure"), (22, "failure"), (21, "success")):
        started = now - timedelta(minutes=minutes)
        body = {"workflow": "export", "status": status, "started_at": started.isoformat()}
        if status != "running":
            body["finished_at"] = (started + timedelta(seconds=3)).isoformat()
        assert api.post("/api/automations/executions", json=body).status_code == 201
    settings = config_from(app)
    with connection():
        scan(settings, now - timedelta(minutes=20, seconds=1))  # the hung run has time left
        assert notices() == []
        scan(settings, now)  # it fails now: F, F, F, S by start
        deliver_due(settings, now)
    bodies = [r.json() for r in receiver.wait_for(2)]
    assert [(b["type"], b["data"]["failure_count"], b["data"]["first_failure_at"],
             b["data"].get("already_recovered")) for b in bodies] == [
        ("workflow.failing", 3, iso(now - timedelta(minutes=30)), True),
        ("workflow.recovered", 3, iso(now - timedelta(minutes=30)), None)]
