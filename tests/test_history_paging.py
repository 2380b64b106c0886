"""Keyset paging: every run exactly once, in order, in all four sorts, while runs arrive."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from helpers import KeptRows, kept_rows_copied_in, kept_rows_were_copied
from history.filters import HistoryFilter, list_query
from models import database

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"
UTC = timezone.utc
BASE = datetime(2026, 11, 1, tzinfo=UTC)
CROWDED = BASE + timedelta(days=3)  # hundreds of runs share this started_at
MAX_PAGES = 200


def _runs(count: int, rng: random.Random, crowded: int) -> list[dict]:
    runs = []
    for index in range(count):
        started = CROWDED if index < crowded else BASE + timedelta(
            seconds=rng.randrange(0, 6 * 86400))
        status = rng.choice(["success"] * 6 + ["failure"] * 2 + ["pending", "running"])
        body = {"workflow": rng.choice(["alpha", "beta"]), "status": status,
                "started_at": started.isoformat()}
        if status in ("success", "failure"):
            # Whole seconds, so many runs tie on duration too.
            body["finished_at"] = (started + timedelta(seconds=rng.randrange(0, 20))).isoformat()
        runs.append(body)
    return runs


def _report(api, runs: list[dict]) -> None:
    for start in range(0, len(runs), 1000):
        response = api.post(BATCH, json={"executions": runs[start:start + 1000]})
        assert response.status_code == 201, response.text


def _key(sort: str, row: dict) -> tuple:
    """Where a row belongs in `sort`: runs without a duration come last either way."""
    if sort.endswith("started_at"):
        value = datetime.fromisoformat(row["started_at"].replace("Z", "+00:00"))
        return (0, value, row["id"]) if sort == "started_at" else (0, _neg(value), -row["id"])
    if row["duration_ms"] is None:
        return (1, 0, row["id"] if sort == "duration" else -row["id"])
    if sort == "duration":
        return (0, row["duration_ms"], row["id"])
    return (0, -row["duration_ms"], -row["id"])


def _neg(value: datetime) -> float:
    return -value.timestamp()


def walk(api, query: str, on_page=None) -> list[dict]:
    """Follow next_cursor to the end (with a loop guard); every row seen, in order."""
    rows, cursor = [], None
    for page in range(MAX_PAGES):
        url = f"{URL}?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(url)
        assert response.status_code == 200, response.text
        rows += response.json["data"]
        cursor = response.json["next_cursor"]
        if on_page:
            on_page(page)
        if cursor is None:
            return rows
    raise AssertionError(f"still paging after {MAX_PAGES} pages")


@pytest.fixture
def app_config(app_config, backend, request) -> dict:
    """Once the thousand runs are kept, a test that wants them finds them copied into its
    database when its app starts."""
    return kept_rows_copied_in(app_config, backend, request, "thousand")


@pytest.fixture
def thousand(api, app_config, backend, request) -> None:
    """A thousand runs, 300 of them at one instant: reported through the API by the first
    test of each backend (in each process, and again if its copy is gone), copied into the
    others' databases (see `app_config`)."""
    if kept_rows_were_copied(request, "thousand"):
        return
    kept = KeptRows("thousand", backend)
    kept.before(app_config["DATABASE_URL"])
    _report(api, _runs(1000, random.Random(7), crowded=300))
    kept.keep(app_config["DATABASE_URL"])


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "-duration", "duration"])
def test_walking_every_page_returns_each_run_exactly_once_in_order(api, thousand, sort):
    rows = walk(api, f"sort={sort}&limit=37")
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 1000
    assert [_key(sort, r) for r in rows] == sorted(_key(sort, r) for r in rows)


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "-duration", "duration"])
def test_runs_arriving_during_the_walk_do_not_shift_it(api, thousand, sort):
    first_page = api.get(f"{URL}?sort={sort}&limit=50").json["data"]
    original = {row["id"] for row in walk(api, f"sort={sort}&limit=500")}
    arrivals = random.Random(11)

    def add_runs(page: int) -> None:
        if page < 6:  # new runs, some in the crowded instant, some older and newer
            _report(api, _runs(25, arrivals, crowded=10))

    rows = walk(api, f"sort={sort}&limit=50", on_page=add_runs)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a run was listed twice"
    assert original <= set(ids), "a run was skipped"
    assert rows[:50] == first_page
    assert [_key(sort, r) for r in rows] == sorted(_key(sort, r) for r in rows)


def test_paging_with_filters_stays_inside_the_filter(api, thousand):
    rows = walk(api, "workflow=alpha&status=success&status=failure&limit=20"
                     "&from=2026-11-04T00:00:00Z&to=2026-11-04T00:00:00Z")
    assert rows and {r["workflow"] for r in rows} == {"alpha"}
    assert {r["status"] for r in rows} <= {"success", "failure"}
    assert {r["started_at"] for r in rows} == {"2026-11-04T00:00:00Z"}
    counts = api.get(f"{URL}?workflow=alpha&from=2026-11-04T00:00:00Z"
                     "&to=2026-11-04T00:00:00Z").json["counts"]
    assert len(rows) == counts["success"] + counts["failure"]


def test_the_last_page_has_no_next_cursor_and_a_full_last_page_is_not_followed_by_an_empty_one(
        api):
    _report(api, _runs(10, random.Random(1), crowded=0))
    first = api.get(f"{URL}?limit=5").json
    second = api.get(f"{URL}?limit=5&cursor={first['next_cursor']}").json
    assert len(first["data"]) == len(second["data"]) == 5
    assert second["next_cursor"] is None


def _walk_model(args: dict, matching: int | None) -> list[int]:
    ids, cursor = [], None
    for _ in range(MAX_PAGES):
        f = HistoryFilter.from_args(args, secret="s")
        f = f.but(cursor=cursor) if cursor else f
        rows, cursor = f.page(matching)
        ids += [row.id for row in rows]
        if cursor is None:
            return ids
    raise AssertionError("still paging")


@pytest.mark.parametrize("sort", ["-started_at", "started_at", "-duration", "duration"])
@pytest.mark.parametrize("narrowing", [
    {},
    {"workflow": ["alpha", "beta"]},
    {"status": ["failure", "pending", "running"]},
    {"workflow": ["alpha", "beta"], "status": ["success", "running"],
     "from": "2026-11-02", "to": "2026-11-05"},
    {"from": "2026-11-02", "to": "2026-11-05"},
], ids=["none", "two-workflows", "three-statuses", "combined", "date-range"])
def test_index_walks_split_by_value_and_sorting_found_rows_give_the_same_pages(
        thousand, db, sort, narrowing):
    args = {**narrowing, "sort": sort, "limit": "45"}
    walked = _walk_model(args, matching=None)
    sorted_found = _walk_model(args, matching=10)
    assert walked == sorted_found
    everything = HistoryFilter.from_args({**narrowing, "limit": "500"}, secret="s")
    expected = set()
    for _ in range(10):
        rows, cursor = everything.page()
        expected |= {row.id for row in rows}
        if cursor is None:
            break
        everything = everything.but(cursor=cursor)
    assert len(walked) == len(set(walked)) == len(expected) and set(walked) == expected


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL plans by statistics
@pytest.mark.parametrize("sort", ["-duration", "duration"])
def test_a_date_range_in_duration_order_is_walked_not_read_whole_and_sorted(thousand, db, sort):
    """SQLite took the start time's index for a range with both ends and sorted all of it
    (a week of runs: tens of thousands) for each page."""
    f = HistoryFilter.from_args({"from": "2026-11-02", "to": "2026-11-05", "sort": sort},
                                secret="s")
    sql, params = f.apply(list_query(), phase=0).sql()
    plan = [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
    assert not any("TEMP B-TREE" in step for step in plan), plan
    assert any("execution_duration_ms_id" in step for step in plan), plan
