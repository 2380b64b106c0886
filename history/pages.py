"""One page of a history filter and the cursor of the next: read from the database (several
workflows or statuses read apart and merged; duration orders in two phases, the runs
without a duration after the rest), or picked from rows already in hand, in the same order.
"""
from __future__ import annotations

from dataclasses import replace

from models.executions import STATUSES

from .compiled import Row, fetch
from .cursors import Cursor
from .parameters import MAX_PARTS, SORT_FOUND_UP_TO


def read_page(f, matching: int | None = None) -> tuple[list[Row], Cursor | None]:
    """One page of `f` (a HistoryFilter): rows (`list_query`'s columns) and the next page's
    cursor (None at the end).

    `matching`, the number of runs the filter matches when known (from the rollups), lets a
    small set in duration order be sorted rather than found by walking an index.
    """
    if f.sort.endswith("started_at"):
        rows = _merged(f, None, False)
    else:
        small = matching is not None and matching <= SORT_FOUND_UP_TO
        phase = f.cursor.phase if f.cursor else 0
        rows = _merged(f, phase, small)
        if phase == 0 and len(rows) <= f.limit:
            rows += _merged(replace(f, limit=f.limit - len(rows)), 1, small)
    if len(rows) <= f.limit:
        return rows, None
    return rows[:f.limit], cursor_after(f, rows[f.limit - 1])


def _merged(f, phase: int | None, small: bool) -> list[Row]:
    """Rows of one phase; several workflows or statuses are read apart and merged, so each
    part walks its own index in order instead of sorting everything that matches."""
    ids = f.workflow_ids()
    by_workflow = [[i] for i in ids] if ids and len(ids) > 1 else [ids]
    statuses = list(f.statuses)
    by_status = ([[s] for s in statuses] if len(statuses) > 1
                 and f.sort.endswith("started_at") else [statuses])
    if len(by_workflow) * len(by_status) > MAX_PARTS:
        by_workflow, by_status = [ids], [statuses]
    parts = [fetch(f, phase, w, st or None, small) for w in by_workflow for st in by_status]
    if len(parts) == 1:
        return parts[0]
    rows = [row for part in parts for row in part]
    if f.sort.endswith("started_at"):
        rows.sort(key=lambda row: (row.started_micros, row.id), reverse=f.sort[0] == "-")
    else:
        rows.sort(key=lambda row: (row.duration_ms is not None, row.duration_ms or 0, row.id),
                  reverse=f.sort[0] == "-")
    return rows[:f.limit + 1]


def cursor_after(f, row) -> Cursor:
    """The cursor that continues after `row` in `f`'s order."""
    if f.sort.endswith("started_at"):
        return Cursor(0, row.started_micros, row.id)
    if row.duration_ms is None:
        return Cursor(1, None, row.id)
    return Cursor(0, row.duration_ms, row.id)


def page_of_rows(f, rows: list[Row]) -> tuple[list[Row], Cursor | None] | None:
    """The page `f` shows of `rows` (every run it finds, its own status aside, in no order)
    and the next page's cursor, as `read_page` reads them; None for a cursor that no page
    of `f` gives."""
    place = _place(f)
    after = _cursor_place(f, f.cursor) if f.cursor else None
    if f.cursor and after is None:
        return None
    wanted = set(f.statuses or STATUSES)
    listed = sorted((row for row in rows if row.status in wanted
                     and (after is None or place(row) > after)), key=place)
    if len(listed) <= f.limit:
        return listed, None
    return listed[:f.limit], cursor_after(f, listed[f.limit - 1])


def _place(f):
    """A row's place in the order `f` lists runs in, as its pages read them: by start
    time; or by duration, then the runs without one."""
    sign = -1 if f.sort.startswith("-") else 1
    if f.sort.endswith("started_at"):
        return lambda row: (sign * row.started_micros, sign * row.id)
    return lambda row: ((0, sign * row.duration_ms, sign * row.id)
                        if row.duration_ms is not None else (1, 0, sign * row.id))


def _cursor_place(f, cursor: Cursor) -> tuple | None:
    """The place of the row a cursor continues after (None: not one a page of `f` gives)."""
    sign = -1 if f.sort.startswith("-") else 1
    if f.sort.endswith("started_at"):
        return None if cursor.value is None else (sign * cursor.value, sign * cursor.id)
    if cursor.phase == 1:
        return (1, 0, sign * cursor.id)
    return None if cursor.value is None else (0, sign * cursor.value, sign * cursor.id)
