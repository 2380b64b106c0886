"""Reading workflows: the overview's pages, the figures of each row and a workflow's days
(its error groups: workflows.errors). Everything is read from summaries, rollups and index
ranges."""
from __future__ import annotations

import base64
import binascii
import functools
import json
from bisect import bisect_right
from collections import Counter, defaultdict, namedtuple
from dataclasses import dataclass
from datetime import datetime, timedelta

import peewee

from models.bulk import placeholders
from models.db import database, is_sqlite
from models.times import from_micros, to_micros
from models.executions import FINISHED_STATUSES, STATUSES, Execution, Workflow
from models.inputs import whole_number
from history import changes
from history.changes import cache
from history.rollups import DAY, GRAINS, HOUR, RunRollup, _merged, _split, count_bars

from .models import (RANKS, STATES, DurationRollup, WorkflowSummary, bin_value, duration_bin,
                     parse_recent)

S = WorkflowSummary
DEFAULT_LIMIT = 100  # the API's page size
PAGE_LIMIT = 50  # the page's: a screenful, and half the markup
MAX_LIMIT = 500
MAX_QUERY = 200


class WorkflowQueryError(ValueError):
    """A bad overview parameter: `field` names it."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class OverviewQuery:
    """A validated overview query: name part, states, page size and cursor."""

    q: str = ""
    states: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: tuple[int, str] | None = None
    default_limit: int = DEFAULT_LIMIT

    @classmethod
    def from_args(cls, args, default_limit: int = DEFAULT_LIMIT) -> "OverviewQuery":
        q = (args.get("q") or "").strip()
        if len(q) > MAX_QUERY or "\x00" in q:
            raise WorkflowQueryError(f"q: at most {MAX_QUERY} characters, no NUL", "q")
        states: list[str] = []
        for value in args.getlist("state"):
            for part in value.split(","):
                part = part.strip()
                if not part:
                    continue
                if part not in STATES:
                    raise WorkflowQueryError(f"state: must be one of {', '.join(STATES)}",
                                             "state")
                if part not in states:
                    states.append(part)
        raw_limit = args.get("limit") or None
        limit = default_limit
        if raw_limit is not None:
            limit = whole_number(raw_limit, 1, MAX_LIMIT)
            if limit is None:
                raise WorkflowQueryError(f"limit: must be a whole number from 1 to {MAX_LIMIT}",
                                         "limit")
        raw_cursor = args.get("cursor") or None
        cursor = decode_cursor(raw_cursor) if raw_cursor else None
        return cls(q, tuple(s for s in STATES if s in states), limit, cursor, default_limit)

    def to_args(self, **changes) -> list[tuple[str, str]]:
        """The canonical query arguments (defaults left out); a change other than `cursor`
        starts from page one."""
        q, states = changes.get("q", self.q), changes.get("states", self.states)
        limit = changes.get("limit", self.limit)
        cursor = changes.get("cursor", self.cursor if set(changes) <= {"cursor"} else None)
        args = [("q", q)] if q else []
        args += [("state", s) for s in states]
        if limit != self.default_limit:
            args.append(("limit", str(limit)))
        if cursor:
            args.append(("cursor", encode_cursor(cursor)))
        return args


def encode_cursor(cursor: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(cursor)).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[int, str]:
    try:
        if len(text) > 2000:
            raise ValueError(text)
        rank, name = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if (type(rank) is not int or rank not in RANKS.values() or not isinstance(name, str)
                or len(name) > 200 or "\x00" in name):
            raise ValueError(text)
        name.encode()  # a lone surrogate ("\ud800" in the JSON) is not text: a ValueError
        return rank, name
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise WorkflowQueryError("cursor: not a cursor this list gave out", "cursor") from None


_SUMMARY = ("workflow_id", "name", "state", "rank", "streak", "expected_at", "late",
            "late_expected_at", "recent")
_SETTINGS = ("schedule", "timezone", "grace_seconds", "max_duration_seconds", "description",
             "muted_until")
SummaryRow = namedtuple("SummaryRow", _SUMMARY + _SETTINGS)
_TIMES = [SummaryRow._fields.index(name)
          for name in ("expected_at", "late_expected_at", "muted_until")]
_LATE = SummaryRow._fields.index("late")


def _summaries(where: str, values: list, tail: str = "") -> list[SummaryRow]:
    """Summaries with their workflow's settings, as flat rows (a page of the overview builds
    100 of them). Written by hand: peewee's generation of this join and its conversion of
    each value cost more than the query."""
    columns = ", ".join([f's."{c}"' for c in _SUMMARY] + [f'w."{c}"' for c in _SETTINGS])
    rows = []
    for row in database.execute_sql(
            f'SELECT {columns} FROM "{S._meta.table_name}" AS s JOIN '
            f'"{Workflow._meta.table_name}" AS w ON w."id" = s."workflow_id" WHERE {where}'
            f'{tail}', values):
        row = list(row)
        for index in _TIMES:
            if row[index] is not None:
                row[index] = from_micros(row[index])
        row[_LATE] = bool(row[_LATE])  # 0/1 on SQLite
        rows.append(SummaryRow._make(row))
    return rows


def overview_page(query: OverviewQuery) -> tuple[list, tuple[int, str] | None]:
    """One page of summaries in the overview's order (late, failing, the rest; by name),
    and the cursor of the next page."""
    param = database.param
    terms, values = ["1 = 1"], []
    if query.states:
        terms.append(f's."state" IN ({placeholders(len(query.states))})')
        values += query.states
    if query.q:  # a part of the name, case-insensitive; "%", "_" and "\\" as themselves
        like = "LIKE" if is_sqlite() else "ILIKE"
        terms.append(f"s.\"name\" {like} {param} ESCAPE '\\'")
        escaped = query.q.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
        values.append(f"%{escaped}%")
    if query.cursor:
        terms.append(f'(s."rank", s."name") > ({param}, {param})')
        values += query.cursor
    rows = _summaries(" AND ".join(terms), values,
                      f' ORDER BY s."rank", s."name" LIMIT {int(query.limit) + 1}')
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return rows, ((rows[-1].rank, rows[-1].name) if more else None)


def summary_of(name: str):
    """One workflow's summary (with its settings), by name."""
    found = _summaries(f'w."name" = {database.param}', [name])
    return found[0] if found else None


def needing_attention() -> dict[str, int]:
    """How many workflows are late and failing (read from the overview's index)."""
    found = dict(S.select(S.state, peewee.fn.COUNT(S.workflow))
                 .where(S.rank < RANKS["new"]).group_by(S.state).tuples())
    return {"late": int(found.get("late", 0)), "failing": int(found.get("failing", 0))}


def late_workflows(limit: int = 50) -> list[WorkflowSummary]:
    """Late workflows by name (the late episode's missed time in `late_expected_at`)."""
    return list(S.select(S.name, S.late_expected_at, S.workflow)
                .where(S.rank == RANKS["late"]).order_by(S.name).limit(limit))


def state_counts() -> dict[str, int]:
    """How many workflows are in each state."""
    found = dict(S.select(S.state, peewee.fn.COUNT(S.workflow)).group_by(S.state).tuples())
    return {state: int(found.get(state, 0)) for state in STATES}


# --- figures of the overview's rows --------------------------------------------------------

@dataclass
class Figures:
    runs_24h: int = 0
    success_7d: int = 0
    failure_7d: int = 0
    durations: Counter | None = None
    recent: list | None = None  # (id, status, started_at micros), newest first
    known: dict | None = None  # percentiles worked out already, by fraction

    @property
    def success_rate_7d(self) -> float | None:
        finished = self.success_7d + self.failure_7d
        return None if not finished else round(self.success_7d / finished, 4)

    def percentile(self, fraction: float) -> int | None:
        if self.known and fraction in self.known:
            return self.known[fraction]
        return percentile(self.durations or Counter(), fraction)


def percentile(bins: Counter, fraction: float) -> int | None:
    """The nearest-rank percentile of durations counted in bins (None without any)."""
    total = sum(bins.values())
    if not total:
        return None
    rank = max(1, -(-int(fraction * total * 1000) // 1000))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(max(bins))


def _hour(micros: int) -> int:
    return micros - micros % HOUR


def _sums(table, key: str | None, workflow_ids: list[int], parts: list[tuple[str, int, int]],
          statuses: tuple[str, ...] = ()) -> list[tuple]:
    """SUM(n) of a rollup table per workflow (and `key`) over the buckets of `parts`
    ((grain, start, end) each): one range of the covering index per part, joined by UNION ALL,
    so that the database reads those index entries alone, not the table.

    Written by hand: peewee's SQL generation of these IN lists costs more than the queries."""
    param = database.param
    ids = placeholders(len(workflow_ids))
    column = f', "{key}"' if key else ""
    where = f' AND "status" IN ({placeholders(len(statuses))})' if statuses else ""
    selects, args = [], []
    for grain, start, end in parts:
        selects.append(f'SELECT "workflow_id"{column}, "n" FROM "{table._meta.table_name}" '
                       f'WHERE "grain" = {param} AND "workflow_id" IN ({ids}) AND "bucket" >= '
                       f'{param} AND "bucket" < {param}{where}')
        args += [grain, *workflow_ids, start, end, *statuses]
    return database.execute_sql(
        f'SELECT "workflow_id"{column}, SUM("n") FROM ({" UNION ALL ".join(selects)}) AS p '
        f'GROUP BY "workflow_id"{column}', args).fetchall()


def _rollup_figures(workflow_ids: list[int], end: int) -> tuple[list, list, list]:
    """The workflows' runs in the 24 hours before `end`, and successes, failures and
    durations in the 7 days before it, as rows of (workflow id, [status or bin,] count)."""
    day_start, week_start = end - 24 * HOUR, end - 7 * DAY
    week = _split(week_start, end)
    return (_sums(RunRollup, None, workflow_ids, [("h", day_start, end)]),
            _sums(RunRollup, "status", workflow_ids, week, FINISHED_STATUSES),
            _sums(DurationRollup, "bin", workflow_ids, week))


def figures(rows: list, now: datetime, version: int | None = None) -> dict[int, Figures]:
    """runs in 24 h, successes and failures and durations over 7 days (whole hours: the
    current one and those before, from the rollups), and the last runs (from the summary
    rows), of each workflow of `rows`. The rollups' sums are kept until the runs change
    (history.changes), like the history's counts; `version`: the change counter, if the
    caller has read it already. What it gives is read, never changed."""
    workflow_ids = [row.workflow_id for row in rows]
    if not workflow_ids:
        return {}
    end = _hour(to_micros(now)) + HOUR
    sums = cache.get(
        changes.current() if version is None else version,
        ("workflow figures", tuple(workflow_ids), end),
        lambda: _summed(*_rollup_figures(workflow_ids, end)))
    found = {}
    for row in rows:
        runs, success, failure, durations, known = sums.get(row.workflow_id, _NONE)
        found[row.workflow_id] = Figures(runs, success, failure, durations,
                                         _recent_runs(row.recent), known)
    return found


OVERVIEW_PERCENTILES = (0.5, 0.95)  # worked out once per sum, kept with it
_NONE = (0, 0, 0, Counter(), {fraction: None for fraction in OVERVIEW_PERCENTILES})


def _summed(runs: list, outcomes: list, durations: list) -> dict[int, tuple]:
    """The rollups' rows as (runs in 24 h, successes, failures, duration bins, their
    OVERVIEW_PERCENTILES) by workflow."""
    found: dict[int, list] = defaultdict(lambda: [0, 0, 0, Counter()])
    for wid, n in runs:
        found[wid][0] = int(n)
    for wid, status, n in outcomes:
        found[wid][1 if status == "success" else 2] += int(n)
    for wid, index, n in durations:
        found[wid][3][index] += int(n)
    return {wid: (*sums, {fraction: percentile(sums[3], fraction)
                          for fraction in OVERVIEW_PERCENTILES})
            for wid, sums in found.items()}


@functools.lru_cache(maxsize=20_000)  # the same summaries' texts, page after page
def _recent_runs(text: str | None) -> tuple[tuple[int, str, int], ...]:
    """A summary's recent runs as (id, status, started_at micros), newest first."""
    return tuple((run_id, status, started) for started, run_id, status in parse_recent(text))


# --- one workflow over a period --------------------------------------------------------------

def day_edges(start: int, end: int, zone) -> list[int]:
    """Edges of the local days of `zone` from the day holding `start` to the one holding
    `end` (inclusive), as microseconds."""
    from models.times import from_micros

    first = from_micros(start).astimezone(zone).date()
    last = from_micros(end).astimezone(zone).date()
    edges = []
    day = first
    while day <= last + timedelta(days=1):
        edges.append(to_micros(datetime(day.year, day.month, day.day, tzinfo=zone)))
        day += timedelta(days=1)
    return edges


def duration_bars(workflow_id: int, edges: list[int]) -> list[Counter]:
    """Duration bins of a workflow's finished runs in each bar [edges[k], edges[k+1])."""
    bars = [Counter() for _ in edges[1:]]
    if not bars:
        return bars
    ranges: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for start, end in zip(edges, edges[1:]):
        for source, a, b in _split(start, end):
            ranges[source].append((a, b))
    last = len(bars) - 1

    def bar(moment: int) -> int:
        return min(max(bisect_right(edges, moment) - 1, 0), last)

    # Read by hand: peewee's conversion of each row costs more than the query itself, and
    # a period holds a row per day (or hour) and duration bin.
    param, table = database.param, DurationRollup._meta.table_name
    for grain in GRAINS:
        for a, b in _merged(ranges[grain]):
            counter, current = None, None
            for bucket, index, n in database.execute_sql(
                    f'SELECT "bucket", "bin", "n" FROM "{table}" WHERE "grain" = {param} AND '
                    f'"workflow_id" = {param} AND "bucket" >= {param} AND "bucket" < {param} '
                    'ORDER BY "bucket"', (grain, workflow_id, a, b)):
                if bucket != current:  # rows come a bucket at a time, from the key's order
                    counter, current = bars[bar(bucket)], bucket
                counter[index] += n
    runs = Execution._meta.table_name
    for a, b in _merged(ranges["raw"]):  # under an hour at each edge of a bar
        for started, duration in database.execute_sql(
                f'SELECT "started_at", "duration_ms" FROM "{runs}" WHERE "workflow_id" = '
                f'{param} AND "started_at" >= {param} AND "started_at" < {param} AND '
                f'"status" IN ({placeholders(len(FINISHED_STATUSES))}) AND "duration_ms" IS '
                'NOT NULL', (workflow_id, a, b, *FINISHED_STATUSES)):
            bars[bar(started)][duration_bin(duration)] += 1
    return bars


def metrics(workflow_id: int, start: int, end: int, zone) -> dict:
    """Runs per local day and status, and the duration percentiles of each day, over
    [start, end] (both inclusive); plus the success rate over the whole period."""
    edges = day_edges(start, end, zone)
    counts = count_bars([workflow_id], edges)
    durations = duration_bars(workflow_id, edges)
    days = []
    from models.times import from_micros
    for k, bar in enumerate(counts):
        days.append({"date": from_micros(edges[k]).astimezone(zone).date().isoformat(),
                     **{status: bar[status] for status in STATUSES},
                     "duration_p50_ms": percentile(durations[k], 0.5),
                     "duration_p95_ms": percentile(durations[k], 0.95)})
    success = sum(day["success"] for day in days)
    failure = sum(day["failure"] for day in days)
    return {"days": days,
            "success_rate": round(success / (success + failure), 4) if success + failure else None}
