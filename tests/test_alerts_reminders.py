"""Reminders: while an alerted failing or late episode goes on unacknowledged, a rule with
`remind_every_minutes` reminds of it every that many minutes, with the facts as they are
then, once per interval whichever process scans (real receivers on 127.0.0.1; SQLite and
PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from alert_servers import (T0, alert_config, form_data, make_rule, notices, payload, report,
                           scan_in_two_threads)
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.models import AlertRule, Reminder
from alerts.scheduler import scan
from helpers import Elements, form_fields
from models.db import utcnow
from models.times import to_micros

ALERTS = "/api/automations/alerts"
WORKFLOWS = "/api/automations/workflows"
T = T0 + timedelta(hours=1)  # the scans' clock: the runs of `report` start at T0
MIN = timedelta(minutes=1)
EMAIL = {"type": "email", "to": ["ops@example.com"]}


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def decide(app, moment: datetime) -> None:
    scan(config_from(app), moment)


def reminders() -> list[tuple[int, int, int]]:
    """(reminder number, failure count, episode) of every reminder decided, oldest first."""
    return [(payload(n)["data"]["reminder_number"], payload(n)["data"]["failure_count"],
             n.episode) for n in notices("reminder")]


def failing_rule(receiver, every: int = 10, **fields):
    """billing has failed twice; a rule alerting at 2 failures that reminds every `every`
    minutes; its failing notice decided at T."""
    report("billing", "FF")
    return make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="billing",
                     remind_every_minutes=every, **fields)


def test_a_failing_streak_is_reminded_of_every_interval_with_the_count_as_it_is_then(
        app, db, receiver):
    failing_rule(receiver)
    decide(app, T)
    decide(app, T + 9 * MIN)
    assert reminders() == []
    report("billing", "F", first_minute=2)
    decide(app, T + 10 * MIN)
    decide(app, T + 15 * MIN)
    assert reminders() == [(1, 3, 1)]
    decide(app, T + 20 * MIN)
    assert reminders() == [(1, 3, 1), (2, 3, 1)]
    deliver_due(config_from(app))
    bodies = [r.json() for r in receiver.wait_for(3)]
    assert [b["type"] for b in bodies] == ["workflow.failing", "workflow.reminder",
                                          "workflow.reminder"]
    failing, first, _ = bodies
    assert first["timestamp"] == "2026-11-01T09:10:00Z"
    # The episode's notice, as things stand now, plus the reminder's number.
    assert first["data"] == {**failing["data"], "failure_count": 3,
                             "last_failure_at": "2026-11-01T08:02:00Z",
                             "last_error": "HTTP 502 from billing (minute 2)",
                             "execution_url": first["data"]["execution_url"],
                             "reminder_number": 1}
    assert first["data"]["execution_url"] != failing["data"]["execution_url"]


def test_a_success_ends_the_reminders(app, db, receiver):
    failing_rule(receiver)
    decide(app, T)
    report("billing", "S", first_minute=2)
    decide(app, T + 5 * MIN)
    assert Reminder.select().count() == 0
    decide(app, T + 30 * MIN)
    assert [n.kind for n in notices()] == ["failing", "recovered"]


def test_a_streak_that_ends_within_the_scan_that_alerts_it_sets_no_reminder(app, db, receiver):
    report("billing", "FFS")
    make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="billing",
              remind_every_minutes=5)
    report("billing", "FFFS", first_minute=3)  # made after the rule: the scan replays them
    decide(app, T)
    decide(app, T + 30 * MIN)
    assert reminders() == []
    assert Reminder.select().count() == 0


def test_two_scans_racing_send_each_reminder_once(app, db, receiver):
    report("billing", "FF")
    make_rule(2, [{"type": "webhook", "url": receiver.url}, EMAIL], workflow="billing",
              remind_every_minutes=10)
    decide(app, T)
    assert scan_in_two_threads(config_from(app), T + 10 * MIN) == []
    assert scan_in_two_threads(config_from(app), T + 20 * MIN) == []
    assert sorted(reminders()) == [(1, 2, 1), (1, 2, 1), (2, 2, 1), (2, 2, 1)]
    assert to_micros(Reminder.get().due_at) == to_micros(T + 30 * MIN)


def test_after_a_pause_of_the_job_one_reminder_is_sent_not_one_per_interval(app, db, receiver):
    failing_rule(receiver)
    decide(app, T)
    decide(app, T + 65 * MIN)
    decide(app, T + 66 * MIN)
    assert reminders() == [(1, 2, 1)]
    assert to_micros(Reminder.get().due_at) == to_micros(T + 75 * MIN)


def test_an_acknowledged_episode_is_not_reminded_of_and_the_next_one_is(app, db, api, receiver):
    failing_rule(receiver)
    decide(app, T)
    assert api.post(f"{WORKFLOWS}/billing/acknowledge").status_code == 201
    decide(app, T + 10 * MIN)
    decide(app, T + 20 * MIN)
    assert reminders() == []
    assert to_micros(Reminder.get().due_at) == to_micros(T + 30 * MIN)
    # A success ends the episode and its acknowledgement; the next streak is reminded of.
    report("billing", "SFF", first_minute=2)
    decide(app, T + 25 * MIN)
    decide(app, T + 35 * MIN)
    assert [n.kind for n in notices()] == ["failing", "recovered", "failing", "reminder"]
    assert reminders() == [(1, 2, 2)]


def test_the_email_of_a_reminder_says_it_is_one_and_its_number(app, db, smtp_sink):
    report("billing", "FF")
    make_rule(2, [EMAIL], workflow="billing", remind_every_minutes=10)
    decide(app, T)
    decide(app, T + 10 * MIN)
    decide(app, T + 20 * MIN)
    deliver_due(config_from(app))
    messages = smtp_sink.wait_for(3)
    subjects = sorted(str(m["Subject"]) for m in messages)
    assert subjects == ["[Runwatch] Reminder #1: billing is still failing: 2 failures in a row",
                        "[Runwatch] Reminder #2: billing is still failing: 2 failures in a row",
                        "[Runwatch] billing is failing: 2 failures in a row"]
    second = next(m for m in messages if "#2" in str(m["Subject"]))
    text = second.get_body(("plain",)).get_content()
    html = second.get_body(("html",)).get_content()
    assert "Reminder #2: billing is still failing: 2 failures in a row now" in text
    assert "Reminder #2: billing is still failing" in html


def test_a_late_episode_is_reminded_of_until_a_run_starts(app, db, api, receiver):
    assert api.patch(f"{WORKFLOWS}/nightly", json={"schedule": "0 3 * * *",
                                                   "grace_seconds": 0}).status_code == 201
    make_rule(5, [{"type": "webhook", "url": receiver.url}], remind_every_minutes=5)
    expected = datetime.fromisoformat(
        api.get(f"{WORKFLOWS}/nightly").json["next_expected_at"].replace("Z", "+00:00"))
    late = expected + timedelta(seconds=30)
    decide(app, late)
    decide(app, late + 5 * MIN)
    [missed] = notices("missed")
    [reminder] = notices("reminder")
    data = payload(reminder)["data"]
    assert payload(reminder)["type"] == "workflow.reminder"
    assert data == {**payload(missed)["data"], "reminder_number": 1}
    assert data["expected_at"] == payload(missed)["data"]["expected_at"]
    # Late episodes are counted apart from failing streaks: its reminders' key is negated.
    assert (missed.episode, reminder.episode) == (1, -1)
    api.post("/api/automations/executions", json={
        "workflow": "nightly", "status": "running",
        "started_at": (late + 6 * MIN).isoformat()})
    decide(app, late + 7 * MIN)
    assert Reminder.select().count() == 0
    decide(app, late + 30 * MIN)
    assert [payload(n)["type"] for n in notices()] == [
        "workflow.missed", "workflow.reminder", "workflow.recovered"]


def test_a_failing_workflow_that_also_goes_late_is_reminded_of_its_streak_throughout(
        app, db, api, receiver):
    failing_rule(receiver)
    # Daily, two hours from now: the run below starts within the 24 hours ahead a report
    # may start in, whatever the time of day the test runs at.
    soon = datetime.now(timezone.utc) + timedelta(hours=2)
    assert api.patch(f"{WORKFLOWS}/billing", json={"schedule": f"{soon.minute} {soon.hour} * * *",
                                                   "grace_seconds": 0}).status_code == 200
    expected = datetime.fromisoformat(
        api.get(f"{WORKFLOWS}/billing").json["next_expected_at"].replace("Z", "+00:00"))
    late = expected + timedelta(seconds=30)
    decide(app, late - 60 * MIN)
    decide(app, late)
    decide(app, late + 10 * MIN)
    assert api.post("/api/automations/executions", json={
        "workflow": "billing", "status": "running",
        "started_at": (late + 11 * MIN).isoformat()}).status_code == 201
    decide(app, late + 12 * MIN)
    decide(app, late + 20 * MIN)
    assert [n.kind for n in notices()] == ["failing", "missed", "reminder", "reminder",
                                           "resumed", "reminder"]
    assert {"expected_at" in payload(n)["data"] for n in notices("reminder")} == {False}
    assert [number for number, _, _ in reminders()] == [1, 2, 3]


def test_a_rule_that_begins_to_remind_mid_episode_reminds_from_then(app, db, api, receiver):
    report("billing", "FF")
    rule = make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="billing")
    decide(app, T)
    assert Reminder.select().count() == 0
    answer = api.patch(f"{ALERTS}/{rule.id}", json={"remind_every_minutes": 15})
    assert answer.json["remind_every_minutes"] == 15
    decide(app, utcnow() + 14 * MIN)
    assert reminders() == []
    decide(app, utcnow() + 16 * MIN)
    assert reminders() == [(1, 2, 1)]


def test_a_disabled_rule_skips_its_reminders_and_one_that_stops_reminding_ends_them(
        app, db, api, receiver):
    rule = failing_rule(receiver)
    decide(app, T)
    api.patch(f"{ALERTS}/{rule.id}", json={"enabled": False})
    decide(app, T + 10 * MIN)
    assert reminders() == []
    api.patch(f"{ALERTS}/{rule.id}", json={"enabled": True})
    decide(app, T + 20 * MIN)
    assert reminders() == [(1, 2, 1)]
    api.patch(f"{ALERTS}/{rule.id}", json={"remind_every_minutes": None})
    decide(app, T + 30 * MIN)
    assert reminders() == [(1, 2, 1)]
    assert Reminder.select().count() == 0


def test_a_rule_that_no_longer_covers_the_workflow_stops_reminding_of_it(app, db, api, receiver):
    rule = failing_rule(receiver)
    decide(app, T)
    api.patch(f"{ALERTS}/{rule.id}", json={"workflow": "crm"})
    decide(app, T + 10 * MIN)
    assert reminders() == []
    assert Reminder.select().count() == 0


# --- The rule field ----------------------------------------------------------------------

def test_the_rule_api_takes_shows_and_clears_remind_every_minutes(api, db):
    created = api.post(ALERTS, json={"threshold": 3, "channels": [EMAIL],
                                     "remind_every_minutes": 10080})
    assert created.status_code == 201
    assert created.json["remind_every_minutes"] == 10080
    rule_id = created.json["id"]
    plain = api.post(ALERTS, json={"threshold": 3, "channels": [EMAIL]}).json
    assert plain["remind_every_minutes"] is None
    assert api.patch(f"{ALERTS}/{rule_id}", json={"threshold": 4}).json[
        "remind_every_minutes"] == 10080  # left out: unchanged
    assert api.patch(f"{ALERTS}/{rule_id}", json={"remind_every_minutes": 1}).json[
        "remind_every_minutes"] == 1
    assert api.patch(f"{ALERTS}/{rule_id}", json={"remind_every_minutes": None}).json[
        "remind_every_minutes"] is None
    assert api.get(f"{ALERTS}/{rule_id}").json["remind_every_minutes"] is None


@pytest.mark.parametrize("value", [True, 1.5, 0, 10081, "30", -5, [10]])
def test_a_bad_reminder_interval_is_refused_naming_the_field(api, db, value):
    body = {"threshold": 3, "channels": [EMAIL], "remind_every_minutes": value}
    created = api.post(ALERTS, json=body)
    assert created.status_code == 400
    assert created.json["error"]["field"] == "remind_every_minutes"
    rule_id = api.post(ALERTS, json={"threshold": 3, "channels": [EMAIL]}).json["id"]
    changed = api.patch(f"{ALERTS}/{rule_id}", json={"remind_every_minutes": value})
    assert changed.status_code == 400
    assert changed.json["error"]["field"] == "remind_every_minutes"
    assert AlertRule.get_by_id(rule_id).remind_every_minutes is None


def test_the_rule_form_takes_an_interval_and_empty_means_never(logged_in, db):
    page = logged_in.get("/alerts").text
    assert 'name="remind_every_minutes"' in page
    response = logged_in.post("/alerts/rules", data=form_data(
        page, email_to="a@example.com", remind_every_minutes="30"))
    assert response.status_code == 303
    rule = AlertRule.get()
    assert rule.remind_every_minutes == 30
    edit = logged_in.get(f"/alerts/rules/{rule.id}/edit").text
    fields = form_fields(edit, f"/alerts/rules/{rule.id}")
    assert fields["remind_every_minutes"] == "30"
    saved = logged_in.post(f"/alerts/rules/{rule.id}",
                           data={**fields, "remind_every_minutes": ""})
    assert saved.status_code == 303
    assert AlertRule.get_by_id(rule.id).remind_every_minutes is None


@pytest.mark.parametrize("typed", ["0", "10081", "soon", "1.5"])
def test_the_rule_form_shows_a_bad_interval_beside_the_field(logged_in, db, typed):
    page = logged_in.get("/alerts").text
    response = logged_in.post("/alerts/rules", data=form_data(
        page, email_to="a@example.com", remind_every_minutes=typed))
    assert response.status_code == 400
    assert "from 1 to 10080" in Elements(response.text).text("error-remind_every_minutes")
    assert AlertRule.select().count() == 0
