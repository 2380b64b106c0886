"""The tables of the workflows overview: one summary row per workflow, and run durations
counted per hour and day in logarithmic bins (for percentiles without reading runs)."""
from __future__ import annotations

import functools
import math

import peewee

from models.base import BaseModel, UTCMicros
from models.executions import Workflow
from history.rollups import days_index

STATES = ("late", "failing", "new", "ok")
# The overview lists late workflows first, then failing ones, then the rest by name.
RANKS = {"late": 0, "failing": 1, "new": 2, "ok": 2}


class WorkflowSummary(BaseModel):
    """What the overview shows of a workflow, kept current by every write of its runs (and,
    for `late` and timeouts, by the scan), so a page of the overview reads a page of rows.

    Positions of runs are (started_at, id), the order streaks are counted in.
    """

    workflow = peewee.ForeignKeyField(Workflow, primary_key=True, on_delete="CASCADE")
    name = peewee.CharField(max_length=200)  # the workflow's name, for ordering by it here
    state = peewee.CharField(max_length=10, default="new")
    rank = peewee.IntegerField(default=RANKS["new"])
    streak = peewee.IntegerField(default=0)  # failures in a row at the end of finished runs
    finished_started_at = UTCMicros(null=True)  # the last finished run's position and status
    finished_id = peewee.BigIntegerField(null=True)
    finished_status = peewee.CharField(max_length=10, null=True)
    last_started_at = UTCMicros(null=True)  # the latest started_at of any run
    open_started_at = UTCMicros(null=True)  # the earliest started_at of a pending/running run
    timeout_at = UTCMicros(null=True)  # when that run exceeds the maximum duration
    expected_at = UTCMicros(null=True)  # the next run the schedule expects
    due_at = UTCMicros(null=True)  # expected_at + grace: late after it
    late = peewee.BooleanField(default=False)  # a late episode is open (set by the scan)
    late_expected_at = UTCMicros(null=True)  # the expected time the open episode missed
    late_episode = peewee.IntegerField(default=0)  # late episodes so far (a notice key)
    # Failing episodes so far: counted up when a streak begins (an acknowledgement's key).
    failing_episode = peewee.IntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])
    # The last RECENT runs by (started_at, id), newest first, as "started:id:s;…" (s: the
    # status's first letter): the overview's strip of marks, read with the row.
    recent = peewee.TextField(default="")

    class Meta:
        indexes = (
            (("rank", "name"), False),    # the overview's order, keyset-paged
            (("state", "name"), False),   # one state, by name
            (("due_at",), False),         # the scan: schedules now overdue
            (("timeout_at",), False),     # the scan: runs now past their maximum duration
            (("late", "due_at"), False),  # the scan: late episodes that have ended
        )


class _Counts(BaseModel):
    """Counts of a workflow's runs that started in one hour or UTC day (the grains of
    history.rollups), one row per value of a key column that the table adds."""

    grain = peewee.CharField(max_length=1)
    workflow_id = peewee.IntegerField()
    bucket = peewee.BigIntegerField()
    n = peewee.BigIntegerField(default=0)


def _counted_by(key: str) -> type:
    """The Meta of a `_Counts` table keyed by `key` too; its index holds the same columns
    with `n`, so that sums over a period (or a page of workflows) read the index alone."""
    columns = ("grain", "workflow_id", "bucket", key)
    return type("Meta", (), {"primary_key": peewee.CompositeKey(*columns),
                             "indexes": (((*columns, "n"), False),)})


class DurationRollup(_Counts):
    """How many finished runs took a duration in one logarithmic bin (bins are 2^(1/8)
    wide: percentiles within 4.5 %)."""

    bin = peewee.IntegerField()
    Meta = _counted_by("bin")


DurationRollup.add_index(days_index(DurationRollup, "bin"))


class ErrorRollup(_Counts):
    """How many runs failed with an error of one group (its fingerprint; NO_ERROR for
    failures reported without an error): error groups are counted from these, whatever
    the number of failures."""

    fingerprint = peewee.BigIntegerField()
    Meta = _counted_by("fingerprint")


BINS_PER_DOUBLING = 8


def duration_bin(duration_ms: int) -> int:
    """The bin of a duration: 0 for 0 ms (or less), else 1 + floor(8 * log2(ms))."""
    if duration_ms <= 0:
        return 0
    return 1 + int(BINS_PER_DOUBLING * math.log2(duration_ms))


def bin_value(index: int) -> int:
    """The duration a bin stands for: the geometric middle of its bounds, in ms."""
    if index <= 0:
        return 0
    return round(2 ** ((index - 1 + 0.5) / BINS_PER_DOUBLING))


RECENT = 20
_LETTERS = {"pending": "p", "running": "r", "success": "s", "failure": "f"}
_STATUSES = {letter: status for status, letter in _LETTERS.items()}


def parse_recent(text: str | None) -> list[tuple[int, int, str]]:
    """A summary's recent runs as (started_at micros, id, status), newest first."""
    return list(_parsed(text)) if text else []


@functools.lru_cache(maxsize=20_000)  # a page of the overview parses the same texts again
def _parsed(text: str) -> tuple[tuple[int, int, str], ...]:
    out = []
    for part in text.split(";"):
        started, run_id, letter = part.split(":")
        out.append((int(started), int(run_id), _STATUSES[letter]))
    return tuple(out)


def format_recent(runs: list[tuple[int, int, str]]) -> str:
    """The stored form of `parse_recent`'s list."""
    return ";".join(f"{started}:{run_id}:{_LETTERS[status]}" for started, run_id, status in runs)


MODELS = [WorkflowSummary, DurationRollup, ErrorRollup]
