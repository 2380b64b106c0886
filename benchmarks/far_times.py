"""History beside runs stored far in the past or future: size, bars and time of the page.

    python -m benchmarks.far_times [--repeat 20] [--postgres URL]

An older release accepted any year; a database it wrote may hold a run started in year 9999
or year 1. Each case stores 1,000 runs of the last 30 days, adds such a run straight through
the write path (as that release did, without today's validation), and times the history
page `/executions`, the start page and the API next to the authenticated no-op
`GET /api/ping` timed in the same run.
"""
from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta, timezone

from models import database
from models.db import utcnow
from models.ingest import store_executions
from models.schemas import ExecutionIn

from .harness import Bench, median, print_table, time_calls

UTC = timezone.utc
CASES = {
    "none": None,
    "year 9999 (9999-01-01)": datetime(9999, 1, 1, tzinfo=UTC),
    "year 9999, last moment": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "year 1 (0001-01-01)": datetime(1, 1, 1, tzinfo=UTC),
}
PAGES = ["/executions", "/", "/api/automations/executions"]


def _run(started: datetime, index: int) -> ExecutionIn:
    """A run written as it is, without validation."""
    return ExecutionIn.model_construct(
        workflow=f"workflow-{index % 10}", external_id=None,
        status="failure" if index % 10 == 0 else "success", started_at=started,
        finished_at=started, input=None, output=None, error=None, steps=[])


def measure(backend_url: str | None, far: datetime | None, repeat: int) -> list[list]:
    """Each page's status, size, bars and p50 (ms) with `far` stored beside 1,000 runs."""
    bench = Bench(backend_url)
    bench.login()
    now = utcnow()
    database.connect(reuse_if_open=True)
    store_executions([_run(now - timedelta(minutes=43 * i), i) for i in range(1000)])
    if far is not None:
        store_executions([_run(far, 0)])
    database.close()
    noop = median(time_calls(bench.noop, repeat))
    rows = []
    for url in PAGES:
        response = bench.client.get(url)
        bars = len(re.findall(rb'class="bar"', response.data))
        if response.status_code == 200:
            took = median(time_calls(lambda: bench.client.get(url), repeat, warmup=1))
        else:
            took = float("nan")
        rows.append([url, response.status_code, f"{len(response.data) / 1e6:.3f}", bars,
                     took, took / noop])
    return rows


def main() -> None:
    """Every case on a fresh database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database to use instead of SQLite "
                             "(emptied before each case)")
    args = parser.parse_args()
    rows = []
    for label, far in CASES.items():
        if args.postgres:
            _empty(args.postgres)
        rows += [[label, *row] for row in measure(args.postgres, far, args.repeat)]
    print(f"{'PostgreSQL' if args.postgres else 'SQLite'}, in process; 1,000 runs of the last "
          f"30 days and the run of each case; p50 of {args.repeat} calls in ms; x = p50 / "
          "no-op p50.")
    print_table(["stored beside them", "page", "status", "MB", "bars", "p50 ms", "x no-op"],
                rows)


def _empty(url: str) -> None:
    import psycopg2
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cur.fetchall()]
        if tables:
            cur.execute("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")


if __name__ == "__main__":
    main()
