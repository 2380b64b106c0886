"""Finished runs per workflow and status since the first, cheap to read however long the
history: the days that have settled are folded into one row per workflow and status
(`run_total`), and a scrape adds the few daily rollup rows since.

`run_total_mark.through` (a UTC midnight) divides the two: runs that started before it are
counted in `run_total`, the rest in the rollups' days from it on. The `metrics` job moves
it up to SETTLE_DAYS before today, a week of days per transaction. A change to a run that
started before it (a run reported late, a status re-reported, retention) moves the run in
`run_total` too, in the write's own transaction (the write hooks below). The write path pays
nothing for runs that started in the last day, which are nearly all: only a change to a
run older than LOCK_AGE reads the mark, and on PostgreSQL takes a share lock on it, so that
a fold (which takes it for update) never sums a day without that change and then moves
past it.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import peewee

from history.rollups import ALL_IDS, DAY, DAYS_INDEXED, RunRollup, days_of
from models.base import BaseModel
from models.bulk import upsert_rows
from models.db import database, is_sqlite, write_transaction
from models.executions import FINISHED_STATUSES
from models.ingest import Change, RunState
from models.times import to_micros, utcnow

SETTLE_DAYS = 2  # days before today that stay in the rollups
LOCK_AGE = DAY  # a change to a run that started longer ago takes part in the folding
FOLD_DAYS = 7  # days folded in one transaction
MARK_ID = 1


class RunTotal(BaseModel):
    """Finished runs of one workflow in one status that started before the mark."""

    workflow_id = peewee.BigIntegerField()
    status = peewee.CharField(max_length=10)
    n = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "run_total"
        primary_key = peewee.CompositeKey("workflow_id", "status")


class RunTotalMark(BaseModel):
    """One row: runs that started before `through` (microseconds) are in `run_total`."""

    id = peewee.IntegerField(primary_key=True)
    through = peewee.BigIntegerField(default=0)

    class Meta:
        table_name = "run_total_mark"


MODELS = [RunTotal, RunTotalMark]
_COLUMNS = ("workflow_id", "status", "n")


def _through(lock: str | None) -> int | None:
    """The mark (None before the first fold made it), locked FOR SHARE or FOR UPDATE on
    PostgreSQL."""
    suffix = "" if is_sqlite() or lock is None else f" FOR {lock}"
    row = database.execute_sql(
        f'SELECT "through" FROM "{RunTotalMark._meta.table_name}" WHERE "id" = '
        f'{database.param}{suffix}', (MARK_ID,)).fetchone()
    return None if row is None else int(row[0])


def _apply(moves: list[tuple[RunState | None, int]]) -> None:
    """Move runs (state, +1 or -1) that started long enough ago in or out of the totals."""
    horizon = to_micros(utcnow()) - LOCK_AGE
    old = [(state, sign) for state, sign in moves
           if state is not None and state.started_at < horizon]
    if not old:
        return
    through = _through("SHARE")
    if not through:
        return
    deltas: dict[tuple[int, str], int] = defaultdict(int)
    for state, sign in old:
        if state.status in FINISHED_STATUSES and state.started_at < through:
            deltas[(state.workflow_id, state.status)] += sign
    rows = [(*key, n) for key, n in sorted(deltas.items()) if n]
    if rows:
        upsert_rows(RunTotal._meta.table_name, _COLUMNS, _COLUMNS[:2], rows, add=("n",))


def apply_changes(changes: list[Change]) -> None:
    """The write hook: runs that changed behind the mark move in the totals."""
    _apply([move for before, after in changes for move in ((before, -1), (after, 1))])


def remove_runs(states: list[RunState]) -> None:
    """The delete hook: deleted runs behind the mark leave the totals."""
    _apply([(state, -1) for state in states])


def _finished_days(lower: str, bounded: bool) -> str:
    """SQL of the finished runs per workflow and status in the rollups' days from `lower`
    (SQL) on, before a bound when `bounded`: one range of the index of days, however many
    workflows. Its values: `lower`'s, the bound if any, FINISHED_STATUSES."""
    param = database.param
    upper = f' AND "bucket" < {param}' if bounded else ""
    return (f'SELECT "workflow_id", "status", "n" FROM {days_of(RunRollup)} '
            f'WHERE {DAYS_INDEXED} AND "bucket" >= {lower}{upper} '
            f'AND "status" IN ({param}, {param})')


def _sums(sql: str, values: list) -> dict[tuple[int, str], int]:
    """Runs per (workflow, status) that the rows of `sql` add up to."""
    return {(workflow_id, status): int(n) for workflow_id, status, n in database.execute_sql(
        f"SELECT q.workflow_id, q.status, SUM(q.n) FROM ({sql}) AS q "
        "GROUP BY q.workflow_id, q.status", values).fetchall()}


def fold(now: datetime | None = None, max_steps: int = 60) -> int:
    """Move the mark up to SETTLE_DAYS before today, FOLD_DAYS at a time, adding the days
    passed to the totals; returns the transactions that moved it."""
    target = to_micros(now or utcnow())
    target -= target % DAY + SETTLE_DAYS * DAY
    with write_transaction():
        if _through(None) is None:
            # The mark's first row, on its own: a fold sums days only once every writer
            # that may have changed them sees the mark (and takes part).
            (RunTotalMark.insert(id=MARK_ID, through=0).on_conflict_ignore().execute())
            return 0
    steps = 0
    while steps < max_steps:
        with write_transaction():
            through = _through("UPDATE")
            if through >= target:
                break
            # The first day with runs, from the rows of every workflow (on PostgreSQL
            # some may still be in the shards the rollups' own job folds).
            first = (RunRollup.select(peewee.fn.MIN(RunRollup.bucket))
                     .where(RunRollup.grain == "d", RunRollup.workflow_id.in_(ALL_IDS),
                            RunRollup.bucket >= through).scalar())
            stop = target if first is None else min(target, max(through, first) + FOLD_DAYS * DAY)
            sums = _sums(_finished_days(database.param, bounded=True),
                         [through, stop, *FINISHED_STATUSES])
            rows = [(*key, n) for key, n in sorted(sums.items()) if n]
            if rows:
                upsert_rows(RunTotal._meta.table_name, _COLUMNS, _COLUMNS[:2], rows,
                            add=("n",))
            RunTotalMark.update(through=stop).where(RunTotalMark.id == MARK_ID).execute()
            steps += 1
    return steps


def run_totals() -> dict[int, tuple[int, ...]]:
    """Finished runs per workflow, one count per status of FINISHED_STATUSES in its order:
    the folded totals plus the days since, read in one statement (one snapshot of both,
    whatever a fold does meanwhile), a row per workflow."""
    param = database.param
    mark = f'(SELECT COALESCE(MAX("through"), 0) FROM "{RunTotalMark._meta.table_name}")'
    folded = f'SELECT "workflow_id", "status", "n" FROM "{RunTotal._meta.table_name}"'
    counts = ", ".join(f'CAST(SUM(CASE WHEN q.status = {param} THEN q.n ELSE 0 END) AS BIGINT)'
                       for _ in FINISHED_STATUSES)
    rows = database.execute_sql(
        f"SELECT q.workflow_id, {counts} FROM ({folded} UNION ALL "
        f"{_finished_days(mark, bounded=False)}) AS q GROUP BY q.workflow_id",
        [*FINISHED_STATUSES, *FINISHED_STATUSES]).fetchall()
    return {row[0]: row[1:] for row in rows}


def job(app) -> None:
    """The scheduled job: fold the days that have settled."""
    from models.db import connection

    with connection():
        fold()
