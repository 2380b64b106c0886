"""Finding runs with `q`: by id (`2011` or `#2011`), by exact external id, or by text in the
error message, case-insensitive; and the database's own text index that answers the last
without reading every run.

The error text searched is the one a run's row keeps (its first ERROR_EXCERPT_CHARS
characters, what lists show). SQLite indexes it in an FTS5 table with the trigram tokenizer,
kept by triggers on the runs' table (a phrase of trigrams is a substring, `%` and `_`
included); PostgreSQL in a GIN index of pg_trgm, which answers ILIKE. Texts shorter than a
trigram, or a database without the index, are matched with LIKE on the rows themselves.

What a search finds is counted by the database (`found_counts`, `found_bars`). On SQLite
the text index's matches are read from a narrow index of the runs that have an error text
(`ERROR_RUNS_INDEX`), not from the table: ten thousand matches are counted from a few
megabytes that stay in cache, not from ten thousand rows read one by one. (A search that
finds few runs is answered from their rows: history/found.py.)
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass

import peewee

from models.db import database, is_sqlite
from models.executions import STATUSES, Execution

from .parsing import run_id_in

log = logging.getLogger(__name__)

TEXT_TABLE = "execution_error_search"  # SQLite: the FTS5 index of the runs' error texts
TRIGRAM_INDEX = "execution_error_message_trgm"  # PostgreSQL: pg_trgm's GIN index
EXTERNAL_ID_INDEX = "execution_external_id_started_at_id"  # both: runs by external id, newest
ERROR_RUNS_INDEX = "execution_error_runs"  # SQLite: the keys of runs with an error text
MINUTE = 60_000_000  # microseconds
# Matches beyond which a page walks its order's index (a match every few hundred runs or
# closer) instead of reading every match: ~5,000 index entries read in order for a page
# of 50 at 1 % of a million runs, against 10,000 runs fetched one by one.
DENSE = 2000
TRIGRAM = 3  # a text shorter than this has no trigram to look up
# Whether this process's SQLite database has TEXT_TABLE, and ERROR_RUNS_INDEX.
_state = {"fts": False, "keys": False}


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


def reads_keys(search: Search | None) -> bool:
    """Whether what `search` finds is read from the text index's matches looked up in
    ERROR_RUNS_INDEX (`_branches`)."""
    return search is not None and search.mode == "fts" and _state["keys"]


class _IndexedBy(peewee.Node):
    """A model's table in FROM, read through one index (SQLite's INDEXED BY)."""

    def __init__(self, model: type[peewee.Model], index: str):
        self.model, self.index = model, index

    def __sql__(self, ctx):
        return ctx.sql(self.model).literal(" INDEXED BY ").sql(peewee.Entity(self.index))


def matching_ids(f, workflow_ids: list[int] | None) -> peewee.SelectBase:
    """The ids of the runs the filter `f` (a HistoryFilter with `q` or `external_id`) finds,
    its own status aside, in no order (a LIMIT reads the text index no further)."""
    first, *rest = _branches(f, workflow_ids, (Execution.id,))
    for branch in rest:
        first = first + branch  # UNION ALL: the branches find different runs
    return first


def _branches(f, workflow_ids: list[int] | None,
              columns: tuple[peewee.Node, ...]) -> list[peewee.ModelSelect]:
    """`columns` of the runs `f` finds, its own status aside, in one query or, where the
    text index's matches are read from ERROR_RUNS_INDEX, in two that find different runs:
    those whose text matches, and the one it names by id or external id otherwise."""
    search = f.search
    if not reads_keys(search):
        return [Execution.select(*columns).where(
            *f.conditions(with_status=False, workflow_ids=workflow_ids))]
    others = f.conditions(with_status=False, workflow_ids=workflow_ids, with_search=False)
    param = database.param
    # The text index's matches in its order (lazily: a LIMIT reads no further), each looked
    # up in the narrow index: the index's condition is the query's, so no run's row is read.
    matched = peewee.SQL(f'(SELECT rowid FROM "{TEXT_TABLE}" WHERE "{TEXT_TABLE}" MATCH '
                         f'{param}) AS "matched"', [search.pattern])
    in_text = (Execution.select(*columns)
               .from_(matched, _IndexedBy(Execution, ERROR_RUNS_INDEX))
               .where(Execution.id == peewee.SQL('"matched"."rowid"'),
                      Execution.error_message.is_null(False), *others))
    exact = Execution.external_id == search.text
    if search.run_id is not None:
        exact = (Execution.id == search.run_id) | exact
    not_in_text = peewee.NodeList((
        peewee.SQL(f'NOT EXISTS (SELECT 1 FROM "{TEXT_TABLE}" WHERE "{TEXT_TABLE}" MATCH '
                   f'{param} AND rowid =', [search.pattern]), Execution.id, peewee.SQL(")")))
    return [in_text, Execution.select(*columns).where(exact, not_in_text, *others)]


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
# Runs with an error text alone (a tenth of them, say), and what counting a text's matches
# reads of them, the workflow and start time they may be narrowed by.
_ERROR_RUNS = (f'CREATE INDEX IF NOT EXISTS "{ERROR_RUNS_INDEX}" ON "execution" ("id", '
               '"workflow_id", "status", "started_at") WHERE "error_message" IS NOT NULL')


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
    """Whether the external-id index, the error-text index and (SQLite) the index of runs
    with an error text all exist."""
    sqlite = _is_sqlite(db)
    names = (EXTERNAL_ID_INDEX, ERROR_RUNS_INDEX) if sqlite else (EXTERNAL_ID_INDEX,)
    found = db.execute_sql(
        f"SELECT count(*) FROM sqlite_master WHERE name IN ({', '.join('?' * len(names))})"
        if sqlite else "SELECT count(*) FROM pg_class WHERE relname = %s "
                       "AND relnamespace = current_schema()::regnamespace",
        names).fetchone()[0]
    return found == len(names) and has_text_index(db)


def _has_index(db: peewee.Database, name: str) -> bool:
    return bool(db.execute_sql("SELECT count(*) FROM sqlite_master WHERE name = ?",
                               (name,)).fetchone()[0])


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
                for statement in (*_SQLITE, _ERROR_RUNS):
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
    from models.migrations import take_schema_lock

    with connection():
        if not has_search_indexes(database):
            with write_transaction():
                take_schema_lock()  # workers starting at once: one makes them, once
                if not has_search_indexes(database):
                    create_search_indexes(database)
        _state["fts"] = is_sqlite() and has_text_index(database)
        _state["keys"] = _state["fts"] and _has_index(database, ERROR_RUNS_INDEX)


def search_v8(db: peewee.Database) -> None:
    """Version 8: runs are found by external id through an index of their own, and by error
    text through the database's text index, filled here with the runs there."""
    create_search_indexes(db)


def search_v9(db: peewee.Database) -> None:
    """Version 9: on SQLite, the index of the runs that have an error text, from which a
    text's matches are counted (made beside the text index, where that can be made)."""
    create_search_indexes(db)


# --- Counting what a search found ----------------------------------------------------------

def found_counts(f, workflow_ids: list[int] | None) -> tuple[dict[str, int], int | None,
                                                             int | None]:
    """Runs per status that the search `f` (a HistoryFilter) finds, its own status aside,
    and the first and last start among them: the counts kept per hour know no search."""
    counts = dict.fromkeys(STATUSES, 0)
    earliest = latest = None
    status, started = Execution.status, Execution.started_at
    columns = (status, peewee.fn.COUNT(peewee.SQL("*")), peewee.fn.MIN(started),
               peewee.fn.MAX(started))
    for status, n, first, last in _each_branch(f, workflow_ids, columns, (status,)):
        if status in counts:
            counts[status] += int(n)
            earliest = first if earliest is None else min(earliest, first)
            latest = last if latest is None else max(latest, last)
    return counts, earliest, latest


def found_bars(f, workflow_ids: list[int] | None, edges: list[int]) -> list[dict[str, int]]:
    """Runs per status in each bar [edges[k], edges[k+1]) that the search `f` finds, counted
    by minute (bar edges inside the range fall on whole minutes)."""
    bars = [dict.fromkeys(STATUSES, 0) for _ in edges[1:]]
    if not bars:
        return bars
    started = Execution.started_at
    minute = (started / MINUTE).alias("minute")
    rows = _each_branch(f, workflow_ids, (minute, Execution.status, peewee.fn.COUNT(
        peewee.SQL("*"))), (peewee.SQL("1"), Execution.status),
        started >= edges[0], started < edges[-1])
    for bucket, status, n in rows:
        add_to_bar(bars, edges, int(bucket) * MINUTE, status, int(n))
    return bars


def _each_branch(f, workflow_ids: list[int] | None, columns: tuple, group_by: tuple,
                 *terms: peewee.Expression) -> list[tuple]:
    """`columns` grouped by `group_by` over each branch of what `f` finds (`_branches`),
    in one statement: a row per branch and group."""
    query = None
    for branch in _branches(f, workflow_ids, columns):
        if terms:
            branch = branch.where(*terms)
        branch = branch.group_by(*group_by)
        query = branch if query is None else query + branch
    return database.execute_sql(*query.sql()).fetchall()  # as stored: times in microseconds


def add_to_bar(bars: list[dict[str, int]], edges: list[int], minute: int, status: str,
               n: int) -> None:
    """Count `n` runs of `status` that started in the minute `minute` in its bar."""
    index = min(max(bisect_right(edges, minute) - 1, 0), len(bars) - 1)
    if status in bars[index]:
        bars[index][status] += n
