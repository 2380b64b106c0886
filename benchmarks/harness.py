"""What every benchmark shares: a fresh app on a temp SQLite file, timing, percentiles, RSS.

Benchmarks compare: each case is reported next to an authenticated no-op request
(`GET /api/ping`) timed in the same run, because these machines are noisy.
"""
from __future__ import annotations

import argparse
import atexit
import os
import re
import resource
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from app import create_app
from models import database
from models.users import create_token, create_user

ROOT = Path(__file__).resolve().parent.parent


class Bench:
    """An app on a fresh database with a user and a token; `headers` authenticate API calls."""

    def __init__(self, database_url: str | None = None, **config):
        self.tmp = tempfile.mkdtemp(prefix="runwatch-bench-")
        atexit.register(shutil.rmtree, self.tmp, ignore_errors=True)
        url = database_url or f"sqlite:///{os.path.join(self.tmp, 'bench.db')}"
        self.app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SCHEDULER": False,
                               **config})
        database.connect(reuse_if_open=True)
        self.user = create_user("bench@example.com", "bench-password")
        self.token = create_token(self.user, "bench")[1]
        database.close()
        self.client = self.app.test_client()
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def login(self) -> None:
        """Sign the test client in with a session, for the pages."""
        page = self.client.get("/login")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        response = self.client.post("/login", data={"csrf_token": token,
                                                    "email": "bench@example.com",
                                                    "password": "bench-password"})
        assert response.status_code == 302, response.status_code

    def get(self, url: str, **headers):
        response = self.client.get(url, headers={**self.headers, **headers})
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
        return response

    def noop(self):
        """The baseline: an authenticated request that does nothing."""
        return self.get("/api/ping")


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 3) -> list[float]:
    """Milliseconds of each of `repeat` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) of samples."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def rss_mb() -> float:
    """Resident set size of this process now, in MB (from /proc; peak where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain-text table, columns aligned, numbers to two decimals."""
    cells = [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def raw_inserter(url: str):
    """A connection to the database at `url` outside the app, its cursor, and
    `insert(sql, rows)`, which writes rows for an INSERT with `?` placeholders on either
    database (filling a benchmark's tables straight, past the ingestion path)."""
    if url.startswith("postgres"):
        import psycopg2
        from psycopg2.extras import execute_values
        conn = psycopg2.connect(url)
        cur = conn.cursor()
        return conn, cur, lambda sql, rows: execute_values(
            cur, sql.split(" VALUES ")[0] + " VALUES %s", rows, page_size=5000)
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    cur = conn.cursor()
    return conn, cur, cur.executemany


def empty_postgres(url: str) -> None:
    """Drop every table of a PostgreSQL database a benchmark is about to fill."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cur.fetchall()]
        if tables:
            cur.execute("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    conn.close()


def arguments(doc: str, **numbers: int) -> argparse.ArgumentParser:
    """A benchmark's command line: its description (the first line of `doc`), a whole-number
    option per keyword (`runs=1_000_000` gives `--runs`, that default), and `--postgres`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    for name, default in numbers.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database to use instead of SQLite")
    return parser
