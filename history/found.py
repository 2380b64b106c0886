"""A search that finds few runs, answered by one query: every run it finds (its own status
aside) is read whole, and its counts, first and last start, bars and page are worked out
from those rows.

A search by id or external id finds a run or a few: reading them costs less than counting
them and then reading the page apart. One that finds more than `FEW` (an error text many
runs hold) is counted by the database and its page read by the page query
(history/service.py), as `matches` answers None; a search that found more than `FEW` the
last time is counted at once, without the query that would find out again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from models.executions import STATUSES

from .compiled import Row, fetch_found
from .cursors import Cursor
from .pages import page_of_rows
from .search import MINUTE, add_to_bar

FEW = 200  # runs a search may find and be answered from its rows
MANY_KEPT = 1024  # searches remembered to have found more than FEW (a bound on memory)
_MANY: dict[Hashable, None] = {}


@dataclass(frozen=True)
class Matches:
    """Every run a search finds, its own status aside, in no order."""

    rows: list[Row]

    def summary(self) -> tuple[dict[str, int], int | None, int | None]:
        """Runs per status, and the first and last start among them (as `found_counts`)."""
        counts = dict.fromkeys(STATUSES, 0)
        starts = []
        for row in self.rows:
            if row.status in counts:
                counts[row.status] += 1
                starts.append(row.started_micros)
        return counts, min(starts, default=None), max(starts, default=None)

    def bars(self, edges: list[int]) -> list[dict[str, int]]:
        """Runs per status in each bar [edges[k], edges[k+1]), counted by the minute they
        started in, as the database counts them (`found_bars`)."""
        bars = [dict.fromkeys(STATUSES, 0) for _ in edges[1:]]
        if bars:
            for row in self.rows:
                started = row.started_micros
                if edges[0] <= started < edges[-1]:
                    # SQL divides whole numbers toward zero, before 1970 too.
                    minute = started // MINUTE if started >= 0 else -(-started // MINUTE)
                    add_to_bar(bars, edges, minute * MINUTE, row.status, 1)
        return bars

    def page(self, f) -> tuple[list[Row], Cursor | None] | None:
        """The page the filter `f` (a HistoryFilter) shows of these runs and the next page's
        cursor, as `f.page()` reads them; None for a cursor that no page of `f` gives."""
        return page_of_rows(f, self.rows)


def matches(f, workflow_ids: list[int] | None, key: Hashable) -> Matches | None:
    """Every run the search `f` finds, its own status aside; None for more than FEW, and
    without reading any when the same search (`key`) found more than FEW the last time
    they were counted (a guess about how many it finds now: either way the answer is
    exact)."""
    if key in _MANY:
        return None
    rows = fetch_found(f, workflow_ids, FEW)
    if len(rows) <= FEW:
        return Matches(rows)
    if len(_MANY) >= MANY_KEPT:
        _MANY.clear()
    _MANY[key] = None
    return None


def counted(key: Hashable, total: int) -> None:
    """The database counted `total` runs for the search `key` (after `matches` said None)."""
    if total <= FEW:
        _MANY.pop(key, None)
