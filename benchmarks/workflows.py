"""Workflows benchmark: the overview, one workflow's page and the idle scan, as ratios to the
no-op, with 10,000 workflows and 1,000,000 runs.

    python -m benchmarks.workflows
    python -m benchmarks.workflows --postgres postgresql://u@host/emptydb

Fills a fresh SQLite file (or the given, empty, PostgreSQL database) in two steps (10 % and
100 % of --runs) with runs of --workflows workflows over 90 days: half of the runs belong
to the 100 busiest workflows, the rest are spread over all of them (88 % success, 10 %
failure with one of a few error shapes, 2 % pending/running). Every workflow has a
schedule (every 5 to 60 minutes) set after each fill, so none is due; 1,000 of them
also have a maximum duration of an hour and one run each that started minutes ago. The
fill writes rows straight into the tables and then rebuilds the rollups, summaries,
duration and error counts (the one shortcut past the ingestion path, which keeps them current one
write at a time). At each step it times, in process, each case next to the authenticated
no-op `GET /api/ping`: the overview's first page (API, page, htmx partial), the busiest
workflow's page and API over 30 and 90 days, and an idle alert scan (timeouts, streaks of
marked workflows, missed runs: all three find nothing).

    python -m benchmarks.workflows --failures --runs 1000000

With --failures, one workflow's runs are all failures with the same message, made to make
a backtracking pattern slow (`'ab1-' * 75`), over the last 29 days; its page and API (the
default 30 days: every failure in the period) are timed at 50,000 runs and at --runs.
Against a checkout from before error fingerprints, the fill leaves out their column.
"""
from __future__ import annotations

import random
import sqlite3
import time
from datetime import datetime, timedelta
from urllib.parse import quote

from alerts.config import config_from
from alerts.scheduler import scan
from history.rollups import rebuild_rollups
from models import database
from models.db import connection, to_micros, utcnow, write_transaction
from workflows.models import DurationRollup, WorkflowSummary
from workflows.summary import ensure_summaries

from .harness import Bench, arguments, empty_postgres, p, print_table, time_calls

try:
    from models.fingerprints import fingerprint
except ImportError:  # a checkout from before error fingerprints, for figures from before
    fingerprint = None
try:
    from workflows.errors import rebuild_error_counts
except ImportError:  # a checkout from before error counts
    rebuild_error_counts = None

DAYS = 90
BUSY = 100
WITH_LIMIT = 1000
CHUNK = 50_000
ERRORS = [("ValueError", "Row {n}: invalid date '2026-02-{d}'"),
          ("HTTPError", "HTTP 502 from billing for invoice {n}"),
          ("TimeoutError", "Timed out after {d} s waiting for {n}.example.com"),
          ("KeyError", "'customer_id'")]


def _connect(url: str):
    if url.startswith("postgres"):
        import psycopg2
        return psycopg2.connect(url), True
    return sqlite3.connect(url.removeprefix("sqlite:///")), False


def _insert(cur, postgres: bool, sql: str, rows: list[tuple]) -> None:
    if not rows:
        return
    if postgres:
        from psycopg2.extras import execute_values
        values = "(" + ", ".join(["?"] * len(rows[0])) + ")"
        execute_values(cur, sql.replace(values, "%s"), rows, page_size=5000)
    else:
        cur.executemany(sql, rows)


def fill(url: str, workflows: int, first_id: int, count: int, now: datetime,
         rng: random.Random) -> None:
    """Insert `count` runs (ids from `first_id`) straight into the tables."""
    conn, postgres = _connect(url)
    cur = conn.cursor()
    end = to_micros(now)
    span = DAYS * 86400 * 10**6
    if first_id == 1:
        _insert(cur, postgres, "INSERT INTO workflow (id, name, created_at, timezone, "
                "grace_seconds) VALUES (?, ?, ?, ?, ?)",
                [(w, f"workflow-{w:05d}", end - span, "UTC", 300)
                 for w in range(1, workflows + 1)])
    for start in range(first_id, first_id + count, CHUNK):
        rows = []
        for run_id in range(start, min(start + CHUNK, first_id + count)):
            busy = rng.random() < 0.5
            workflow = rng.randrange(1, BUSY + 1) if busy else rng.randrange(1, workflows + 1)
            roll = rng.random()
            status = ("success" if roll < 0.88 else "failure" if roll < 0.98
                      else "running" if roll < 0.99 else "pending")
            if workflow <= WITH_LIMIT and status in ("running", "pending"):
                status = "success"  # their open runs are the fresh ones added below
            started = end - rng.randrange(span)
            finished = duration = error = kind = None
            if status in ("success", "failure"):
                duration = int(rng.lognormvariate(8, 1.2))
                finished = started + duration * 1000
            if status == "failure":
                kind, text = ERRORS[rng.randrange(len(ERRORS))]
                error = text.format(n=rng.randrange(10_000), d=rng.randrange(1, 60))
            rows.append((run_id, workflow, status, started, finished, duration, 0, error, kind,
                         started, started))
        _insert(cur, postgres, "INSERT INTO execution (id, workflow_id, status, started_at, "
                "finished_at, duration_ms, step_count, error_message, error_type, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    if postgres:
        for table in ("workflow", "execution"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT MAX(id) FROM {table}))")
    conn.commit()
    conn.close()


FAILING = "failing-workflow"
PROBE = ("ProbeError", "ab1-" * 75)


def fill_failures(url: str, first_id: int, count: int, now: datetime,
                  rng: random.Random) -> None:
    """Insert `count` failures of one workflow (ids from `first_id`), all with PROBE's error,
    over the last 29 days."""
    conn, postgres = _connect(url)
    cur = conn.cursor()
    end = to_micros(now)
    span = 29 * 86400 * 10**6
    if first_id == 1:
        _insert(cur, postgres, "INSERT INTO workflow (id, name, created_at, timezone, "
                "grace_seconds) VALUES (?, ?, ?, ?, ?)", [(1, FAILING, end - span, "UTC", 300)])
    kind, message = PROBE
    extra = [fingerprint(kind, message)] if fingerprint else []
    names = ", error_fingerprint" if fingerprint else ""
    for start in range(first_id, first_id + count, CHUNK):
        rows = []
        for run_id in range(start, min(start + CHUNK, first_id + count)):
            started = end - rng.randrange(span)
            duration = int(rng.lognormvariate(8, 1.2))
            rows.append((run_id, 1, "failure", started, started + duration * 1000, duration, 0,
                         message, kind, *extra, started, started))
        _insert(cur, postgres, "INSERT INTO execution (id, workflow_id, status, started_at, "
                f"finished_at, duration_ms, step_count, error_message, error_type{names}, "
                "created_at, updated_at) VALUES ("
                + ", ".join(["?"] * len(rows[0])) + ")", rows)
    if postgres:
        cur.execute("SELECT setval(pg_get_serial_sequence('execution', 'id'), "
                    "(SELECT MAX(id) FROM execution))")
        cur.execute("ANALYZE")
    conn.commit()
    conn.close()


def failures_main(args, bench: Bench) -> None:
    """--failures: one workflow whose runs all failed with PROBE's error."""
    url = bench.app.config["DATABASE_URL"]
    rng, now = random.Random(42), utcnow()
    target = quote(FAILING)
    cases = [("failing workflow API, 30 d", f"/api/automations/workflows/{target}"),
             ("failing workflow page, 30 d", f"/workflows/{target}")]
    rows, filled = [], 0
    for size in sorted({min(50_000, args.runs), args.runs}):
        started = time.perf_counter()
        fill_failures(url, filled + 1, size - filled, now, rng)
        filled = size
        settle(url, 1)
        print(f"filled {size:,} failures (rebuilt summaries) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        base = time_calls(bench.noop, args.repeat)
        rows.append([f"{size:,}", "no-op /api/ping", p(base, 50), p(base, 95), 1.0])
        for label, path in cases:
            samples = time_calls(lambda: bench.get(path), args.repeat, warmup=1)
            rows.append([f"{size:,}", label, p(samples, 50), p(samples, 95),
                         p(samples, 50) / p(base, 50)])
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}; one workflow, every run a failure with the message 'ab1-' * 75; "
          f"{args.repeat} timed calls per case, in process (Flask's test client); times in "
          "ms; x = p50 / no-op p50 of the same step.")
    print_table(["runs", "case", "p50", "p95", "x no-op"], rows)


def add_open_runs(url: str, first_id: int, now: datetime, rng: random.Random) -> int:
    """One run started minutes ago for each of the first WITH_LIMIT workflows."""
    conn, postgres = _connect(url)
    cur = conn.cursor()
    end = to_micros(now)
    rows = [(first_id + w, w + 1, "running", end - rng.randrange(60, 600) * 10**6, 0,
             end, end) for w in range(WITH_LIMIT)]
    _insert(cur, postgres, "INSERT INTO execution (id, workflow_id, status, started_at, "
            "step_count, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    if postgres:
        cur.execute("SELECT setval(pg_get_serial_sequence('execution', 'id'), "
                    "(SELECT MAX(id) FROM execution))")
    conn.commit()
    conn.close()
    return len(rows)


def settle(url: str, workflows: int) -> None:
    """Schedules (set now, so none is due for the next minutes) and limits on, then the
    derived tables rebuilt from the runs."""
    now = utcnow()
    conn, postgres = _connect(url)
    cur = conn.cursor()
    param = "%s" if postgres else "?"
    modulo = "%%" if postgres else "%"  # psycopg2 reads a lone % as a placeholder
    for minutes in (5, 10, 15, 30, 60):
        cur.execute(f"UPDATE workflow SET schedule = {param}, schedule_set_at = {param} "
                    f"WHERE id {modulo} 5 = {param}",
                    (f"*/{minutes} * * * *" if minutes < 60 else "0 * * * *", to_micros(now),
                     (5, 10, 15, 30, 60).index(minutes)))
    cur.execute(f"UPDATE workflow SET max_duration_seconds = 3600 WHERE id <= {WITH_LIMIT}")
    if postgres:
        cur.execute("ANALYZE")
    conn.commit()
    conn.close()
    database.connect(reuse_if_open=True)
    try:
        rebuild_rollups()
        with write_transaction():
            if rebuild_error_counts:
                rebuild_error_counts(database)
            WorkflowSummary.delete().execute()
            DurationRollup.delete().execute()
    finally:
        database.close()
    ensure_summaries(batch=2000)


def main() -> None:
    parser = arguments(__doc__, runs=1_000_000, workflows=10_000, repeat=100)
    parser.add_argument("--failures", action="store_true",
                        help="one workflow whose every run failed with the same long message")
    args = parser.parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    bench.login()
    if args.failures:
        return failures_main(args, bench)
    url = bench.app.config["DATABASE_URL"]
    config = config_from(bench.app)
    rng, now = random.Random(42), utcnow()
    busy = quote("workflow-00001")
    today = now.date()
    cases = [
        ("overview API, first page", "/api/automations/workflows", {}),
        ("overview page", "/workflows", {}),
        ("overview htmx, failing", "/workflows?state=failing", {"HX-Request": "true"}),
        ("overview API, q=0042", "/api/automations/workflows?q=0042", {}),
        ("busiest workflow API, 30 d", f"/api/automations/workflows/{busy}", {}),
        ("busiest workflow page, 30 d", f"/workflows/{busy}", {}),
        ("busiest workflow page, 90 d",
         f"/workflows/{busy}?from={today - timedelta(days=89)}&to={today}", {}),
        ("quiet workflow page, 90 d",
         f"/workflows/workflow-{args.workflows - 1:05d}?from={today - timedelta(days=89)}&to={today}", {}),
    ]
    rows, filled = [], 0
    for size in (args.runs // 10, args.runs):
        started = time.perf_counter()
        fill(url, args.workflows, filled + 1, size - filled, now, rng)
        filled = size
        opened = 0
        if filled == size and not rows:
            opened = add_open_runs(url, 10 * args.runs + 1, now, rng)
        settle(url, args.workflows)
        print(f"filled {size:,} runs (+ {opened} open ones, rebuilt summaries) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        with connection():
            first = scan(config)  # the first scan after the fill examines nothing due
        base = time_calls(bench.noop, args.repeat)
        rows.append([f"{size:,}", "no-op /api/ping", p(base, 50), p(base, 95), 1.0])
        for label, target, headers in cases:
            samples = time_calls(lambda: bench.get(target, **headers), args.repeat)
            rows.append([f"{size:,}", label, p(samples, 50), p(samples, 95),
                         p(samples, 50) / p(base, 50)])

        def idle_scan():
            with connection():
                result = scan(config)
            assert result.decided == 0 and result.examined == 0, result

        samples = time_calls(idle_scan, args.repeat)
        rows.append([f"{size:,}", f"idle scan ({args.workflows:,} scheduled, "
                     f"{WITH_LIMIT:,} open with a limit)", p(samples, 50), p(samples, 95),
                     p(samples, 50) / p(base, 50)])
        del first
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}; {args.workflows:,} workflows; {args.repeat} timed calls per case, in "
          "process (Flask's test client); times in ms; x = p50 / no-op p50 of the same step.")
    print_table(["runs", "case", "p50", "p95", "x no-op"], rows)


if __name__ == "__main__":
    main()
