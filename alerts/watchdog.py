"""The alerting watches itself: when the scan last ran, how far behind it is, the backlog."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee

from models.times import from_micros, utcnow

from .models import AlertDirty, Notice, ScanStatus

GRACE_SECONDS = 10  # a scan may run a little late before it counts as stalled


@dataclass(frozen=True)
class Health:
    """The scan's heartbeat and the outbox, as the alerts page shows them."""

    last_scan_at: datetime | None
    last_duration_ms: float | None
    seconds_since_scan: float | None
    behind_seconds: float  # age of the oldest change no scan has looked at yet
    waiting_workflows: int
    backlog: int  # notices pending or being sent
    oldest_pending_at: datetime | None
    failed: int
    stalled: bool
    interval: int


def health(scan_seconds: int, now: datetime | None = None) -> Health:
    """Read the heartbeat and the outbox; `stalled` when no scan ran for 3 intervals."""
    now = now or utcnow()
    beat = ScanStatus.get_or_none(ScanStatus.id == 1)
    # Marks of runs (negative keys) count for how far behind the scan is, not as workflows.
    workflow_mark = peewee.Case(None, [(AlertDirty.workflow_id > 0, 1)], None)
    waiting, oldest_mark = (AlertDirty.select(peewee.fn.COUNT(workflow_mark),
                                              peewee.fn.MIN(AlertDirty.marked_at))
                            .tuples().get())
    by_status = dict(Notice.select(Notice.status, peewee.fn.COUNT(Notice.id))
                     .where(Notice.status.in_(["pending", "sending", "failed"]))
                     .group_by(Notice.status).tuples())
    oldest_pending = (Notice.select(peewee.fn.MIN(Notice.created_at))
                      .where(Notice.status.in_(["pending", "sending"])).scalar())
    since = (now - beat.last_scan_at).total_seconds() if beat else None
    behind = 0.0
    if oldest_mark is not None:
        mark = oldest_mark if isinstance(oldest_mark, datetime) else from_micros(oldest_mark)
        behind = max(0.0, (now - mark).total_seconds())
    limit = 3 * scan_seconds + GRACE_SECONDS
    stalled = since is None or since > limit or behind > limit
    if isinstance(oldest_pending, int):
        oldest_pending = from_micros(oldest_pending)
    return Health(beat.last_scan_at if beat else None, beat.duration_ms if beat else None,
                  since, behind, waiting, by_status.get("pending", 0)
                  + by_status.get("sending", 0), oldest_pending, by_status.get("failed", 0),
                  stalled, scan_seconds)
