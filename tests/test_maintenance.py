"""Maintenance windows: their API, runs started inside them marked and left out of streaks,
no missed run inside them, and notices held through them — on SQLite and PostgreSQL."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from alert_servers import (T0, alert_config, iso, make_rule, notices, report,
                           scan_and_deliver, statuses)
from alerts.maintenance import MAX_WINDOWS, Windows
from alerts.models import MaintenanceWindow
from alerts.streaks import current_streak
from models.db import connection, database, is_sqlite
from models.executions import Execution, Workflow
from models.ingest import store_executions
from models.schemas import ExecutionIn
from models.times import to_micros, utcnow
from models.users import create_token
from workflows import schedule as schedules
from workflows.models import WorkflowSummary
from workflows.summary import recount, settings_changed

WINDOWS = "/api/automations/maintenance"
WORKFLOWS = "/api/automations/workflows"
RUNS = "/api/automations/executions"
UTC = timezone.utc


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def window(api, **fields) -> dict:
    answer = api.post(WINDOWS, json=fields)
    assert answer.status_code == 201, answer.json
    return answer.json


# --- the API ------------------------------------------------------------------------------

def test_windows_are_created_listed_and_deleted(app, api):
    now = utcnow().replace(microsecond=0)
    one_off = window(api, workflow="billing", starts_at=iso(now - timedelta(minutes=5)),
                     ends_at=(now + timedelta(hours=1)).astimezone(
                         timezone(timedelta(hours=-5))).isoformat(),
                     reason="database upgrade")
    assert one_off == {
        "id": one_off["id"], "workflow": "billing",
        "starts_at": iso(now - timedelta(minutes=5)), "ends_at": iso(now + timedelta(hours=1)),
        "schedule": None, "timezone": "UTC", "duration_minutes": None,
        "reason": "database upgrade", "active": True,
        "next": {"starts_at": iso(now - timedelta(minutes=5)),
                 "ends_at": iso(now + timedelta(hours=1))},
        "created_at": one_off["created_at"]}
    nightly = window(api, schedule="0 2 * * *", timezone="Europe/Berlin",
                     duration_minutes=90)
    assert nightly["workflow"] is None and nightly["starts_at"] is None
    start = schedules.next_expected("0 2 * * *", "Europe/Berlin", utcnow())
    if not nightly["active"]:
        assert nightly["next"] == {"starts_at": iso(start),
                                   "ends_at": iso(start + timedelta(minutes=90))}
    default_zone = window(api, workflow="etl", schedule="*/30 * * * *", duration_minutes=5)
    assert default_zone["timezone"] == "UTC"

    listed = api.get(WINDOWS).json["data"]
    assert [w["id"] for w in listed] == [one_off["id"], nightly["id"], default_zone["id"]]
    assert listed[0] == {**one_off, "created_at": listed[0]["created_at"]}

    assert api.delete(f"{WINDOWS}/{nightly['id']}").status_code == 204
    assert [w["id"] for w in api.get(WINDOWS).json["data"]] == [one_off["id"],
                                                                default_zone["id"]]
    for missing in (nightly["id"], 2**62, 2**63 - 1, 2**63, 2**64, 10**30):
        answer = api.delete(f"{WINDOWS}/{missing}")
        assert answer.status_code == 404, (missing, answer.status_code)
        assert answer.json["error"]["code"] == "not_found"


def test_only_an_admin_token_changes_windows(app, api, user):
    with connection():
        reader = {"Authorization": f"Bearer {create_token(user, 'reader', ['read'])[1]}"}
    client = app.test_client()
    assert client.get(WINDOWS, headers=reader).status_code == 200
    body = {"starts_at": iso(T0), "ends_at": iso(T0 + timedelta(hours=1))}
    assert client.post(WINDOWS, json=body, headers=reader).status_code == 403
    made = api.post(WINDOWS, json=body).json
    assert client.delete(f"{WINDOWS}/{made['id']}", headers=reader).status_code == 403


NOW = "2026-12-07T10:00:00Z"
LATER = "2026-12-07T12:00:00Z"


@pytest.mark.parametrize("body, field", [
    ({"starts_at": LATER, "ends_at": NOW}, "ends_at"),
    ({"starts_at": NOW, "ends_at": NOW}, "ends_at"),
    ({"starts_at": NOW}, "ends_at"),
    ({"ends_at": NOW}, "starts_at"),
    ({}, "starts_at"),
    ({"starts_at": "2026-12-07T10:00:00", "ends_at": LATER}, "starts_at"),
    ({"starts_at": NOW, "ends_at": "2100-01-01T00:00:00Z"}, "ends_at"),
    ({"starts_at": "2100-01-01T00:00:00Z", "ends_at": "2100-01-02T00:00:00Z"}, "starts_at"),
    ({"starts_at": NOW, "ends_at": LATER, "schedule": "0 2 * * *"}, "starts_at"),
    ({"starts_at": NOW, "ends_at": LATER, "timezone": "UTC"}, "timezone"),
    ({"starts_at": NOW, "ends_at": LATER, "duration_minutes": 5}, "starts_at"),
    ({"schedule": "0 2 * * *"}, "duration_minutes"),
    ({"duration_minutes": 30}, "schedule"),
    ({"schedule": "0 2 * *", "duration_minutes": 30}, "schedule"),
    ({"schedule": "0 2 30 2 *", "duration_minutes": 30}, "schedule"),
    ({"schedule": "0 2 * * *", "duration_minutes": 0}, "duration_minutes"),
    ({"schedule": "0 2 * * *", "duration_minutes": 10081}, "duration_minutes"),
    ({"schedule": "0 2 * * *", "duration_minutes": 1.5}, "duration_minutes"),
    ({"schedule": "0 2 * * *", "duration_minutes": "30"}, "duration_minutes"),
    ({"schedule": "0 2 * * *", "duration_minutes": 30, "timezone": "Mars/Olympus"},
     "timezone"),
    ({"schedule": "0 2 * * *", "duration_minutes": 30, "timezone": None}, "timezone"),
    ({"schedule": "0 2 * * *\u0000", "duration_minutes": 30}, "schedule"),
    ({"starts_at": NOW, "ends_at": LATER, "workflow": "x" * 201}, "workflow"),
    ({"starts_at": NOW, "ends_at": LATER, "workflow": "a\nb"}, "workflow"),
    ({"starts_at": NOW, "ends_at": LATER, "reason": "x" * 2001}, "reason"),
    ({"starts_at": NOW, "ends_at": LATER, "reason": "nul \u0000 here"}, "reason"),
    ({"starts_at": NOW, "ends_at": LATER, "colour": "red"}, "colour"),
    ({"schedule": "0 2 * * *", "duration_minutes": 30, "every": "day"}, "every"),
], ids=lambda value: json.dumps(value)[:60] if isinstance(value, dict) else value)
def test_a_bad_window_is_refused_naming_the_field(app, api, body, field):
    answer = api.post(WINDOWS, json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["field"] == field
    assert api.get(WINDOWS).json["data"] == []


def test_a_body_that_is_no_window_at_all_is_refused(app, api):
    for raw in (b"[]", b"not json", b'"window"', b""):
        answer = api.post(WINDOWS, data=raw, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, raw


def test_windows_stop_at_a_thousand(app, api):
    with connection():
        MaintenanceWindow.insert_many([
            {"workflow_name": f"w{i}", "starts_at": T0, "ends_at": T0 + timedelta(hours=1),
             "timezone": "UTC", "created_at": T0} for i in range(MAX_WINDOWS)]).execute()
    answer = api.post(WINDOWS, json={"starts_at": NOW, "ends_at": LATER})
    assert answer.status_code == 409
    assert str(MAX_WINDOWS) in answer.json["error"]["message"]


# --- runs marked --------------------------------------------------------------------------

def test_a_run_that_starts_inside_a_window_is_marked_on_every_write_path(app, api):
    window(api, workflow="etl", starts_at=iso(T0 + timedelta(minutes=10)),
           ends_at=iso(T0 + timedelta(minutes=20)))
    window(api, starts_at=iso(T0 + timedelta(minutes=40)),  # every workflow
           ends_at=iso(T0 + timedelta(minutes=50)))

    def post(name: str, minute: int, **extra) -> dict:
        answer = api.post(RUNS, json={"workflow": name, "status": "success",
                                      "started_at": iso(T0 + timedelta(minutes=minute)),
                                      **extra})
        assert answer.status_code in (200, 201), answer.json
        return answer.json

    assert post("etl", 15)["maintenance"] is True
    assert post("etl", 20)["maintenance"] is False  # a window ends before its end
    assert post("etl", 9)["maintenance"] is False
    assert post("other", 15)["maintenance"] is False  # another workflow's window
    assert post("other", 45)["maintenance"] is True   # a window of every workflow
    batch = api.post(f"{RUNS}/batch", json={"executions": [
        {"workflow": "etl", "status": "failure", "started_at": iso(T0 + timedelta(minutes=m))}
        for m in (5, 12, 41, 55)]})
    assert batch.status_code in (200, 201), batch.json
    ids = [item["id"] for item in batch.json["data"]]
    marks = [api.get(f"{RUNS}/{run_id}").json["maintenance"] for run_id in ids]
    assert marks == [False, True, True, False]

    # A run reported again with a start moved into (or out of) a window is marked anew.
    moved = post("etl", 30, external_id="job-1", status="running")
    assert moved["maintenance"] is False
    assert post("etl", 16, external_id="job-1")["maintenance"] is True
    assert post("etl", 16, external_id="job-1", status="failure")["maintenance"] is True
    assert post("etl", 25, external_id="job-1")["maintenance"] is False
    # A PATCH (status, end) keeps the mark.
    inside = post("etl", 13, status="running")
    patched = api.patch(f"{RUNS}/{inside['id']}", json={"status": "failure"})
    assert patched.status_code == 200 and patched.json["maintenance"] is True

    listed = api.get(RUNS, query_string={"workflow": "etl", "limit": 100}).json["data"]
    by_id = {run["id"]: run["maintenance"] for run in listed}
    assert by_id[ids[1]] is True and by_id[ids[0]] is False

    # A window made later does not mark runs stored before it.
    later = post("late", 70)
    window(api, workflow="late", starts_at=iso(T0 + timedelta(minutes=60)),
           ends_at=iso(T0 + timedelta(minutes=80)))
    assert api.get(f"{RUNS}/{later['id']}").json["maintenance"] is False


def test_a_recurring_window_marks_runs_in_its_zone_across_a_daylight_saving_change(app, api):
    window(api, workflow="backup", schedule="30 1 * * *", timezone="Europe/Berlin",
           duration_minutes=60)
    # 01:30–02:30 in Berlin: 00:30Z in winter (after 25 Oct 2026), 23:30Z the day before
    # in summer.
    cases = {datetime(2026, 10, 24, 23, 45, tzinfo=UTC): True,    # 01:45 CEST
             datetime(2026, 10, 25, 0, 15, tzinfo=UTC): True,     # 02:15 CEST
             datetime(2026, 10, 25, 0, 45, tzinfo=UTC): False,    # 02:45 CEST
             datetime(2026, 10, 26, 0, 45, tzinfo=UTC): True,     # 01:45 CET
             datetime(2026, 10, 25, 23, 45, tzinfo=UTC): False}   # 00:45 CET
    with connection():
        items = [ExecutionIn.model_validate_json(json.dumps(
            {"workflow": "backup", "status": "success", "started_at": iso(moment)}))
            for moment in cases]
        stored = [run_id for run_id, _ in store_executions(items)]
        marks = [Execution.get_by_id(run_id).maintenance for run_id in stored]
    assert marks == list(cases.values())


def test_runs_inside_a_window_neither_extend_nor_break_a_streak(app, api, receiver):
    with connection():
        make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="etl")
    window(api, workflow="etl", starts_at=iso(T0 + timedelta(minutes=2)),
           ends_at=iso(T0 + timedelta(minutes=6)))
    with connection():
        report("etl", "FF")                    # minutes 0, 1
        report("etl", "FSFS", first_minute=2)  # inside the window
    scan_and_deliver(app, T0 + timedelta(minutes=7))
    assert statuses() == []
    assert api.get(f"{WORKFLOWS}/etl").json["streak"] == 2
    assert api.get(f"{WORKFLOWS}/etl").json["state"] == "failing"
    with connection():
        report("etl", "F", first_minute=8)
    scan_and_deliver(app, T0 + timedelta(minutes=9))
    [request] = receiver.wait_for(1)
    assert request.json()["data"]["failure_count"] == 3
    assert request.json()["data"]["first_failure_at"] == iso(T0)
    assert api.get(f"{WORKFLOWS}/etl").json["streak"] == 3
    with connection():
        workflow = Workflow.get(Workflow.name == "etl")
        assert current_streak(workflow.id).count == 3
        # A recount from the runs agrees with the summary the writes kept.
        recount([workflow.id])
        assert WorkflowSummary.get_by_id(workflow.id).streak == 3


def test_the_streak_queries_stay_on_the_index(app, api):
    window(api, workflow="etl", starts_at=iso(T0), ends_at=iso(T0 + timedelta(minutes=1)))
    with connection():
        report("etl", "FFSF")
        workflow_id = Workflow.get(Workflow.name == "etl").id
        table = Execution._meta.table_name
        sql = (f'SELECT "started_at", "id" FROM "{table}" WHERE "workflow_id" = {database.param}'
               f' AND "status" = {database.param} AND "maintenance" = {database.param} '
               f'ORDER BY "started_at" DESC, "id" DESC LIMIT 1')
        params = [workflow_id, "success", False]
        if is_sqlite():
            plan = " ".join(row[-1] for row in database.execute_sql(
                f"EXPLAIN QUERY PLAN {sql}", params))
            assert "execution_workflow_id_status_started_at_id" in plan and "SCAN" not in \
                plan.replace("SCAN execution USING INDEX", ""), plan
        else:
            # Other workflows' successes, as a real history has them, so that the planner
            # knows a status alone picks most of the table; and it is told to avoid a
            # table scan and a sort, which leaves it the indexes of one workflow's runs.
            Workflow.insert_many([{"name": f"other-{n}", "created_at": utcnow()}
                                  for n in range(50)]).execute()
            database.execute_sql(
                f'INSERT INTO "{table}" (workflow_id, status, started_at, created_at, '
                "updated_at, step_count, maintenance) SELECT w.id, 'success', n, n, n, 0, false "
                "FROM workflow AS w, generate_series(1, 40) AS n WHERE w.name LIKE 'other-%%'")
            database.execute_sql(f'ANALYZE "{table}"')
            database.execute_sql("SET enable_seqscan = off")
            database.execute_sql("SET enable_sort = off")
            plan = " ".join(row[0] for row in database.execute_sql(f"EXPLAIN {sql}", params))
            database.execute_sql("RESET enable_seqscan")
            database.execute_sql("RESET enable_sort")
            assert re.search(r"Index (Only )?Scan( Backward)? using "
                             r"execution_workflow_id_(status_)?started_at_id", plan), plan
            assert "Seq Scan" not in plan and "Sort" not in plan, plan


# --- notices and missed runs ---------------------------------------------------------------

def test_a_failure_decided_during_a_window_is_held_and_sent_after_it_if_still_failing(
        app, api, receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="etl")
        make_rule(2, [{"type": "webhook", "url": receiver.url + "/other"}], workflow="other")
        report("etl", "FF")
        report("other", "FF")
    window(api, workflow="etl", starts_at=iso(T0 + timedelta(minutes=5)),
           ends_at=iso(T0 + timedelta(hours=1)))
    scan_and_deliver(app, T0 + timedelta(minutes=10))
    # The other workflow is not in maintenance: its notice goes at once.
    assert [r.path for r in receiver.wait_for(1)] == ["/hooks/runwatch/other"]
    with connection():
        held = [n for n in notices() if n.status == "held"]
        assert len(held) == 1 and held[0].next_attempt_at == T0 + timedelta(hours=1)
    scan_and_deliver(app, T0 + timedelta(minutes=59))
    assert len(receiver.requests) == 1
    scan_and_deliver(app, T0 + timedelta(hours=1))
    assert [r.path for r in receiver.wait_for(2)] == ["/hooks/runwatch/other",
                                                      "/hooks/runwatch"]
    assert receiver.requests[1].json()["timestamp"] == iso(T0 + timedelta(hours=1))


def test_a_failure_held_by_a_window_that_recovered_meanwhile_sends_nothing(app, api,
                                                                           receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="etl")
        report("etl", "FF")
    window(api, starts_at=iso(T0 + timedelta(minutes=5)), ends_at=iso(T0 + timedelta(hours=1)))
    scan_and_deliver(app, T0 + timedelta(minutes=10))
    with connection():
        report("etl", "S", first_minute=61)  # after the window: it counts
    scan_and_deliver(app, T0 + timedelta(minutes=62))
    assert statuses() == ["dropped", "dropped"] and receiver.requests == []


def test_a_recovery_decided_during_a_window_is_sent_when_the_window_ends(app, api, receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="etl")
        report("etl", "FF")
    scan_and_deliver(app, T0 + timedelta(minutes=4))
    assert [r.json()["type"] for r in receiver.wait_for(1)] == ["workflow.failing"]
    window(api, workflow="etl", starts_at=iso(T0 + timedelta(minutes=5)),
           ends_at=iso(T0 + timedelta(hours=1)))
    with connection():
        report("etl", "S", first_minute=3)  # started before the window: it counts
    scan_and_deliver(app, T0 + timedelta(minutes=10))
    scan_and_deliver(app, T0 + timedelta(minutes=59))
    assert len(receiver.requests) == 1 and statuses() == ["delivered", "held"]
    scan_and_deliver(app, T0 + timedelta(hours=1))
    assert [r.json()["type"] for r in receiver.wait_for(2)] == ["workflow.failing",
                                                                "workflow.recovered"]
    assert statuses() == ["delivered", "delivered"]


def test_deleting_a_window_sends_what_it_held_on_the_next_scan(app, api, receiver):
    with connection():
        make_rule(2, [{"type": "webhook", "url": receiver.url}], workflow="etl")
    now = utcnow().replace(microsecond=0)
    for minutes in (3, 2):
        api.post(RUNS, json={"workflow": "etl", "status": "failure",
                             "started_at": iso(now - timedelta(minutes=minutes)),
                             "finished_at": iso(now - timedelta(minutes=minutes, seconds=-5))})
    held_by = window(api, workflow="etl", starts_at=iso(now - timedelta(minutes=1)),
                     ends_at=iso(now + timedelta(hours=2)))
    scan_and_deliver(app, now)
    assert statuses() == ["held"]
    assert api.delete(f"{WINDOWS}/{held_by['id']}").status_code == 204
    scan_and_deliver(app, utcnow())
    assert statuses() == ["delivered"] and len(receiver.wait_for(1)) == 1


def test_a_run_expected_inside_a_window_is_never_missed(app, api, receiver):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{WORKFLOWS}/sync", json={"schedule": "0 * * * *", "grace_seconds": 60})
    expected = datetime.fromisoformat(api.get(f"{WORKFLOWS}/sync").json["next_expected_at"]
                                      .replace("Z", "+00:00"))
    window(api, workflow="sync", starts_at=iso(expected - timedelta(minutes=5)),
           ends_at=iso(expected + timedelta(minutes=90)))  # holds two expected runs
    for minutes in (2, 30, 61, 95):
        scan_and_deliver(app, expected + timedelta(minutes=minutes))
    assert statuses() == []
    shown = api.get(f"{WORKFLOWS}/sync").json
    assert shown["state"] == "new"
    assert shown["next_expected_at"] == iso(expected + timedelta(hours=2))
    # The first run expected after the window is missed as any other.
    scan_and_deliver(app, expected + timedelta(hours=2, minutes=2))
    assert statuses("missed") == ["delivered"]
    assert receiver.wait_for(1)[0].json()["data"]["expected_at"] == \
        iso(expected + timedelta(hours=2))


@pytest.mark.parametrize("skipped, missed", [
    ({datetime(2026, 10, 25).date()}, []),                # the Sunday of the change: inside
    ({datetime(2026, 10, 26).date()}, ["2026-10-26T01:30:00Z"]),  # Monday: no window
], ids=["inside", "outside"])
def test_a_recurring_window_across_a_daylight_saving_change_keeps_its_run_from_being_missed(
        app, api, receiver, skipped, missed):
    with connection():
        make_rule(1, [{"type": "webhook", "url": receiver.url}])
    api.patch(f"{WORKFLOWS}/backup", json={"schedule": "30 2 * * *",
                                           "timezone": "Europe/Berlin", "grace_seconds": 600})
    # Sundays from 02:00 for 90 minutes, Berlin time: on 25 Oct 2026 the clocks go back at
    # 03:00 CEST, and 02:30 happens twice; the window begins at the first 02:00.
    window(api, workflow="backup", schedule="0 2 * * 0", timezone="Europe/Berlin",
           duration_minutes=90)
    first = datetime(2026, 10, 23, 12, tzinfo=UTC)
    with connection():
        Workflow.update(schedule_set_at=to_micros(first)).where(
            Workflow.name == "backup").execute()
        settings_changed(Workflow.get(Workflow.name == "backup").id)
    moment, end = first, first + timedelta(days=4)
    while moment < end:
        due = schedules.next_expected("30 2 * * *", "Europe/Berlin", moment)
        while moment + timedelta(hours=1) < min(due, end):
            moment += timedelta(hours=1)
            scan_and_deliver(app, moment)
        if due >= end:
            break
        if due.date() not in skipped:
            api.post(RUNS, json={"workflow": "backup", "status": "success",
                                 "started_at": iso(due + timedelta(seconds=5))})
        moment = due + timedelta(seconds=5)
        scan_and_deliver(app, moment)
    with connection():
        told = [json.loads(n.payload)["data"]["expected_at"] for n in notices("missed")]
    assert told == missed
    with connection():
        windows = Windows.of(["backup"])
    assert windows.window_at("backup", datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # CEST
    assert windows.window_at("backup", datetime(2026, 10, 25, 1, 29, tzinfo=UTC))  # CET
    assert windows.window_at("backup", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) is None
    assert windows.window_at("backup", datetime(2026, 10, 26, 1, 0, tzinfo=UTC)) is None
