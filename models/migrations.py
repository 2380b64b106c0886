"""The schema version, the migrations that bring an older database to it, and the start-up
check that the tables hold every column the models read."""
from __future__ import annotations

import json
from typing import Callable, Mapping, Sequence

import peewee

from .base import BaseModel
from .bulk import update_rows
from .db import connection, database, write_transaction

SCHEMA_VERSION = 10
SCHEMA_LOCK_KEY = 0x52554E57  # "RUNW"


class SchemaVersion(BaseModel):
    """The schema version the tables were last brought to."""

    version = peewee.IntegerField()


def add_columns(db: peewee.Database, table: str, columns: dict[str, peewee.Field]) -> None:
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
    add_columns(db, "user", {
        "disabled_at": peewee.BigIntegerField(null=True),
        "session_generation": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 0")]),
    })
    add_columns(db, "api_token", {
        "scopes": peewee.CharField(max_length=64,
                                   constraints=[peewee.SQL("DEFAULT 'ingest,read,admin'")]),
    })


def _workflows_v4(db: peewee.Database) -> None:
    """Version 4: workflows have settings (schedule, zone, grace, maximum duration,
    description); a run's row keeps its error type beside the message, for error groups.
    Workflows there get the defaults (no schedule); the types of runs there are read once
    from their stored errors."""
    add_columns(db, "workflow", {
        "schedule": peewee.CharField(max_length=200, null=True),
        "timezone": peewee.CharField(max_length=64, constraints=[peewee.SQL("DEFAULT 'UTC'")]),
        "grace_seconds": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 300")]),
        "max_duration_seconds": peewee.IntegerField(null=True),
        "description": peewee.TextField(null=True),
        "schedule_set_at": peewee.BigIntegerField(null=True),
    })
    add_columns(db, "execution", {"error_type": peewee.CharField(max_length=200, null=True)})
    _backfill_error_types(db)


def _backfill_error_types(db: peewee.Database, batch: int = 2000) -> None:
    """Copy `type` out of each stored run error into its row, a keyset batch at a time.
    Errors an older release stored with NaN or without a type are read leniently."""
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
        types = []
        for execution_id, text in rows:
            try:
                kind = json.loads(text).get("type")
            except (ValueError, AttributeError):
                continue
            if isinstance(kind, str) and kind:
                types.append((execution_id, kind[:200]))
        update_rows("execution", "id", ("error_type",), types)


def _fingerprints_v5(db: peewee.Database) -> None:
    """Version 5: a run's row keeps its error's fingerprint (its group), which error groups
    count with the database; computed here for the runs there, from their error type and
    message as the rows keep them. Indexes change (the new ones are made after this, with
    any other missing): (workflow, status, started_at, id) gives way to one that also holds
    the fingerprint, and the two duration indexes to ones that also hold the start time (a
    date range sorted by duration is checked from the index it walks); the indexes on a
    run's workflow alone and a step's run alone go: indexes that begin with the same column
    serve what they served."""
    add_columns(db, "execution", {"error_fingerprint": peewee.BigIntegerField(null=True)})
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
        update_rows("execution", "id", ("error_fingerprint",),
                    [pair for pair in values if pair[1] is not None])


def _quiet_v7(db: peewee.Database) -> None:
    """Version 7: a workflow can be muted until a time; a run's row says whether it started
    inside a maintenance window. Workflows there are not muted; runs there are not marked
    (no window existed)."""
    add_columns(db, "workflow", {"muted_until": peewee.BigIntegerField(null=True)})
    add_columns(db, "execution", {
        "maintenance": peewee.BooleanField(constraints=[peewee.SQL("DEFAULT false")])})


def _accounts_v8(db: peewee.Database) -> None:
    """Version 8: each account has a theme and a time zone for its pages. Accounts there
    follow the system's colour scheme and see times in UTC, as before."""
    add_columns(db, "user", {
        "theme": peewee.CharField(max_length=8, constraints=[peewee.SQL("DEFAULT 'system'")]),
        "time_zone": peewee.CharField(max_length=64, constraints=[peewee.SQL("DEFAULT 'UTC'")]),
    })


# Migrations from version N-1 to N, as functions taking the database.
# Tables that are new are created ("if not exists") before they run, and
# indexes that are new after them (an index may cover a column a migration adds);
# a migration is only needed to change what already exists. `schema_is_current` checks
# tables, indexes and the version row, not columns: a new column needs a new version
# (`check_columns` stops the start when one was forgotten). Features keep their tables'
# migrations in their own `MIGRATIONS`, given to `create_schema`.
MIGRATIONS: dict[int, Callable[[peewee.Database], None]] = {
    2: _accounts_v2, 4: _workflows_v4, 5: _fingerprints_v5, 7: _quiet_v7,
    8: _accounts_v8}


def schema_is_current(models: list[type[peewee.Model]]) -> bool:
    """Whether every table and index exists at SCHEMA_VERSION, read from the catalog alone.

    Creating tables "if not exists" still locks each table, and a process starting beside
    one that works would deadlock with it; a current schema is left untouched.
    """
    tables, indexes = _catalog()
    if not {SchemaVersion._meta.table_name, *(m._meta.table_name for m in models)} <= tables:
        return False
    wanted = {index._name for model in models for index in model._meta.fields_to_index()}
    if not wanted <= indexes:
        return False
    row = SchemaVersion.select(SchemaVersion.version).first()
    return row is not None and row.version == SCHEMA_VERSION


def _catalog() -> tuple[set[str], set[str]]:
    """The names of the tables and of the indexes of the app's schema, in one query (one
    per table, as peewee reads indexes, made each start cost some 90 round trips)."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        sql = """SELECT "type", "name" FROM "sqlite_master" WHERE "type" IN ('table', 'index')"""
    else:
        sql = ("SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'table' ELSE 'index' END, "
               "c.relname FROM pg_class AS c WHERE c.relnamespace = current_schema()::regnamespace"
               " AND c.relkind IN ('r', 'p', 'i', 'I')")
    found: dict[str, set[str]] = {"table": set(), "index": set()}
    for kind, name in database.execute_sql(sql).fetchall():
        found[kind].add(name)
    return found["table"], found["index"]


def create_schema(models: list[type[peewee.Model]],
                  migrations: Sequence[Mapping[int, Callable[[peewee.Database], None]]] = ()
                  ) -> None:
    """Create missing tables and indexes, bring the schema to SCHEMA_VERSION, and check that
    every table has the columns its model reads.

    `migrations` are the features' own (their tables' changes), run after the core's of
    the same version, in the order given: models/ names no feature.
    """
    with connection():
        if not schema_is_current(models):
            _build(models, [MIGRATIONS, *migrations])
        check_columns(models)


def take_schema_lock() -> None:
    """On PostgreSQL, hold the schema's lock to the end of this transaction: several workers
    starting at once on one database take turns at changing its schema."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))


def _build(models: list[type[peewee.Model]],
           migrations: list[Mapping[int, Callable[[peewee.Database], None]]]) -> None:
    with write_transaction():
        take_schema_lock()
        ordered = peewee.sort_models([SchemaVersion, *models])
        for model in ordered:
            model._schema.create_table(safe=True)
        row = SchemaVersion.select().first()
        current = row.version if row else 0
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for found in migrations if current else ():
                if version in found:
                    found[version](database)
        for model in ordered:
            model._schema.create_indexes(safe=True)
        if row is None:
            SchemaVersion.create(version=SCHEMA_VERSION)
        elif current != SCHEMA_VERSION:
            SchemaVersion.update(version=SCHEMA_VERSION).execute()


def check_columns(models: list[type[peewee.Model]]) -> None:
    """Stop, naming the table and the column, when a table lacks a column its model reads
    (a change of the models without its migration): a clear error at start rather than a
    500 at the first query that reads it. Columns a model no longer reads are left alone."""
    present = _columns()
    for model in models:
        table = model._meta.table_name
        for field in model._meta.sorted_fields:
            if field.column_name not in present.get(table, ()):
                raise SystemExit(
                    f'The database does not match this release of Runwatch: the table "{table}" '
                    f'has no column "{field.column_name}" (schema version {SCHEMA_VERSION}). '
                    "A migration for it is missing.")


def _columns() -> dict[str, set[str]]:
    """Every table's column names, read from the catalog in one query."""
    if isinstance(database.obj, peewee.SqliteDatabase):
        sql = ('SELECT m."name", p."name" FROM "sqlite_master" AS m '
               "JOIN pragma_table_info(m.\"name\") AS p WHERE m.\"type\" = 'table'")
    else:
        sql = ("SELECT table_name, column_name FROM information_schema.columns "
               "WHERE table_schema = current_schema()")
    found: dict[str, set[str]] = {}
    for table, column in database.execute_sql(sql).fetchall():
        found.setdefault(table, set()).add(column)
    return found
