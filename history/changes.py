"""A change counter for the runs, and a per-process cache that it keeps correct.

Every transaction that creates or changes runs bumps the counter (through the write
hook, so in that same transaction). A process may keep answers derived from the runs —
counts, bars, extents, workflow ids — as long as the counter reads the same: any write
by any process changes it, and the cache starts over. The counter starts at a random
value, so two databases (or a rebuilt one) never share a number.

The counter is the sum of SHARDS rows. On PostgreSQL each write bumps one of them that no
other transaction holds, looked for from a random one, so concurrent writers do not wait for
the row another holds until it commits (one row that every writer bumped made them queue);
SQLite has one writer at a time and bumps the first.
"""
from __future__ import annotations

import random
import secrets
import threading
from typing import Any, Callable, Hashable, TypeVar

import peewee

from models.base import BaseModel
from models.db import connection, database
from models.ingest import Change

T = TypeVar("T")
CACHE_ENTRIES = 4096  # a bound on memory; past it the cache starts over
COUNTER_ID = 1  # the first row; SHARDS rows in all
SHARDS = 8


class HistoryChange(BaseModel):
    """The number of the last change to the runs: the sum of `n` over SHARDS rows."""

    id = peewee.IntegerField(primary_key=True)
    n = peewee.BigIntegerField()


def start() -> None:
    """At an app's start: forget what was cached (the database may be another), and make
    sure the counter exists."""
    cache.clear()
    ensure_counter()


def ensure_counter() -> None:
    """Create the counter's rows that this database (new, or from a release before it, which
    had the first alone) lacks; the first starts at a random value, the others at 0."""
    with connection():
        # Read first: a start beside a busy writer takes no lock.
        if HistoryChange.select().count() < SHARDS:
            (HistoryChange.insert_many(
                [{"id": COUNTER_ID, "n": secrets.randbits(62)}]
                + [{"id": COUNTER_ID + k, "n": 0} for k in range(1, SHARDS)])
             .on_conflict_ignore().execute())


def bump(changes: list[Change] | None = None) -> None:
    """The write hook: the runs changed, so every process's cached answers are stale.

    On PostgreSQL the first shard no other transaction holds, from a random one on; only
    when every shard is held does it wait for one."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        database.execute_sql(_bump_sql(), (COUNTER_ID,))
        return
    shard = random.randrange(SHARDS)
    if database.execute_sql(_bump_free_sql(), (shard, SHARDS)).rowcount == 0:
        database.execute_sql(_bump_sql(), (COUNTER_ID + shard,))


def current() -> int | None:
    """The counter now (None without a counter row: then nothing may be cached)."""
    total, rows = database.execute_sql(_read_sql()).fetchone()
    return int(total) if rows else None


def _table() -> str:
    return HistoryChange._meta.table_name


def _bump_sql() -> str:
    param = database.param
    return f'UPDATE "{_table()}" SET "n" = "n" + 1 WHERE "id" = {param}'


def _bump_free_sql() -> str:
    """PostgreSQL's bump of a shard that no other transaction holds (none if all are)."""
    return (f'UPDATE "{_table()}" SET "n" = "n" + 1 WHERE "id" = (SELECT "id" FROM '
            f'"{_table()}" ORDER BY ("id" + %s) %% %s LIMIT 1 FOR UPDATE SKIP LOCKED)')


def _read_sql() -> str:
    return f'SELECT SUM("n"), COUNT(*) FROM "{_table()}"'


class ChangeCache:
    """Answers keyed by what they depend on, valid while the change counter stays put."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self._lock = threading.Lock()
        self._version: int | None = None
        self._answers: dict[Hashable, Any] = {}
        self._entries = entries
        self._lasting: dict[Hashable, Any] = {}  # answers no change to the runs alters

    def lasting(self, key: Hashable, compute: Callable[[], T],
                keep: Callable[[T], bool]) -> T:
        """An answer that, once `keep(answer)`, stays true whatever changes the runs (a
        workflow's id by its name): kept until the cache is cleared."""
        with self._lock:
            if key in self._lasting:
                return self._lasting[key]
        value = compute()
        if keep(value):
            with self._lock:
                if len(self._lasting) >= self._entries:
                    self._lasting = {}
                self._lasting[key] = value
        return value

    def get(self, version: int | None, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached answer for `key` at `version`, computing (and keeping) it if missing."""
        if version is None:
            return compute()
        with self._lock:
            if self._version == version and key in self._answers:
                return self._answers[key]
        # Computed after `version` was read, so it reflects that change or a later one.
        value = compute()
        self.put(version, key, value)
        return value

    def peek(self, version: int | None, key: Hashable) -> Any:
        """The cached answer for `key` at `version`, or None."""
        with self._lock:
            if version is not None and self._version == version:
                return self._answers.get(key)
        return None

    def put(self, version: int | None, key: Hashable, value: Any) -> None:
        """Keep `value` for `key` at `version` (computed after `version` was read)."""
        if version is None:
            return
        with self._lock:
            if self._version != version or len(self._answers) >= self._entries:
                self._version, self._answers = version, {}
            self._answers[key] = value

    def clear(self) -> None:
        """Forget everything (a new database was opened)."""
        with self._lock:
            self._version, self._answers, self._lasting = None, {}, {}


cache = ChangeCache()
