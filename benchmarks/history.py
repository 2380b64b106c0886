"""History benchmark: API and htmx partial at growing table sizes, as ratios to the no-op.

    python -m benchmarks.history --runs 1000000
    python -m benchmarks.history --runs 1000000 --postgres postgresql://u@host/emptydb

Fills a fresh SQLite file (or the given, empty, PostgreSQL database) with runs of 100
workflows over 90 days (85 % success, 10 % failure, 3 % pending, 2 % running) in steps
(1, 10, 50 and 100 % of --runs). The fill writes rows straight into the tables and then
rebuilds the rollups — the one shortcut past the ingestion path, which keeps the same
rollups current one run at a time; it runs in a child process, so the RSS shown is that of
the process serving the requests. At every step each case is timed through the API and
the htmx partial twice: in process (Flask's test client) and over HTTP through gunicorn
(1 worker; one keep-alive connection of the standard library's HTTP client), each against
the authenticated no-op `GET /api/ping` timed by the same loop in the same step.
"""
from __future__ import annotations

import http.client
import multiprocessing
import os
import random
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta

import requests

from history import changes
from history.filters import HistoryFilter, Row, list_query
from history.rollups import rebuild_rollups
from models import database, init_database
from models.db import connection, to_micros, utcnow, write_transaction

from .harness import ROOT, Bench, arguments, p, print_table, raw_inserter, rss_mb, time_calls

WORKFLOWS = 100
DAYS = 90
STATUS_WEIGHTS = (("success", 85), ("failure", 10), ("pending", 3), ("running", 2))
DEEP_PAGES = 2000
PAGE = 50
CHUNK = 50_000


def fill(url: str, first_id: int, count: int, now: datetime, rng: random.Random) -> None:
    """Insert `count` runs spread over the last DAYS days, straight into the tables."""
    statuses = [s for s, weight in STATUS_WEIGHTS for _ in range(weight)]
    end = to_micros(now)
    span = DAYS * 86400 * 10**6
    postgres = url.startswith("postgres")
    conn, cur, insert = raw_inserter(url)

    if first_id == 1:
        insert("INSERT INTO workflow (id, name, created_at) VALUES (?, ?, ?)",
               [(w, f"workflow-{w:03d}", end - span) for w in range(1, WORKFLOWS + 1)])
    for chunk in range(first_id, first_id + count, CHUNK):
        # Chunks keep this process small, so its RSS speaks of the requests.
        insert("INSERT INTO execution (id, workflow_id, status, started_at, finished_at,"
               " duration_ms, step_count, error_message, created_at, updated_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               [_row(run_id, rng, statuses, end, span)
                for run_id in range(chunk, min(chunk + CHUNK, first_id + count))])
    if postgres:
        for table in ("workflow", "execution"):  # ids were given: move the sequences on
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT MAX(id) FROM {table}))")
        cur.execute("ANALYZE")
    conn.commit()
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
    fill(url, first_id, count, now, random.Random(seed))
    database.connect()
    try:
        rebuild_rollups()
        answer.put(deep_cursor(secret, depth))
    finally:
        database.close()


def cases(week_ago: datetime, deep: str, depth: int) -> list[tuple[str, str]]:
    """(label, query string) of every timed case."""
    week = week_ago.strftime("%Y-%m-%dT%H:%M")
    fortnight = (week_ago - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")
    return [
        ("no filter", ""),
        ("one workflow", "workflow=workflow-042"),
        ("status=failure", "status=failure"),
        ("7-day range", f"from={week}"),
        ("date range sorted by -duration", f"from={fortnight}&to={week}&sort=-duration"),
        ("all three", f"workflow=workflow-042&status=failure&from={week}"),
        (f"page {depth + 1} (cursor)", f"cursor={deep}"),
    ]


class Server:
    """gunicorn serving the benchmark's database: 1 worker, one keep-alive connection."""

    def __init__(self, url: str, secret: str, token: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RUNWATCH_DATABASE_URL": url, "RUNWATCH_SECRET_KEY": secret,
               "RUNWATCH_SCHEDULER": "false", "RUNWATCH_LOGIN_RATE_LIMIT": "1000 per minute"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{self.port}",
             "--keep-alive", "60", "app:create_app()"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.session = requests.Session()
        for _ in range(300):
            try:
                page = self.session.get(f"{self.base}/login", timeout=60)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        signed_in = self.session.post(f"{self.base}/login", allow_redirects=False, timeout=60,
                                      data={"csrf_token": csrf, "email": "bench@example.com",
                                            "password": "bench-password"})
        assert signed_in.status_code == 302, signed_in.status_code
        # The timed client is the standard library's, on one keep-alive connection: a
        # heavier client would raise the floor and flatter every ratio.
        cookie = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        self.headers = {"Authorization": f"Bearer {token}", "Cookie": cookie}
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def get(self, url: str, **headers) -> None:
        self.connection.request("GET", url, headers={**self.headers, **headers})
        response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, (url, response.status, body[:300])

    def stop(self) -> None:
        self.connection.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def measure(get, queries: list[tuple[str, str]], repeat: int) -> tuple[float, list[list]]:
    """The no-op's p50 and, per case, API and htmx p50/p95 with p50 ratios to it."""
    noop = time_calls(lambda: get("/api/ping"), repeat * 2)
    base = p(noop, 50)
    out = []
    for label, query in queries:
        api = time_calls(lambda: get(f"/api/automations/executions?{query}"), repeat)
        part = time_calls(lambda: get(f"/executions?{query}", **{"HX-Request": "true"}),
                          repeat)
        out.append([label, p(api, 50), p(api, 95), p(api, 50) / base,
                    p(part, 50), p(part, 95), p(part, 50) / base])
    for label, query in queries[:2]:
        # Right after a write (untimed) no kept answer is valid: counts and bars are
        # computed again from the rollups, as while runs arrive all the time.
        api = _after_a_write(lambda: get(f"/api/automations/executions?{query}"), repeat)
        part = _after_a_write(lambda: get(f"/executions?{query}", **{"HX-Request": "true"}),
                              repeat)
        out.append([f"{label}, after a write", p(api, 50), p(api, 95), p(api, 50) / base,
                    p(part, 50), p(part, 95), p(part, 50) / base])
    return base, out


def _after_a_write(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        with connection():
            with write_transaction():
                changes.bump()
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    """Fill in steps; at each, time every case in process and over HTTP."""
    parser = arguments(__doc__, runs=1_000_000, repeat=200)
    parser.add_argument("--steps", default="1,10,50,100",
                        help="percentages of --runs at which to measure")
    args = parser.parse_args()
    bench = Bench(args.postgres)
    bench.login()
    url = bench.app.config["DATABASE_URL"]
    server = Server(url, bench.app.secret_key, bench.token)
    rng, now = random.Random(42), utcnow()
    steps = sorted({max(1000, args.runs * int(share) // 100)
                    for share in args.steps.split(",")})
    rows, filled = [], 0
    fork = multiprocessing.get_context("fork")
    try:
        for size in steps:
            started = time.perf_counter()
            depth = min(DEEP_PAGES, size // PAGE - 1)
            answer = fork.Queue()
            if hasattr(database.obj, "close_all"):
                database.obj.close_all()  # no open database handle crosses the fork
            child = fork.Process(target=prepare, args=(url, filled + 1, size - filled, now,
                                                       rng.randrange(2**32),
                                                       bench.app.secret_key, depth, answer))
            child.start()
            deep = answer.get(timeout=3600)
            child.join(timeout=60)
            assert child.exitcode == 0, child.exitcode
            filled = size
            print(f"filled {size:,} runs (+ rollup rebuild) in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            queries = cases(now - timedelta(days=7), deep, depth)
            for where, get in (("in process", lambda u, **h: bench.get(u, **h)),
                               ("HTTP", server.get)):
                base, found = measure(get, queries, args.repeat)
                rows.append([f"{size:,}", where, "no-op /api/ping", base, "", 1.0, "", "", "",
                             f"{rss_mb():.0f}" if where == "in process" else ""])
                rows += [[f"{size:,}", where, *case, ""] for case in found]
    finally:
        server.stop()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}; {args.repeat} timed calls per case ({args.repeat * 2} for the no-op); "
          "times in ms; x = p50 / no-op p50 of the same step and client; counts (and, for "
          "htmx, the histogram) in every call; nothing changes between calls, so counts and "
          "bars come from the per-process cache after the first, except in the cases "
          "'after a write', where each call follows a write.")
    print_table(["runs", "client", "case", "API p50", "API p95", "API x", "htmx p50",
                 "htmx p95", "htmx x", "RSS MB"], rows)


if __name__ == "__main__":
    main()
