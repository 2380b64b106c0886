"""Finding runs with `q`: by id (`2011` or `#2011`), by exact external id, or by text in the
error message, case-insensitive; and the database's own text index that answers the last
without reading every run.

The error text searched is the one a run's row keeps (its first ERROR_EXCERPT_CHARS
characters, what lists show). SQLite indexes it in an FTS5 table with the trigram tokenizer,
kept by triggers on the runs' table (a phrase of trigrams is a substring, `%` and `_`
included); PostgreSQL in a GIN index of pg_trgm, which answers ILIKE. Texts shorter than a
trigram, or a database without the index, are matched with LIKE on the rows themselves.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass

import peewee

from models.db import database, is_sqlite
from models.executions import STATUSES, Execution
from models.times import to_micros

from .parsing import run_id_in

log = logging.getLogger(__name__)

TEXT_TABLE = "execution_error_search"  # SQLite: the FTS5 index of the runs' error texts
TRIGRAM_INDEX = "execution_error_message_trgm"  # PostgreSQL: pg_trgm's GIN index
EXTERNAL_ID_INDEX = "execution_external_id_started_at_id"  # both: runs by external id, newest
MINUTE = 60_000_000  # microseconds
# Matches beyond which a page walks its order's index (a match every few hundred runs or
# closer) instead of reading every match: ~5,000 index entries read in order for a page
# of 50 at 1 % of a million runs, against 10,000 runs fetched one by one.
DENSE = 2000
TRIGRAM = 3  # a text shorter than this has no trigram to look up
_state = {"fts": False}  # whether this process's SQLite database has TEXT_TABLE


@dataclass(frozen=True)
class Search:
    """What `q` looks for, as bound values: the run id it names (if any), the text as an
    external id, and the error-text pattern for `mode` ("fts": an FTS5 phrase; "like";
    "none": `q` is `#` and a run id, and no text is looked for)."""

    text: object
    run_id: object | None
    pattern: object
    mode: str
    # Many runs match (see DENSE): walk the order's index and keep the matches, rather
    # than fetch every match from the text index and sort them.
    walk: bool = False

    @classmethod
    def of(cls, q: str) -> "Search":
        """What `q` looks for on the database in use."""
        run_id = run_id_in(q)
        if run_id is not None and q.startswith("#"):
            mode = "none"  # "#2011" names a run, not a text
        else:
            mode = "fts" if is_sqlite() and _state["fts"] and len(q) >= TRIGRAM else "like"
        return cls(q, run_id, text_pattern(q, mode), mode)


def text_pattern(text: str, mode: str) -> str:
    """The error-text pattern of `text`: an FTS5 phrase, or a LIKE pattern in which `%`, `_`
    and the escape character are plain characters."""
    if mode == "fts":
        return '"' + text.replace('"', '""') + '"'
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_terms(search: Search) -> peewee.Expression:
    """The WHERE term of `q`: the run it names by id, runs with it as external id, and runs
    whose error text contains it."""
    if search.mode == "none":
        return (Execution.id == search.run_id) | (Execution.external_id == search.text)
    if search.mode == "fts":
        # One set of ids, the three readings together, so that a walk checks each run it
        # meets by its id alone (`+ 0` hides the key from the planner: the set is built
        # once); otherwise each id of the set is one probe.
        param = database.param
        sql = (f'SELECT rowid FROM "{TEXT_TABLE}" WHERE "{TEXT_TABLE}" MATCH {param} '
               f'UNION ALL SELECT "id" FROM "execution" WHERE "external_id" = {param}')
        values = [search.pattern, search.text]
        if search.run_id is not None:
            sql += f" UNION ALL SELECT {param}"
            values.append(search.run_id)
        key = Execution.id + 0 if search.walk else Execution.id
        return key.in_(peewee.SQL(f"({sql})", values))
    else:
        operator = "LIKE" if is_sqlite() else "ILIKE"  # SQLite's LIKE ignores ASCII case
        in_text = peewee.NodeList((Execution.error_message, peewee.SQL(operator),
                                   peewee.Value(search.pattern), peewee.SQL("ESCAPE '\\'")))
    term = (Execution.external_id == search.text) | in_text
    if search.run_id is not None:
        term = (Execution.id == search.run_id) | term
    return term


# --- The text index ----------------------------------------------------------------------

_SQLITE = (
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS "{TEXT_TABLE}" USING fts5(error_message,
        content='execution', content_rowid='id', tokenize='trigram')""",
    # Only runs with an error text are indexed: the others cost their writes nothing.
    f"""CREATE TRIGGER IF NOT EXISTS "{TEXT_TABLE}_insert" AFTER INSERT ON "execution"
        WHEN new."error_message" IS NOT NULL BEGIN
        INSERT INTO "{TEXT_TABLE}" (rowid, error_message) VALUES (new."id", new."error_message");
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS "{TEXT_TABLE}_delete" AFTER DELETE ON "execution"
        WHEN old."error_message" IS NOT NULL BEGIN
        INSERT INTO "{TEXT_TABLE}" ("{TEXT_TABLE}", rowid, error_message)
        VALUES ('delete', old."id", old."error_message");
        END""",
    f"""CREATE TRIGGER IF NOT EXISTS "{TEXT_TABLE}_update"
        AFTER UPDATE OF "error_message" ON "execution"
        WHEN old."error_message" IS NOT new."error_message" BEGIN
        INSERT INTO "{TEXT_TABLE}" ("{TEXT_TABLE}", rowid, error_message)
        SELECT 'delete', old."id", old."error_message" WHERE old."error_message" IS NOT NULL;
        INSERT INTO "{TEXT_TABLE}" (rowid, error_message)
        SELECT new."id", new."error_message" WHERE new."error_message" IS NOT NULL;
        END""",
)
_SQLITE_NAMES = (TEXT_TABLE, f"{TEXT_TABLE}_insert", f"{TEXT_TABLE}_delete",
                 f"{TEXT_TABLE}_update")
_EXTERNAL_ID = (f'CREATE INDEX IF NOT EXISTS "{EXTERNAL_ID_INDEX}" ON "execution" '
                '("external_id", "started_at", "id")')


def _is_sqlite(db: peewee.Database) -> bool:
    return isinstance(db.obj if isinstance(db, peewee.DatabaseProxy) else db,
                      peewee.SqliteDatabase)


def has_text_index(db: peewee.Database) -> bool:
    """Whether the error-text index exists (read from the catalog alone)."""
    if _is_sqlite(db):
        found = db.execute_sql(
            "SELECT count(*) FROM sqlite_master WHERE name IN (?, ?, ?, ?)",
            _SQLITE_NAMES).fetchone()[0]
        return found == len(_SQLITE_NAMES)
    return db.execute_sql("SELECT to_regclass(%s) IS NOT NULL", (TRIGRAM_INDEX,)).fetchone()[0]


def has_search_indexes(db: peewee.Database) -> bool:
    """Whether the external-id index and the error-text index both exist."""
    param = db.param
    external = db.execute_sql(
        "SELECT count(*) FROM sqlite_master WHERE name = ?" if _is_sqlite(db)
        else f"SELECT count(*) FROM pg_class WHERE relname = {param} "
             "AND relnamespace = current_schema()::regnamespace",
        (EXTERNAL_ID_INDEX,)).fetchone()[0]
    return bool(external) and has_text_index(db)


def create_search_indexes(db: peewee.Database) -> None:
    """Make the external-id index, and the error-text index filled with the runs there (a
    database that cannot have the latter is searched without it, and the log says so)."""
    db.execute_sql(_EXTERNAL_ID)
    sqlite = _is_sqlite(db)
    try:
        with db.atomic():  # a savepoint: a failure leaves the schema's transaction usable
            if sqlite:
                fresh = not db.execute_sql(
                    "SELECT 1 FROM sqlite_master WHERE name = ?", (TEXT_TABLE,)).fetchone()
                for statement in _SQLITE:
                    db.execute_sql(statement)
                if fresh:
                    db.execute_sql(f"""INSERT INTO "{TEXT_TABLE}" ("{TEXT_TABLE}")
                                       VALUES ('rebuild')""")
            else:
                # A trusted extension: the database's owner may create it.
                db.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{TRIGRAM_INDEX}" ON "execution" '
                               'USING gin ("error_message" gin_trgm_ops)')
    except peewee.OperationalError as exc:  # no FTS5 in this SQLite, no pg_trgm here
        if sqlite and "fts5" not in str(exc) and "trigram" not in str(exc):
            raise
        log.warning("error texts are searched without an index: %s", exc)
    except peewee.ProgrammingError as exc:
        log.warning("error texts are searched without an index: %s", exc)


def ensure_text_index() -> None:
    """At start: make the indexes if this database lacks them (new, or made by a release
    before it at schema version 8), and note whether SQLite's may be used."""
    from models.db import connection, write_transaction

    with connection():
        if not has_search_indexes(database):
            with write_transaction():
                create_search_indexes(database)
        _state["fts"] = is_sqlite() and has_text_index(database)


def search_v8(db: peewee.Database) -> None:
    """Version 8: runs are found by external id through an index of their own, and by error
    text through the database's text index, filled here with the runs there."""
    create_search_indexes(db)


# --- Counting what a search found ----------------------------------------------------------

def found_counts(f, workflow_ids: list[int] | None) -> tuple[dict[str, int], int | None,
                                                             int | None]:
    """Runs per status that the search `f` (a HistoryFilter) finds, its own status aside,
    and the first and last start among them: the counts kept per hour know no search."""
    counts = dict.fromkeys(STATUSES, 0)
    earliest = latest = None
    query = (Execution.select(Execution.status, peewee.fn.COUNT(Execution.id),
                              peewee.fn.MIN(Execution.started_at),
                              peewee.fn.MAX(Execution.started_at))
             .where(*f.conditions(with_status=False, workflow_ids=workflow_ids))
             .group_by(Execution.status).tuples())
    for status, n, first, last in query:
        if status in counts:
            counts[status] = int(n)
            first, last = to_micros(first), to_micros(last)
            earliest = first if earliest is None else min(earliest, first)
            latest = last if latest is None else max(latest, last)
    return counts, earliest, latest


def found_bars(f, workflow_ids: list[int] | None, edges: list[int]) -> list[dict[str, int]]:
    """Runs per status in each bar [edges[k], edges[k+1]) that the search `f` finds, counted
    by minute (bar edges inside the range fall on whole minutes)."""
    bars = [dict.fromkeys(STATUSES, 0) for _ in edges[1:]]
    if not bars:
        return bars
    minute = (Execution.started_at / MINUTE).alias("minute")
    query = (Execution.select(minute, Execution.status, peewee.fn.COUNT(Execution.id))
             .where(*f.conditions(with_status=False, workflow_ids=workflow_ids),
                    Execution.started_at >= edges[0], Execution.started_at < edges[-1])
             .group_by(peewee.SQL("1"), Execution.status).tuples())
    last = len(bars) - 1
    for bucket, status, n in query:
        index = min(max(bisect_right(edges, int(bucket) * MINUTE) - 1, 0), last)
        if status in bars[index]:
            bars[index][status] += int(n)
    return bars
