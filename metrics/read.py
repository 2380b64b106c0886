"""What a scrape reports, read from the database: the workflows' summaries, run counts from
the rollups, durations from the duration counts, the alert scan's heartbeat and the outbox.

Nothing is kept between scrapes, so every worker and every machine answers the same. Each
read is a handful of statements over small tables or index ranges; none reads the runs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import NamedTuple

import peewee

from alerts.models import NOTICE_STATES, Notice
from alerts.watchdog import health
from history.rollups import DAY, DAYS_INDEXED, days_of
from models.db import database
from models.times import to_micros
from workflows.models import DurationRollup, WorkflowSummary, bin_value

from .totals import run_totals

P95_DAYS = 7  # runwatch_workflow_duration_p95_seconds covers this many days up to now
ENDED = ("delivered", "failed")  # the outcomes runwatch_deliveries_total counts


class WorkflowRow(NamedTuple):
    """One workflow as the summaries keep it."""

    id: int
    name: str
    state: str
    streak: int
    last_started_at: int | None  # microseconds


@dataclass
class Snapshot:
    """Everything one scrape reports."""

    version: str
    workflows: list[WorkflowRow] = field(default_factory=list)
    # workflow → finished runs, one count per status of FINISHED_STATUSES in its order
    runs: dict[int, tuple[int, ...]] = field(default_factory=dict)
    p95_ms: dict[int, int] = field(default_factory=dict)  # workflow → p95 duration (7 days)
    scan_lag_seconds: float | None = None  # None: no scan has run yet
    outbox: dict[str, int] = field(default_factory=dict)  # notice state → notices
    # notices whose delivery ended, by (channel kind, outcome)
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)


def version() -> str:
    """The installed release of Runwatch."""
    try:
        return metadata.version("runwatch")
    except metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def read_snapshot(now: datetime, scan_seconds: int) -> Snapshot:
    """Read every value a scrape reports, as of `now`."""
    snapshot = Snapshot(version=version())
    snapshot.workflows = list(map(WorkflowRow._make, database.execute_sql(
        f'SELECT "workflow_id", "name", "state", "streak", "last_started_at" '
        f'FROM "{WorkflowSummary._meta.table_name}" ORDER BY "workflow_id"').fetchall()))
    snapshot.runs = run_totals()
    snapshot.p95_ms = durations_p95(now)
    alerting = health(scan_seconds, now)
    if alerting.seconds_since_scan is not None:
        snapshot.scan_lag_seconds = max(alerting.seconds_since_scan, alerting.behind_seconds)
    snapshot.outbox, snapshot.deliveries = notice_counts()
    return snapshot


def durations_p95(now: datetime) -> dict[int, int]:
    """The 95th percentile of the durations of each workflow's finished runs that started
    in the last P95_DAYS UTC days (today's included), in ms."""
    today = to_micros(now) - to_micros(now) % DAY
    # One range of the index of days (every workflow's rows of the period, whatever the
    # length of the history), summed per workflow and bin in bin order. The first bin by
    # which 95 % of a workflow's runs are counted (the nearest rank) is its percentile.
    rows = database.execute_sql(
        f'SELECT "workflow_id", "bin", CAST(SUM("n") AS BIGINT) FROM {days_of(DurationRollup)} '
        f'WHERE {DAYS_INDEXED} AND "bucket" >= {database.param} '
        'GROUP BY "workflow_id", "bin" HAVING SUM("n") > 0 ORDER BY "workflow_id", "bin"',
        (today - (P95_DAYS - 1) * DAY,)).fetchall()
    totals: dict[int, int] = defaultdict(int)
    for workflow_id, _, n in rows:
        totals[workflow_id] += n
    found: dict[int, int] = {}
    seen, current = 0, None
    for workflow_id, index, n in rows:
        if workflow_id != current:
            seen, current = 0, workflow_id
        seen += n
        if workflow_id not in found and seen * 20 >= totals[workflow_id] * 19:
            found[workflow_id] = bin_value(index)
    return found


def notice_counts() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Notices by state (every state, 0 included), and those whose delivery has ended by
    channel kind and outcome (delivered, or failed for good), from one pass."""
    outbox = dict.fromkeys(NOTICE_STATES, 0)
    ended: dict[tuple[str, str], int] = {}
    for channel, status, n in (Notice.select(Notice.channel_type, Notice.status,
                                             peewee.fn.COUNT(Notice.id))
                               .group_by(Notice.channel_type, Notice.status).tuples()):
        outbox[status] = outbox.get(status, 0) + int(n)
        if status in ENDED:
            ended[(channel, status)] = int(n)
    return outbox, ended


__all__ = ["P95_DAYS", "Snapshot", "WorkflowRow", "read_snapshot"]
