"""Retention: delete runs older than RUNWATCH_RETENTION_DAYS, a few at a time.

Runs whose `started_at` is before the cut-off go with their steps and payloads, in
batches: each batch is one short write transaction that reads the next runs through the
(status, started_at, id) index, deletes them, takes them out of the rollups and bumps the
change counter, so counts stay exact and no cache shows a deleted run. Writers and readers
wait at most one batch. A run still `pending` or `running` is kept while it is still
reported on: it goes only once its last report (`updated_at`) is also older than the
cut-off.

Only deletable runs are read: finished runs by their status' index range, open runs by
theirs with the `updated_at` test applied by the database (and only once the finished runs
are done, since that range holds the open runs that stay too). Open runs that must stay
(any number of them, however old their start) therefore never fill a batch, and a job
that stops after a few batches never starts over in front of them.

Features that keep their own counts of runs take the deleted ones out (delete hooks: the
workflows' summaries and duration counts). The alert state is left as it is: deleting old runs is not a new result, so no workflow is
marked for the scan and no notice is decided (a streak that began before the cut-off
counts only its kept runs the next time the workflow reports).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import peewee

from models.bulk import placeholders
from models.db import connection, database, is_sqlite, write_transaction
from models.times import to_micros, utcnow
from models.executions import (FINISHED_STATUSES, STATUSES, Execution, ExecutionPayload,
                               Step, StepPayload)
from models.hooks import run_delete_hooks
from models.ingest import RunState

from . import changes as change_counter
from .rollups import remove_runs

BATCH = 500
LOCK_BUDGET_MS = 30  # the job's batches are sized to hold the write lock about this long
FIRST_BATCH = 10
MIN_BATCH = 5


@dataclass
class Purged:
    """What one purge deleted, and the longest time a batch held the write lock."""

    runs: int = 0
    steps: int = 0
    step_payloads: int = 0
    run_payloads: int = 0
    batches: int = 0
    longest_batch_ms: float = 0.0
    done: bool = True  # False: stopped at max_batches with more runs to delete
    batch_ms: list[float] = field(default_factory=list, repr=False)


# Runs deleted per run of the job at most (50 batches of 500): a first pass over a long
# history is spread over several runs and never holds the other jobs back for long.
JOB_BATCHES = 50


def job(app) -> None:
    """The scheduled retention job (see scheduling.JOBS): nothing unless
    RUNWATCH_RETENTION_DAYS is set."""
    days = app.config.get("RETENTION_DAYS")
    if days:
        with connection():
            purge_expired(utcnow(), days, max_batches=JOB_BATCHES, budget_ms=LOCK_BUDGET_MS)


def cutoff(now: datetime, days: int) -> int:
    """The first started_at (in microseconds) that is kept."""
    return to_micros(now - timedelta(days=days))


OPEN_STATUSES = tuple(s for s in STATUSES if s not in FINISHED_STATUSES)
Position = tuple[int, int]  # (started_at, id) of the last run read, per status


def purge_expired(now: datetime, days: int, batch: int = BATCH,
                  max_batches: int | None = None, budget_ms: float | None = None) -> Purged:
    """Delete runs that started more than `days` days before `now`, `batch` runs per
    transaction, at most `max_batches` transactions (None: until none is left). With
    `budget_ms`, batches start small and are sized from the last one's time to hold the
    write lock about that long (never more than `batch` runs): what a batch costs depends
    on the database, its size and its load."""
    if days < 1 or batch < 1:
        raise ValueError("days and batch must be at least 1")
    limit = cutoff(now, days)
    purged = Purged()
    after: dict[str, Position] = {}
    size = batch if budget_ms is None else min(batch, FIRST_BATCH)
    while max_batches is None or purged.batches < max_batches:
        _warm(limit, after, size)
        started = time.perf_counter()
        with write_transaction():
            if not is_sqlite():
                # The commit does not wait for the disk to have the batch (this transaction
                # alone): the write lock is not held through that wait. A crash may lose
                # the last batches whole, and the next run deletes their runs again.
                database.execute_sql("SET LOCAL synchronous_commit = off")
            rows = _next_batch(limit, after, size)
            if rows:
                _delete(rows, limit, purged)
        elapsed = (time.perf_counter() - started) * 1000
        if not rows:
            return purged
        purged.batches += 1
        purged.batch_ms.append(elapsed)
        purged.longest_batch_ms = max(purged.longest_batch_ms, elapsed)
        if len(rows) < size:
            return purged
        if budget_ms is not None:  # at most twice as many, at least a few
            size = max(MIN_BATCH, min(batch, 2 * size, int(size * budget_ms / elapsed)))
    purged.done = not _next_batch(limit, dict(after), 1, lock=False)
    return purged


def _warm(limit: int, after: dict[str, Position], batch: int) -> None:
    """Read what the next batch will delete (its runs, steps and payloads, found through
    the same indexes), with no lock and no transaction held: the batch's write transaction
    then finds those pages in memory, so the write lock is not held while the disk is
    read. The oldest runs are seldom in memory."""
    ids = [row[0] for row in _next_batch(limit, dict(after), batch, lock=False)]
    if not ids:
        return
    marks = placeholders(len(ids))
    step, step_payload = Step._meta.table_name, StepPayload._meta.table_name
    # Each counts a column of no index, so that the rows themselves are read.
    for sql in (f'SELECT COUNT(t."name") FROM "{step}" AS t WHERE t."execution_id" IN ({marks})',
                f'SELECT COUNT(p."input") FROM "{step_payload}" AS p JOIN "{step}" AS t ON '
                f't."id" = p."step_id" WHERE t."execution_id" IN ({marks})',
                f'SELECT COUNT(p."input") FROM "{ExecutionPayload._meta.table_name}" AS p WHERE '
                f'p."execution_id" IN ({marks})'):
        database.execute_sql(sql, ids).fetchone()


def _next_batch(limit: int, after: dict[str, Position], batch: int,
                lock: bool = True) -> list[tuple]:
    """The next `batch` runs to delete, each read from its status' range of the (status,
    started_at, id) index: finished runs first, oldest first; then, to fill the batch, open
    runs whose last report is older than the cut-off too (tested by the database, over
    their status' range: read only when the finished runs are done). Locked against a
    concurrent re-post on PostgreSQL (SQLite's write transaction already excludes every
    writer). `after` keeps each status' position for the next batch."""
    rows: list[tuple] = []
    for statuses in (FINISHED_STATUSES, OPEN_STATUSES):
        wanted = batch - len(rows)
        if wanted <= 0:
            break
        found = [(id_, workflow_id, status, to_micros(started), to_micros(updated), duration,
                  fingerprint)
                 for status in statuses
                 for id_, workflow_id, status, started, updated, duration, fingerprint
                 in _expired(status, limit, after.get(status), wanted, lock)]
        rows += sorted(found, key=lambda row: (row[3], row[0]))[:wanted]
    for row in rows:  # only the runs taken: the rest are read again by the next batch
        after[row[2]] = (row[3], row[0])
    return rows


def _expired(status: str, limit: int, after: Position | None, batch: int, lock: bool):
    """The query of the first `batch` deletable runs of one status past `after` (locked
    for update with `lock`, on PostgreSQL)."""
    E = Execution
    terms = [E.status == status, E.started_at < limit]
    if status in OPEN_STATUSES:
        terms.append(E.updated_at < limit)
    if after is not None:
        terms.append(peewee.Tuple(E.started_at, E.id) > peewee.Tuple(*after))
    query = (E.select(E.id, E.workflow, E.status, E.started_at, E.updated_at, E.duration_ms,
                      E.error_fingerprint)
             .where(*terms).order_by(E.started_at, E.id).limit(batch).tuples())
    return query.for_update() if lock and not is_sqlite() else query


def _delete(rows: list[tuple], limit: int, purged: Purged) -> None:
    """Delete the expired runs of `rows` with their steps and payloads; take them out of
    the rollups and bump the change counter, in the caller's transaction."""
    doomed = [r for r in rows if r[2] in FINISHED_STATUSES or r[4] < limit]
    if not doomed:
        return
    ids = [r[0] for r in doomed]
    steps = Step.select(Step.id).where(Step.execution.in_(ids))
    purged.step_payloads += StepPayload.delete().where(StepPayload.step.in_(steps)).execute()
    purged.steps += Step.delete().where(Step.execution.in_(ids)).execute()
    purged.run_payloads += (ExecutionPayload.delete()
                            .where(ExecutionPayload.execution.in_(ids)).execute())
    purged.runs += Execution.delete().where(Execution.id.in_(ids)).execute()
    states = [RunState(r[0], r[1], r[2], r[3], None, r[5], r[6]) for r in doomed]
    remove_runs(states)
    run_delete_hooks(states)
    change_counter.bump()


__all__ = ["purge_expired", "Purged", "cutoff", "BATCH"]
