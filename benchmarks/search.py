"""Search and export benchmark: finding runs by id, external id and error text, and the
export of every run, over HTTP, as ratios to the no-op; and what the indexes cost a write.

    python -m benchmarks.search --runs 1000000 --data /tmp/search.db
    python -m benchmarks.search --runs 1000000 --postgres postgresql://u@host/db

Fills the database once (a SQLite file at --data, or the given PostgreSQL database) with
runs of 100 workflows over 90 days, each with an external id, 10 % failures with an error
text, and a word ("quokka") in the error text of 1 % of the runs; a database that already
holds --runs runs is used as it is. The fill writes rows straight into the tables (the
indexes and SQLite's triggers keep the text index as the app's writes do) and rebuilds
the rollups. gunicorn (1 worker, 4 threads) serves the requests; the timed client is the
standard library's, on one keep-alive connection. Each search case is timed against the
authenticated no-op `GET /api/ping`, called just before each of its calls (so a change of
the machine's load weighs on both); the id and external-id cases ask for a different run
at every call, so no kept answer serves them. The export downloads every
run as CSV while the worker's resident size is sampled every 50 ms. Last, the write cost:
batches of 500 reported runs (half of them failures) stored on a fresh SQLite file (or in
the emptied --write-postgres database) with the search indexes, then on another without.
"""
from __future__ import annotations

import http.client
import os
import random
import subprocess
import sys
import threading
import time

import requests

from app import create_app
from history import changes
from history.rollups import rebuild_rollups
from models import database
from models.db import connection, is_sqlite, to_micros, utcnow, write_transaction

from .harness import ROOT, empty_postgres, p, print_table, raw_inserter, time_calls
from .memory import worker_rss_mb

WORKFLOWS = 100
DAYS = 90
CHUNK = 50_000
WORD = "quokka"
EMAIL, PASSWORD = "bench@example.com", "bench-password"
ERRORS = ["HTTP 502 from billing", "Timed out after 30 s", "KeyError: 'customer_id'"]


def _row(run_id: int, rng: random.Random, end: int, span: int) -> tuple:
    started = end - rng.randrange(span)
    roll = rng.randrange(100)
    status = "failure" if roll < 10 else "success" if roll < 95 else "running"
    error = kind = None
    if status == "failure":
        kind = "RuntimeError"
        error = rng.choice(ERRORS)
        if roll == 0:  # 1 % of all runs
            error = f"{WORD} feeder jammed after {run_id % 97} tries"
    finished = duration = None
    if status != "running":
        duration = rng.randrange(200, 120_000)
        finished = started + duration * 1000
    return (run_id, rng.randrange(1, WORKFLOWS + 1), f"job-{run_id}", status, started,
            finished, duration, rng.randrange(1, 8), error, kind, started, started)


def fill(url: str, count: int, seed: int = 42) -> None:
    """Insert `count` runs over the last DAYS days, straight into the tables."""
    rng = random.Random(seed)
    end, span = to_micros(utcnow()), DAYS * 86400 * 10**6
    postgres = url.startswith("postgres")
    conn, cur, insert = raw_inserter(url)
    columns = ("id, workflow_id, external_id, status, started_at, finished_at, duration_ms, "
               "step_count, error_message, error_type, created_at, updated_at")
    insert("INSERT INTO workflow (id, name, created_at) VALUES (?, ?, ?)",
           [(w, f"workflow-{w:03d}", end - span) for w in range(1, WORKFLOWS + 1)])
    for chunk in range(1, count + 1, CHUNK):
        insert(f"INSERT INTO execution ({columns}) VALUES ({', '.join('?' * 12)})",
               [_row(run_id, rng, end, span)
                for run_id in range(chunk, min(chunk + CHUNK, count + 1))])
        conn.commit()
    if postgres:
        for table in ("workflow", "execution"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT MAX(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    else:
        cur.execute("ANALYZE")
        conn.commit()
    conn.close()


def prepare(url: str, runs: int) -> str:
    """The app's schema and an account on the database, filled unless it holds the runs
    already; an API token of the account."""
    from models.users import User, create_token, create_user

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SCHEDULER": False})
    with app.app_context(), connection():
        held = database.execute_sql("SELECT count(*) FROM execution").fetchone()[0]
        user = User.get_or_none(User.email == EMAIL) or create_user(EMAIL, PASSWORD)
        token = create_token(user, f"bench-{time.time_ns()}")[1]
    if held != runs:
        if held:
            raise SystemExit(f"the database holds {held:,} runs, not {runs:,}: give an "
                             "empty one or the same --runs")
        started = time.perf_counter()
        fill(url, runs)
        with app.app_context(), connection():
            rebuild_rollups()
            with write_transaction():
                changes.bump()
        print(f"filled {runs:,} runs in {time.perf_counter() - started:.0f} s", flush=True)
    database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()
    return token


class Server:
    """gunicorn serving the database: 1 worker, 4 threads, no timeout for a long export."""

    def __init__(self, url: str, token: str):
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "RUNWATCH_DATABASE_URL": url, "RUNWATCH_SECRET_KEY": "bench",
               "RUNWATCH_SCHEDULER": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "4", "--timeout", "600",
             "-b", f"127.0.0.1:{self.port}", "--keep-alive", "60", "app:create_app()"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {token}"}
        try:
            for _ in range(6000):  # a loaded machine starts a worker slowly
                try:
                    requests.get(f"{self.base}/healthz", timeout=600)
                    break
                except (requests.ConnectionError, requests.Timeout):
                    time.sleep(0.1)
        except BaseException:
            self.process.terminate()  # no server outlives a failed start
            raise
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def get(self, url: str) -> bytes:
        self.connection.request("GET", url, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        assert response.status == 200, (url, response.status, body[:300])
        return body

    def worker_rss(self) -> float:
        return max(worker_rss_mb(self.process.pid), default=0.0)

    def stop(self) -> None:
        self.connection.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def searches(server: Server, runs: int, repeat: int) -> list[list]:
    """Each search case's p50 and p95 (ms), the no-op's p50 meanwhile and the ratio of the
    two p50s: each case call follows a no-op call, so a change of the machine's load while
    the benchmark runs weighs on both."""
    rng = random.Random(7)
    api = "/api/automations/executions"

    def noop() -> None:
        server.get("/api/ping")

    def varying(make):
        return lambda: server.get(f"{api}?{make(rng.randrange(1, runs + 1))}")

    def bump() -> None:
        with connection():
            with write_transaction():
                changes.bump()

    cases = [
        ("one workflow (a filter, for comparison)",
         lambda: server.get(f"{api}?workflow=workflow-042"), None),
        ("q=#<id>", varying(lambda n: f"q=%23{n}"), None),
        ("q=<id> (also external id and error text)", varying(lambda n: f"q={n}"), None),
        ("external_id=<id>", varying(lambda n: f"external_id=job-{n}"), None),
        ("q=<external id>", varying(lambda n: f"q=job-{n}"), None),
        (f"q={WORD} (error text in 1 % of runs)", lambda: server.get(f"{api}?q={WORD}"), None),
        (f"q={WORD}, after a write (counted anew)", lambda: server.get(f"{api}?q={WORD}"),
         bump),
    ]
    first = time_calls(noop, repeat)
    rows = [["no-op /api/ping (first)", p(first, 50), p(first, 95), p(first, 50), 1.0]]
    for label, call, before in cases:
        samples, base = _paired(call, noop, repeat, before)
        rows.append([label, p(samples, 50), p(samples, 95), p(base, 50),
                     p(samples, 50) / p(base, 50)])
    return rows


def _paired(call, noop, repeat: int, before=None) -> tuple[list[float], list[float]]:
    """ms of `repeat` calls of `call` (each after `before`, untimed) and of a no-op call
    made just before each, after three untimed rounds."""
    def timed(fn) -> float:
        started = time.perf_counter()
        fn()
        return (time.perf_counter() - started) * 1000

    for _ in range(3):
        noop()
        call()
    samples, base = [], []
    for _ in range(repeat):
        base.append(timed(noop))
        if before:
            before()
        samples.append(timed(call))
    return samples, base


def export(server: Server) -> tuple[int, float, float, float]:
    """Rows exported, seconds, rows per second, the worker's RSS growth (MB) meanwhile."""
    before = server.worker_rss()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], server.worker_rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    server.connection.request("GET", "/api/automations/executions/export?format=csv",
                              headers=server.headers)
    response = server.connection.getresponse()
    lines = 0
    while chunk := response.read(1 << 20):
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    rows = lines - 1  # the header
    return rows, seconds, rows / seconds, peak[0] - before


def write_cost(url: str | None, batches: int = 20, size: int = 500) -> list[list]:
    """ms per batch of `size` reported runs (half failures with an error text, each with
    an external id), after two untimed batches: on a fresh database with the search
    indexes, and on others without (SQLite: without its index of runs with an error text,
    and without any; the databases take turns, a batch each, so that a change of the
    machine's load weighs on all alike. PostgreSQL: one after the other, in the emptied
    `url`)."""
    import tempfile

    variants = [ALL, NONE] if url else [ALL, NOT_ERROR_RUNS, NONE]
    samples: dict[str, list[float]] = {label: [] for label in variants}
    opened = []
    for label in variants:
        if url is None:
            target = f"sqlite:///{tempfile.mkdtemp(prefix='runwatch-bench-')}/write.db"
        else:
            target = url
            empty_postgres(url)
        app = create_app({"DATABASE_URL": target, "SECRET_KEY": "bench", "SCHEDULER": False})
        with app.app_context(), connection():
            _drop_search_indexes(label)
        opened.append((label, app, database.obj))
        if url:  # one database: each variant in its turn
            _time_batches(opened[-1:], batches, size, samples)
    if url is None:
        _time_batches(opened, batches, size, samples)
    for _, _, db in opened:
        db.close_all()  # a pool (models.db)
    return [[label, p(ms, 50), p(ms, 95), size * 1000 / p(ms, 50)]
            for label, ms in samples.items()]


ALL, NOT_ERROR_RUNS, NONE = ("with the search indexes",
                             "without the index of runs with an error text", "without them")


def _time_batches(opened: list[tuple], batches: int, size: int,
                  samples: dict[str, list[float]]) -> None:
    """Store `batches` + 2 batches in each opened database in turn; keep the ms of each
    but the first two."""
    from models.ingest import store_executions
    from models.schemas import ExecutionIn

    for b in range(batches + 2):
        items = [ExecutionIn.model_validate({
            "workflow": f"write-{b % 10}", "external_id": f"run-{b}-{i}",
            "status": "failure" if i % 2 else "success",
            "error": {"message": f"HTTP 502 from billing, try {i}"} if i % 2 else None})
            for i in range(size)]
        for label, app, db in opened:
            database.initialize(db)
            with app.app_context(), connection():
                started = time.perf_counter()
                store_executions(items)
                if b >= 2:
                    samples[label].append((time.perf_counter() - started) * 1000)


def _drop_search_indexes(label: str) -> None:
    from history import search

    if label == ALL:
        return
    if is_sqlite():
        database.execute_sql(f'DROP INDEX IF EXISTS "{search.ERROR_RUNS_INDEX}"')
        if label == NOT_ERROR_RUNS:
            return
        for name in search._SQLITE_NAMES[1:]:
            database.execute_sql(f'DROP TRIGGER IF EXISTS "{name}"')
        database.execute_sql(f'DROP TABLE IF EXISTS "{search.TEXT_TABLE}"')
    else:
        database.execute_sql(f'DROP INDEX IF EXISTS "{search.TRIGRAM_INDEX}"')
    database.execute_sql(f'DROP INDEX IF EXISTS "{search.EXTERNAL_ID_INDEX}"')


def main() -> None:
    from .harness import arguments

    parser = arguments(__doc__, runs=1_000_000, repeat=200)
    parser.add_argument("--data", help="the SQLite file to fill, or reuse when it is filled")
    parser.add_argument("--write-postgres", metavar="URL",
                        help="a PostgreSQL database for the write cost (emptied)")
    parser.add_argument("--write-only", action="store_true",
                        help="measure the write cost alone")
    args = parser.parse_args()
    if args.write_only:
        write_url = args.write_postgres if args.postgres else None
        print_table(["indexes", "p50 ms", "p95 ms", "runs/s at p50"], write_cost(write_url))
        return
    url = args.postgres or f"sqlite:///{args.data or '/tmp/runwatch-search-bench.db'}"
    token = prepare(url, args.runs)
    server = Server(url, token)
    try:
        found = searches(server, args.runs, args.repeat)
        rows, seconds, rate, growth = export(server)
    finally:
        server.stop()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}, {args.runs:,} runs; HTTP, {args.repeat} timed calls per case, each "
          "after a no-op call; times in ms; x = p50 / the no-op's p50 meanwhile")
    print_table(["case", "p50", "p95", "no-op p50", "x"], found)
    print(f"\nexport: {rows:,} rows as CSV in {seconds:.1f} s = {rate:,.0f} rows/s; "
          f"the worker's RSS grew {growth:.1f} MB")
    if not args.postgres or args.write_postgres:
        print(f"\nwrite cost ({backend}): 20 batches of 500 runs, half failures"
              + (", the databases in turn" if not args.postgres else ""))
        print_table(["indexes", "p50 ms", "p95 ms", "runs/s at p50"],
                    write_cost(args.write_postgres if args.postgres else None))


if __name__ == "__main__":
    main()
