"""Error groups: a workflow's failures over a period, grouped by their error's fingerprint
(models.fingerprints), most frequent first.

The write path keeps counts per hour and per UTC day, workflow and fingerprint
(`count_errors`, from the workflow write hook and on deletes), so a period's groups are
summed from a few rows a day whatever the number of failures: whole days and hours from the
counts, the edges (under an hour each) from the runs. Each group's first and last run in
the period is then one probe of the failures' (workflow, fingerprint, started_at, id) index.
"""
from __future__ import annotations

from collections import defaultdict

import peewee

from models.bulk import delete_emptied, placeholders, upsert_rows
from models.db import database
from models.executions import Execution
from models.fingerprints import NO_ERROR, as_text
from models.ingest import RunState
from history.rollups import GRAINS, _split

from .models import ErrorRollup

MAX_GROUPS = 50
# Count rows read per part of a period (days, hours, the edges' runs): only a period with
# more different errors than this a part is counted over its newest rows.
MAX_PART_ROWS = 50_000
FAILURE = "failure"
_TABLE, _RUNS = ErrorRollup._meta.table_name, Execution._meta.table_name
_KEY = ("grain", "workflow_id", "bucket", "fingerprint")


# --- counting, on every write -----------------------------------------------------------

def _keys(state: RunState | None):
    if state is None or state.status != FAILURE:
        return
    group = NO_ERROR if state.fingerprint is None else state.fingerprint
    for grain, width in GRAINS.items():
        yield grain, state.workflow_id, state.started_at - state.started_at % width, group


def count_errors(changes: list[tuple[RunState | None, RunState | None]]) -> None:
    """Move the counts of the failures in `changes` (before, after; None: no run), in the
    caller's transaction. Counts that reach zero go."""
    deltas: dict[tuple, int] = defaultdict(int)
    for before, after in changes:
        for key in _keys(before):
            deltas[key] -= 1
        for key in _keys(after):
            deltas[key] += 1
    rows = [(*key, n) for key, n in sorted(deltas.items()) if n]
    upsert_rows(_TABLE, (*_KEY, "n"), _KEY, rows, add=("n",))
    delete_emptied(_TABLE, _KEY, [row[:4] for row in rows if row[4] < 0])


def rebuild_error_counts(db: peewee.Database) -> None:
    """Count every failure stored (a database from before the counts, or rows written past
    the write path)."""
    db.execute_sql(f'DELETE FROM "{_TABLE}"')
    modulo = "%%" if db.param == "%s" else "%"  # a literal "%" beside psycopg2's parameters
    for grain, width in GRAINS.items():
        db.execute_sql(
            f'INSERT INTO "{_TABLE}" ("grain", "workflow_id", "bucket", "fingerprint", "n") '
            f'SELECT {db.param}, "workflow_id", "started_at" - "started_at" {modulo} {int(width)}, '
            f'COALESCE("error_fingerprint", {db.param}), COUNT(*) FROM "{_RUNS}" '
            f'WHERE "status" = \'{FAILURE}\' GROUP BY 2, 3, 4', (grain, NO_ERROR))


# --- reading a period -------------------------------------------------------------------

def _part_sql(source: str) -> str:
    """One part of a period: (fingerprint, count, bucket) rows, newest first."""
    param = database.param
    if source == "raw":
        inner = (f'SELECT COALESCE("error_fingerprint", {param}) AS "fp", 1 AS "n", '
                 f'"started_at" AS "at" FROM "{_RUNS}" WHERE "workflow_id" = {param} AND '
                 f'"status" = {param} AND "started_at" >= {param} AND "started_at" < {param} '
                 'ORDER BY "started_at" DESC')
    else:
        inner = (f'SELECT "fingerprint" AS "fp", "n", "bucket" AS "at" FROM "{_TABLE}" WHERE '
                 f'"grain" = {param} AND "workflow_id" = {param} AND "bucket" >= {param} AND '
                 f'"bucket" < {param} ORDER BY "bucket" DESC')
    return f'SELECT * FROM ({inner} LIMIT {MAX_PART_ROWS}) AS "part"'


def _counts(workflow_id: int, start: int, end: int) -> list[tuple[int, int]]:
    """The most frequent groups of failures started in [start, end): (fingerprint, count),
    most frequent first, the ones seen last first among equals."""
    parts, params = [], []
    for source, a, b in _split(start, end):
        parts.append(_part_sql(source))
        params += ([NO_ERROR, workflow_id, FAILURE, a, b] if source == "raw"
                   else [source, workflow_id, a, b])
    if not parts:
        return []
    found = database.execute_sql(
        f'SELECT "fp", SUM("n"), MAX("at") FROM ({" UNION ALL ".join(parts)}) AS "parts" '
        f'GROUP BY "fp" ORDER BY 2 DESC, 3 DESC LIMIT {MAX_GROUPS}', params).fetchall()
    return [(int(fp), int(n)) for fp, n, _ in found]


def _probe(order: str, column: str, match: str) -> str:
    return (f'(SELECT "{column}" FROM "{_RUNS}" WHERE "workflow_id" = {database.param} AND '
            f'{match} AND "status" = \'{FAILURE}\' AND "started_at" >= {database.param} AND '
            f'"started_at" < {database.param} ORDER BY "started_at" {order}, "id" {order} '
            'LIMIT 1)')


def _ends(workflow_id: int, groups: list[int], start: int, end: int) -> dict[int, tuple]:
    """The first start time and the latest run's id of each group in [start, end), each read
    by one probe of the failures' index. Failures without an error are probed apart: their
    fingerprint is NULL on the run's row."""
    found = {}
    window = [workflow_id, start, end]
    keyed = [group for group in groups if group != NO_ERROR]
    if keyed:
        match = '"error_fingerprint" = "wanted"."column1"'
        rows = database.execute_sql(
            f'SELECT "column1", {_probe("ASC", "started_at", match)}, '
            f'{_probe("DESC", "id", match)} FROM (VALUES '
            f'{", ".join(["(" + database.param + ")"] * len(keyed))}) AS "wanted"',
            [*window, *window, *keyed]).fetchall()
        found.update((int(group), (first, last)) for group, first, last in rows)
    if NO_ERROR in groups:
        match = '"error_fingerprint" IS NULL'
        found[NO_ERROR] = database.execute_sql(
            f'SELECT {_probe("ASC", "started_at", match)}, {_probe("DESC", "id", match)}',
            [*window, *window]).fetchone()
    return found


def error_groups(workflow_id: int, start: int, end: int) -> list[dict]:
    """Failures of a workflow started in [start, end] (both inclusive), grouped by their
    fingerprint: most frequent first (then the one seen last), at most MAX_GROUPS.

    Each group: fingerprint, type, a sample message (the latest), count, first and last
    seen (micros) and the id of its latest run.
    """
    counts = _counts(workflow_id, start, end + 1)
    if not counts:
        return []
    ends = _ends(workflow_id, [group for group, _ in counts], start, end + 1)
    latest_ids = [last for _, last in ends.values() if last is not None]
    latest = {row[0]: row for row in database.execute_sql(
        f'SELECT "id", "started_at", "error_type", "error_message" FROM "{_RUNS}" '
        f'WHERE "id" IN ({placeholders(len(latest_ids))})', latest_ids).fetchall()} \
        if latest_ids else {}
    groups = []
    for group, count in counts:
        first, last_id = ends.get(group, (None, None))
        if first is None or last_id not in latest:
            continue  # its runs changed between the reads
        _, last_seen, error_type, message = latest[last_id]
        groups.append({"fingerprint": as_text(group), "type": error_type, "message": message,
                       "count": count, "first_seen": int(first), "last_seen": int(last_seen),
                       "last_execution_id": last_id})
    groups.sort(key=lambda g: (-g["count"], -g["last_seen"], -g["last_execution_id"]))
    return groups


__all__ = ["error_groups", "count_errors", "rebuild_error_counts", "MAX_GROUPS"]
