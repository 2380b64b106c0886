"""Reading a workflow's streak: the failures in a row at the end of its finished runs (by
`started_at`), up to any position, and the runs after a position, from the indexes.

Runs that started inside a maintenance window are not read: they neither extend nor break a
streak. The (workflow, status, started_at, id) index still leads each query; the flag is
checked on the rows it finds (a maintenance run costs a row read; a streak, none more)."""
from __future__ import annotations

from dataclasses import dataclass

import peewee

from models.db import database
from models.times import to_micros
from models.executions import FINISHED_STATUSES, Execution

Position = tuple[int, int]  # (started_at in microseconds, id) of a run

ORIGIN: Position = (-2**62, 0)  # before every run


@dataclass(frozen=True)
class Streak:
    """The failures in a row at the end of a workflow's finished runs (by `started_at`)."""

    count: int
    first_failure_at: int | None
    last_failure_at: int | None  # of the last failure at all, also when the streak is 0
    last_failure_id: int | None
    last_error: str | None
    last_success: Position | None = None  # where the streak begins

    def newest(self) -> Position | None:
        """The newest finished run these facts were read up to (the last success or failure)."""
        failure = ((self.last_failure_at, self.last_failure_id)
                   if self.last_failure_id is not None else None)
        known = [p for p in (self.last_success, failure) if p is not None]
        return max(known) if known else None


def as_micros(value) -> int | None:
    """A stored time as microseconds, whether the driver gave an int or a datetime."""
    return None if value is None else (value if isinstance(value, int) else to_micros(value))


def current_streak(workflow_id: int, upto: Position | None = None) -> Streak:
    """The streak of a workflow, from its last success on (pending/running runs don't count),
    among the runs up to and including position `upto` (default: all of them).

    Three probes of the (workflow, status, started_at, id) index, written by hand: a write
    of runs that finished behind a workflow's last finished run recounts it, and peewee's
    generation of these queries costs more than the database's work on them.
    """
    param, table = database.param, Execution._meta.table_name
    where = f'"workflow_id" = {param} AND "status" = {param} AND "maintenance" = {param}'
    if upto is not None:
        where += f' AND ("started_at", "id") <= ({param}, {param})'
    bound = list(upto) if upto is not None else []
    newest = f'WHERE {where} ORDER BY "started_at" DESC, "id" DESC LIMIT 1'
    last_success = database.execute_sql(
        f'SELECT "started_at", "id" FROM "{table}" {newest}',
        [workflow_id, "success", False, *bound]).fetchone()
    last_failure = database.execute_sql(
        f'SELECT "id", "started_at", "error_message" FROM "{table}" {newest}',
        [workflow_id, "failure", False, *bound]).fetchone()
    anchor = (as_micros(last_success[0]), last_success[1]) if last_success else None
    if last_failure is None:
        return Streak(0, None, None, None, None, anchor)
    failure_id, failure_at, error = last_failure[0], as_micros(last_failure[1]), last_failure[2]
    if anchor is not None and (failure_at, failure_id) < anchor:
        return Streak(0, None, failure_at, failure_id, error, anchor)
    sql = f'SELECT COUNT("id"), MIN("started_at") FROM "{table}" WHERE {where}'
    params = [workflow_id, "failure", False, *bound]
    if anchor is not None:
        sql += f' AND ("started_at", "id") > ({param}, {param})'
        params.extend(anchor)
    count, first = database.execute_sql(sql, params).fetchone()
    return Streak(count, as_micros(first), failure_at, failure_id, error, anchor)


def closing_success(workflow_id: int, at: Position) -> Position | None:
    """The first success at or after position `at`: the run that ends the streak there."""
    param, table = database.param, Execution._meta.table_name
    row = database.execute_sql(
        f'SELECT "started_at", "id" FROM "{table}" WHERE "workflow_id" = {param} AND '
        f'"status" = {param} AND "maintenance" = {param} AND ("started_at", "id") >= '
        f'({param}, {param}) ORDER BY "started_at", "id" LIMIT 1',
        [workflow_id, "success", False, *at]).fetchone()
    return (as_micros(row[0]), row[1]) if row else None


def closed_streak(workflow_id: int, end: Position) -> Streak:
    """The streak that the success at position `end` ended (count 0: none)."""
    return current_streak(workflow_id, (end[0], end[1] - 1))  # ids are whole: just before it


def finished_after(workflow_id: int, after: Position, limit: int) -> list[tuple]:
    """The next finished runs after `after`, oldest first: (started_at, id, status, error)."""
    E = Execution
    return [(as_micros(started), run_id, status, error) for started, run_id, status, error in
            E.select(E.started_at, E.id, E.status, E.error_message)
            .where(E.workflow == workflow_id, E.status.in_(FINISHED_STATUSES),
                   E.maintenance == False,  # noqa: E712 (SQL)
                   peewee.Tuple(E.started_at, E.id) > peewee.Tuple(*after))
            .order_by(E.started_at, E.id).limit(limit).tuples()]
