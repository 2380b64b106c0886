"""Ingestion benchmark: executions/second for single POSTs and for batches, on SQLite.

    python -m benchmarks.ingest [--singles 1000] [--batches 10] [--batch-size 1000]
    python -m benchmarks.ingest --stored 100000,1000000 [--postgres URL] [--batches 10]

Each run has 5 steps and about 1 KB of payload. Every figure is printed next to an
authenticated no-op request (`GET /api/ping`) timed in the same run.

With `--stored`, the database is first filled (in the database itself, not through the
API) with that many runs of the same shape spread over the last 60 days, then batches
are posted and timed; then it is filled up to the next number and timed again. The table
gives the batch rate at each size and its ratio to the first. `--postgres URL` runs on an
empty PostgreSQL database instead of a temporary SQLite file (its tables are dropped first).

    python -m benchmarks.ingest --resend [--postgres URL] [--batches 10] [--batch-size 1000]

With `--resend`, each round posts a batch of new runs, then the same batch again (what a
client does after an outage), then the same runs with changes (each run's status, output
and one step's output); the table gives the p50 of each, for the whole request and for the
storing alone (the write transaction), and its ratio to the new batch, on SQLite and, with
`--postgres URL`, on PostgreSQL too.
"""
from __future__ import annotations

import argparse
import json
import time

import peewee

from history.retention import purge_expired
from history.rollups import rebuild_rollups
from models import Execution, Workflow, database
from models.db import connection, is_sqlite, iso, to_micros, utcnow, write_transaction
from models.executions import Step
from models.ingest import workflow_ids

from .harness import Bench, empty_postgres, p, print_table, rss_mb, time_calls

STEP_NAMES = ["Fetch", "Validate", "Transform", "Upload", "Notify"]


def make_run(number: int, started: str = "2026-11-24T10:00:00Z",
             finished: str = "2026-11-24T10:00:04.250Z") -> dict:
    """One run of ~1 KB of payload with 5 steps."""
    return {
        "workflow": f"workflow-{number % 20}",
        "external_id": f"bench-{number}",
        "status": "failure" if number % 10 == 0 else "success",
        "started_at": started,
        "finished_at": finished,
        "input": {"customer": number, "note": "x" * 200, "tags": ["a", "b", "c"]},
        "steps": [{"position": i, "name": name, "action": "http.post", "status": "success",
                   "started_at": "2026-11-24T10:00:00Z",
                   "finished_at": "2026-11-24T10:00:01Z",
                   "input": {"i": i}, "output": {"ok": True, "body": "y" * 100}}
                  for i, name in enumerate(STEP_NAMES)],
    }


FILL_SPAN_S = 60 * 86400
FILL_CHUNK = 100_000


def _sequence(first: int, last: int) -> str:
    """A one-column (`i`) row source of the integers first..last, in SQL."""
    if is_sqlite():
        return (f"(WITH RECURSIVE seq(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM seq "
                f"WHERE i < {last}) SELECT i FROM seq) AS s")
    return f"generate_series({first}::bigint, {last}::bigint) AS s(i)"


def fill_runs(stored: int, target: int, start_us: int, span_us: int, total: int) -> None:
    """Add runs number stored+1..target (of `total` spread over span_us from start_us),
    each with 5 steps and ~1 KB of payloads, straight into the tables; then recount the
    rollups. For measuring at size only: no write hook runs."""
    workflow_ids(f"workflow-{n}" for n in range(20))
    first_workflow = Workflow.select(peewee.fn.MIN(Workflow.id)).scalar()
    gap = span_us // total

    def run(sql: str) -> None:
        database.execute_sql(sql if is_sqlite() else sql.replace("%", "%%"))
    note = "x" * 200
    body = "y" * 100
    for lo in range(stored + 1, target + 1, FILL_CHUNK):
        hi = min(target, lo + FILL_CHUNK - 1)
        with write_transaction():
            last_run = Execution.select(peewee.fn.MAX(Execution.id)).scalar() or 0
            last_step = Step.select(peewee.fn.MAX(Step.id)).scalar() or 0
            started = f"({start_us} + i * {gap})"
            run(
                'INSERT INTO "execution" ("workflow_id", "external_id", "status", "started_at", '
                '"finished_at", "duration_ms", "step_count", "failed_step", "error_message", '
                '"created_at", "updated_at") '
                f"SELECT {first_workflow} + i % 20, 'fill-' || i, "
                "CASE WHEN i % 10 = 0 THEN 'failure' ELSE 'success' END, "
                f"{started}, {started} + 4250000, 4250, 5, NULL, "
                "CASE WHEN i % 10 = 0 THEN 'HTTP 502 from billing' ELSE NULL END, "
                f"{started}, {started} FROM {_sequence(lo, hi)} ORDER BY i")
            run(
                'INSERT INTO "execution_payload" ("execution_id", "input", "output", "error") '
                "SELECT id, '{\"customer\":' || id || ',\"note\":\"" + note
                + "\",\"tags\":[\"a\",\"b\",\"c\"]}', NULL, NULL "
                f'FROM "execution" WHERE id > {last_run} ORDER BY id')
            positions = " UNION ALL ".join(f"SELECT {n} AS pos" for n in range(5))
            run(
                'INSERT INTO "step" ("execution_id", "position", "name", "action", "status", '
                '"started_at", "finished_at", "duration_ms", "error_message") '
                "SELECT e.id, p.pos, 'Step ' || p.pos, 'http.post', 'success', e.started_at, "
                f'e.started_at + 1000000, 1000, NULL FROM "execution" e CROSS JOIN ({positions}) p '
                f"WHERE e.id > {last_run} ORDER BY e.id, p.pos")
            run(
                'INSERT INTO "step_payload" ("step_id", "input", "output", "error", "logs") '
                "SELECT id, '{\"i\":' || position || '}', '{\"ok\":true,\"body\":\""
                + body + "\"}', NULL, NULL "
                f'FROM "step" WHERE id > {last_step} ORDER BY id')
    rebuild_rollups()
    if not is_sqlite():
        database.execute_sql("ANALYZE")


def measure_stored(args) -> None:
    """The batch rate after filling the database to each of args.stored runs."""
    sizes = sorted(int(n) for n in args.stored.split(","))
    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    engine = "PostgreSQL" if args.postgres else "SQLite"
    counter = iter(range(10**9))
    now = utcnow()
    span = FILL_SPAN_S * 1_000_000
    start_us = to_micros(now) - span - 3_600_000_000
    noop = time_calls(bench.noop, 200)
    noop_per_s = 1000 / (sum(noop) / len(noop))
    rows, stored, first_rate = [], 0, None
    for size in sizes:
        started = time.perf_counter()
        with connection():
            fill_runs(stored, size, start_us, span, sizes[-1])
        fill_s = time.perf_counter() - started
        stored = size
        at = iso(now)
        times = _time_batches(bench, [[make_run(next(counter), at, at)
                                       for _ in range(args.batch_size)]
                                      for _ in range(args.batches + 1)])
        rate = args.batch_size * 1000 / (sum(times) / len(times))
        first_rate = first_rate or rate
        rows.append([f"{size:,}", f"{fill_s:.0f}", len(times), p(times, 50), p(times, 95), rate,
                     first_rate / rate])
        stored += (args.batches + 1) * args.batch_size
    print(f"{engine}, in process; batches of {args.batch_size} runs with 5 steps each; "
          f"no-op {noop_per_s:.0f} req/s; RSS {rss_mb():.0f} MB")
    print_table(["stored runs", "fill s", "batches", "p50 ms", "p95 ms", "executions/s",
                 "slowdown vs first"], rows)
    if args.purge_days:
        purge(args.purge_days)


def purge(days: int) -> None:
    """Retention on the filled database: the write lock held per 500-run batch."""
    with connection():
        purged = purge_expired(utcnow(), days, max_batches=200)
    print(f"\nRetention ({days} days, batches of 500, at most 200 batches): "
          f"{purged.runs:,} runs, {purged.steps:,} steps deleted in {purged.batches} batches; "
          f"write lock held per batch p50 {p(purged.batch_ms, 50):.0f} ms, "
          f"p95 {p(purged.batch_ms, 95):.0f} ms, longest {purged.longest_batch_ms:.0f} ms")


def changed_run(run: dict) -> dict:
    """The same run reported again with changes: another status, an output, one step's
    output."""
    steps = [dict(step) for step in run["steps"]]
    steps[-1]["output"] = {"ok": False, "body": "z" * 100}
    return {**run, "status": "success" if run["status"] == "failure" else "failure",
            "output": {"sent": True}, "steps": steps}


def measure_resend(args) -> None:
    """New batches, the same re-sent, and re-sent with changes, interleaved per round."""
    import importlib

    view = importlib.import_module("views.ingest")  # `views.ingest` names its blueprint
    engines = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    rows = []
    store = view.store_executions
    stored_ms: list[float] = []

    def timed_store(*a, **kw):  # the part under the write transaction (SQLite: the lock)
        begin = time.perf_counter()
        try:
            return store(*a, **kw)
        finally:
            stored_ms.append((time.perf_counter() - begin) * 1000)

    view.store_executions = timed_store
    for engine, url in engines:
        if url:
            empty_postgres(url)
        bench = Bench(url)
        counter = iter(range(10**9))
        cases = ("new", "re-sent", "re-sent with changes")
        times: dict[str, list[float]] = {case: [] for case in cases}
        writes: dict[str, list[float]] = {case: [] for case in cases}
        for round_ in range(args.batches + 1):
            batch = [make_run(next(counter)) for _ in range(args.batch_size)]
            for case, body in (("new", batch), ("re-sent", batch),
                               ("re-sent with changes", [changed_run(r) for r in batch])):
                begin = time.perf_counter()
                response = bench.client.post("/api/automations/executions/batch",
                                             json={"executions": body}, headers=bench.headers)
                elapsed = (time.perf_counter() - begin) * 1000
                assert response.status_code == 201, response.text
                if round_:  # the first round warms up
                    times[case].append(elapsed)
                    writes[case].append(stored_ms[-1])
        new, new_write = p(times["new"], 50), p(writes["new"], 50)
        for case, samples in times.items():
            rows.append([engine, f"{args.batch_size:,}-run batch, {case}", len(samples),
                         p(samples, 50), p(samples, 50) / new, p(writes[case], 50),
                         p(writes[case], 95), p(writes[case], 50) / new_write])
    view.store_executions = store
    print(f"In process; batches of {args.batch_size} runs with 5 steps each, ~1 KB of payload "
          f"per run; RSS {rss_mb():.0f} MB")
    print("request: the whole POST; storing: store_executions, its write transaction")
    print_table(["database", "case", "batches", "request p50 ms", "vs new", "storing p50 ms",
                 "storing p95 ms", "vs new"], rows)


def _time_batches(bench: Bench, batches: list[list[dict]]) -> list[float]:
    """POST each batch of runs; the milliseconds of each but the first (it warms up)."""
    times = []
    for index, runs in enumerate(batches):
        begin = time.perf_counter()
        response = bench.client.post("/api/automations/executions/batch",
                                     json={"executions": runs}, headers=bench.headers)
        assert response.status_code == 201, response.text
        if index:
            times.append((time.perf_counter() - begin) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--stored", default=None,
                        help="comma-separated run counts to fill to and measure at, "
                             "e.g. 100000,1000000")
    parser.add_argument("--postgres", default=None, metavar="URL",
                        help="an empty PostgreSQL database to run on")
    parser.add_argument("--purge-days", type=int, default=None,
                        help="with --stored: then delete runs older than this many days "
                             "and time the batches")
    parser.add_argument("--resend", action="store_true",
                        help="time new batches against the same batches re-sent")
    args = parser.parse_args()
    if args.resend:
        measure_resend(args)
        return
    if args.stored:
        measure_stored(args)
        return

    bench = Bench()
    size = len(json.dumps(make_run(0)))
    noop = time_calls(bench.noop, 500)
    noop_per_s = 1000 / (sum(noop) / len(noop))

    counter = iter(range(10**9))

    def single():
        response = bench.client.post("/api/automations/executions",
                                     json=make_run(next(counter)), headers=bench.headers)
        assert response.status_code == 201, response.text

    singles = time_calls(single, args.singles)
    singles_per_s = 1000 / (sum(singles) / len(singles))

    batch_times = _time_batches(bench, [[make_run(next(counter)) for _ in range(args.batch_size)]
                                        for _ in range(args.batches + 1)])
    batch_per_s = args.batch_size * 1000 / (sum(batch_times) / len(batch_times))

    print(f"SQLite, in process; each run {size} bytes of JSON with 5 steps; RSS {rss_mb():.0f} MB")
    print_table(
        ["case", "requests", "p50 ms", "p95 ms", "executions/s", "vs no-op req/s"],
        [["no-op GET /api/ping", len(noop), p(noop, 50), p(noop, 95), "-", 1.0],
         ["single POST", len(singles), p(singles, 50), p(singles, 95), singles_per_s,
          singles_per_s / noop_per_s],
         [f"batch POST x{args.batch_size}", len(batch_times), p(batch_times, 50),
          p(batch_times, 95), batch_per_s, batch_per_s / noop_per_s]])


if __name__ == "__main__":
    main()
