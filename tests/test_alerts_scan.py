"""The scan: N failures in a row decide one failing notice per streak, a success one recovery."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alert_servers import make_rule, notices, payload, report, scan_in_two_threads
from alerts.models import AlertDirty, AlertState
from alerts.rules import update_rule
from alerts.scheduler import scan
from alerts.schemas import RulePatch
from alerts.config import config_from
from helpers import ROOT
from models.ingest import patch_execution
from models.schemas import ExecutionPatch

HOOK = [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
ALERT_001 = pytest.mark.spec("API-AUTO-EXEC-ALERT-001")


def scan_now(app):
    return scan(config_from(app))


def kinds_and_counts() -> list[tuple[str, int]]:
    return [(n.kind, payload(n)["data"]["failure_count"]) for n in notices()]


@ALERT_001
@pytest.mark.parametrize("threshold, steps", [
    (3, [("FFSFF", []), ("F", [("failing", 3)]), ("F", []), ("S", [("recovered", 4)])]),
    (1, [("S", []), ("F", [("failing", 1)]), ("F", []), ("S", [("recovered", 2)]),
         ("F", [("failing", 1)])]),
], ids=["threshold-3", "threshold-1"])
def test_one_failing_notice_when_the_streak_reaches_n_and_one_recovery(app, db, threshold, steps):
    make_rule(threshold, HOOK, workflow="invoice-sync")
    expected, minute = [], 0
    for statuses, new in steps:
        report("invoice-sync", statuses, first_minute=minute)
        minute += len(statuses)
        scan_now(app)
        scan_now(app)  # scanning again decides nothing more
        expected += new
        assert kinds_and_counts() == expected, statuses


@ALERT_001
def test_a_success_and_a_new_streak_between_two_scans_send_a_recovery_and_a_new_alert(app, db):
    make_rule(2, HOOK, workflow="etl")
    report("etl", "FF")
    scan_now(app)
    report("etl", "SFF", first_minute=2)  # all reported before the next scan
    scan_now(app)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 2), ("recovered", 2), ("failing", 2)]


@ALERT_001
def test_pending_and_running_runs_neither_break_nor_extend_the_streak(app, db):
    make_rule(3, HOOK, workflow="etl")
    report("etl", "FFPR")
    scan_now(app)
    assert notices() == []
    report("etl", "RF", first_minute=4)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3)]


@ALERT_001
def test_a_late_reported_older_success_breaks_the_streak_where_it_started(app, db):
    make_rule(3, HOOK, workflow="etl")
    report("etl", "FF", first_minute=0)
    report("etl", "F", first_minute=10)
    report("etl", "S", first_minute=5)  # reported last, but it ran before the third failure
    scan_now(app)
    assert notices() == []
    report("etl", "FF", first_minute=11)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3)]


@ALERT_001
def test_a_late_reported_older_failure_extends_the_streak_it_belongs_to(app, db):
    make_rule(3, HOOK, workflow="etl")
    report("etl", "SFF", first_minute=0)
    report("etl", "F", first_minute=-5)  # before the success: not part of the streak
    scan_now(app)
    assert notices() == []
    report("etl", "F", first_minute=1)  # same minute as a later run: ordered after it by id
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3)]


@ALERT_001
def test_the_notice_holds_the_first_and_last_failure_and_the_last_error(app, db):
    make_rule(2, HOOK, workflow="billing")
    ids = report("billing", "SFF", error="HTTP 502")
    scan_now(app)
    [notice] = notices()
    data = payload(notice)["data"]
    assert data == {"workflow": "billing", "failure_count": 2, "threshold": 2,
                    "first_failure_at": "2026-11-01T08:01:00Z",
                    "last_failure_at": "2026-11-01T08:02:00Z",
                    "last_error": "HTTP 502 (minute 2)",
                    "execution_url": f"http://runwatch.test/executions/{ids[-1]}",
                    "rule_id": notice.rule_id}
    assert payload(notice)["type"] == "workflow.failing"


@ALERT_001
def test_a_rule_for_every_workflow_watches_each_of_them(app, db):
    make_rule(2, HOOK)
    report("a", "FF")
    report("b", "FF")
    report("c", "FS")
    scan_now(app)
    assert sorted(payload(n)["data"]["workflow"] for n in notices()) == ["a", "b"]


@ALERT_001
def test_a_disabled_rule_stays_silent(app, db):
    make_rule(1, HOOK, workflow="a", enabled=False)
    report("a", "FFF")
    scan_now(app)
    assert notices() == []


@ALERT_001
def test_two_rules_on_one_workflow_notify_independently(app, db):
    low = make_rule(2, HOOK, workflow="a")
    high = make_rule(3, HOOK)
    report("a", "FF")
    scan_now(app)
    assert [n.rule_id for n in notices()] == [low.id]
    report("a", "F", first_minute=2)
    scan_now(app)
    assert [n.rule_id for n in notices()] == [low.id, high.id]


@ALERT_001
def test_a_rule_for_another_workflow_stays_silent(app, db):
    make_rule(1, HOOK, workflow="other")
    report("a", "FFF")
    scan_now(app)
    assert notices() == []


@ALERT_001
def test_a_rule_created_while_a_workflow_is_failing_fires_once_on_the_next_scan(app, db):
    report("a", "FFFF")
    scan_now(app)
    make_rule(3, HOOK, workflow="a")
    scan_now(app)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 4)]


@ALERT_001
def test_re_enabling_a_rule_does_not_repeat_the_notice_of_the_same_streak(app, db):
    rule = make_rule(2, HOOK, workflow="a")
    report("a", "FF")
    scan_now(app)
    update_rule(rule.id, RulePatch(enabled=False))
    update_rule(rule.id, RulePatch(enabled=True))
    report("a", "F", first_minute=2)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 2)]


@ALERT_001
def test_no_recovery_notice_when_the_rule_asks_for_none(app, db):
    make_rule(1, HOOK, workflow="a", notify_recovery=False)
    report("a", "F")
    scan_now(app)
    report("a", "S", first_minute=1)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 1)]
    assert AlertState.get().alerted is False


def test_an_idle_scan_examines_nothing(app, db):
    make_rule(1, HOOK)
    report("a", "SSS")
    assert scan_now(app).examined == 1
    assert scan_now(app).examined == 0
    assert AlertDirty.select().count() == 0


@ALERT_001
def test_two_scans_at_once_in_two_threads_decide_one_notice(app, db):
    make_rule(3, HOOK + [{"type": "email", "to": ["ops@example.com"]}], workflow="a")
    report("a", "FFF")
    for other in "bcdefgh":
        report(other, "F")
    assert scan_in_two_threads(config_from(app)) == []
    assert sorted(n.channel_type for n in notices()) == ["email", "webhook"]


@pytest.mark.long(6)
@ALERT_001
def test_two_scan_commands_at_once_in_two_processes_send_one_notice(app, db, database_url,
                                                                     receiver):
    make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "FFF")
    for other in "bcdefghij":
        report(other, "FF")
    db.close()
    env = {**os.environ, "RUNWATCH_DATABASE_URL": database_url, "RUNWATCH_SECRET_KEY": "x",
           "RUNWATCH_SCHEDULER": "false", "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}
    command = [sys.executable, "-m", "flask", "--app", "app", "alerts", "scan"]
    processes = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=60)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    db.connect(reuse_if_open=True)
    assert [(n.kind, n.status) for n in notices()] == [("failing", "delivered")]
    receiver.wait_for(1, timeout=2)
    assert len(receiver.requests) == 1


# --- Every finished run is examined in order, however soon a streak ended -----------------

def report_each(workflow: str, statuses: str, first_minute: int = 0) -> None:
    """Report runs one request (one transaction) each, as a client posting them does."""
    for offset, letter in enumerate(statuses):
        report(workflow, letter, first_minute=first_minute + offset)


def notices_of(workflow: str) -> list[tuple[str, int]]:
    return [(n.kind, payload(n)["data"]["failure_count"]) for n in notices()
            if payload(n)["data"]["workflow"] == workflow]


@ALERT_001
def test_a_streak_that_reaches_n_and_ends_between_two_scans_is_alerted_and_recovers(app, db):
    make_rule(3, HOOK)
    for name in ("flap-1", "flap-2", "flap-3", "control"):
        report(name, "S")
    scan_now(app)
    for name in ("flap-1", "flap-2", "flap-3"):
        report_each(name, "FFFS", first_minute=1)  # all between two scans
    report_each("control", "FFF", first_minute=1)
    report_each("fresh", "FFFS")  # a workflow never seen before
    scan_now(app)
    scan_now(app)
    for name in ("flap-1", "flap-2", "flap-3", "fresh"):
        assert notices_of(name) == [("failing", 3), ("recovered", 3)], name
    assert notices_of("control") == [("failing", 3)]


@ALERT_001
def test_two_streaks_between_two_scans_alert_only_the_one_that_reached_n(app, db):
    make_rule(3, HOOK, workflow="a")
    report("a", "S")
    scan_now(app)
    report_each("a", "FFSFFFS", first_minute=1)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3), ("recovered", 3)]
    report_each("a", "FFS", first_minute=8)  # below N: nothing
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3), ("recovered", 3)]


@ALERT_001
def test_the_failing_notice_tells_the_streak_as_far_as_the_scan_saw_it(app, db):
    make_rule(3, HOOK, workflow="a")
    report("a", "S")
    scan_now(app)
    report_each("a", "FFFFF", first_minute=1)
    scan_now(app)
    report_each("a", "FS", first_minute=6)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 5), ("recovered", 6)]


@ALERT_001
def test_a_long_run_finishing_after_later_ones_is_counted_once_where_it_started(app, db):
    make_rule(3, HOOK, workflow="a")
    report("a", "S")
    long_run = report("a", "R", first_minute=1)[0]
    report_each("a", "FF", first_minute=2)
    scan_now(app)
    assert notices() == []
    # It started before the two failures and failed after them: three in a row.
    patch_execution(long_run, ExecutionPatch(status="failure"))
    scan_now(app)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3)]
    report("a", "S", first_minute=4)
    scan_now(app)
    assert kinds_and_counts() == [("failing", 3), ("recovered", 3)]


@ALERT_001
def test_a_notice_is_dated_when_it_was_decided_not_before_the_runs_it_tells_of(app, db):
    from datetime import datetime

    from models.db import utcnow

    make_rule(3, HOOK, workflow="a")
    report_each("a", "FFF")
    received = utcnow()
    scan_now(app)
    after = utcnow()
    [notice] = notices()
    assert received <= notice.created_at <= after
    stamp = datetime.fromisoformat(payload(notice)["timestamp"].replace("Z", "+00:00"))
    assert stamp == notice.created_at
