"""Memory benchmark: RSS of each gunicorn worker as the SQLite file grows.

    python -m benchmarks.memory [--sizes 100000,300000,600000] [--seconds 30] [--threads 4]

gunicorn (2 workers, `--threads` threads each, the scheduler on) serves a temporary SQLite
file on 127.0.0.1. For each size, the file is first filled (in the database itself, by
`benchmarks.ingest.fill_runs`: runs with 5 steps and ~1 KB of payload over the last 60
days) up to that many runs; then, for `--seconds`, 8 reader threads ask for history pages
(filters, sorts, next pages), workflows' days and error groups over the whole period and
the details of runs picked across the whole file, and 2
writer threads post batches of 50. After each phase the table gives the file's size and
the RSS of each worker (from /proc), and the requests and 5xx answers of the phase.

The SQLite page cache is per connection and a worker keeps a pool of them: the line above
the table prints the pool's bound (connections × cache per connection).
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import subprocess
import sys
import threading
from datetime import timedelta

import requests

from models import database
from models.db import SQLITE_CACHE_KIB, SQLITE_POOL_CONNECTIONS, connection, iso, to_micros, utcnow

from .harness import ROOT, Bench, print_table
from .ingest import FILL_SPAN_S, fill_runs, make_run
from .load import RUNS, Stats, _free_port, _wait, run_for

READERS = 8
WRITERS = 2


def worker_rss_mb(master: int) -> list[float]:
    """RSS in MB of each child (worker) of the gunicorn master, from /proc."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as handle:
            children = [int(pid) for pid in handle.read().split()]
    except OSError:
        return []
    found = []
    for pid in sorted(children):
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        found.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return found


def reader(number: int, base: str, headers: dict, stats: Stats, stop: threading.Event,
           last_id: list[int]) -> None:
    """History pages over the whole period and details of runs anywhere in the file."""
    session = requests.Session()
    session.headers.update(headers)
    rng = random.Random(number)
    since = iso(utcnow() - timedelta(seconds=FILL_SPAN_S + 86400))
    queries = [{"status": "failure", "limit": 50}, {"workflow": f"workflow-{number}",
                                                     "limit": 50},
               {"from": since, "sort": "-duration", "limit": 100}, {"limit": 100},
               {"from": since, "workflow": f"workflow-{number + 8}", "sort": "started",
                "limit": 100}]
    for n in itertools.count(number):
        if stop.is_set():
            return
        if n % 3 == 1:
            run_id = rng.randint(1, max(1, last_id[0]))
            stats.call("run details", session, "GET", f"{base}{RUNS}/{run_id}")
            continue
        if n % 3 == 2:  # its days and error groups over the whole period
            stats.call("workflow", session, "GET",
                       f"{base}/api/automations/workflows/workflow-{rng.randrange(20)}",
                       params={"from": since})
            continue
        query = queries[n % len(queries)]
        response = stats.call("history", session, "GET", base + RUNS, params=query)
        for _ in range(3):
            cursor = response.json().get("next_cursor") if response is not None else None
            if not cursor:
                break
            response = stats.call("history", session, "GET", base + RUNS,
                                  params={**query, "cursor": cursor})


def writer(number: int, base: str, headers: dict, stats: Stats, stop: threading.Event) -> None:
    session = requests.Session()
    session.headers.update(headers)
    counter = itertools.count(number * 10**8)
    at = iso(utcnow())
    while not stop.is_set():
        body = {"executions": [make_run(next(counter), at, at) for _ in range(50)]}
        stats.call("write batch x50", session, "POST", base + RUNS + "/batch", json=body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,300000,600000")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))

    bench = Bench()
    url = bench.app.config["DATABASE_URL"]
    path = url.split("sqlite:///", 1)[1]
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RUNWATCH_DATABASE_URL": url, "RUNWATCH_SECRET_KEY": "bench",
           "RUNWATCH_SCHEDULER": "true", "RUNWATCH_BASE_URL": base}
    log = open(os.path.join(bench.tmp, "server.log"), "w+")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "--threads",
                               str(args.threads), "-b", f"127.0.0.1:{port}", "--timeout", "60",
                               "app:create_app()"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    rows = []
    span = FILL_SPAN_S * 1_000_000
    start_us = to_micros(utcnow()) - span - 3_600_000_000
    stored = 0
    try:
        _wait(base)
        rows.append(["started", 0, f"{os.path.getsize(path) / 1e6:.0f}",
                     *[f"{mb:.0f}" for mb in worker_rss_mb(server.pid)], "-", "-"])
        for size in sizes:
            with connection():
                fill_runs(stored, size, start_us, span, sizes[-1])
                last_id = [database.execute_sql('SELECT MAX("id") FROM "execution"')
                           .fetchone()[0]]
            stored = size
            stats, stop = Stats(), threading.Event()
            threads = [threading.Thread(target=reader, args=(n, base, bench.headers, stats,
                                                             stop, last_id))
                       for n in range(READERS)]
            threads += [threading.Thread(target=writer, args=(n, base, bench.headers, stats,
                                                              stop))
                        for n in range(WRITERS)]
            run_for(threads, args.seconds, stop)
            rss = worker_rss_mb(server.pid)
            rows.append([f"{args.seconds:.0f} s of load", f"{size:,}",
                         f"{os.path.getsize(path) / 1e6:.0f}", *[f"{mb:.0f}" for mb in rss],
                         sum(len(t) for t in stats.times.values()),
                         sum(stats.server_errors.values())])
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"SQLite; gunicorn -w 2 --threads {args.threads} on 127.0.0.1, scheduler on; "
          f"{READERS} readers, {WRITERS} writers; pool of at most {SQLITE_POOL_CONNECTIONS} "
          f"connections x {SQLITE_CACHE_KIB / 1000:.0f} MB page cache = "
          f"{SQLITE_POOL_CONNECTIONS * SQLITE_CACHE_KIB / 1000:.0f} MB at most per worker")
    print_table(["phase", "stored runs", "file MB", "worker 1 RSS MB", "worker 2 RSS MB",
                 "requests", "5xx"], rows)


if __name__ == "__main__":
    main()
