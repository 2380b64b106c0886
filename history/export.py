"""The history taken out: every run a filter matches, newest first, as CSV or NDJSON, read
in keyset batches so that memory stays flat however many runs there are.

`export_lines(f, ...)` is a plain generator (no Flask): the view streams what it yields.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Callable, Iterator

import peewee

from models.executions import Execution, Workflow

COLUMNS = ("id", "workflow", "status", "started_at", "finished_at", "duration_ms",
           "step_count", "external_id", "error_type", "error_message", "url")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
BATCH = 5000  # runs per query: few round trips, and a batch's rows are all that is held


def batches(f, batch: int | None = None) -> Iterator[list[tuple]]:
    """The runs `f` (a HistoryFilter) matches, newest first (start time, then id), a batch
    at a time: id, workflow id, status, started_at, finished_at (microseconds),
    duration_ms, step_count, external_id, error_type, error_message."""
    terms = f.conditions()
    columns = (Execution.id, Execution.workflow, Execution.status, Execution.started_at,
               Execution.finished_at, Execution.duration_ms, Execution.step_count,
               Execution.external_id, Execution.error_type, Execution.error_message)
    batch = batch or BATCH
    after = None
    while True:
        query = Execution.select(*columns)
        if terms:
            query = query.where(*terms)
        if after is not None:
            query = query.where(peewee.Tuple(Execution.started_at, Execution.id)
                                < peewee.Tuple(*after))
        sql, params = (query.order_by(Execution.started_at.desc(), Execution.id.desc())
                       .limit(batch).sql())
        # Read as stored (times in microseconds): converting a million datetimes costs more
        # than the query.
        rows = query.model._meta.database.execute_sql(sql, params).fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = (rows[-1][3], rows[-1][0])


def export_lines(f, fmt: str, run_url: Callable[[int], str],
                 iso: Callable[[int | None], str | None],
                 mask: Callable[[str], str] | None = None) -> Iterator[str]:
    """The export of `f` in `fmt` ("csv" or "ndjson"), a text chunk per batch of runs.
    `run_url(id)` is a run's page, `iso(micros)` writes a time, `mask` hides credentials in
    error messages (None: shown whole)."""
    names: dict[int, str] = {}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n") if fmt == "csv" else None
    if writer:
        writer.writerow(COLUMNS)
    for rows in batches(f):
        missing = {row[1] for row in rows} - names.keys()
        if missing:
            names.update(Workflow.select(Workflow.id, Workflow.name)
                         .where(Workflow.id.in_(sorted(missing))).tuples())
        for (run_id, workflow_id, status, started, finished, duration, steps, external_id,
             error_type, message) in rows:
            if mask and message:
                message = mask(message)
            values = (run_id, names[workflow_id], status, iso(started), iso(finished),
                      duration, steps, external_id, error_type, message, run_url(run_id))
            if writer:
                writer.writerow(values)
            else:
                out.write(json.dumps(dict(zip(COLUMNS, values)), ensure_ascii=False))
                out.write("\n")
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if writer and out.tell():
        yield out.getvalue()
