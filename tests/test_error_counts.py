"""Error groups are counted as runs are written: a period's groups (whole days, hours and
the runs at its edges) match the runs it holds, and the counts follow every change of a
run (re-post, PATCH, time-out by the scan, retention) — on SQLite and PostgreSQL."""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from alerts.config import config_from
from alerts.scheduler import scan
from history.retention import purge_expired
from models import database
from models.db import connection
from workflows.errors import rebuild_error_counts
from workflows.models import ErrorRollup

API = "/api/automations/workflows"
RUNS = "/api/automations/executions"
UTC = timezone.utc
# Error shapes and what varies in them: runs of one shape are one group.
SHAPES = [("ValueError", "Row {n}: invalid date '2026-02-{d}'"),
          ("HTTPError", "HTTP 502 from billing for invoice {n}"),
          ("KeyError", "'customer_id'"),
          (None, None)]  # a failure reported without an error


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _failure(workflow: str, started: datetime, shape: int, n: int) -> dict:
    run = {"workflow": workflow, "status": "failure", "started_at": iso(started),
           "finished_at": iso(started + timedelta(seconds=3))}
    kind, message = SHAPES[shape]
    if message:
        run["error"] = {"type": kind, "message": message.format(n=n, d=n % 28 + 1)}
    return run


def _store(api, runs: list[dict]) -> list[int]:
    answer = api.post(f"{RUNS}/batch", json={"executions": runs})
    assert answer.status_code == 201, answer.json
    return [item["id"] for item in answer.json["data"]]


def _expected(runs: list[tuple[int, dict, int]], start: datetime, end: datetime) -> list:
    """Each group of the failures started in [start, end), as the API should give it."""
    groups: dict[int, list] = defaultdict(list)
    for run_id, run, shape in runs:
        started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
        if start <= started < end:
            groups[shape].append((started, run_id, run))
    found = []
    for shape, members in groups.items():
        members.sort(key=lambda member: (member[0], member[1]))
        last_started, last_id, last = members[-1]
        found.append((SHAPES[shape][0], len(members), (last.get("error") or {}).get("message"),
                      iso(members[0][0]), iso(last_started), last_id))
    return found


def _groups(api, workflow: str, query: str) -> list:
    answer = api.get(f"{API}/{workflow}?{query}")
    assert answer.status_code == 200, answer.json
    return [(g["type"], g["count"], g["message"], g["first_seen"], g["last_seen"],
             int(g["last_execution_url"].rsplit("/", 1)[1])) for g in answer.json["errors"]]


def _in_order(groups: list) -> list:
    """Most frequent first, then the one seen last: the API's order."""
    return sorted(groups, key=lambda g: (-g[1], _negated(g[4]), -g[5]))


def _negated(text: str) -> float:
    return -datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_periods_groups_match_the_runs_it_holds_at_every_edge(api):
    """Failures spread over six days; periods in zones whose days start on the half hour,
    so each is summed from whole UTC days, whole hours and the runs of its edges."""
    rng = random.Random(7)
    today = datetime.now(UTC).date()
    first = datetime.combine(today - timedelta(days=6), time(), UTC)
    runs = []
    for n in range(160):
        started = first + timedelta(seconds=rng.randrange(6 * 86400))
        shape = rng.choices(range(len(SHAPES)), weights=[5, 3, 2, 1])[0]
        runs.append((_failure("billing", started, shape, n), shape))
    # Runs of another workflow and successes in the same hours are not counted.
    noise = [_failure("other", first + timedelta(hours=h), 0, h) for h in range(0, 140, 7)]
    noise += [{"workflow": "billing", "status": "success", "started_at": iso(first + timedelta(
        hours=h)), "finished_at": iso(first + timedelta(hours=h, seconds=1))}
        for h in range(0, 140, 5)]
    ids = _store(api, [run for run, _ in runs] + noise)
    stored = [(run_id, run, shape) for run_id, (run, shape) in zip(ids, runs)]
    for zone, days in (("Asia/Kolkata", (4, 2)), ("America/St_Johns", (5, 1)),
                       ("UTC", (3, 3)), ("Asia/Kolkata", (1, 1))):
        start_day, end_day = today - timedelta(days=days[0]), today - timedelta(days=days[1])
        tz = ZoneInfo(zone)
        start = datetime.combine(start_day, time(), tz).astimezone(UTC)
        end = datetime.combine(end_day + timedelta(days=1), time(), tz).astimezone(UTC)
        expected = _in_order(_expected(stored, start, end))
        assert len(expected) >= 2
        got = _groups(api, "billing", f"from={start_day}&to={end_day}&tz={zone}")
        assert got == expected, (zone, days)


def _rollup_rows() -> set[tuple]:
    return {(r.grain, r.workflow_id, r.bucket, r.fingerprint, r.n)
            for r in ErrorRollup.select()}


def _kept_equals_recounted(app) -> None:
    """The counts kept by every write are those a count of the stored runs gives."""
    with app.app_context(), connection():
        kept = _rollup_rows()
        assert all(row[4] > 0 for row in kept)  # no empty counts are left behind
        with database.atomic():
            rebuild_error_counts(database)
            recounted = _rollup_rows()
            assert kept == recounted


def test_the_counts_follow_every_change_of_a_run(app, api):
    now = datetime.now(UTC).replace(microsecond=0)
    minute = timedelta(minutes=1)
    old = datetime.combine(date.today() - timedelta(days=50), time(12), UTC)
    ids = _store(api, [
        {**_failure("sync", now - 30 * minute, 1, 1), "external_id": "a"},
        {**_failure("sync", now - 29 * minute, 1, 2), "external_id": "b"},
        {**_failure("sync", now - 28 * minute, 3, 3), "external_id": "c"},
        {"workflow": "sync", "status": "running", "started_at": iso(now - 3 * 60 * minute),
         "external_id": "d"},
        _failure("sync", old, 0, 4), _failure("sync", old + minute, 2, 5),
    ])
    assert [(g[0], g[1]) for g in _groups(api, "sync", "")] == [("HTTPError", 2), (None, 1)]
    _kept_equals_recounted(app)

    # A re-post moves a run to another group; a PATCH takes one out of the failures.
    again = _store(api, [{**_failure("sync", now - 30 * minute, 2, 1), "external_id": "a"}])
    assert again == ids[:1]
    assert api.patch(f"{RUNS}/{ids[1]}", json={"status": "success"}).status_code == 200
    # A failure reported without an error gets one.
    assert api.patch(f"{RUNS}/{ids[2]}", json={
        "error": {"type": "ValueError", "message": "Row 9: invalid date '2025-13-01'"}
    }).status_code == 200
    assert [(g[0], g[1]) for g in _groups(api, "sync", "")] == [
        ("ValueError", 1), ("KeyError", 1)]
    _kept_equals_recounted(app)

    # The scan fails a run that runs past the workflow's maximum duration: a Timeout.
    assert api.patch(f"{API}/sync", json={"max_duration_seconds": 3600}).status_code == 200
    with connection():
        scan(config_from(app), now)
    groups = _groups(api, "sync", "")
    assert ("Timeout", 1) in [(g[0], g[1]) for g in groups]
    _kept_equals_recounted(app)

    # Retention takes the old failures out of their days' counts.
    old_period = f"from={old.date()}&to={old.date()}"
    assert sorted(g[1] for g in _groups(api, "sync", old_period)) == [1, 1]
    with app.app_context(), connection():
        purge_expired(now, 30)
    assert _groups(api, "sync", old_period) == []
    _kept_equals_recounted(app)
