"""Silence: a scheduled run that never comes (missed and resumed notices through the real
outbox, SMTP and a webhook receiver) and a run that never ends (failed by the scan with a
Timeout error) — on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from alert_servers import alert_config, make_rule, notices, payload
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from models.db import connection, to_micros, utcnow
from models.executions import Workflow
from workflows import schedule as schedules
from workflows.summary import settings_changed

API = "/api/automations/workflows"
RUNS = "/api/automations/executions"
UTC = timezone.utc
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def scan_at(app, moment: datetime, deliver: bool = False) -> None:
    with connection():
        config = config_from(app)
        scan(config, moment)
        if deliver:
            deliver_due(config, moment)


def kinds() -> list[str]:
    with connection():
        return [n.kind for n in notices()]


def state_of(api, name: str) -> dict:
    return next(w for w in api.get(API).json["data"] if w["name"] == name)


def start_run(api, name: str, started: datetime, status: str = "success", **extra) -> int:
    body = {"workflow": name, "status": status, "started_at": iso(started), **extra}
    if status in ("success", "failure"):
        body.setdefault("finished_at", iso(started + timedelta(seconds=3)))
    answer = api.post(RUNS, json=body)
    assert answer.status_code in (200, 201), answer.json
    return answer.json["id"]


def test_a_missed_run_is_told_once_and_its_return_once_then_the_next_episode(
        app, api, receiver, smtp_sink):
    with connection():
        make_rule(3, [{"type": "webhook", "url": receiver.url, "secret": SECRET},
                      {"type": "email", "to": ["ops@example.com"]}], workflow="sync")
    set_at = utcnow()
    assert api.patch(f"{API}/sync", json={"schedule": "*/5 * * * *",
                                          "grace_seconds": 60}).status_code == 201
    expected = schedules.next_expected("*/5 * * * *", "UTC", set_at)
    assert state_of(api, "sync")["next_expected_at"] == iso(expected)

    scan_at(app, expected + timedelta(seconds=59))  # within the grace: not late yet
    assert state_of(api, "sync")["state"] == "new" and kinds() == []
    for seconds in (61, 90, 200, 280):  # however many scans run
        scan_at(app, expected + timedelta(seconds=seconds), deliver=True)
    assert state_of(api, "sync")["state"] == "late"
    assert kinds() == ["missed", "missed"]  # one per channel

    [request] = receiver.wait_for(1)
    body = Webhook(SECRET).verify(request.body, request.headers)
    assert body["type"] == "workflow.missed"
    assert body["data"]["workflow"] == "sync"
    assert body["data"]["expected_at"] == iso(expected)
    assert body["data"]["grace_seconds"] == 60 and body["data"]["last_run_at"] is None
    [mail] = smtp_sink.wait_for(1)
    assert "missed" in mail["Subject"] and "sync" in mail["Subject"]
    assert iso(expected) in mail.get_body(("plain",)).get_content()

    start_run(api, "sync", expected + timedelta(seconds=100))
    scan_at(app, expected + timedelta(seconds=110), deliver=True)
    assert state_of(api, "sync")["state"] == "ok"
    assert kinds() == ["missed", "missed", "resumed", "resumed"]
    resumed = Webhook(SECRET).verify(receiver.wait_for(2)[1].body, receiver.wait_for(2)[1].headers)
    assert resumed["type"] == "workflow.recovered"
    assert resumed["data"]["last_run_at"] == iso(expected + timedelta(seconds=100))
    scan_at(app, expected + timedelta(seconds=200))
    assert kinds() == ["missed", "missed", "resumed", "resumed"]

    # The next expected run (five minutes on) does not come either: a new episode.
    scan_at(app, expected + timedelta(minutes=5, seconds=61))
    assert state_of(api, "sync")["state"] == "late"
    assert kinds() == ["missed", "missed", "resumed", "resumed", "missed", "missed"]
    with connection():
        assert [n.episode for n in notices("missed")] == [1, 1, 2, 2]


def test_rules_of_other_workflows_and_disabled_rules_hear_nothing(app, api, receiver):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="other")
        make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow=None, enabled=False)
        make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow=None,
                  notify_recovery=False)
    api.patch(f"{API}/cron", json={"schedule": "0 * * * *", "grace_seconds": 0})
    expected = datetime.fromisoformat(state_of(api, "cron")["next_expected_at"]
                                      .replace("Z", "+00:00"))
    scan_at(app, expected + timedelta(seconds=1))
    assert kinds() == ["missed"]  # the enabled rule for every workflow
    start_run(api, "cron", expected + timedelta(seconds=30))
    scan_at(app, expected + timedelta(seconds=40))
    assert kinds() == ["missed"]  # it does not notify recovery
    assert state_of(api, "cron")["state"] == "ok"


def test_removing_the_schedule_ends_the_episode_without_a_recovery(app, api, receiver):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{API}/cron", json={"schedule": "0 * * * *", "grace_seconds": 0})
    expected = datetime.fromisoformat(state_of(api, "cron")["next_expected_at"]
                                      .replace("Z", "+00:00"))
    scan_at(app, expected + timedelta(seconds=1))
    assert state_of(api, "cron")["state"] == "late"
    api.patch(f"{API}/cron", json={"schedule": None})
    scan_at(app, expected + timedelta(seconds=2))
    assert state_of(api, "cron")["state"] == "new" and kinds() == ["missed"]


def _simulate_days(app, api, name: str, schedule: str, zone: str, first: datetime,
                   days: int, skip: set[int] = frozenset()) -> None:
    """A cron daemon's runs: at each instant the schedule expects (as every daemon runs it),
    with a scan every hour between them."""
    with connection():
        Workflow.update(schedule_set_at=to_micros(first)).where(Workflow.name == name).execute()
        settings_changed(Workflow.get(Workflow.name == name).id)
    moment, index = first, 0
    end = first + timedelta(days=days)
    while True:
        due = schedules.next_expected(schedule, zone, moment)
        while moment + timedelta(minutes=60) < min(due, end):
            moment += timedelta(minutes=60)
            scan_at(app, moment)
        if due >= end:
            break
        if index not in skip:
            start_run(api, name, due + timedelta(seconds=5))
        moment, index = due + timedelta(seconds=5), index + 1
        scan_at(app, moment)


# Each simulation starts a day or so before the change and ends a day after it: a scan
# every hour of it, so a day more or less is what the test costs.
@pytest.mark.parametrize("schedule, first, days", [
    ("30 2 * * *", datetime(2026, 10, 23, 12, tzinfo=UTC), 3),  # 02:30 happens twice on 10-25
    ("30 2 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC), 3),   # 02:30 never happens on 03-29
    ("15 * * * *", datetime(2026, 10, 24, 18, tzinfo=UTC), 1),  # hourly across the fall back
    ("0 3 * * *", datetime(2026, 3, 27, 12, tzinfo=UTC), 3),    # the first hour after the gap
], ids=["fall-back-daily", "spring-forward-daily", "fall-back-hourly", "spring-forward-3am"])
def test_daylight_saving_changes_make_no_missed_notice(app, api, receiver, schedule, first,
                                                       days):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{API}/berlin", json={"schedule": schedule, "timezone": "Europe/Berlin",
                                     "grace_seconds": 120})
    _simulate_days(app, api, "berlin", schedule, "Europe/Berlin", first, days=days)
    assert kinds() == []
    assert state_of(api, "berlin")["state"] == "ok"


def test_a_skipped_run_across_a_daylight_saving_change_is_still_missed(app, api, receiver):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{API}/berlin", json={"schedule": "30 2 * * *", "timezone": "Europe/Berlin",
                                     "grace_seconds": 120})
    _simulate_days(app, api, "berlin", "30 2 * * *", "Europe/Berlin",
                   datetime(2026, 10, 23, 12, tzinfo=UTC), days=3, skip={1})  # 10-25 02:30
    assert kinds() == ["missed", "resumed"]
    with connection():
        [missed] = notices("missed")
        assert payload(missed)["data"]["expected_at"] == "2026-10-25T00:30:00Z"  # 02:30 CEST


def test_a_run_past_its_maximum_duration_fails_and_counts_in_the_streak(app, api, receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="export")
    api.patch(f"{API}/export", json={"max_duration_seconds": 600})
    now = utcnow().replace(microsecond=0)
    first = start_run(api, "export", now - timedelta(minutes=30), status="running",
                      external_id="e-1")
    young = start_run(api, "export", now - timedelta(minutes=5), status="running",
                      external_id="e-2")
    scan_at(app, now)
    detail = api.get(f"{RUNS}/{first}").json
    assert detail["status"] == "failure"
    assert detail["finished_at"] == iso(now - timedelta(minutes=20))
    assert detail["duration_ms"] == 600_000
    assert detail["error"]["type"] == "Timeout" and "600 s" in detail["error"]["message"]
    assert api.get(f"{RUNS}/{young}").json["status"] == "running"
    assert kinds() == []  # one failure in a row; the rule asks for two

    scan_at(app, now + timedelta(minutes=6))  # the younger one is past its limit too
    assert api.get(f"{RUNS}/{young}").json["status"] == "failure"
    assert kinds() == ["failing"]
    assert state_of(api, "export")["streak"] == 2
    [group] = api.get(f"{API}/export").json["errors"]  # one group: both timed out
    assert (group["type"], group["count"]) == ("Timeout", 2)

    # A late report of the first run replaces the timeout: its status, no Timeout error.
    answer = api.patch(f"{RUNS}/{first}", json={"status": "success"})
    assert answer.status_code == 200
    detail = api.get(f"{RUNS}/{first}").json
    assert detail["status"] == "success" and detail["error"] is None
    # The other reported running again by its external id: open, without the timeout's end.
    start_run(api, "export", now - timedelta(minutes=5), status="running", external_id="e-2")
    detail = api.get(f"{RUNS}/{young}").json
    assert detail["status"] == "running" and detail["finished_at"] is None
    assert detail["error"] is None


def test_runs_of_workflows_without_a_maximum_duration_are_left_open(app, api):
    now = utcnow()
    long_one = start_run(api, "forever", now - timedelta(days=20), status="running")
    api.patch(f"{API}/forever", json={"description": "no limit"})
    scan_at(app, now)
    assert api.get(f"{RUNS}/{long_one}").json["status"] == "running"
    api.patch(f"{API}/forever", json={"max_duration_seconds": 86400})
    scan_at(app, now)
    assert api.get(f"{RUNS}/{long_one}").json["status"] == "failure"
