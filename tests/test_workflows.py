"""Workflows: the overview's states and order, each row's figures, a workflow's days and error
groups, and its settings — through the API, on SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from alerts.config import config_from
from alerts.scheduler import scan
from models.db import connection

API = "/api/automations/workflows"
BATCH = "/api/automations/executions/batch"
UTC = timezone.utc


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def run(workflow, status, started, seconds=None, error=None, error_type=None, **extra) -> dict:
    body = {"workflow": workflow, "status": status, "started_at": iso(started), **extra}
    if seconds is not None:
        body["finished_at"] = iso(started + timedelta(seconds=seconds))
    if error:
        body["error"] = {"message": error, **({"type": error_type} if error_type else {})}
    return body


def store(api, runs: list[dict]) -> list[int]:
    answer = api.post(BATCH, json={"executions": runs})
    assert answer.status_code == 201, answer.json
    return [item["id"] for item in answer.json["data"]]


def listed(api, query: str = "") -> list[tuple[str, str]]:
    answer = api.get(f"{API}{query}")
    assert answer.status_code == 200, answer.json
    return [(w["name"], w["state"]) for w in answer.json["data"]]


def scan_at(app, moment: datetime) -> None:
    with connection():
        scan(config_from(app), moment)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_states_and_the_order_late_then_failing_then_by_name(app, api, now):
    hour = timedelta(hours=1)
    store(api, [run("b-ok", "failure", now - 3 * hour, 1, "boom"),
                run("b-ok", "success", now - 2 * hour, 1),
                run("a-failing", "success", now - 3 * hour, 1),
                run("a-failing", "failure", now - 2 * hour, 1, "boom"),
                run("a-failing", "running", now - hour),  # neither breaks nor extends it
                run("c-new", "running", now - hour),
                run("0-failing", "failure", now - hour, 1, "boom")])
    assert api.patch(f"{API}/z-late", json={"schedule": "*/5 * * * *",
                                             "grace_seconds": 60}).status_code == 201
    assert listed(api) == [("0-failing", "failing"), ("a-failing", "failing"),
                           ("b-ok", "ok"), ("c-new", "new"), ("z-late", "new")]
    scan_at(app, now + timedelta(minutes=7))  # past the first 5 minutes + grace
    assert listed(api) == [("z-late", "late"), ("0-failing", "failing"),
                           ("a-failing", "failing"), ("b-ok", "ok"), ("c-new", "new")]
    workflows = {w["name"]: w for w in api.get(API).json["data"]}
    assert workflows["a-failing"]["streak"] == 1
    assert workflows["a-failing"]["last_run"]["status"] == "running"
    assert workflows["b-ok"]["streak"] == 0
    assert workflows["c-new"]["last_run"] is not None
    assert workflows["z-late"]["last_run"] is None and workflows["z-late"]["late_since"]

    assert listed(api, "?state=failing") == [("0-failing", "failing"), ("a-failing", "failing")]
    assert listed(api, "?state=late&state=new") == [("z-late", "late"), ("c-new", "new")]
    assert listed(api, "?state=ok,new") == [("b-ok", "ok"), ("c-new", "new")]
    assert listed(api, "?q=FAIL") == [("0-failing", "failing"), ("a-failing", "failing")]
    assert listed(api, "?q=%25") == []  # a wildcard of SQL is an ordinary character
    assert listed(api, "?q=_") == [] and listed(api, "?q=%5C") == []  # "_" and "\\" too
    assert listed(api, "?q=A-F&state=failing") == [("a-failing", "failing")]


def test_paging_walks_every_workflow_once_in_order(api, now):
    names = [f"wf-{i:02d}" for i in range(11)]
    store(api, [run(name, "failure" if i % 3 == 0 else "success", now - timedelta(minutes=i), 1,
                    "x") for i, name in enumerate(names)])
    seen, cursor = [], None
    for _ in range(10):
        answer = api.get(API, query_string={"limit": 4, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200 and len(answer.json["data"]) <= 4
        seen += [w["name"] for w in answer.json["data"]]
        cursor = answer.json["next_cursor"]
        if cursor is None:
            break
    failing = [n for i, n in enumerate(names) if i % 3 == 0]
    assert seen == failing + [n for n in names if n not in failing]


@pytest.mark.parametrize("query, field", [
    ("state=sleeping", "state"), ("limit=0", "limit"), ("limit=501", "limit"),
    ("limit=%D9%A3", "limit"), ("cursor=not-a-cursor", "cursor"), ("cursor=W1sxXV0", "cursor"),
    ("q=" + "x" * 201, "q"), ("q=a%00b", "q"),
])
def test_bad_list_parameters_are_a_400_naming_the_field(api, query, field):
    answer = api.get(f"{API}?{query}")
    assert answer.status_code == 400
    assert answer.json["error"]["field"] == field


def test_the_success_rate_and_duration_percentiles_of_the_last_seven_days(api, now):
    runs = [run("etl", "success" if i < 14 else "failure", now - timedelta(hours=2 + i * 8),
                (100 + 100 * (i % 10)) / 1000, "x") for i in range(20)]  # 20 runs in 6.6 days
    runs += [run("etl", "failure", now - timedelta(days=8, hours=i), 5, "old") for i in range(5)]
    runs += [run("etl", "running", now - timedelta(minutes=30))]
    store(api, runs)
    [etl] = api.get(API).json["data"]
    assert etl["success_rate_7d"] == 0.7  # 14 of 20; the 5 older failures are not counted
    durations = sorted((100 + 100 * (i % 10)) for i in range(20))
    p50, p95 = durations[9], durations[18]  # nearest rank
    assert abs(etl["duration_p50_ms_7d"] - p50) <= 0.045 * p50
    assert abs(etl["duration_p95_ms_7d"] - p95) <= 0.045 * p95
    assert etl["runs_24h"] == 4  # three finished (2, 10, 18 h ago) and the running one
    assert etl["streak"] == 0 and etl["state"] == "ok"
    assert len(etl["recent_runs"]) == 20  # the last 20, newest first
    assert etl["recent_runs"][0]["status"] == "running"
    assert etl["last_run"]["id"] == etl["recent_runs"][0]["id"]
    assert [r["status"] for r in etl["recent_runs"][1:]] == ["success"] * 14 + ["failure"] * 5


def test_the_figures_follow_each_report_though_the_overview_keeps_them_between(api, now):
    store(api, [run("etl", "success", now - timedelta(hours=3), 1)])
    assert api.get(API).json["data"][0]["runs_24h"] == 1
    assert api.get(API).json["data"][0]["runs_24h"] == 1  # kept: the same answer
    detail = api.get(f"{API}/etl").json
    assert detail["errors"] == [] and sum(d["success"] for d in detail["metrics"]["days"]) == 1
    store(api, [run("etl", "failure", now - timedelta(hours=2), 4, "boom")])
    detail = api.get(f"{API}/etl").json
    assert [g["count"] for g in detail["errors"]] == [1]
    assert sum(d["failure"] for d in detail["metrics"]["days"]) == 1
    [etl] = api.get(API).json["data"]
    assert etl["runs_24h"] == 2 and etl["success_rate_7d"] == 0.5
    assert etl["duration_p95_ms_7d"] > etl["duration_p50_ms_7d"]
    assert [urlsplit(r["url"]).path for r in etl["recent_runs"]] == [
        f"/executions/{r['id']}" for r in etl["recent_runs"]]


def test_error_groups_merge_what_varies_and_keep_types_apart(api, now):
    minute = timedelta(minutes=1)
    ids = store(api, [
        run("import", "failure", now - 9 * minute, 1, "Row 214: invalid date '2026-02-30'",
            "ValueError"),
        run("import", "failure", now - 8 * minute, 1, "Row 9: invalid date '2025-13-01'",
            "ValueError"),
        run("import", "failure", now - 7 * minute, 1, 'Row 12: invalid date "2024-00-10"',
            "ValueError"),
        run("import", "failure", now - 6 * minute, 1, "Row 214: invalid date '2026-02-30'",
            "KeyError"),
        run("import", "failure", now - 5 * minute, 1,
            "user 3f2b8c1e-9a4d-4e2b-8f00-1c2d3e4f5a6b (ann@example.com) has no seat 0xdeadbeef",
            "SeatError"),
        run("import", "failure", now - 4 * minute, 1,
            "user 0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9 (bob@example.org) has no seat 0x1f",
            "SeatError"),
        run("import", "success", now - 3 * minute, 1),
    ])
    detail = api.get(f"{API}/import").json
    groups = [(g["type"], g["count"]) for g in detail["errors"]]
    assert groups == [("ValueError", 3), ("SeatError", 2), ("KeyError", 1)]
    value_error = detail["errors"][0]
    assert value_error["message"] == 'Row 12: invalid date "2024-00-10"'  # the latest
    assert value_error["last_execution_url"].endswith(f"/executions/{ids[2]}")
    assert value_error["first_seen"] == iso(now - 9 * minute)
    assert value_error["last_seen"] == iso(now - 7 * minute)
    assert len({g["fingerprint"] for g in detail["errors"]}) == 3
    history = urlsplit(value_error["history_url"])
    assert history.path == "/executions"
    assert parse_qs(history.query)["workflow"] == ["import"]
    assert parse_qs(history.query)["status"] == ["failure"]
    assert detail["metrics"]["success_rate"] == round(1 / 7, 4)


def groups_of(api, name: str) -> list[tuple[str | None, int, str | None]]:
    return [(g["type"], g["count"], g["message"]) for g in api.get(f"{API}/{name}").json["errors"]]


def test_a_runs_group_follows_every_change_of_its_error(api, now):
    minute = timedelta(minutes=1)
    runs = "/api/automations/executions"
    [quiet, loud] = store(api, [run("sync", "running", now - 9 * minute, external_id="s-1"),
                                run("sync", "failure", now - 8 * minute, 1, "HTTP 502 for 7",
                                    "HTTPError", external_id="s-2")])
    assert groups_of(api, "sync") == [("HTTPError", 1, "HTTP 502 for 7")]
    # PATCH: a run that had no error fails with one like the other's.
    answer = api.patch(f"{runs}/{quiet}", json={"status": "failure",
                                                "error": {"message": "HTTP 502 for 8",
                                                          "type": "HTTPError"}})
    assert answer.status_code == 200
    assert groups_of(api, "sync") == [("HTTPError", 2, "HTTP 502 for 7")]
    # A re-post by external id with another error moves the run to another group.
    moved = api.post(runs, json=run("sync", "failure", now - 8 * minute, 1, "'customer_id'",
                                    "KeyError", external_id="s-2"))
    assert moved.status_code == 200 and moved.json["id"] == loud
    assert groups_of(api, "sync") == [("KeyError", 1, "'customer_id'"),
                                      ("HTTPError", 1, "HTTP 502 for 8")]
    # An error taken away: the failure is counted without one.
    assert api.patch(f"{runs}/{loud}", json={"error": None}).status_code == 200
    assert groups_of(api, "sync") == [(None, 1, None), ("HTTPError", 1, "HTTP 502 for 8")]


def test_messages_made_to_make_patterns_backtrack_are_grouped_all_the_same(api, now):
    from models.fingerprints import normalise

    long_run = "ab1-" * 12_500  # 50,000 characters of what an address's local part may hold
    assert normalise(long_run) == "ab<n>-" * 12_500
    assert normalise("a." * 25_000 + "@example") == "a." * 25_000 + "@example"
    assert normalise("x" + "ab12" * 12_500 + "g z") == "x" + "ab<n>" * 12_500 + "g z"
    assert normalise("deadbeef12" * 5_000) == "<hex>"
    assert normalise("ann@example.com.+bob@example.org 0x1f") == "<email><email> <hex>"
    minute = timedelta(minutes=1)
    store(api, [run("probe", "failure", now - k * minute, 1, f"{k}ab1-" * 75 + f" u{k}@x.io",
                    "ProbeError") for k in range(1, 4)]
          + [run("probe", "failure", now, 1, "ab1-" * 75, "ProbeError")])
    assert [(t, n) for t, n, _ in groups_of(api, "probe")] == [("ProbeError", 3),
                                                               ("ProbeError", 1)]


def test_days_are_counted_in_the_zone_asked_for(api, now):
    day = (now - timedelta(days=3)).replace(hour=23, minute=30, second=0)  # 00:30 or 01:30 in Berlin
    store(api, [run("nightly", "success", day, 2), run("nightly", "failure", day, 4, "x"),
                run("nightly", "success", day - timedelta(hours=12), 10)])
    utc_days = {d["date"]: d for d in api.get(f"{API}/nightly").json["metrics"]["days"]}
    berlin = api.get(f"{API}/nightly?tz=Europe/Berlin").json
    berlin_days = {d["date"]: d for d in berlin["metrics"]["days"]}
    late_utc = day.date().isoformat()
    assert utc_days[late_utc]["success"] == 2 and utc_days[late_utc]["failure"] == 1
    next_day = (day.date() + timedelta(days=1)).isoformat()
    assert berlin_days[next_day]["success"] == 1 and berlin_days[next_day]["failure"] == 1
    assert berlin_days[late_utc]["success"] == 1
    assert abs(berlin_days[next_day]["duration_p95_ms"] - 4000) <= 180
    assert berlin["period"]["tz"] == "Europe/Berlin"
    assert len(utc_days) == 30  # the default period: the last 30 days
    short = api.get(f"{API}/nightly?from={late_utc}&to={next_day}").json["metrics"]["days"]
    assert [d["date"] for d in short] == [late_utc, next_day]


@pytest.mark.parametrize("query, field", [
    ("from=2026-13-01", "from"), ("tz=Mars/Olympus", "tz"), ("from=2026-11-20&to=2026-11-01", "from"),
    ("from=2020-01-01&to=2026-01-01", "from"),
])
def test_bad_periods_are_a_400(api, now, query, field):
    store(api, [run("etl", "success", now, 1)])
    answer = api.get(f"{API}/etl?{query}")
    assert answer.status_code == 400 and answer.json["error"]["field"] == field


def test_periods_at_the_edges_of_the_accepted_dates_answer(api, now):
    store(api, [run("etl", "success", now, 1)])
    early = api.get(f"{API}/etl?to=1970-01-05")
    assert early.status_code == 200
    assert [d["date"] for d in early.json["metrics"]["days"]][0] == "1970-01-01"
    late = api.get(f"{API}/etl?from=2099-12-30&tz=Pacific/Kiritimati")
    assert late.status_code == 200 and late.json["metrics"]["days"][-1]["date"] >= "2099-12-30"


def test_an_unknown_workflow_is_a_404_after_the_credentials(client, api):
    assert client.get(f"{API}/nope").status_code == 401
    answer = api.get(f"{API}/nope")
    assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"


def test_settings_are_validated_and_a_new_name_is_created(api, now):
    answer = api.patch(f"{API}/{quote('backup/nightly')}", json={
        "schedule": "0 3 * * *", "timezone": "Europe/Berlin", "grace_seconds": 900,
        "max_duration_seconds": 3600, "description": "pg_dump of the main database"})
    assert answer.status_code == 201, answer.json
    created = answer.json
    assert created["name"] == "backup/nightly" and created["state"] == "new"
    assert created["schedule_description"].startswith("At 03:00")
    expected = datetime.fromisoformat(created["next_expected_at"].replace("Z", "+00:00"))
    assert expected > now and expected.astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Berlin")).hour == 3
    assert [w["name"] for w in api.get(API).json["data"]] == ["backup/nightly"]
    again = api.patch(f"{API}/{quote('backup/nightly')}", json={"grace_seconds": 60})
    assert again.status_code == 200 and again.json["grace_seconds"] == 60
    assert again.json["schedule"] == "0 3 * * *"  # unsent settings stay


@pytest.mark.parametrize("body, field", [
    ({"schedule": "*/5 * * *"}, "schedule"), ({"schedule": "61 * * * *"}, "schedule"),
    ({"schedule": "0 0 31 2 *"}, "schedule"), ({"schedule": "@daily"}, "schedule"),
    ({"schedule": 5}, "schedule"), ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"), ({"timezone": None}, "timezone"),
    ({"grace_seconds": -1}, "grace_seconds"), ({"grace_seconds": 604801}, "grace_seconds"),
    ({"grace_seconds": "60"}, "grace_seconds"), ({"grace_seconds": True}, "grace_seconds"),
    ({"max_duration_seconds": 0}, "max_duration_seconds"),
    ({"max_duration_seconds": 2592001}, "max_duration_seconds"),
    ({"max_duration_seconds": 1.5}, "max_duration_seconds"),
    ({"description": "x" * 2001}, "description"), ({"description": "a\x00b"}, "description"),
    ({"sleep": 1}, "sleep"),
])
def test_bad_settings_are_a_400_naming_the_field_and_change_nothing(api, body, field):
    assert api.patch(f"{API}/etl", json={"schedule": "*/5 * * * *"}).status_code == 201
    answer = api.patch(f"{API}/etl", json=body)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["field"] == field
    [etl] = api.get(API).json["data"]
    assert (etl["schedule"], etl["timezone"], etl["grace_seconds"], etl["max_duration_seconds"],
            etl["description"]) == ("*/5 * * * *", "UTC", 300, None, None)


def test_a_bad_settings_body_on_a_new_name_creates_nothing(api):
    assert api.patch(f"{API}/ghost", json={"grace_seconds": -5}).status_code == 400
    assert api.patch(f"{API}/ghost", data="{", content_type="application/json").status_code == 400
    assert api.get(API).json["data"] == []


def test_settings_need_the_admin_scope_and_reading_needs_read(app, api, user):
    from models.users import create_token

    with connection():
        reader = {"Authorization": f"Bearer {create_token(user, 'r', ['read'])[1]}"}
        writer = {"Authorization": f"Bearer {create_token(user, 'i', ['ingest'])[1]}"}
    client = app.test_client()
    assert client.patch(f"{API}/etl", json={"grace_seconds": 5}, headers=reader).status_code == 403
    assert client.get(API, headers=writer).status_code == 403
    assert client.get(API, headers=reader).status_code == 200
    assert api.get(API).json["data"] == []  # the refused PATCH created nothing


def test_every_workflow_route_needs_credentials(client, user):
    for method, url in (("get", API), ("get", f"{API}/etl"), ("patch", f"{API}/etl"),
                        ("get", "/workflows"), ("get", "/workflows/etl"),
                        ("post", "/workflows/etl"), ("get", "/schedule-preview")):
        answer = getattr(client, method)(url)
        if url.startswith("/api/"):
            assert answer.status_code == 401, url
            assert answer.json["error"]["code"] == "unauthorized"
        else:
            assert answer.status_code in (302, 400), url  # a POST without CSRF is refused first
            if answer.status_code == 302:
                assert answer.headers["Location"].startswith("/login")


def test_the_demo_data_has_schedules_and_a_late_workflow(app, runner, api):
    result = runner.invoke(args=["demo", "--runs", "300", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "warehouse-export" in result.output
    scan_at(app, datetime.now(UTC))
    workflows = {w["name"]: w for w in api.get(API).json["data"]}
    assert workflows["warehouse-export"]["state"] == "late"
    states = [w["state"] for w in api.get(API).json["data"]]
    assert states == sorted(states, key=lambda state: {"late": 0, "failing": 1}.get(state, 2))
    assert workflows["payment-retry"]["state"] == "failing"
    assert workflows["nightly-backup"]["schedule_description"].startswith("At 02:00")


@pytest.mark.parametrize("seed", [1, 2])
def test_summaries_agree_with_the_runs_whatever_order_reports_come_in(api, now, seed):
    """Random reports, re-reports (status, start time) and patches, against what the runs
    themselves say: streak, state, last run and the last 20 runs."""
    import random

    rng = random.Random(seed)
    statuses = ["success", "failure", "running", "pending"]
    known: dict[str, int] = {}
    for step in range(80):
        action = rng.random()
        if action < 0.6 or not known:
            key = f"r{step}"
            status = rng.choice(statuses)
            started = now - timedelta(minutes=rng.randrange(3000))
            [known[key]] = store(api, [run("mixed", status, started,
                                           1 if status in ("success", "failure") else None,
                                           "x" if status == "failure" else None,
                                           external_id=key)])
        elif action < 0.8:
            key = rng.choice(sorted(known))
            status = rng.choice(statuses)
            started = now - timedelta(minutes=rng.randrange(3000))
            finished = status in ("success", "failure")
            body = run("mixed", status, started, 1 if finished else None, external_id=key)
            if not finished:
                body["finished_at"] = None
            store(api, [body])
        else:
            key = rng.choice(sorted(known))
            assert api.patch(f"/api/automations/executions/{known[key]}",
                             json={"status": rng.choice(statuses)}).status_code == 200
    everything = []
    cursor = None
    while True:
        page = api.get("/api/automations/executions", query_string={
            "workflow": "mixed", "limit": 500, **({"cursor": cursor} if cursor else {})}).json
        everything += page["data"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    by_position = sorted(everything, key=lambda r: (r["started_at"], r["id"]), reverse=True)
    finished = [r for r in by_position if r["status"] in ("success", "failure")]
    streak = 0
    for r in finished:
        if r["status"] != "failure":
            break
        streak += 1
    [summary] = api.get(API).json["data"]
    assert summary["streak"] == streak
    assert summary["state"] == ("new" if not finished else
                                "failing" if finished[0]["status"] == "failure" else "ok")
    assert [(r["id"], r["status"]) for r in summary["recent_runs"]] == [
        (r["id"], r["status"]) for r in by_position[:20]]
    assert summary["last_run"]["id"] == by_position[0]["id"]


def test_the_overview_puts_each_acknowledgement_and_re_run_hook_on_its_own_workflow(api, now):
    store(api, [run(f"w-{k:03d}", "failure" if k % 2 else "success", now - timedelta(hours=1))
                for k in range(120)])
    for name in ("w-007", "w-101"):  # acknowledged failing workflows, one past the first page
        assert api.post(f"{API}/{name}/acknowledge").status_code == 201
    for name in ("w-007", "w-040"):
        answer = api.patch(f"{API}/{name}", json={"rerun": {"url": "https://hooks.example.com/r"}})
        assert answer.status_code == 200, answer.text
    listed = []
    cursor = None
    for _ in range(3):
        page = api.get(API, query_string={"limit": 100, **({"cursor": cursor} if cursor else {})})
        listed += page.json["data"]
        cursor = page.json["next_cursor"]
        if not cursor:
            break
    assert len(listed) == 120
    acknowledged = sorted(w["name"] for w in listed if w["acknowledged"])
    hooked = sorted(w["name"] for w in listed if w["rerun"])
    assert acknowledged == ["w-007", "w-101"] and hooked == ["w-007", "w-040"]
    assert {w["rerun"]["url"] for w in listed if w["rerun"]} == {"https://hooks.example.com/r"}


def test_ids_written_into_a_statement_are_numbers_alone():
    from models.bulk import id_list
    assert id_list([3, 10, -1]) == "3, 10, -1"
    with pytest.raises(ValueError):
        id_list(["1) OR (1 = 1"])
