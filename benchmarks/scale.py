"""Scale benchmark: the same cases at 1,000,000 and 10,000,000 runs on PostgreSQL, side by
side, each as a ratio to the no-op timed in the same step.

    python -m benchmarks.scale --postgres postgresql://u@host/emptydb
    python -m benchmarks.scale --postgres URL --runs 10000000 --small 1000000 \\
        --workflows 10000 --days 365 --steps 3

Fills two databases, the one named by --postgres (to --runs) and one beside it named after it
with `_small` (to --small; made if missing), each emptied first, in the database itself, not
through the API: runs of --workflows workflows over --days days (half of them in the 100
busiest workflows; 88 % success, 10 % failure with an error text, 2 % running/pending), each
with an external id, an input payload and --steps steps; then rebuilds what the write path
keeps (rollups, error counts, workflow summaries) and analyzes. `--fill-only` stops there;
`--reuse` keeps what a previous run filled. Then at --small runs and at --runs, each on its
own database, over HTTP (gunicorn, 1 worker, one keep-alive connection of the standard
library's client), it times the history's cases (those of benchmarks.history, an external id,
one workflow's last 30 days, and the first two right after a write), the workflows overview's
first page of 100, a quiet workflow's 90-day page; in process, batches of runs posted;
and it gives the database's bytes per run (runs, steps, payloads, rollups and every index).
Last, at --runs, retention deletes the oldest --purge runs as its job does (batches sized to
hold the write lock about 30 ms) for at most --purge-seconds, while a thread posts batches
through HTTP: the longest batch (the write lock it held), the posting rate against the rate
without it, and the rate of deletion. "growth" is the ratio of x (of the value, where there
is no x) from --small to --runs.
"""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg2
import requests

from history.retention import JOB_BATCHES, LOCK_BUDGET_MS, Purged, cutoff, purge_expired
from history.rollups import GRAINS, rebuild_rollups
from app import create_app
from models import database
from models.db import connection, iso, to_micros, utcnow, write_transaction
from workflows.errors import rebuild_error_counts
from workflows.models import BINS_PER_DOUBLING, DurationRollup, WorkflowSummary
from workflows.summary import ensure_summaries

from .harness import Bench, arguments, empty_postgres, p, print_table, time_calls
from .history import PAGE, Server, cases, deep_cursor, measure
from .ingest import _time_batches, make_run

BUSY = 100
CHUNK = 500_000
DAY_US = 86_400_000_000


def fill(url: str, count: int, workflows: int, days: int, steps: int, now_us: int) -> None:
    """`count` more runs (ids after the last), their input payloads and steps, made by
    PostgreSQL itself; the workflows first, into an empty database."""
    span = days * DAY_US
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM execution")
    first = cur.fetchone()[0]
    last = first + count - 1
    cur.execute("SELECT setseed(%s)", (first / (last + 1),))
    cur.execute("SELECT count(*) FROM workflow")
    if cur.fetchone()[0] == 0:
        cur.execute("INSERT INTO workflow (id, name, created_at, timezone, grace_seconds) "
                    "SELECT w, 'workflow-' || lpad(w::text, 5, '0'), %s, 'UTC', 300 "
                    "FROM generate_series(1, %s) AS w", (now_us - span, workflows))
    for lo in range(first, last + 1, CHUNK):
        hi = min(last, lo + CHUNK - 1)
        cur.execute(
            "INSERT INTO execution (id, workflow_id, external_id, status, started_at, "
            "finished_at, duration_ms, step_count, error_message, error_type, created_at, "
            "updated_at) "
            "SELECT i, w, 'run-' || i, st, s, CASE WHEN st IN ('success', 'failure') THEN "
            "s + d * 1000 END, CASE WHEN st IN ('success', 'failure') THEN d END, %(steps)s, "
            "CASE WHEN st = 'failure' THEN 'HTTP 502 from billing for invoice ' || (i %% 10000)"
            " END, CASE WHEN st = 'failure' THEN 'HTTPError' END, s, s FROM ("
            "  SELECT i, CASE WHEN random() < 0.5 THEN 1 + floor(random() * %(busy)s)"
            "    ELSE 1 + floor(random() * %(workflows)s) END::int AS w,"
            "  (CASE WHEN r < 0.88 THEN 'success' WHEN r < 0.98 THEN 'failure'"
            "    WHEN r < 0.99 THEN 'running' ELSE 'pending' END) AS st,"
            "  %(end)s - floor(random() * %(span)s)::bigint AS s,"
            "  (200 + floor(random() * 120000))::bigint AS d"
            "  FROM (SELECT i, random() AS r FROM generate_series(%(lo)s, %(hi)s) AS i) AS g"
            ") AS runs ORDER BY i",
            {"steps": steps, "busy": BUSY, "workflows": workflows, "end": now_us,
             "span": span, "lo": lo, "hi": hi})
        cur.execute("INSERT INTO execution_payload (execution_id, input) SELECT i, "
                    "'{\"invoice\": ' || i || ', \"note\": \"monthly run\"}' "
                    "FROM generate_series(%s, %s) AS i", (lo, hi))
        cur.execute("INSERT INTO step (execution_id, position, name, action, status, "
                    "started_at, finished_at, duration_ms) SELECT e.id, p, 'Step ' || p, "
                    "'http.post', 'success', e.started_at, e.started_at + 1000000, 1000 "
                    "FROM execution AS e CROSS JOIN generate_series(0, %s) AS p "
                    "WHERE e.id BETWEEN %s AND %s ORDER BY e.id, p", (steps - 1, lo, hi))
        conn.commit()
        print(f"  {hi - first + 1:,} of {count:,} runs", flush=True)
    cur.execute("SELECT setval(pg_get_serial_sequence('workflow', 'id'), (SELECT MAX(id) "
                "FROM workflow))")
    cur.execute("SELECT setval(pg_get_serial_sequence('execution', 'id'), (SELECT MAX(id) "
                "FROM execution))")
    conn.commit()
    conn.close()


def settle() -> None:
    """What the write path keeps, rebuilt from the runs; then ANALYZE."""
    with connection():
        rebuild_rollups()
        with write_transaction():
            rebuild_error_counts(database)
            WorkflowSummary.delete().execute()
            DurationRollup.delete().execute()
            count_durations()
    ensure_summaries(batch=2000)
    with connection():
        database.execute_sql("ANALYZE")


def count_durations() -> None:
    """The duration counts (workflows.models.duration_bin per hour and day) in one statement
    per grain, rather than run by run in Python as an upgrade counts them."""
    bin_of = ("CASE WHEN duration_ms <= 0 THEN 0 ELSE 1 + floor(%d * ln(duration_ms) / ln(2))"
              " END" % BINS_PER_DOUBLING)  # in floating point, as math.log2
    for grain, width in GRAINS.items():
        database.execute_sql(
            f"INSERT INTO duration_rollup (grain, workflow_id, bucket, bin, n) "
            f"SELECT '{grain}', workflow_id, started_at - started_at %% {width}, {bin_of}, "
            f"count(*) FROM execution WHERE status IN ('success', 'failure') "
            f"AND duration_ms IS NOT NULL GROUP BY 2, 3, 4")


def bytes_per_run(url: str) -> tuple[int, float]:
    """The runs stored and the bytes of every table and index of the schema per run."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM execution")
        runs = cur.fetchone()[0]
        cur.execute("SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class AS c "
                    "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'")
        return runs, float(cur.fetchone()[0]) / runs


def _ingest_rate(bench: Bench, counter, batches: int, size: int) -> float:
    at = iso(utcnow())
    times = _time_batches(bench, [[make_run(next(counter), at, at) for _ in range(size)]
                                  for _ in range(batches + 1)])
    return size * 1000 / (sum(times) / len(times))


def _post_for(base: str, headers: dict, counter, stop: threading.Event, sent: list[int]):
    session = requests.Session()
    session.headers.update(headers)
    at = iso(utcnow())
    while not stop.is_set():
        runs = [make_run(next(counter), at, at) for _ in range(100)]
        response = session.post(f"{base}/api/automations/executions/batch", timeout=120,
                                json={"executions": runs})
        if response.status_code == 201:
            sent.append(len(runs))


def _posting_rate(base: str, headers: dict, counter, seconds: float | None = None,
                  work=None) -> tuple[float, object]:
    """Runs/s posted by one thread through HTTP for `seconds`, or while `work()` runs."""
    stop, sent = threading.Event(), []
    thread = threading.Thread(target=_post_for, args=(base, headers, counter, stop, sent))
    started = time.perf_counter()
    thread.start()
    result = work() if work else time.sleep(seconds)
    stop.set()
    thread.join(120)
    return sum(sent) / (time.perf_counter() - started), result


def main() -> None:
    parser = arguments(__doc__, runs=10_000_000, small=1_000_000, workflows=10_000, days=365,
                       steps=3, repeat=100, batches=10, purge=1_000_000)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the runs a previous run of this benchmark left in the "
                        "two databases (and fill only up to each size)")
    parser.add_argument("--purge-seconds", type=float, default=300,
                        help="stop retention after this long (and give the rate)")
    parser.add_argument("--fill-only", action="store_true",
                        help="fill (and settle) both databases, then stop")
    args = parser.parse_args()
    if not args.postgres:
        parser.error("--postgres URL is required: this benchmark is of PostgreSQL")
    if args.workflows < BUSY:
        parser.error(f"--workflows must be at least {BUSY} (half of the runs go to the {BUSY} "
                     "busiest)")
    urls = {args.small: _beside(args.postgres, "_small"), args.runs: args.postgres}
    now = utcnow()
    for size, url in urls.items():
        started = time.perf_counter()
        filled = _reuse(url) if args.reuse else 0
        if not filled:
            empty_postgres(url)
        # The app on this database (and, if empty, its schema at this release) before the
        # fill: an app started on runs without their summaries would count them itself.
        create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SCHEDULER": False})
        # A database reused may have lost up to --purge runs to an earlier run's retention.
        if size > filled + (args.purge if filled else 0):
            fill(url, size - filled, args.workflows, args.days, args.steps, to_micros(now))
            settle()
        print(f"{size:,} runs ready (filled, rollups, error counts and summaries rebuilt) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    if args.fill_only:
        return
    counter = iter(range(10**9))
    figures: dict[str, dict[int, tuple]] = {}
    for size, url in urls.items():
        _reuse(url)  # this run's account, made afresh
        bench = Bench(url)
        bench.login()
        server = Server(url, bench.app.secret_key, bench.token)
        try:
            _measure(args, size, bench, server, now, counter, figures)
            if size == args.runs:
                alone, _ = _posting_rate(server.base, bench.headers, counter, seconds=20)
                keep_days = args.days - args.days * args.purge // args.runs
                expired = _older_than(url, cutoff(now, keep_days))
                with_purge, purged = _posting_rate(
                    server.base, bench.headers, counter,
                    work=lambda: _purge(now, keep_days, args.purge_seconds, expired))
        finally:
            server.stop()

    print(f"\nPostgreSQL; {args.workflows:,} workflows over {args.days} days; {args.steps} steps "
          f"and an input payload per run; {args.repeat} timed calls per case over HTTP "
          "(gunicorn, 1 worker); times in ms; x = p50 / no-op p50 of the same size.")
    small, large = args.small, args.runs
    rows = []
    for label, by_size in figures.items():
        a, b = by_size[small], by_size[large]
        if len(a) == 3:
            rows.append([label, a[0], a[1], a[2], b[0], b[1], b[2], b[2] / a[2]])
        else:
            rows.append([label, a[0], "", "", b[0], "", "", b[0] / a[0]])
    print_table(["case", f"p50 {small:,}", "p95", "x", f"p50 {large:,}", "p95", "x",
                 "growth"], rows)  # growth: of x (of the value where there is no x)
    purged, purge_seconds = purged
    rate = purged.runs / purge_seconds
    print(f"\nRetention of the {expired:,} runs older than {keep_days} days, as the job does "
          f"it: {purged.runs:,} deleted in {purge_seconds:.0f} s "
          + ("(all)" if purged.done else f"(stopped at --purge-seconds; at {rate:.0f} runs/s "
             f"the rest would take {(expired - purged.runs) / max(rate, 1) / 60:.0f} min more)")
          + f", {purged.batches:,} batches: longest {purged.longest_batch_ms:.0f} ms, p95 "
          f"{p(purged.batch_ms, 95):.0f} ms, p50 {p(purged.batch_ms, 50):.0f} ms, "
          f"{sum(ms > 100 for ms in purged.batch_ms):,} over 100 ms; one thread "
          f"posting batches of 100 over HTTP: {alone:.0f} runs/s alone, {with_purge:.0f} "
          f"runs/s meanwhile ({with_purge / alone:.0%}).")


def _older_than(url: str, limit: int) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM execution WHERE started_at < %s", (limit,))
        return cur.fetchone()[0]


def _measure(args, size: int, bench: Bench, server: Server, now, counter,
             figures: dict[str, dict[int, tuple]]) -> None:
    """One size's figures, added to `figures` and printed at once."""
    today = now.date()
    quiet = f"workflow-{args.workflows - 1:05d}"
    depth = min(2000, size // PAGE - 1)
    with connection():
        deep = deep_cursor(bench.app.secret_key, depth)
    month = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    queries = [(label, query.replace("workflow-042", "workflow-00042"))
               for label, query in cases(now - timedelta(days=7), deep, depth)] + [
        ("external_id", f"external_id=run-{size // 2}"),
        ("one workflow, 30 days", f"workflow=workflow-00042&from={month}")]
    base, found = measure(server.get, queries, args.repeat)
    figures.setdefault("no-op /api/ping", {})[size] = (base, base, 1.0)
    for label, api50, api95, api_x, *_ in found:
        if label.startswith("page "):  # page 2,001 (or fewer, small): one label
            label = "a deep page (cursor)"
        figures.setdefault(f"history: {label}", {})[size] = (api50, api95, api_x)
    for label, url in (
            ("workflows overview API, first 100", "/api/automations/workflows?limit=100"),
            ("a quiet workflow's page, 90 days",
             f"/workflows/{quiet}?from={today - timedelta(days=89)}&to={today}")):
        samples = time_calls(lambda: server.get(url), args.repeat)
        figures.setdefault(label, {})[size] = (p(samples, 50), p(samples, 95),
                                               p(samples, 50) / base)
    rate = _ingest_rate(bench, counter, args.batches, 1000)
    figures.setdefault("batch ingestion, runs/s (in process)", {})[size] = (rate,)
    runs, per_run = bytes_per_run(server_url := bench.app.config["DATABASE_URL"])
    figures.setdefault("database bytes per run", {})[size] = (per_run,)
    print(f"\nat {runs:,} runs ({server_url.rsplit('/', 1)[-1]}):")
    print_table(["case", "p50 / value", "p95", "x no-op"],
                [[label, *by_size[size], "", ""][:4] for label, by_size in figures.items()
                 if size in by_size])


def _beside(url: str, suffix: str) -> str:
    """The URL of a database named after the one of `url` with `suffix`, made if missing."""
    prefix, name = url.rsplit("/", 1)
    other = name + suffix
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (other,))
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{other}"')
    conn.close()
    return f"{prefix}/{other}"


def _reuse(url: str) -> int:
    """The runs a previous run of this benchmark left (0 if none), its account removed so
    that this run makes its own."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('execution') IS NOT NULL")
        if not cur.fetchone()[0]:
            return 0
        cur.execute("SELECT count(*) FROM execution")
        runs = cur.fetchone()[0]
        cur.execute('DELETE FROM "user" WHERE email = %s', ("bench@example.com",))
        return runs


def _purge(now, keep_days: int, seconds: float, expired: int) -> tuple[Purged, float]:
    """Retention as the job does it (batches sized to its lock budget, 50 at a time) until
    the runs are gone or `seconds` have passed; `expired`: the runs there were to delete.
    Returns what it deleted and the seconds it took."""
    total = Purged()
    started = time.perf_counter()
    with connection():
        while time.perf_counter() - started < seconds:
            part = purge_expired(now, keep_days, max_batches=JOB_BATCHES,
                                 budget_ms=LOCK_BUDGET_MS)
            total.runs += part.runs
            total.batches += part.batches
            total.batch_ms += part.batch_ms
            total.longest_batch_ms = max(total.longest_batch_ms, part.longest_batch_ms)
            if part.done:
                break
    total.done = total.runs >= expired
    return total, time.perf_counter() - started


if __name__ == "__main__":
    main()
