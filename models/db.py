"""The database handle, its connection settings and the schema version."""
from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timezone
from typing import Iterator, Sequence

import peewee
from playhouse.db_url import connect

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

# SQLite's messages for a database file it cannot use now (missing folder, no
# permission, locked past the busy timeout, a full or failing disk).
SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "database is busy",
                      "readonly database", "disk i/o error", "database or disk is full",
                      "authorization denied", "file is not a database")

# What the SQL written here needs of the SQLite library: RETURNING (3.35), upserts (3.24),
# row values (3.15). An older library would fail at the first write with a syntax error.
SQLITE_NEEDED = ((3, 35, 0), "RETURNING, upserts and row values")

SCHEMA_VERSION = 6
SCHEMA_LOCK_KEY = 0x52554E57  # "RUNW"

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The stored microseconds a datetime can stand for (years 1 to 9999); beyond them a
# stored value (written by hand, not through the API) reads as the first or last moment.
FIRST_MICROS = -62_135_596_800_000_000
LAST_MICROS = 253_402_300_799_999_999


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


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database does not answer (a 503 and a retry), rather than a
    mistake in a query: any connection-level error of a server, and SQLite's file errors."""
    if isinstance(exc, peewee.InterfaceError):
        return True
    if isinstance(database.obj, peewee.SqliteDatabase):
        return (isinstance(exc, peewee.DatabaseError)
                and any(text in str(exc).lower() for text in SQLITE_UNAVAILABLE))
    return isinstance(exc, peewee.OperationalError)


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


BOUND_VALUES = 30000  # values bound in one statement: under SQLite's limit of 32,766


def placeholders(count: int) -> str:
    """`count` query parameters of the database in use, comma-separated (for IN and VALUES
    lists written by hand)."""
    return ", ".join([database.param] * count)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in slices of at most `size` (statements stay under the bound-value limit)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence],
                tail: str = "", returning: bool = False) -> list[tuple]:
    """INSERT many rows of ready-to-store values (timestamps as microseconds, foreign keys
    as ids) in few statements, `tail` after the VALUES (an ON CONFLICT or RETURNING clause);
    the rows RETURNING gives when `returning`.

    Written by hand: peewee's generation of SQL value by value costs more than the
    database's own work on a batch of runs.
    """
    found: list[tuple] = []
    if not rows:
        return found
    one = f"({placeholders(len(columns))})"
    head = f'INSERT INTO "{table}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES "
    for chunk in chunks(rows, max(1, BOUND_VALUES // len(columns))):
        cursor = database.execute_sql(head + ", ".join([one] * len(chunk)) + tail,
                                      [value for row in chunk for value in row])
        if returning:
            found.extend(cursor.fetchall())
    return found


def upsert_rows(table: str, columns: Sequence[str], conflict: Sequence[str], update: str,
                rows: Sequence[Sequence]) -> None:
    """INSERT … ON CONFLICT (`conflict`) DO UPDATE SET `update` of many rows. Give the rows
    in key order: PostgreSQL then locks them in one order, and two writers never wait for
    each other in a circle."""
    target = ", ".join(f'"{c}"' for c in conflict)
    insert_rows(table, columns, rows, f" ON CONFLICT ({target}) DO UPDATE SET {update}")


class UTCMicros(peewee.BigIntegerField):
    """A UTC timestamp stored as integer microseconds: compact, exact, fast to compare."""

    def db_value(self, value):
        if value is None or isinstance(value, int):
            return value
        return to_micros(value)

    def python_value(self, value):
        if value is None:
            return None
        return from_micros(value)


def from_micros(value: int) -> datetime:
    """Turn stored microseconds back into an aware UTC datetime."""
    seconds, micros = divmod(min(max(int(value), FIRST_MICROS), LAST_MICROS), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def to_micros(value: datetime) -> int:
    """Turn an aware (or naive UTC) datetime into stored microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing Z, as the API speaks it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """The schema version the tables were last brought to."""

    version = peewee.IntegerField()


def _add_columns(db: peewee.Database, table: str, columns: dict[str, peewee.Field]) -> None:
    """Add columns to an existing table; a NOT NULL one carries a DEFAULT for the rows there."""
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(db)
    present = {column.name for column in db.get_columns(table)}
    migrate(*(migrator.alter_add_column(table, name, field, allow_not_null=not field.null)
              for name, field in columns.items() if name not in present))


def _accounts_v2(db: peewee.Database) -> None:
    """Version 2: accounts can be disabled and their sessions ended; tokens have scopes.

    Accounts that exist are enabled; tokens that exist keep every scope. Sessions and
    remember-me cookies made before carry no generation and end (people sign in again).
    """
    _add_columns(db, "user", {
        "disabled_at": peewee.BigIntegerField(null=True),
        "session_generation": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 0")]),
    })
    _add_columns(db, "api_token", {
        "scopes": peewee.CharField(max_length=64,
                                   constraints=[peewee.SQL("DEFAULT 'ingest,read,admin'")]),
    })


def _alerts_v3(db: peewee.Database) -> None:
    """Version 3: an attempt is written before it is sent, its outcome unknown until the
    answer (`ok` and `latency_ms` may be NULL); the scan remembers the last finished run it
    examined per rule and workflow. Attempts there are kept as they are; states there have
    no position yet, and the next scan of their workflow starts from the streak as it is."""
    from playhouse.migrate import SchemaMigrator, migrate

    _add_columns(db, "alert_state", {"seen_started_at": peewee.BigIntegerField(null=True),
                                     "seen_id": peewee.BigIntegerField(null=True)})
    nullable = {column.name: column.null for column in db.get_columns("attempt")}
    migrator = SchemaMigrator.from_database(db)
    migrate(*(migrator.drop_not_null("attempt", name) for name in ("ok", "latency_ms")
              if not nullable.get(name, True)))


def _workflows_v4(db: peewee.Database) -> None:
    """Version 4: workflows have settings (schedule, zone, grace, maximum duration,
    description); a run's row keeps its error type beside the message, for error groups.
    Workflows there get the defaults (no schedule); the types of runs there are read once
    from their stored errors."""
    _add_columns(db, "workflow", {
        "schedule": peewee.CharField(max_length=200, null=True),
        "timezone": peewee.CharField(max_length=64, constraints=[peewee.SQL("DEFAULT 'UTC'")]),
        "grace_seconds": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 300")]),
        "max_duration_seconds": peewee.IntegerField(null=True),
        "description": peewee.TextField(null=True),
        "schedule_set_at": peewee.BigIntegerField(null=True),
    })
    _add_columns(db, "execution", {"error_type": peewee.CharField(max_length=200, null=True)})
    _backfill_error_types(db)


def _backfill_error_types(db: peewee.Database, batch: int = 2000) -> None:
    """Copy `type` out of each stored run error into its row, a keyset batch at a time.
    Errors an older release stored with NaN or without a type are read leniently."""
    import json

    param = db.param
    last = 0
    while True:
        rows = db.execute_sql(
            'SELECT "execution_id", "error" FROM "execution_payload" WHERE "execution_id" > '
            f'{param} AND "error" IS NOT NULL ORDER BY "execution_id" LIMIT {int(batch)}',
            (last,)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        for execution_id, text in rows:
            try:
                kind = json.loads(text).get("type")
            except (ValueError, AttributeError):
                continue
            if isinstance(kind, str) and kind:
                db.execute_sql(f'UPDATE "execution" SET "error_type" = {param} WHERE "id" = {param}',
                               (kind[:200], execution_id))


def _fingerprints_v5(db: peewee.Database) -> None:
    """Version 5: a run's row keeps its error's fingerprint (its group), which error groups
    count with the database; computed here for the runs there, from their error type and
    message as the rows keep them. Indexes change (the new ones are made after this, with
    any other missing): (workflow, status, started_at, id) gives way to one that also holds
    the fingerprint, and the two duration indexes to ones that also hold the start time (a
    date range sorted by duration is checked from the index it walks); the indexes on a
    run's workflow alone and a step's run alone go: indexes that begin with the same column
    serve what they served."""
    _add_columns(db, "execution", {"error_fingerprint": peewee.BigIntegerField(null=True)})
    _backfill_fingerprints(db)
    for name in ("execution_workflow_id_status_started_at_id", "execution_duration_ms_id",
                 "execution_workflow_id_duration_ms_id", "execution_workflow_id",
                 "step_execution_id"):
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


def _backfill_fingerprints(db: peewee.Database, batch: int = 5000) -> None:
    """Set the fingerprint of every run with an error, a keyset batch at a time, each batch
    written by one UPDATE joined to a VALUES list."""
    from .fingerprints import fingerprint

    param = db.param
    last = 0
    while True:
        rows = db.execute_sql(
            'SELECT "id", "error_type", "error_message" FROM "execution" WHERE "id" > '
            f'{param} AND ("error_type" IS NOT NULL OR "error_message" IS NOT NULL) '
            f'ORDER BY "id" LIMIT {int(batch)}', (last,)).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        values = [(run_id, fingerprint(kind, message)) for run_id, kind, message in rows]
        values = [pair for pair in values if pair[1] is not None]
        if values:
            pairs = ", ".join([f"({param}, {param})"] * len(values))
            db.execute_sql(
                'UPDATE "execution" SET "error_fingerprint" = "found"."column2" FROM '
                f'(VALUES {pairs}) AS "found" WHERE "execution"."id" = "found"."column1"',
                [value for pair in values for value in pair])


def _error_counts_v6(db: peewee.Database) -> None:
    """Version 6: error groups are counted per hour and UTC day as runs are written (the
    table is new) and a group's runs are found by an index of failures (made after this);
    the failures there are counted once here."""
    from workflows.errors import rebuild_error_counts

    rebuild_error_counts(db)


# Migrations from version N-1 to N, as functions taking the database.
# Tables that are new are created ("if not exists") before they run, and
# indexes that are new after them (an index may cover a column a migration adds);
# a migration is only needed to change what already exists. `schema_is_current` checks
# tables, indexes and the version row, not columns: a new column needs a new version.
MIGRATIONS: dict[int, callable] = {2: _accounts_v2, 3: _alerts_v3, 4: _workflows_v4,
                                   5: _fingerprints_v5, 6: _error_counts_v6}


def schema_is_current(models: list[type[peewee.Model]]) -> bool:
    """Whether every table and index exists at SCHEMA_VERSION, read from the catalog alone.

    Creating tables "if not exists" still locks each table, and a process starting beside
    one that works would deadlock with it; a current schema is left untouched.
    """
    tables = set(database.get_tables())
    if not {SchemaVersion._meta.table_name, *(m._meta.table_name for m in models)} <= tables:
        return False
    for model in models:
        present = {index.name for index in database.get_indexes(model._meta.table_name)}
        if not {index._name for index in model._meta.fields_to_index()} <= present:
            return False
    row = SchemaVersion.select(SchemaVersion.version).first()
    return row is not None and row.version == SCHEMA_VERSION


def create_schema(models: list[type[peewee.Model]]) -> None:
    """Create missing tables and indexes and bring the schema to SCHEMA_VERSION."""
    with connection():
        if schema_is_current(models):
            return
        with write_transaction():
            if isinstance(database.obj, peewee.PostgresqlDatabase):
                # Several workers starting at once on a fresh database take turns.
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
            ordered = peewee.sort_models([SchemaVersion, *models])
            for model in ordered:
                model._schema.create_table(safe=True)
            row = SchemaVersion.select().first()
            current = row.version if row else 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                if version in MIGRATIONS and current:
                    MIGRATIONS[version](database)
            for model in ordered:
                model._schema.create_indexes(safe=True)
            if row is None:
                SchemaVersion.create(version=SCHEMA_VERSION)
            elif current != SCHEMA_VERSION:
                SchemaVersion.update(version=SCHEMA_VERSION).execute()


def create_schema_when_reachable(models: list[type[peewee.Model]],
                                 wait_seconds: float = 60) -> None:
    """`create_schema`, waiting up to `wait_seconds` for a database that does not answer yet
    (a worker starting during an outage), then giving up with the database's error. A SQLite
    file that cannot be opened at start is a setting to fix: no wait."""
    import logging
    import time

    if is_sqlite():
        wait_seconds = 0
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return create_schema(models)
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            if not is_unavailable(exc) or time.monotonic() >= deadline:
                raise
            logging.getLogger(__name__).warning(
                "the database does not answer yet; trying again: %s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            if not database.is_closed():
                database.close()
            time.sleep(1)


def unless_unavailable(work: callable, what: str) -> None:
    """Run start-up `work` (building derived data), or, while the database does not answer,
    log that it waits for the next start: a worker booting during an outage still boots,
    and answers 503 until the database is back."""
    import logging

    try:
        work()
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        if not is_unavailable(exc):
            raise
        logging.getLogger(__name__).warning(
            "the database does not answer; %s waits for the next start: %s", what,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        if not database.is_closed():
            database.close()


def init_database(url: str) -> peewee.Database:
    """Point the proxy at the database named by `url`."""
    db = open_database(url)
    database.initialize(db)
    return db
