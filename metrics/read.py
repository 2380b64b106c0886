"""What a scrape reports, read from the database: the workflows' summaries, run counts from
the rollups, durations from the duration counts, the alert scan's heartbeat and the outbox.

Nothing is kept between scrapes, so every worker and every machine answers the same. Each
read is a handful of statements over small tables or index ranges; none reads the runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from typing import NamedTuple

import peewee

from alerts.models import NOTICE_STATES, Notice
from alerts.watchdog import health
from history.rollups import DAY
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
    # workflow → status → finished runs
    runs: dict[int, dict[str, int]] = field(default_factory=dict)
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
    param = database.param
    start = today - (P95_DAYS - 1) * DAY
    # Driven by the summaries, one index range per workflow that has run since: only the
    # period's rows are read, however long the history. Each workflow's bins are summed,
    # and the first bin by which 95 % of its runs are counted (the nearest rank) is kept.
    bins = (f'SELECT d."workflow_id", d."bin", SUM(d."n") AS "n" '
            f'FROM "{WorkflowSummary._meta.table_name}" AS s '
            f'CROSS JOIN "{DurationRollup._meta.table_name}" AS d '
            f'WHERE s."last_started_at" >= {param} AND d."grain" = {param} '
            f'AND d."workflow_id" = s."workflow_id" AND d."bucket" >= {param} '
            'GROUP BY d."workflow_id", d."bin"')
    counted = ('SELECT b."workflow_id", b."bin", SUM(b."n") OVER (PARTITION BY b."workflow_id" '
               'ORDER BY b."bin") AS "seen", SUM(b."n") OVER (PARTITION BY b."workflow_id") '
               f'AS "total" FROM ({bins}) AS b')
    return {workflow_id: bin_value(index) for workflow_id, index in database.execute_sql(
        f'SELECT c."workflow_id", MIN(c."bin") FROM ({counted}) AS c '
        'WHERE c."seen" * 20 >= c."total" * 19 GROUP BY c."workflow_id"',
        (start, "d", start)).fetchall()}


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
