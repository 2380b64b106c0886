"""The database handle: the proxy every model uses, how a URL becomes a connection pool (with
SQLite's settings), the SQLite library's version check, connections and write transactions.

The time conversions (models/times.py) are read here too by much of the code, beside the
connection; bulk SQL is in models/bulk.py, the schema in models/migrations.py.
"""
from __future__ import annotations

import contextlib
import sqlite3

import peewee
from playhouse.db_url import connect

from .times import UTC, from_micros, iso, to_micros, utcnow  # noqa: F401 (read from here too)

database = peewee.DatabaseProxy()

# What the embedded SQLite database may hold in memory per process. SQLite's page cache
# belongs to one connection, and a pool keeps every connection it ever opened (one per
# thread that served a request or ran a job at the same moment), each cache filling up to
# its size as the file grows. So the pool is bounded by the threads a worker runs (gunicorn
# `--threads`, up to 8, and the scheduler's few), and the cache of each is small: the
# operating system's file cache holds the rest of the file once, for every connection and
# process. Together at most SQLITE_CACHE_BUDGET_KIB, whatever the size of the file.
SQLITE_POOL_CONNECTIONS = 16
SQLITE_CACHE_KIB = 4000
SQLITE_CACHE_BUDGET_KIB = 64000

# Per-connection settings for the embedded SQLite database: WAL lets readers run
# beside the writer; the busy timeout makes writers queue instead of failing. No memory
# map: the pages it maps count in every worker's resident size and grow with the file.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
    "cache_size": -SQLITE_CACHE_KIB,
    "mmap_size": 0,
    "temp_store": "memory",
}

CONNECT_TIMEOUT = 5  # seconds to open a connection to a database server

# What the SQL written here needs of the SQLite library: RETURNING (3.35), upserts (3.24),
# row values (3.15). An older library would fail at the first write with a syntax error.
SQLITE_NEEDED = ((3, 35, 0), "RETURNING, upserts and row values")

def open_database(url: str) -> peewee.Database:
    """Build (not connect) the peewee database for a `playhouse.db_url` URL."""
    scheme = url.split(":", 1)[0]
    if scheme in ("postgres", "postgresql"):
        # A pool keeps per-request connects cheap on a server database.
        url = "postgresql+pool" + url[len(scheme):]
        # A server that does not answer fails a connect after CONNECT_TIMEOUT seconds,
        # so requests get a quick 503 instead of hanging.
        db = connect(url, max_connections=32, stale_timeout=300, timeout=10, autoconnect=False,
                     connect_timeout=CONNECT_TIMEOUT)
    elif scheme == "sqlite":
        check_sqlite_version(sqlite3.sqlite_version_info)
        # Pooled too: closing the last connection to a WAL file checkpoints it, and
        # each new connection re-runs the pragmas; a pool does neither per request. A
        # thread beyond SQLITE_POOL_CONNECTIONS waits (up to `timeout`) for a free one.
        url = "sqlite+pool" + url[len(scheme):]
        db = connect(url, pragmas=SQLITE_PRAGMAS, autoconnect=False,
                     max_connections=SQLITE_POOL_CONNECTIONS,
                     stale_timeout=300, timeout=10, check_same_thread=False)
        db.returning_clause = True  # SQLite >= 3.35 understands RETURNING
    else:
        db = connect(url, autoconnect=False)
    return db


def check_sqlite_version(found: tuple[int, ...]) -> None:
    """Stop at start, naming both versions, when the SQLite library is too old for the SQL."""
    needed, what = SQLITE_NEEDED
    if tuple(found) < needed:
        raise SystemExit(
            f"Runwatch needs SQLite {'.'.join(map(str, needed))} or newer ({what}); this "
            f"Python's sqlite3 module uses SQLite {'.'.join(map(str, found))}. Use a Python "
            "built with a newer SQLite, or PostgreSQL (RUNWATCH_DATABASE_URL).")


def is_sqlite() -> bool:
    """Whether the active database is SQLite."""
    return isinstance(database.obj, peewee.SqliteDatabase)


def write_transaction():
    """A transaction that takes the write lock at once on SQLite (no upgrade deadlocks)."""
    if is_sqlite() and not database.in_transaction():
        return database.atomic("IMMEDIATE")
    return database.atomic()


@contextlib.contextmanager
def connection():
    """Open a connection for the block unless one is already open, and close it after."""
    opened = database.connect(reuse_if_open=True)
    try:
        yield database
    finally:
        if opened and not database.in_transaction():
            database.close()


def init_database(url: str) -> peewee.Database:
    """Point the proxy at the database named by `url`."""
    db = open_database(url)
    database.initialize(db)
    return db
