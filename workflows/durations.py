"""Each workflow's duration counts: finished runs per duration bin (models.duration_bin),
hour and day, kept by the write path and retention, read by the overview's percentiles and a
workflow's days."""
from __future__ import annotations

from collections import defaultdict

from history.rollups import GRAINS
from models.bulk import delete_emptied, upsert_rows
from models.executions import FINISHED_STATUSES, Execution
from models.ingest import RunState
from models.times import to_micros

from .models import DurationRollup, duration_bin


def _duration_keys(state: RunState):
    if state.status not in FINISHED_STATUSES or state.duration_ms is None:
        return
    index = duration_bin(state.duration_ms)
    for grain, width in GRAINS.items():
        yield grain, state.workflow_id, state.started_at - state.started_at % width, index


def count_durations(changes: list[tuple[RunState | None, RunState | None]]) -> None:
    """Move the duration counts of the finished runs in `changes` (before, after; None: no
    run), in the caller's transaction. Counts that reach zero go."""
    deltas: dict[tuple, int] = defaultdict(int)
    for before, after in changes:
        if before is not None:
            for key in _duration_keys(before):
                deltas[key] -= 1
        if after is not None:
            for key in _duration_keys(after):
                deltas[key] += 1
    rows = [(*key, n) for key, n in sorted(deltas.items()) if n]
    table, key = DurationRollup._meta.table_name, ("grain", "workflow_id", "bucket", "bin")
    upsert_rows(table, (*key, "n"), key, rows, add=("n",))
    delete_emptied(table, key, [row[:4] for row in rows if row[4] < 0])  # counts gone to 0


def count_all_durations(batch: int = 5000) -> None:
    """Count every finished run's duration (once, for runs stored before the counts)."""
    from models.db import write_transaction

    E = Execution
    after = 0
    while True:
        rows = list(E.select(E.id, E.workflow, E.status, E.started_at, E.duration_ms)
                    .where(E.id > after, E.status.in_(FINISHED_STATUSES),
                           E.duration_ms.is_null(False))
                    .order_by(E.id).limit(batch).tuples())
        if not rows:
            return
        after = rows[-1][0]
        with write_transaction():
            count_durations([(None, RunState(i, w, s, _micros(st), None, d, None))
                             for i, w, s, st, d in rows])


def _micros(value) -> int:
    return value if isinstance(value, int) else to_micros(value)
