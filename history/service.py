"""One history query for the page and the API: rows, next cursor, counts and bars.

`query_history(f, now)` is a plain function (no Flask): the page shows all of its
answer, the API the rows, cursor and counts. Both get the same exact counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from models.executions import STATUSES

from .filters import Cursor, HistoryFilter, list_query
from .rollups import bar_edges, count_bars, started_extent, total


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
    ids = f.workflow_ids()
    window = None
    if ids != []:
        earliest, latest = started_extent(ids)
        window = f.time_window(earliest, latest, now)
    edges, width = bar_edges(*window, f.zone) if window and with_bars else ([], 0)
    bars = count_bars(ids, edges if with_bars else list(window or ()))
    counts = total(bars)
    matching = sum(counts[status] for status in f.statuses or STATUSES)
    rows, next_cursor = f.page(list_query(), matching)
    return HistoryResult(rows, next_cursor, counts, matching, edges, width,
                         bars if with_bars else [])
