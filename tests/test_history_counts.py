"""Counts and histogram bars come from rollups, and always equal a direct COUNT of the runs."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import peewee
import pytest

from app import create_app
from helpers import KeptRows, kept_rows_copied_in, kept_rows_were_copied, rollups_as_read
from models import Execution, Workflow, database
from models.db import connection, to_micros
from models.executions import STATUSES
from history import changes
from history.changes import HistoryChange
from history.filters import HistoryFilter
from history.rollups import (ALL_WORKFLOWS, SHARDS, RunRollup, bar_edges, count_bars, fold,
                             rebuild_rollups, started_extent)

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"
UTC = timezone.utc
BASE = datetime(2026, 11, 20, tzinfo=UTC)


def _run(rng: random.Random, index: int) -> dict:
    started = BASE + timedelta(seconds=rng.randrange(0, 5 * 86400), microseconds=rng.randrange(10**6))
    return {"workflow": rng.choice(["alpha", "beta", "gamma"]), "external_id": f"run-{index}",
            "status": rng.choice(STATUSES), "started_at": started.isoformat()}


@pytest.fixture
def app_config(app_config, backend, request) -> dict:
    """Once the history is kept, a test that wants it finds it copied into its database when
    its app starts."""
    return kept_rows_copied_in(app_config, backend, request, "history")


@pytest.fixture
def history(api, app_config, backend, request) -> list[dict]:
    """600 runs over five days, then re-posts and patches that move runs between buckets:
    reported through the API by the first test of each backend (in each process, and again
    if its copy is gone), copied into the others' databases (see `app_config`)."""
    rng = random.Random(3)
    runs = [_run(rng, i) for i in range(600)]
    if kept_rows_were_copied(request, "history"):
        return runs
    kept = KeptRows("history", backend)
    kept.before(app_config["DATABASE_URL"])
    assert api.post(BATCH, json={"executions": runs}).status_code == 201
    moved = []
    for index in rng.sample(range(600), 80):  # re-post: new status and a new start time
        moved.append({**_run(rng, index), "workflow": runs[index]["workflow"]})
    assert api.post(BATCH, json={"executions": moved}).status_code == 201
    for run_id in rng.sample(range(1, 601), 40):  # patch: new status only
        response = api.patch(f"{URL}/{run_id}", json={"status": rng.choice(STATUSES)})
        assert response.status_code == 200
    kept.keep(app_config["DATABASE_URL"])
    return runs


def direct_counts(query: dict) -> dict[str, int]:
    """COUNT(*) per status straight from the runs, for a query without a cursor."""
    f = HistoryFilter.from_args(query, secret="unused")
    terms = f.conditions(with_status=False)
    rows = (Execution.select(Execution.status, peewee.fn.COUNT(Execution.id))
            .where(*terms) if terms else
            Execution.select(Execution.status, peewee.fn.COUNT(Execution.id)))
    found = dict(rows.group_by(Execution.status).tuples())
    return {status: found.get(status, 0) for status in STATUSES}


WINDOWS = [
    {},
    {"workflow": "alpha"},
    {"workflow": ["alpha", "gamma"], "status": "failure"},
    {"workflow": "nobody"},
    {"from": "2026-11-21"},
    {"to": "2026-11-22"},
    {"from": "2026-11-21T07:13:21.5Z", "to": "2026-11-23T18:47:02Z"},
    {"from": "2026-11-22T10:00:00Z", "to": "2026-11-22T10:59:59.999999Z"},
    {"from": "2026-11-22T10:20:00Z", "to": "2026-11-22T10:40:00Z", "workflow": "beta"},
    {"from": "2026-11-21", "to": "2026-11-23", "tz": "Asia/Kolkata"},
    {"from": "2026-11-21T09:45", "tz": "Asia/Kathmandu", "workflow": "beta"},
    {"from": "2026-11-20", "to": "2026-11-24", "tz": "America/St_Johns"},
    {"to": "2026-11-22T03:00", "tz": "Pacific/Chatham", "status": ["pending", "running"]},
]


@pytest.mark.spec("API-AUTO-EXEC-FILTER-002")
@pytest.mark.parametrize("query", WINDOWS, ids=[urlencode(q, doseq=True) or "none"
                                                for q in WINDOWS])
def test_counts_equal_a_direct_count_for_aligned_and_ragged_ranges(api, history, db, query):
    body = api.get(f"{URL}?{urlencode(query, doseq=True)}").json
    assert body["counts"] == direct_counts(query)


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "America/New_York"])
@pytest.mark.parametrize("span", [timedelta(hours=1), timedelta(hours=20), timedelta(days=4)])
def test_every_histogram_bar_equals_a_direct_count_of_its_range(history, db, tz, span):
    start = to_micros(BASE + timedelta(hours=13, minutes=7, seconds=3))
    end = start + int(span.total_seconds() * 10**6)
    edges, width = bar_edges(start, end, ZoneInfo(tz))
    assert len(edges) - 1 <= 101 and edges[0] == start and edges[-1] == end
    assert edges == sorted(set(edges))
    bars = count_bars(None, edges)
    for (a, b), bar in zip(zip(edges, edges[1:]), bars):
        found = dict(Execution.select(Execution.status, peewee.fn.COUNT(Execution.id))
                     .where(Execution.started_at >= a, Execution.started_at < b)
                     .group_by(Execution.status).tuples())
        assert bar == {s: found.get(s, 0) for s in STATUSES}


def test_a_rebuild_from_the_runs_gives_the_same_rollups_as_ingestion_kept(history, db):
    kept = rollups_as_read()
    assert kept
    rebuild_rollups()
    assert rollups_as_read() == kept


def test_rollups_are_built_at_start_for_runs_stored_before_they_existed(api, history, db,
                                                                        app_config):
    expected = rollups_as_read()
    RunRollup.delete().execute()
    database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()
    create_app(app_config)
    database.connect(reuse_if_open=True)
    assert rollups_as_read() == expected


def test_writers_on_postgresql_add_to_shards_that_the_fold_moves_into_one_row(
        api, history, db, backend):
    """Every write adds to the buckets of every workflow through a shard (PostgreSQL), so
    concurrent writers do not queue on one row; the fold sums the past ones into one."""
    shards = {r.workflow_id for r in RunRollup.select() if r.workflow_id < ALL_WORKFLOWS}
    if backend == "sqlite":
        assert not shards  # one writer at a time: no shards
    else:
        assert len(shards) > 1 and shards <= set(range(-SHARDS, 0))
    seen, counts = rollups_as_read(), direct_counts({})
    bars = count_bars(None, [to_micros(BASE), to_micros(BASE + timedelta(days=5))])
    now = to_micros(BASE + timedelta(days=3, hours=5, minutes=30))
    fold(now)
    assert rollups_as_read() == seen
    assert api.get(URL).json["counts"] == counts
    assert count_bars(None, [to_micros(BASE), to_micros(BASE + timedelta(days=5))]) == bars
    left = [(r.grain, r.bucket) for r in RunRollup.select()
            if r.workflow_id < ALL_WORKFLOWS]
    hour, day = now - now % 3_600_000_000, now - now % 86_400_000_000
    assert all(bucket >= (hour if grain == "h" else day) for grain, bucket in left)
    assert backend == "sqlite" or left  # the current hour and day stay sharded
    fold(to_micros(BASE + timedelta(days=30)))
    assert not [r for r in RunRollup.select() if r.workflow_id < ALL_WORKFLOWS]
    assert rollups_as_read() == seen and api.get(URL).json["counts"] == counts


def test_every_write_moves_the_change_counter_and_postgresql_spreads_them(api, db, backend):
    versions = [changes.current()]
    for n in range(24):
        run = {"workflow": "alpha", "status": "success", "external_id": f"c-{n}"}
        assert api.post(URL, json=run).status_code == 201
        versions.append(changes.current())
    assert len(set(versions)) == len(versions) and versions == sorted(versions)
    bumped = sorted(row.id for row in HistoryChange.select() if row.n)  # the first: random
    if backend == "sqlite":
        assert bumped == [changes.COUNTER_ID]  # one writer at a time: the first row alone
    else:  # 24 writes that all picked the first of eight rows: one chance in 8^24
        assert len(bumped) > 1


def test_the_extent_of_a_workflow_is_its_first_and_last_start(history, db):
    alpha = Workflow.get(Workflow.name == "alpha").id
    first, last = started_extent([alpha])
    times = [to_micros(t) for (t,) in Execution.select(Execution.started_at)
             .where(Execution.workflow == alpha).tuples()]
    assert (first, last) == (min(times), max(times))
    assert started_extent([]) == (None, None)


def _brute(query: dict) -> dict[str, int]:
    with connection():
        return direct_counts(query)


@pytest.mark.parametrize("query", [{}, {"workflow": "alpha"}, {"from": "2026-11-21"}],
                         ids=["none", "workflow", "from"])
def test_counts_this_process_keeps_follow_runs_written_by_another_process(
        api, logged_in, history, live_server, live_token, query):
    qs = urlencode(query, doseq=True)
    before = api.get(f"{URL}?{qs}").json["counts"]  # now kept by this process
    assert before == _brute(query)
    page_before = _chip_counts(logged_in.get(f"/executions?{qs}").text)
    assert page_before == before
    import requests
    moved = requests.post(live_server.url + BATCH, timeout=10,
                          headers={"Authorization": f"Bearer {live_token}"},
                          json={"executions": [
                              {"workflow": "alpha", "status": "failure",
                               "started_at": "2026-11-22T10:00:00Z"},
                              {"workflow": "alpha", "external_id": "run-1", "status": "running",
                               "started_at": "2026-11-23T10:00:00Z"}]})
    assert moved.status_code == 201, moved.text
    after = api.get(f"{URL}?{qs}").json["counts"]
    assert after == _brute(query) != before
    assert _chip_counts(logged_in.get(f"/executions?{qs}").text) == after


def _chip_counts(html: str) -> dict[str, int]:
    import re
    return {status: int(n) for status, n in
            re.findall(r'data-status="(\w+)">(\d+)</span>', html)}


def test_a_database_of_the_release_before_the_change_counter_opens_with_exact_counts(
        api, history, db, app_config):
    expected = direct_counts({})
    database.execute_sql(f'DROP TABLE "{HistoryChange._meta.table_name}"')
    database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()
    application = create_app(app_config)
    database.connect(reuse_if_open=True)
    assert HistoryChange.select().count() == changes.SHARDS
    client = application.test_client()
    headers = dict(api.headers)
    assert client.get(URL, headers=headers).json["counts"] == expected
    api.patch(f"{URL}/1", json={"status": "failure"})
    assert client.get(URL, headers=headers).json["counts"] == direct_counts({})


def test_without_a_counter_row_nothing_is_kept_and_counts_stay_exact(api, history, db):
    assert api.get(URL).json["counts"] == direct_counts({})
    HistoryChange.delete().execute()
    run = {"workflow": "alpha", "status": "failure", "started_at": "2026-11-22T10:00:00Z"}
    assert api.post(BATCH, json={"executions": [run]}).status_code == 201
    assert api.get(URL).json["counts"] == direct_counts({})


def test_a_workflow_filtered_on_before_it_reports_is_found_once_it_does(api):
    """Workflow ids are kept by name past writes once every name is found; a name not
    found yet is looked up again after the next write."""
    now = datetime.now(timezone.utc).replace(microsecond=0)

    def run(name: str) -> dict:
        return {"workflow": name, "status": "success", "started_at": now.isoformat()}

    query = {"workflow": ["early", "late"], "limit": 10}
    assert api.post(BATCH, json={"executions": [run("early")]}).status_code == 201
    assert api.get(URL, query_string=query).json["counts"]["success"] == 1
    assert api.post(BATCH, json={"executions": [run("late"), run("early")]}).status_code == 201
    answer = api.get(URL, query_string=query).json
    assert answer["counts"]["success"] == 3
    assert {r["workflow"] for r in answer["data"]} == {"early", "late"}
    assert api.post(BATCH, json={"executions": [run("late")]}).status_code == 201
    assert api.get(URL, query_string=query).json["counts"]["success"] == 4  # counted anew
