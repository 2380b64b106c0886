"""The history taken out: every run a filter matches, newest first, as CSV or NDJSON, read
in keyset batches so that memory stays flat however many runs there are.

`export_lines(f, ...)` is a plain generator (no Flask): the view streams what it yields.
The database writes each CSV line itself (times, quoting, the run's address): the app
passes the text on. (NDJSON, and CSV with error messages masked, are written here.)
"""
from __future__ import annotations

import csv
import io
import json
from typing import Callable, Iterator

import peewee

from models.db import database, is_sqlite
from models.executions import Execution, Workflow

COLUMNS = ("id", "workflow", "status", "started_at", "finished_at", "duration_ms",
           "step_count", "external_id", "error_type", "error_message", "url")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
BATCH = 5000  # runs per query: few round trips, and a batch's rows are all that is held
STORED = (Execution.id, Execution.workflow, Execution.status, Execution.started_at,
          Execution.finished_at, Execution.duration_ms, Execution.step_count,
          Execution.external_id, Execution.error_type, Execution.error_message)


def batches(f, columns: tuple[peewee.Node, ...] = STORED, join: bool = False,
            batch: int | None = None) -> Iterator[list[tuple]]:
    """The runs `f` (a HistoryFilter) matches, newest first (start time, then id), a batch
    at a time, as `columns` followed by started_at and id (`join`: with their workflow's
    row, for its name). By default: id, workflow id, status, started_at, finished_at
    (microseconds), duration_ms, step_count, external_id, error_type, error_message."""
    terms = f.conditions()
    batch = batch or BATCH
    after = None
    while True:
        query = Execution.select(*columns, Execution.started_at, Execution.id)
        if join:
            query = query.join(Workflow)
        if terms:
            query = query.where(*terms)
        if after is not None:
            query = query.where(peewee.Tuple(Execution.started_at, Execution.id)
                                < peewee.Tuple(*after))
        sql, params = (query.order_by(Execution.started_at.desc(), Execution.id.desc())
                       .limit(batch).sql())
        # Read as stored (times in microseconds): converting a million datetimes costs more
        # than the query.
        rows = database.execute_sql(sql, params).fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        after = rows[-1][-2:]


def export_lines(f, fmt: str, url: tuple[str, str],
                 iso: Callable[[int | None], str | None],
                 mask: Callable[[str], str] | None = None) -> Iterator[str]:
    """The export of `f` in `fmt` ("csv" or "ndjson"), a text chunk per batch of runs.
    `url` is a run's page around its id (before, after), `iso(micros)` writes a time,
    `mask` hides credentials in error messages (None: shown whole)."""
    if fmt == "csv" and mask is None:
        yield _header()
        for rows in batches(f, (_csv_line(url),), join=True):
            yield "".join([row[0] for row in rows])
        return
    prefix, suffix = url
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
        values = ((run_id, names[workflow_id], status, iso(started), iso(finished), duration,
                   steps, external_id, error_type,
                   mask(message) if mask and message else message,
                   f"{prefix}{run_id}{suffix}")
                  for (run_id, workflow_id, status, started, finished, duration, steps,
                       external_id, error_type, message, _, _) in rows)
        if writer:
            writer.writerows(values)
        else:
            out.writelines(json.dumps(dict(zip(COLUMNS, line)), ensure_ascii=False) + "\n"
                           for line in values)
        yield out.getvalue()
        out.seek(0)
        out.truncate()


def _header() -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(COLUMNS)
    return out.getvalue()


# --- A CSV line written by the database ------------------------------------------------------

def _csv_line(url: tuple[str, str]) -> peewee.Node:
    """A run's CSV line as the `csv` module writes it: fields that hold a comma, a quote or
    a line break quoted, their quotes doubled (RFC 4180); nothing for NULL; CRLF at the
    end. Written by the database, the text costs the app a string per run."""
    e = Execution
    fields = [_text(e.id), _quoted(Workflow.name), e.status, _iso(e.started_at),
              _iso(e.finished_at), _text(e.duration_ms), _text(e.step_count),
              _quoted(e.external_id), _quoted(e.error_type), _quoted(e.error_message),
              peewee.NodeList((peewee.Value(url[0]), _text(e.id), peewee.Value(url[1])),
                              " || ")]
    parts = []
    for field in fields:
        parts += [peewee.fn.COALESCE(field, ""), peewee.Value(",")]
    parts[-1] = peewee.Value("\r\n")
    return peewee.NodeList(parts, " || ")


def _text(number: peewee.Node) -> peewee.Node:
    return peewee.Cast(number, "TEXT")


def _quoted(text: peewee.Node) -> peewee.Node:
    """`text` as one CSV field: quoted if it holds a quote, a comma, CR or LF."""
    find = "instr" if is_sqlite() else "strpos"
    found = peewee.NodeList([peewee.Function(find, (text, peewee.Value(c)))
                             for c in '",\r\n'], " + ")
    return peewee.Case(None, [(found > 0, peewee.NodeList((
        peewee.Value('"'), peewee.fn.REPLACE(text, peewee.Value('"'), peewee.Value('""')),
        peewee.Value('"')), " || "))], text)


def _iso(micros: peewee.Node) -> peewee.Node:
    """A stored time (NULL stays NULL) as `views.formatting.iso_micros` writes it: UTC, a
    Z, the microseconds only when there are some."""
    # Whole seconds and the microseconds counted up from them (before 1970 too), apart:
    # each exact as the databases' floating-point seconds and intervals take them.
    fraction = _modulo(_modulo(micros) + 1_000_000)
    seconds = (micros - fraction) / 1_000_000
    whole = fraction == 0
    if is_sqlite():
        second = peewee.fn.strftime("%Y-%m-%dT%H:%M:%S", seconds, "unixepoch")
        return peewee.NodeList((second, peewee.Case(None, [(whole, "Z")], peewee.NodeList(
            (peewee.Value("."), peewee.fn.printf("%06d", fraction), peewee.Value("Z")),
            " || "))), " || ")
    moment = peewee.NodeList((
        peewee.fn.to_timestamp(seconds), peewee.SQL("AT TIME ZONE 'UTC' +"), fraction,
        peewee.SQL("* interval '1 microsecond'")))
    return peewee.fn.to_char(moment, peewee.Case(None, [(whole, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')],
                                                 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))


def _modulo(number: peewee.Node) -> peewee.Node:
    """`number` modulo a million, the sign of `number`'s (peewee's `%` stands for LIKE)."""
    if is_sqlite():
        return peewee.NodeList((number, peewee.SQL("% 1000000")), parens=True)
    return peewee.fn.mod(number, 1_000_000)
