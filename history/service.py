"""One history query for the page and the API: rows, next cursor, counts and bars.

`query_history(f, now)` is a plain function (no Flask): the page shows all of its
answer, the API the rows, cursor and counts. Both get the same exact counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.executions import STATUSES, Workflow

from . import changes
from .changes import cache
from .filters import Cursor, HistoryFilter
from .rollups import DAY, bar_edges, count_bars, count_window, started_extent, total
from .found import counted, matches
from .search import DENSE, found_bars, found_counts


@dataclass(frozen=True)
class HistoryResult:
    """What one history query found."""

    rows: list  # Execution rows with `workflow_name`, one page in the filter's order
    next_cursor: Cursor | None  # where the next page starts; None on the last page
    counts: dict[str, int]  # runs per status for the filter without its own status
    matching: int  # runs the whole filter matches (its statuses included)
    edges: list[int] = field(default_factory=list)  # histogram bar edges, microseconds
    bar_width: int = 0  # nominal width of a bar, microseconds
    bars: list[dict[str, int]] = field(default_factory=list)  # runs per status per bar

    @property
    def total(self) -> int:
        """Runs matching the filter in any status."""
        return sum(self.counts.values())


def query_history(f: HistoryFilter, now: datetime, *, with_bars: bool = True) -> HistoryResult:
    """Run the filter: one page of rows, exact counts per status and, if asked, the bars."""
    version = changes.current()
    ids = _workflow_ids(version, f.workflows)
    start = f.start.micros if f.start else None
    end = f.end.micros + 1 if f.end else None  # exclusive
    edges: list[int] = []
    width, bars = 0, []
    if f.searches() and ids != ():
        return _query_found(f, version, ids, now, with_bars)
    if not with_bars:
        counts = cache.get(version, ("counts", ids, start, end),
                           lambda: _count(ids, start, end))
    elif ids == ():
        counts = dict.fromkeys(STATUSES, 0)
    else:
        window = f.time_window(*_extent(version, ids), now)
        if window:
            edges, width = bar_edges(*window, f.zone)
            # An open end reaches past the last run, so where exactly it lies does not
            # change the counts: leave it out of the key, or every request would miss.
            key = ("bars", ids, tuple(edges[:-1]), end)
            bars = cache.get(version, key, lambda: count_bars(_as_list(ids), edges))
        counts = total(bars) if bars else dict.fromkeys(STATUSES, 0)
    matching = sum(counts[status] for status in f.statuses or STATUSES)
    rows, next_cursor = f.knowing_workflow_ids(_as_list(ids)).page(matching)
    return HistoryResult(rows, next_cursor, counts, matching, edges, width, bars)


def _query_found(f: HistoryFilter, version: int | None, ids: tuple[int, ...] | None,
                 now: datetime, with_bars: bool) -> HistoryResult:
    """`query_history` of a search (`q`, `external_id`): what it finds is counted. Unless
    its counts are kept already, a search that finds few runs is answered from their rows
    (history/found.py); the database counts what one that finds more finds."""
    key = (ids, f.q, f.external_ids, f.start and f.start.micros, f.end and f.end.micros)
    listed = _as_list(ids)
    summary = cache.peek(version, ("found", *key))
    found = None
    if summary is None:
        found = matches(f, listed, key)
        if found is not None:
            summary = found.summary()
        else:
            summary = found_counts(f, listed)
            counted(key, sum(summary[0].values()))
        cache.put(version, ("found", *key), summary)
    counts, earliest, latest = summary
    edges: list[int] = []
    width, bars = 0, []
    if with_bars and earliest is not None:
        window = f.time_window(earliest, latest, now)
        if window:
            edges, width = bar_edges(*window, f.zone)
            bars = cache.get(version, ("found bars", *key, tuple(edges[:-1])),
                             lambda: found.bars(edges) if found
                             else found_bars(f, listed, edges))
    matching = sum(counts[status] for status in f.statuses or STATUSES)
    f = f.knowing_workflow_ids(listed)
    page = found.page(f) if found else None
    if page is None:
        if f.search and f.search.mode == "fts" and sum(counts.values()) > DENSE:
            f = f.walking()
        page = f.page(matching)
    rows, next_cursor = page
    return HistoryResult(rows, next_cursor, counts, matching, edges, width, bars)


def workflow_names(limit: int) -> list[str]:
    """Known workflow names in order, for suggestions (at most `limit`)."""
    return cache.get(changes.current(), ("names", limit), lambda: [
        name for (name,) in Workflow.select(Workflow.name).order_by(Workflow.name)
        .limit(limit).tuples()])


def _workflow_ids(version: int | None, names: tuple[str, ...]) -> tuple[int, ...] | None:
    if not names:
        return None
    # A workflow keeps its name and id for good: once every name is found, the ids are
    # kept past changes to the runs; a name not found yet may be created by the next report.
    return cache.lasting(("ids", names), lambda: cache.get(version, ("ids", names), lambda: tuple(
        row[0] for row in Workflow.select(Workflow.id).where(Workflow.name.in_(list(names)))
        .order_by(Workflow.id).tuples())), keep=lambda ids: len(ids) == len(set(names)))


def _as_list(ids: tuple[int, ...] | None) -> list[int] | None:
    return None if ids is None else list(ids)


def _extent(version: int | None, ids: tuple[int, ...] | None) -> tuple[int | None, int | None]:
    return cache.get(version, ("extent", ids), lambda: started_extent(_as_list(ids)))


# Bounds past any run's start (in microseconds, years 1 to 9999 lie within ±2.6e17), on whole
# days: an open end is counted from the days' rollups alone.
LATEST = 2**60 - 2**60 % DAY
EARLIEST = -LATEST


def _count(ids: tuple[int, ...] | None, start: int | None,
           end: int | None) -> dict[str, int]:
    """Runs per status that started in [start, end), either end open."""
    if ids == ():
        return dict.fromkeys(STATUSES, 0)
    # An open end reaches past every run: no need to find the first or last run first.
    start = EARLIEST if start is None else start
    end = LATEST if end is None else end
    if start >= end:
        return dict.fromkeys(STATUSES, 0)
    return count_window(_as_list(ids), start, end)
