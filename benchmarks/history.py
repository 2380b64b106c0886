"""History benchmark: API and htmx partial at growing table sizes, against the no-op.

    python3 benchmarks/history.py --runs 1000000

Fills a fresh SQLite file with runs of 100 workflows over 90 days (85 % success, 10 %
failure, 3 % pending, 2 % running) in steps (1, 10, 50 and 100 % of --runs). The fill
writes rows straight into the tables and then rebuilds the rollups — the one shortcut
past the ingestion path, which keeps the same rollups current one run at a time; it runs
in a child process, so the RSS shown is that of the process serving the requests. At every
step each case is timed through the API and the htmx partial, in process.
"""
from __future__ import annotations

import argparse
import multiprocessing
import random
import sqlite3
import time
from datetime import datetime, timedelta

from harness import Bench, p, print_table, rss_mb, time_calls

from models import database, init_database
from models.db import to_micros, utcnow
from history.filters import HistoryFilter, Row, list_query
from history.rollups import rebuild_rollups

WORKFLOWS = 100
DAYS = 90
STATUS_WEIGHTS = (("success", 85), ("failure", 10), ("pending", 3), ("running", 2))
DEEP_PAGES = 2000
PAGE = 50
CHUNK = 50_000


def fill(path: str, first_id: int, count: int, now: datetime, rng: random.Random) -> None:
    """Insert `count` runs spread over the last DAYS days, straight into the tables."""
    statuses = [s for s, weight in STATUS_WEIGHTS for _ in range(weight)]
    end = to_micros(now)
    span = DAYS * 86400 * 10**6
    conn = sqlite3.connect(path)
    with conn:
        if first_id == 1:
            conn.executemany("INSERT INTO workflow (id, name, created_at) VALUES (?, ?, ?)",
                             [(w, f"workflow-{w:03d}", end - span) for w in
                              range(1, WORKFLOWS + 1)])
        for chunk in range(first_id, first_id + count, CHUNK):
            # Chunks keep this process small, so its RSS speaks of the requests.
            conn.executemany(
                "INSERT INTO execution (id, workflow_id, status, started_at, finished_at,"
                " duration_ms, step_count, error_message, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (_row(run_id, rng, statuses, end, span)
                 for run_id in range(chunk, min(chunk + CHUNK, first_id + count))))
    conn.close()


def _row(run_id: int, rng: random.Random, statuses: list[str], end: int, span: int) -> tuple:
    status = statuses[rng.randrange(100)]
    started = end - rng.randrange(span)
    finished = duration = error = None
    if status in ("success", "failure"):
        duration = rng.randrange(200, 120_000)
        finished = started + duration * 1000
    if status == "failure":
        error = rng.choice(["HTTP 502 from billing", "Timed out after 30 s",
                            "KeyError: 'customer_id'"])
    return (run_id, rng.randrange(1, WORKFLOWS + 1), status, started, finished, duration,
            rng.randrange(1, 8), error, started, started)


def deep_cursor(secret: str, depth: int) -> str:
    """The cursor of page `depth` + 1 of the unfiltered history."""
    f = HistoryFilter.from_args({}, secret=secret)
    query = f.apply(list_query()).limit(1).offset(depth * PAGE - 1)
    last = database.execute_sql(*query.sql()).fetchone()  # stored values, as Row holds them
    return f.encode_cursor(f.cursor_after(Row(*last)))


def prepare(url: str, first_id: int, count: int, now: datetime, seed: int, secret: str,
            depth: int, answer) -> None:
    """In a child process, so the timed process only ever serves requests: fill, rebuild
    the rollups, and find the deep page's cursor."""
    init_database(url)  # a handle of its own, nothing shared with the parent
    fill(url.removeprefix("sqlite:///"), first_id, count, now, random.Random(seed))
    database.connect()
    try:
        rebuild_rollups()
        answer.put(deep_cursor(secret, depth))
    finally:
        database.close()


def cases(week_ago: datetime, deep: str, depth: int) -> list[tuple[str, str]]:
    """(label, query string) of every timed case."""
    week = week_ago.strftime("%Y-%m-%dT%H:%M")
    return [
        ("no filter", ""),
        ("one workflow", "workflow=workflow-042"),
        ("status=failure", "status=failure"),
        ("7-day range", f"from={week}"),
        ("all three", f"workflow=workflow-042&status=failure&from={week}"),
        (f"page {depth + 1} (cursor)", f"cursor={deep}"),
    ]


def main() -> None:
    """Fill in steps; at each, time every case through the API and the htmx partial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    bench = Bench()
    bench.login()
    url = bench.app.config["DATABASE_URL"]
    rng, now = random.Random(42), utcnow()
    steps = sorted({max(1000, args.runs * share // 100) for share in (1, 10, 50, 100)})
    rows, filled = [], 0
    fork = multiprocessing.get_context("fork")
    for size in steps:
        started = time.perf_counter()
        depth = min(DEEP_PAGES, size // PAGE - 1)
        answer = fork.Queue()
        if hasattr(database.obj, "close_all"):
            database.obj.close_all()  # no open SQLite handle crosses the fork
        child = fork.Process(target=prepare, args=(url, filled + 1, size - filled, now,
                                                   rng.randrange(2**32), bench.app.secret_key,
                                                   depth, answer))
        child.start()
        deep = answer.get(timeout=3600)
        child.join(timeout=60)
        assert child.exitcode == 0, child.exitcode
        filled = size
        fill_s = time.perf_counter() - started
        noop = time_calls(bench.noop, args.repeat)
        base = p(noop, 50)
        rows.append([f"{size:,}", "no-op /api/ping", base, p(noop, 95), 1.0, "", "", "",
                     f"{rss_mb():.0f}"])
        for label, query in cases(now - timedelta(days=7), deep, depth):
            api = time_calls(lambda: bench.get(f"/api/automations/executions?{query}"),
                             args.repeat)
            part = time_calls(lambda: bench.get(f"/executions?{query}", **{"HX-Request": "true"}),
                              args.repeat)
            rows.append([f"{size:,}", label, p(api, 50), p(api, 95), p(api, 95) / base,
                         p(part, 50), p(part, 95), p(part, 95) / base, f"{rss_mb():.0f}"])
        print(f"filled {size:,} runs (+ rollup rebuild) in {fill_s:.1f} s", flush=True)
    print(f"\n{args.repeat} timed calls per case; times in ms; ratios are p95 / no-op p50 "
          "of the same step; counts and histogram included in every call.")
    print_table(["runs", "case", "API p50", "API p95", "API x", "htmx p50", "htmx p95",
                 "htmx x", "RSS MB"], rows)


if __name__ == "__main__":
    main()
