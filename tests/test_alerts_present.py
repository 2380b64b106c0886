"""Rules see the present: a rule created or enabled while a workflow it covers is already
failing at or over its threshold, or already late, tells of that episode once, within one
scan, whatever runs the scan (real receivers on 127.0.0.1; SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alert_servers import (alert_config, make_rule, notices, payload, report,
                           scan_in_two_threads)
from alerts.config import config_from
from alerts.rules import update_rule
from alerts.schemas import RulePatch
from alerts.scheduler import run_once, scan
from models.db import connection

WORKFLOWS = "/api/automations/workflows"
ALERTS = "/api/automations/alerts"


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def kinds() -> list[str]:
    with connection():
        return [n.kind for n in notices()]


def scan_at(app, moment: datetime | None = None) -> None:
    with connection():
        scan(config_from(app), moment)


def set_enabled(rule_id: int, enabled: bool) -> None:
    with connection():
        update_rule(rule_id, RulePatch.model_validate({"enabled": enabled}))


def make_late(app, api, name: str) -> datetime:
    """A scheduled workflow whose run did not come: late after a scan; returns that moment."""
    assert api.patch(f"{WORKFLOWS}/{name}", json={"schedule": "*/5 * * * *",
                                                  "grace_seconds": 0}).status_code == 201
    expected = datetime.fromisoformat(
        api.get(f"{WORKFLOWS}/{name}").json["next_expected_at"].replace("Z", "+00:00"))
    moment = expected + timedelta(seconds=30)
    scan_at(app, moment)
    assert api.get(f"{WORKFLOWS}/{name}").json["state"] == "late"
    return moment


def rule_on_page(logged_in, rule_id: int) -> str:
    """The rule's part of the Alerts page."""
    page = logged_in.get("/alerts").text
    return page[page.index(f'<article id="rule-{rule_id}"'):].split("</article>")[0]


def rule_row(api, rule_id: int, name: str) -> dict:
    return next(s for s in api.get(f"{ALERTS}/{rule_id}").json["states"]
                if s["workflow"] == name)


def test_a_rule_made_while_a_workflow_fails_at_its_threshold_tells_it_once(
        app, api, logged_in, receiver):
    with connection():
        report("billing", "SFFF")
        rule = make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="billing")
    # Its row tells the truth before any scan ran.
    assert rule_row(api, rule.id, "billing")["status"] == "failing"
    assert "FAILING" in rule_on_page(logged_in, rule.id)
    with connection():
        run_once(config_from(app))
    [request] = receiver.wait_for(1)
    assert request.json()["type"] == "workflow.failing"
    assert request.json()["data"]["failure_count"] == 3
    scan_at(app)
    assert kinds() == ["failing"]


def test_a_rule_made_below_the_threshold_waits_for_it(app, api, receiver):
    with connection():
        report("billing", "SFF")
        make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="billing")
    scan_at(app)
    assert kinds() == []
    with connection():
        report("billing", "F", first_minute=3)
    scan_at(app)
    assert kinds() == ["failing"]


def test_a_rule_made_while_a_workflow_is_late_tells_it_once(app, api, logged_in, receiver):
    moment = make_late(app, api, "nightly")
    with connection():
        rule = make_rule(5, [{"type": "webhook", "url": receiver.url}], workflow=None)
    assert rule_row(api, rule.id, "nightly")["status"] == "late"
    assert "LATE" in rule_on_page(logged_in, rule.id)
    scan_at(app, moment + timedelta(seconds=30))
    assert kinds() == ["missed"]
    with connection():
        [notice] = notices()
        assert payload(notice)["data"]["workflow"] == "nightly"
    scan_at(app, moment + timedelta(seconds=60))
    assert kinds() == ["missed"]
    # The run comes: the episode this rule told of ends with one recovery.
    api.post("/api/automations/executions",
             json={"workflow": "nightly", "status": "running",
                   "started_at": (moment + timedelta(seconds=70)).isoformat()})
    scan_at(app, moment + timedelta(seconds=90))
    assert kinds() == ["missed", "resumed"]


def test_two_scans_racing_tell_the_present_once(app, api, receiver):
    moment = make_late(app, api, "nightly")
    with connection():
        report("billing", "FF")
        make_rule(2, [{"type": "webhook", "url": receiver.url},
                      {"type": "email", "to": ["ops@example.com"]}], workflow=None)
    assert scan_in_two_threads(config_from(app), moment + timedelta(seconds=30)) == []
    scan_at(app, moment + timedelta(seconds=60))
    assert sorted(kinds()) == ["failing", "failing", "missed", "missed"]


def off_and_on(app, receiver, meanwhile: str):
    """A rule that told of billing's two failures, disabled while `meanwhile` runs came,
    enabled again, then two scans; the rule."""
    with connection():
        report("billing", "FF")
        rule = make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="billing")
    scan_at(app)
    assert kinds() == ["failing"]
    set_enabled(rule.id, False)
    with connection():
        report("billing", meanwhile, first_minute=2)
    set_enabled(rule.id, True)
    scan_at(app)
    scan_at(app)
    return rule


def test_a_rule_enabled_again_during_the_episode_it_told_says_nothing_more(
        app, api, receiver):
    rule = off_and_on(app, receiver, "F")
    assert kinds() == ["failing"]  # the same streak: never a second notice
    assert rule_row(api, rule.id, "billing")["failure_count"] == 3


def test_a_late_episode_told_before_is_not_told_again_on_enabling(app, api, receiver):
    moment = make_late(app, api, "nightly")
    with connection():
        rule = make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="nightly")
    scan_at(app, moment + timedelta(seconds=30))
    assert kinds() == ["missed"]
    set_enabled(rule.id, False)
    with connection():  # other channels meanwhile: the episode was told all the same
        update_rule(rule.id, RulePatch.model_validate(
            {"channels": [{"type": "email", "to": ["ops@example.com"]}]}))
    set_enabled(rule.id, True)
    scan_at(app, moment + timedelta(seconds=60))
    assert kinds() == ["missed"]


def test_a_rule_enabled_during_an_episode_it_never_told_tells_it_once(app, api, receiver):
    moment = make_late(app, api, "nightly")
    with connection():
        report("billing", "S")
        rule = make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow=None,
                         enabled=False)
        report("billing", "FFF", first_minute=1)
    scan_at(app, moment + timedelta(seconds=30))
    assert kinds() == []  # disabled: nothing
    set_enabled(rule.id, True)
    scan_at(app, moment + timedelta(seconds=60))
    scan_at(app, moment + timedelta(seconds=90))
    assert sorted(kinds()) == ["failing", "missed"]
    with connection():
        [failing] = notices("failing")
        assert payload(failing)["data"]["failure_count"] == 3


def test_a_streak_that_ended_while_its_rule_was_disabled_is_closed_not_replayed(
        app, api, receiver):
    off_and_on(app, receiver, "SFFS")  # a streak came and went while it was off
    # The alerted streak is over: its recovery; the one that came and went is the past.
    assert kinds() == ["failing", "recovered"]
