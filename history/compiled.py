"""The history's page queries, compiled once per shape: the SQL text of a filter's query
(which parts it has, not their values) is kept per process, and each page binds its values
to it. Building the SQL with peewee costs more than the database's work for one page."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import peewee

from models.db import database
from models.times import from_micros
from models.executions import Execution, Workflow

from .cursors import Cursor
from .parsing import Bound
from .search import Search, matching_ids, reads_keys


@dataclass(frozen=True)
class _Slot:
    """Where a value goes in a compiled query's parameters."""

    name: object


class Row(NamedTuple):
    """One listed run: the narrow columns of `list_query` (times as stored, microseconds)."""

    id: int
    status: str
    started_micros: int
    finished_micros: int | None
    duration_ms: int | None
    step_count: int
    error_message: str | None
    maintenance: bool  # started inside a maintenance window (0/1 on SQLite)
    workflow_name: str

    @property
    def started_at(self) -> datetime:
        """When the run started (aware, UTC)."""
        return from_micros(self.started_micros)

    @property
    def finished_at(self) -> datetime | None:
        """When the run finished (aware, UTC), if it has."""
        return None if self.finished_micros is None else from_micros(self.finished_micros)


SENTINEL = 7_000_000_000_000_000_000  # far beyond any id or time: marks a slot while compiling
_COMPILED: dict[tuple, tuple[str, list]] = {}  # SQL text per query shape, for this process


def list_query() -> peewee.ModelSelect:
    """The narrow columns a history row shows, with the workflow's name; never payloads."""
    return (Execution.select(Execution.id, Execution.status, Execution.started_at,
                             Execution.finished_at, Execution.duration_ms, Execution.step_count,
                             Execution.error_message, Execution.maintenance,
                             Workflow.name.alias("workflow_name"))
            .join(Workflow).objects())


def fetch(f, phase: int | None, workflow_ids: list[int] | None,
          statuses: list[str] | None, small: bool) -> list[Row]:
    """`f.apply(list_query(), ...)`'s rows (`f` a HistoryFilter), from SQL text built once
    per query shape."""
    cursor = f.cursor if (f.cursor and (phase is None or f.cursor.phase == phase)) \
        else None
    sql, params = _bound(
        ("page", f.sort, phase, small), f, workflow_ids, statuses, cursor, f.limit,
        lambda shaped, ids, wanted: shaped.apply(list_query(), phase, ids, wanted, small))
    return [Row(*row) for row in database.execute_sql(sql, params).fetchall()]


def fetch_found(f, workflow_ids: list[int] | None, limit: int) -> list[Row]:
    """Up to `limit` + 1 of the runs the search `f` finds, its own status aside, in no
    order."""
    def build(shaped, ids, wanted):
        query = list_query()
        if reads_keys(shaped.search):  # the first limit + 1 matches, read lazily
            return query.where(Execution.id.in_(
                matching_ids(shaped, ids).limit(shaped.limit + 1)))
        return (query.where(*shaped.conditions(with_status=False, workflow_ids=ids))
                .limit(shaped.limit + 1))

    sql, params = _bound(("found", reads_keys(f.search)), f, workflow_ids, None, None, limit,
                         build)
    return [Row(*row) for row in database.execute_sql(sql, params).fetchall()]


def _bound(kind: tuple, f, workflow_ids: list[int] | None, statuses: list[str] | None,
           cursor: Cursor | None, limit: int, build) -> tuple[str, list]:
    """The SQL text of `build(shaped filter, workflow id slots, status slots)` for this
    shape of query, built once, and its parameters: `f`'s values, and `limit` + 1."""
    search = f.search
    shape = (type(database.obj), *kind,
             None if workflow_ids is None else len(workflow_ids),
             len(statuses or f.statuses), f.start is not None, f.end is not None,
             cursor is not None and cursor.value is None, cursor is not None,
             len(f.external_ids), search and search.mode, search and search.run_id is not None,
             search and search.walk)
    compiled = _COMPILED.get(shape)
    if compiled is None:
        compiled = _COMPILED[shape] = _compile(f, workflow_ids, statuses, cursor, build)
    sql, slots = compiled
    values = {"limit": limit + 1,
              "start": f.start.micros if f.start else None,
              "end": f.end.micros if f.end else None,
              "cursor_value": cursor.value if cursor else None,
              "cursor_id": cursor.id if cursor else None}
    for index, workflow_id in enumerate(workflow_ids or ()):
        values[("workflow", index)] = workflow_id
    for index, status in enumerate(statuses or f.statuses):
        values[("status", index)] = status
    for index, external_id in enumerate(f.external_ids):
        values[("external_id", index)] = external_id
    if search:
        values.update(q=search.text, q_id=search.run_id, q_pattern=search.pattern)
    return sql, [values[slot.name] if isinstance(slot, _Slot) else slot for slot in slots]


def _compile(f, workflow_ids: list[int] | None, statuses: list[str] | None,
             cursor: Cursor | None, build) -> tuple[str, list]:
    """The SQL of `build` for this shape, with each value replaced by a named slot."""
    slots: dict[object, _Slot] = {}

    def slot(name: object, kind: type = int) -> object:
        marker = (SENTINEL + len(slots)) if kind is int else f"\x00slot{len(slots)}"
        slots[marker] = _Slot(name)
        return marker

    shaped = replace(
        f,
        start=Bound("", slot("start"), False) if f.start else None,
        end=Bound("", slot("end"), False) if f.end else None,
        cursor=Cursor(cursor.phase, None if cursor.value is None else slot("cursor_value"),
                      slot("cursor_id")) if cursor else None,
        statuses=tuple(slot(("status", i), str) for i in range(len(f.statuses))),
        external_ids=tuple(slot(("external_id", i), str) for i in range(len(f.external_ids))))
    shaped = replace(shaped, limit=slot("limit") - 1)
    ids = None if workflow_ids is None else [slot(("workflow", i))
                                             for i in range(len(workflow_ids))]
    wanted = None if not statuses else [slot(("status", i), str)
                                        for i in range(len(statuses))]
    if wanted:  # the same slots whether given here or taken from the filter
        shaped = replace(shaped, statuses=tuple(wanted))
    if f.search:  # the values `q` stands for, each in a slot of its own
        shaped.__dict__["search"] = Search(
            slot("q", str), None if f.search.run_id is None else slot("q_id"),
            slot("q_pattern", str), f.search.mode, f.search.walk)
    sql, params = build(shaped, ids, wanted).sql()
    return sql, [slots.get(param, param) if isinstance(param, (int, str)) else param
                 for param in params]
