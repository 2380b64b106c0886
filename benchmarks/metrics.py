"""Metrics benchmark: a Prometheus scrape of `GET /metrics` at 10,000 workflows, as p50/p95
and the ratio to the no-op, at 10 % and 100 % of --runs.

    python -m benchmarks.metrics
    python -m benchmarks.metrics --postgres postgresql://u@host/emptydb

Fills a fresh SQLite file (or the given, empty, PostgreSQL database) as the workflows
benchmark does (benchmarks/workflows.py: --workflows workflows, half of the runs in the 100
busiest, 88 % successes, schedules on, 1,000 runs open), but over --days days, and adds
--notices notices (every channel kind, most delivered, some failed or waiting) with two
attempts each; the run totals are then folded as the scheduler's `metrics` job keeps them
(all but the last two days). At each step it times, in process, the scrape next to the authenticated
no-op `GET /api/ping`, and prints how many samples the scrape holds and its size.
"""
from __future__ import annotations

import random
import time

from metrics.totals import RunTotal, RunTotalMark, fold
from models import database
from models.db import to_micros, utcnow, write_transaction

from . import workflows as filler
from .harness import Bench, arguments, empty_postgres, p, print_table, raw_inserter, time_calls

KINDS = ("email", "webhook", "slack", "teams", "discord", "pagerduty")


def add_notices(url: str, count: int, workflows: int, rng: random.Random) -> None:
    """`count` notices of the workflows' failing episodes, with two attempts each."""
    conn, cur, insert = raw_inserter(url)
    now = to_micros(utcnow())
    notices, attempts = [], []
    for notice_id in range(1, count + 1):
        roll = rng.random()
        status = "delivered" if roll < 0.9 else "failed" if roll < 0.95 else "pending"
        created = now - rng.randrange(90 * 86400) * 10**6
        notices.append((notice_id, notice_id, 1 + notice_id % workflows, "failing", notice_id,
                        KINDS[notice_id % len(KINDS)], "{}", "{}", status, 2, created,
                        created))
        attempts += [(notice_id, created, False, "HTTP 502"),
                     (notice_id, created + 60 * 10**6, status == "delivered", None)]
    insert("INSERT INTO notice (id, channel_id, workflow_id, kind, episode, channel_type, "
           "channel_config, payload, status, attempts, next_attempt_at, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", notices)
    insert("INSERT INTO attempt (notice_id, attempted_at, ok, error) VALUES (?, ?, ?, ?)",
           attempts)
    conn.commit()
    conn.close()


def fold_totals() -> int:
    """The run totals folded anew from the rebuilt rollups, as the scheduler's job keeps them
    (the fill wrote past the write hooks); returns the transactions it took."""
    database.connect(reuse_if_open=True)
    try:
        with write_transaction():
            RunTotal.delete().execute()
            RunTotalMark.delete().execute()
        fold()
        return fold()
    finally:
        database.close()


def main() -> None:
    parser = arguments(__doc__, runs=1_000_000, workflows=10_000, days=365, notices=10_000,
                       repeat=60)
    args = parser.parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    filler.DAYS = args.days
    bench = Bench(args.postgres)
    url = bench.app.config["DATABASE_URL"]
    rng, now = random.Random(42), utcnow()
    rows, filled = [], 0
    for size in (args.runs // 10, args.runs):
        started = time.perf_counter()
        filler.fill(url, args.workflows, filled + 1, size - filled, now, rng)
        opened = 0
        if not filled:
            opened = filler.add_open_runs(url, 10 * args.runs + 1, now, rng)
            add_notices(url, args.notices, args.workflows, rng)
        filled = size
        filler.settle(url, args.workflows)
        folded = fold_totals()
        print(f"filled {size:,} runs over {args.days} days (+ {opened} open ones, rebuilt "
              f"summaries, run totals folded in {folded} steps) in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        body = bench.get("/metrics").data
        samples_held = sum(1 for line in body.splitlines() if not line.startswith(b"#"))
        base = time_calls(bench.noop, args.repeat)
        scrape = time_calls(lambda: bench.get("/metrics"), args.repeat)
        rows.append([f"{size:,}", "no-op /api/ping", p(base, 50), p(base, 95), 1.0, ""])
        rows.append([f"{size:,}", "GET /metrics", p(scrape, 50), p(scrape, 95),
                     p(scrape, 50) / p(base, 50),
                     f"{samples_held:,} samples, {len(body) / 1e6:.1f} MB"])
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}; {args.workflows:,} workflows, runs over {args.days} days, "
          f"{args.notices:,} notices; {args.repeat} timed calls per case, in process (Flask's "
          "test client); times in ms; x = p50 / no-op p50 of the same step.")
    print_table(["runs", "case", "p50", "p95", "x no-op", "scrape"], rows)


if __name__ == "__main__":
    main()
