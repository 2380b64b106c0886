"""Concurrent writers benchmark: one writer against eight, through two gunicorn servers on
one PostgreSQL, and whether the history's counts stay exact.

    python -m benchmarks.writers --postgres postgresql://u@host/db [--seconds 20]

Two gunicorn servers (each 1 worker, 8 threads, the scheduler off) serve 127.0.0.1 from
the same empty database. First one writer thread, then eight (half of them to each
server), post batches of `--batch` runs (three steps each, a quarter of them failures)
for `--seconds` each; each writer reports 12 workflows of its own, as jobs report theirs. The table gives runs/s for each and their ratio; then
the history API's counts (whole history, by status) against the runs counted in the
table. Any change that makes writers queue on one row (a counter, a rollup every write
touches) shows as a ratio near 1.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import psycopg2
import requests

from .harness import ROOT, Bench, arguments, empty_postgres, print_table
from .load import _free_port, _wait, run_for

RUNS = "/api/automations/executions"
WORKFLOWS = 12  # each writer's own: a job reports its own workflows
STATUSES = ("failure", "success", "success", "success")


def _batch(writer: int, numbers, size: int) -> list[dict]:
    runs = []
    for _ in range(size):
        n = next(numbers)
        status = STATUSES[n % 4]
        run = {"workflow": f"w{writer}-{n % WORKFLOWS}", "external_id": f"{n}",
               "status": status, "started_at": "2026-12-01T10:00:00Z",
               "finished_at": "2026-12-01T10:00:02Z", "input": {"n": n},
               "steps": [{"name": name, "status": "success", "output": {"ok": True}}
                         for name in ("fetch", "transform", "upload")]}
        if status == "failure":
            run["error"] = {"type": "HTTPError", "message": f"HTTP 502 ({n})"}
        runs.append(run)
    return runs


def _write(number: int, base: str, headers: dict, size: int, stop: threading.Event,
           stored: Counter, errors: Counter, lock: threading.Lock) -> None:
    session = requests.Session()
    session.headers.update(headers)
    numbers = itertools.count()
    while not stop.is_set():
        response = session.post(f"{base}{RUNS}/batch", timeout=60,
                                json={"executions": _batch(number, numbers, size)})
        with lock:
            if response.status_code == 201:
                stored[number] += size
            else:
                errors[response.status_code] += 1


def _lock_waits(url: str, stop: threading.Event, samples: list[int]) -> None:
    """Every 50 ms: how many sessions wait for a lock (a row another writer holds)."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        conn.autocommit = True
        while not stop.is_set():
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            samples.append(cur.fetchone()[0])
            time.sleep(0.05)


def _phase(writers: int, bases: list[str], headers: dict, size: int, seconds: float,
           first: int, url: str) -> tuple[float, int, Counter, float]:
    """`writers` threads (numbered from `first`) for `seconds`: runs/s, runs, errors, and
    the mean number of writers waiting for a lock."""
    stop, lock, stored, errors = threading.Event(), threading.Lock(), Counter(), Counter()
    samples: list[int] = []
    threads = [threading.Thread(target=_write, args=(first + k, bases[k % len(bases)], headers,
                                                     size, stop, stored, errors, lock))
               for k in range(writers)]
    threads.append(threading.Thread(target=_lock_waits, args=(url, stop, samples)))
    elapsed = run_for(threads, seconds, stop)
    runs = sum(stored.values())
    return runs / elapsed, runs, errors, sum(samples) / max(len(samples), 1)


def main() -> None:
    parser = arguments(__doc__, seconds=20, batch=50)
    args = parser.parse_args()
    if not args.postgres:
        parser.error("--postgres URL is required: the writers share one PostgreSQL")
    empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    env = {**os.environ, "RUNWATCH_DATABASE_URL": args.postgres, "RUNWATCH_SECRET_KEY": "bench",
           "RUNWATCH_SCHEDULER": "false"}
    servers, bases = [], []
    for _ in range(2):
        port = _free_port()
        bases.append(f"http://127.0.0.1:{port}")
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "8", "-b",
             f"127.0.0.1:{port}", "--timeout", "120", "app:create_app()"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        for base in bases:
            _wait(base)
        one, one_runs, one_errors, one_waits = _phase(1, bases, bench.headers, args.batch,
                                                      args.seconds, 0, args.postgres)
        eight, eight_runs, eight_errors, eight_waits = _phase(8, bases, bench.headers, args.batch,
                                                              args.seconds, 1, args.postgres)
        counts = requests.get(f"{bases[0]}{RUNS}?limit=1", headers=bench.headers,
                              timeout=60).json()["counts"]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    with psycopg2.connect(args.postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM execution GROUP BY status")
        counted = dict(cur.fetchall())

    print(f"PostgreSQL; two gunicorn servers (1 worker, 8 threads each) on 127.0.0.1; "
          f"batches of {args.batch} runs with 3 steps; {args.seconds:.0f} s per case\n")
    print_table(["writers", "runs", "runs/s", "vs one writer", "waiting for a lock (mean)",
                 "errors"], [
        ["1", one_runs, f"{one:.0f}", "1.00×", f"{one_waits:.2f}", dict(one_errors) or 0],
        ["8 (4 per server)", eight_runs, f"{eight:.0f}", f"{eight / one:.2f}×",
         f"{eight_waits:.2f}", dict(eight_errors) or 0]])
    exact = all(counts.get(status, 0) == counted.get(status, 0) for status in counts)
    print(f"\nHistory counts {counts}; counted in the table {counted}: "
          f"{'exact' if exact else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
