"""Run counts per workflow, status and hour/day, kept current at ingestion.

Counts and the history histogram read these few rows instead of counting a
million runs. Each bucket is stored twice: once for its workflow and once for "every
workflow", so an unfiltered count reads the fewest rows. Everything that a bucket cannot
answer exactly (a range that starts or ends inside an hour) is counted from the runs
themselves, through an index.

"Every workflow" is workflow 0 on SQLite, which has one writer at a time. On PostgreSQL
every write would add to the same row of the current hour and day, and concurrent writers
would queue on it until each commits; there a write adds to one of SHARDS rows instead
(workflow -1 … -SHARDS, picked at random), readers sum them with workflow 0, and `fold`
(a background job) moves the shards of past hours and days into workflow 0, so that a
long range reads one row per bucket again.
"""
from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from bisect import bisect_right
from collections import defaultdict
from typing import Iterable
from zoneinfo import ZoneInfo

import peewee

from models.base import BaseModel
from models.bulk import chunks, delete_emptied, placeholders, upsert_rows
from models.db import connection, database, is_sqlite, write_transaction
from models.times import from_micros, to_micros, utcnow
from models.executions import STATUSES, Execution
from models.ingest import Change, RunState

from . import changes as change_counter

MINUTE = 60_000_000  # microseconds
HOUR = 60 * MINUTE
DAY = 24 * HOUR
GRAINS = {"h": HOUR, "d": DAY}
BAR_WIDTHS = [5 * MINUTE, 15 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY,
              30 * DAY]
MAX_BARS = 100
RAW_SPAN = 6 * HOUR  # bars narrower than an hour are counted from runs, so only short spans
ALL_WORKFLOWS = 0
SHARDS = 8  # rows a bucket of every workflow is written through on PostgreSQL
ALL_IDS = [ALL_WORKFLOWS, *range(-1, -SHARDS - 1, -1)]  # what readers sum


class RunRollup(BaseModel):
    """How many runs of one workflow (0: all) in one status started in one hour or day."""

    grain = peewee.CharField(max_length=1)
    workflow_id = peewee.IntegerField()
    bucket = peewee.BigIntegerField()  # start of the hour or UTC day, in microseconds
    status = peewee.CharField(max_length=10)
    n = peewee.BigIntegerField(default=0)

    class Meta:
        primary_key = peewee.CompositeKey("grain", "workflow_id", "bucket", "status")
        # The same columns with `n`: sums (counts, bars, a page of workflows' figures) read
        # this index alone, never the table.
        indexes = ((("grain", "workflow_id", "bucket", "status", "n"), False),)


def _every_workflow() -> int:
    """The row of "every workflow" this write adds to (see the module's notes)."""
    return ALL_WORKFLOWS if is_sqlite() else -1 - random.randrange(SHARDS)


def _keys(workflow_id: int, status: str, started_at: int, every: int) -> Iterable[tuple]:
    for grain, width in GRAINS.items():
        bucket = started_at - started_at % width
        yield grain, workflow_id, bucket, status
        yield grain, every, bucket, status


def apply_changes(changes: list[Change]) -> None:
    """The write hook: move each changed run from its old bucket to its new one."""
    deltas: dict[tuple, int] = defaultdict(int)
    every = _every_workflow()
    for before, after in changes:
        if before is not None:
            for key in _keys(before.workflow_id, before.status, before.started_at, every):
                deltas[key] -= 1
        for key in _keys(after.workflow_id, after.status, after.started_at, every):
            deltas[key] += 1
    _apply_deltas(deltas)


def remove_runs(states: list[RunState]) -> None:
    """Take deleted runs out of their buckets; buckets left empty are deleted (a shard of
    every workflow may go below 0 meanwhile: the sum with the others is what counts)."""
    deltas: dict[tuple, int] = defaultdict(int)
    every = _every_workflow()
    for state in states:
        for key in _keys(state.workflow_id, state.status, state.started_at, every):
            deltas[key] -= 1
    _apply_deltas(deltas)
    delete_emptied(RunRollup._meta.table_name, ("grain", "workflow_id", "bucket", "status"),
                   sorted(deltas), below_zero=False)


def _apply_deltas(deltas: dict[tuple, int]) -> None:
    table = RunRollup._meta.table_name
    upsert_rows(table, ("grain", "workflow_id", "bucket", "status", "n"),
                ("grain", "workflow_id", "bucket", "status"),
                [(*key, n) for key, n in sorted(deltas.items()) if n], add=("n",))


def rebuild_rollups() -> int:
    """Recount every bucket from the runs themselves; returns the number of rollup rows."""
    with write_transaction():
        if not is_sqlite():
            database.execute_sql(f'LOCK TABLE "{RunRollup._meta.table_name}" IN EXCLUSIVE MODE')
        RunRollup.delete().execute()
        columns = [RunRollup.grain, RunRollup.workflow_id, RunRollup.bucket, RunRollup.status,
                   RunRollup.n]
        for grain, width in GRAINS.items():
            bucket = (Execution.started_at / width) * width
            count = peewee.fn.COUNT(Execution.id)
            per_workflow = (Execution.select(peewee.Value(grain), Execution.workflow, bucket,
                                             Execution.status, count)
                            .group_by(Execution.workflow, bucket, Execution.status))
            every = (Execution.select(peewee.Value(grain), peewee.Value(ALL_WORKFLOWS), bucket,
                                      Execution.status, count)
                     .group_by(bucket, Execution.status))
            RunRollup.insert_from(per_workflow, columns).execute()
            RunRollup.insert_from(every, columns).execute()
        change_counter.bump()
        return RunRollup.select().count()


def fold(now: int | None = None) -> int:
    """Move the PostgreSQL shards of every workflow's buckets of past hours and days into
    workflow 0 (summed); returns the buckets of workflow 0 written. A writer that adds to a shard row
    meanwhile either comes first (its row is moved with what it added) or waits and then
    makes the row anew: DELETE … RETURNING hands over exactly the rows it deleted."""
    if is_sqlite():
        return 0  # written to workflow 0 directly
    now = to_micros(utcnow()) if now is None else now
    table = RunRollup._meta.table_name
    shards = ", ".join(str(k) for k in ALL_IDS[1:])
    moved = 0
    for grain, width in GRAINS.items():
        with write_transaction():
            summed = database.execute_sql(
                f'WITH "gone" AS (DELETE FROM "{table}" WHERE "grain" = %s AND "workflow_id" IN '
                f'({shards}) AND "bucket" < %s RETURNING "bucket", "status", "n") '
                f'INSERT INTO "{table}" ("grain", "workflow_id", "bucket", "status", "n") '
                f'SELECT %s, {ALL_WORKFLOWS}, "bucket", "status", SUM("n") FROM "gone" '
                'GROUP BY "bucket", "status" ON CONFLICT ("grain", "workflow_id", "bucket", '
                f'"status") DO UPDATE SET "n" = "{table}"."n" + EXCLUDED."n" '
                'RETURNING "bucket", "status", "n"', (grain, now - now % width, grain)).fetchall()
            moved += len(summed)
            # Runs deleted (retention) after others were added through another shard: the
            # bucket comes to 0, and an empty bucket is deleted, as `remove_runs` does.
            empty = [(grain, ALL_WORKFLOWS, bucket, status) for bucket, status, n in summed
                     if n == 0]
            for chunk in chunks(empty, 500):
                key = peewee.Tuple(RunRollup.grain, RunRollup.workflow_id, RunRollup.bucket,
                                   RunRollup.status)
                (RunRollup.delete().where(key.in_([peewee.Tuple(*k) for k in chunk]),
                                          RunRollup.n == 0).execute())
    return moved


def fold_job(app) -> None:
    """The background job (see scheduling.JOBS)."""
    with connection():
        fold()


def ensure_rollups() -> None:
    """Build the rollups once for runs stored before they existed."""
    with connection():
        if not RunRollup.select().exists() and Execution.select().exists():
            rebuild_rollups()


# --- reading: runs per status in bars of time ---------------------------------------------

def _ceil(value: int, width: int) -> int:
    return -(-value // width) * width


def _split(start: int, end: int) -> list[tuple[str, int, int]]:
    """Cover [start, end) with whole days, whole hours and raw edges, coarsest first."""
    h1, h2 = _ceil(start, HOUR), end - end % HOUR
    if h1 >= h2:
        return [("raw", start, end)]
    d1, d2 = _ceil(h1, DAY), h2 - h2 % DAY
    parts = [("raw", start, h1)]
    if d1 < d2:
        parts += [("h", h1, d1), ("d", d1, d2), ("h", d2, h2)]
    else:
        parts.append(("h", h1, h2))
    parts.append(("raw", h2, end))
    return [part for part in parts if part[1] < part[2]]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _rollup_rows(grain: str, workflow_ids: list[int] | None,
                 start: int, end: int) -> Iterable[tuple[int, str, int]]:
    ids = _rollup_ids(workflow_ids)
    owner = RunRollup.workflow_id == ids[0] if len(ids) == 1 else RunRollup.workflow_id.in_(ids)
    return (RunRollup.select(RunRollup.bucket, RunRollup.status, peewee.fn.SUM(RunRollup.n))
            .where(RunRollup.grain == grain, owner, RunRollup.bucket >= start,
                   RunRollup.bucket < end)
            .group_by(RunRollup.bucket, RunRollup.status).tuples())


def _rollup_ids(workflow_ids: list[int] | None) -> list[int]:
    """The rollup rows' owners to sum: the workflows', or every workflow's (SQLite has no
    shards: see the module's notes)."""
    if workflow_ids is None:
        return [ALL_WORKFLOWS] if is_sqlite() else ALL_IDS
    return workflow_ids


def _raw_rows(workflow_ids: list[int] | None,
              start: int, end: int) -> Iterable[tuple[int, str, int]]:
    # Grouped by minute: bar edges inside the range fall on whole minutes.
    minute = (Execution.started_at / MINUTE).alias("minute")
    terms = [Execution.started_at >= start, Execution.started_at < end]
    if workflow_ids is not None:
        terms.append(Execution.workflow.in_(workflow_ids) if len(workflow_ids) > 1
                     else Execution.workflow == workflow_ids[0])
    query = (Execution.select(minute, Execution.status, peewee.fn.COUNT(Execution.id))
             .where(*terms).group_by(peewee.SQL("1"), Execution.status).tuples())
    return ((int(m) * MINUTE, status, n) for m, status, n in query)


def count_bars(workflow_ids: list[int] | None, edges: list[int]) -> list[dict[str, int]]:
    """Runs per status in each bar [edges[k], edges[k+1]); workflow_ids None means all."""
    bars = [dict.fromkeys(STATUSES, 0) for _ in edges[1:]]
    if not bars or workflow_ids == []:
        return bars
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for start, end in zip(edges, edges[1:]):
        for source, a, b in _split(start, end):
            ranges[source].append((a, b))
    # One query per contiguous range: each is a plain index range scan.
    sources = [_rollup_rows(grain, workflow_ids, a, b)
               for grain in GRAINS for a, b in _merged(ranges[grain])]
    sources += [_raw_rows(workflow_ids, a, b) for a, b in _merged(ranges["raw"])]
    last = len(bars) - 1
    for rows in sources:
        for bucket, status, n in rows:
            index = min(max(bisect_right(edges, bucket) - 1, 0), last)
            bars[index][status] += int(n)
    return bars


def total(bars: list[dict[str, int]]) -> dict[str, int]:
    """The per-status sum of bars."""
    return {status: sum(bar[status] for bar in bars) for status in STATUSES}


def count_window(workflow_ids: list[int] | None, start: int, end: int) -> dict[str, int]:
    """Runs per status that started in [start, end): one statement, whose every part (the
    days, the hours and the raw edges of `_split`) the database sums per status, so that a
    year's count reads its rollup rows in the database and returns a few rows."""
    counts = dict.fromkeys(STATUSES, 0)
    if workflow_ids == [] or start >= end:
        return counts
    param = database.param
    parts, args = [], []
    for source, a, b in _split(start, end):
        if source == "raw":
            owner, ids = ("", []) if workflow_ids is None else (
                f' AND "workflow_id" IN ({placeholders(len(workflow_ids))})', workflow_ids)
            parts.append(f'SELECT "status", COUNT(*) FROM "{Execution._meta.table_name}" '
                         f'WHERE "started_at" >= {param} AND "started_at" < {param}{owner} '
                         'GROUP BY "status"')
            args += [a, b, *ids]
        else:
            ids = _rollup_ids(workflow_ids)
            parts.append(f'SELECT "status", SUM("n") FROM "{RunRollup._meta.table_name}" '
                         f'WHERE "grain" = {param} AND "workflow_id" IN '
                         f'({placeholders(len(ids))}) AND "bucket" >= {param} AND '
                         f'"bucket" < {param} GROUP BY "status"')
            args += [source, *ids, a, b]
    for status, n in database.execute_sql(" UNION ALL ".join(parts), args):
        counts[status] += int(n)
    return counts


def bar_edges(start: int, end: int, zone: ZoneInfo) -> tuple[list[int], int]:
    """Edges of at most MAX_BARS bars over [start, end), on round times of `zone`."""
    span = end - start
    for width in BAR_WIDTHS:
        if span > width * MAX_BARS or (width < HOUR and span > RAW_SPAN):
            continue
        try:
            inner = _round_edges(start, end, width, zone)
        except (OverflowError, ValueError):  # a local time beyond year 9999 (or before 1)
            break
        if width >= HOUR:
            # Zones off the hour (+05:30) get bars on whole hours, which the rollups answer.
            inner = sorted({edge - edge % HOUR for edge in inner})
        edges = [start, *(e for e in inner if start < e < end), end]
        if len(edges) <= MAX_BARS + 1:  # else short local days made one too many: go wider
            return edges, width
    return _wide_edges(start, end)


def _round_edges(start: int, end: int, width: int, zone: ZoneInfo) -> list[int]:
    if width < DAY:
        offset = int(from_micros(start).astimezone(zone).utcoffset().total_seconds()) * 1_000_000
        return list(range(start - (start + offset) % width + width, end, width))
    inner: list[int] = []
    first_day = from_micros(start).astimezone(zone).date()
    step = width // DAY
    for k in range(1, (end - start) // width + 3):
        edge = to_micros(datetime.combine(first_day + timedelta(days=k * step), time(), zone))
        if edge >= end:
            break
        inner.append(edge)
    return inner


def _wide_edges(start: int, end: int) -> tuple[list[int], int]:
    """MAX_BARS bars of whole days from `start`: for a span longer than MAX_BARS of the
    widest bar, which only runs stored far in the past or future make (an older release
    accepted any year)."""
    width = _ceil(-(-(end - start) // MAX_BARS), DAY)
    return [*range(start, end, width), end], width


def started_extent(workflow_ids: list[int] | None) -> tuple[int | None, int | None]:
    """The first and last started_at of the workflows' runs, each from one index probe."""
    groups = [None] if workflow_ids is None else workflow_ids
    firsts, lasts = [], []
    for workflow_id in groups:
        query = Execution.select(Execution.started_at)
        if workflow_id is not None:
            query = query.where(Execution.workflow == workflow_id)
        for order, found in ((Execution.started_at, firsts), (Execution.started_at.desc(), lasts)):
            row = query.order_by(order).limit(1).tuples().first()
            if row:
                found.append(to_micros(row[0]))
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)



__all__ = ["RunRollup", "apply_changes", "remove_runs", "rebuild_rollups", "ensure_rollups", "count_bars",
           "count_window", "started_extent", "bar_edges", "total", "GRAINS", "MINUTE", "HOUR", "DAY",
           "ALL_WORKFLOWS", "ALL_IDS", "fold", "fold_job"]
