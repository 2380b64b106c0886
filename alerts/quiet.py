"""Quiet: a workflow muted (`muted_until`) or inside a maintenance window.

Notices are queued in one place (alerts/notices.py `queue_notices`), which asks
`quiet_until` of the workflow: a failing or missed notice decided while it is quiet is
written `held`, its `next_attempt_at` the end of the quiet; a reminder is not written at all.
Streaks and episodes go on being tracked meanwhile.

`release_held`, a step of the alerts job, finds the held notices whose quiet has ended
(status `held`, `next_attempt_at` passed: the outbox's (status, next_attempt_at) index, so
an idle scan probes it once) and decides each once, in a transaction that holds its row
(SQLite: the write lock; PostgreSQL: `FOR UPDATE`): still quiet (the mute was extended, a
window follows) → held until the new end; its episode still going on → `pending`, sent now
with the release time as its timestamp, its reminders counted from then; else → `dropped`.
A recovery decided inside a maintenance window (its failing or missed notice was sent
before) is held until the window ends, then sent.
A recovery whose failing or missed notice was never sent is not sent either (see
`queue_notices`).
"""
from __future__ import annotations

import json
from datetime import datetime

from models.db import is_sqlite, write_transaction
from models.executions import Workflow
from models.times import from_micros, iso, to_micros

from .maintenance import Windows
from .models import AlertRule, AlertState, Notice
from .streaks import as_micros

BATCH = 500  # held notices decided per scan; the rest wait for the next one
QUIETED = ("failing", "missed", "reminder")  # the kinds a quiet holds (a reminder: drops)


def quiet_until(workflow_id: int, name: str, now: datetime,
                windows: Windows | None = None) -> datetime | None:
    """When the quiet of a workflow that covers `now` ends (its mute, or the maintenance
    windows covering it, one after another while they overlap); None when it is not quiet."""
    muted = as_micros(Workflow.select(Workflow.muted_until).where(Workflow.id == workflow_id)
                      .scalar())
    windows = windows if windows is not None else Windows.of([name])
    end = None
    moment = now
    for _ in range(20):  # a mute and windows that follow one another
        later = moment
        if muted is not None and from_micros(muted) > later:
            later = from_micros(muted)
        window_end = windows.quiet_end(name, later)
        if window_end is not None and window_end > later:
            later = window_end
        if later <= moment:
            break
        end = moment = later
    return end


def window_end(name: str, now: datetime) -> datetime | None:
    """When the maintenance windows covering a workflow at `now` end (None: none does)."""
    return Windows.of([name]).quiet_end(name, now)


def quiet_ended(now: datetime, *, workflow_id: int | None = None,
                workflow_name: str | None = None) -> int:
    """A mute ended early or a window was deleted: the notices it held (of one workflow,
    or of every workflow) are looked at by the next scan. Returns how many."""
    query = Notice.update(next_attempt_at=to_micros(now)).where(
        Notice.status == "held", Notice.next_attempt_at > to_micros(now))
    if workflow_id is not None:
        query = query.where(Notice.workflow == workflow_id)
    elif workflow_name is not None:
        query = query.where(Notice.workflow.in_(
            Workflow.select(Workflow.id).where(Workflow.name == workflow_name)))
    return query.execute()


def _goes_on(notice: Notice) -> bool:
    """Whether the episode a held notice tells of still goes on."""
    if notice.rule_id is None or notice.workflow_id is None:
        return False  # its rule was deleted
    if notice.kind == "failing":
        return (notice.episode or 0) > 0 and (
            AlertState.select().where(AlertState.rule == notice.rule_id,
                                      AlertState.workflow == notice.workflow_id,
                                      AlertState.alerted == True,  # noqa: E712 (SQL)
                                      AlertState.episode == notice.episode).exists())
    if notice.kind == "missed":
        from workflows.models import WorkflowSummary as S
        return (S.select().where(S.workflow == notice.workflow_id, S.late == True,  # noqa: E712
                                 S.late_episode == notice.episode).exists())
    return False


def _hold(notice_id: int) -> Notice | None:
    query = Notice.select().where(Notice.id == notice_id)
    if not is_sqlite():
        query = query.for_update()
    return query.first()


def _release(notice_id: int, now: datetime) -> str | None:
    """Decide one held notice, in the caller's transaction: its new status, or None when
    it is not due (another scan decided it)."""
    notice = _hold(notice_id)
    if (notice is None or notice.status != "held"
            or notice.next_attempt_at > now):
        return None
    body = json.loads(notice.payload)
    name = body["data"]["workflow"]
    recovery = notice.kind not in QUIETED  # held by a window: told once it is over
    if recovery:
        until = window_end(name, now)
    else:
        until = quiet_until(notice.workflow_id, name, now) if notice.workflow_id else None
    if until is not None:
        Notice.update(next_attempt_at=to_micros(until)).where(Notice.id == notice_id).execute()
        return "held"
    if not recovery and not _goes_on(notice):
        Notice.update(status="dropped").where(Notice.id == notice_id).execute()
        return "dropped"
    body["timestamp"] = iso(now)
    (Notice.update(status="pending", next_attempt_at=to_micros(now),
                   payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")))
     .where(Notice.id == notice_id).execute())
    if recovery:
        return "pending"
    # The episode is told now: its reminders (under a rule that reminds) count from here.
    from .reminders import remind_later  # reminders queue through notices, which ask here
    rule = AlertRule.get_or_none(AlertRule.id == notice.rule_id)
    if rule is not None:
        remind_later(rule, notice.workflow_id, notice.kind, notice.episode, now)
    return "pending"


def release_held(config, now: datetime) -> int:
    """Decide the held notices whose quiet has ended; returns how many are now sent."""
    due = [nid for (nid,) in Notice.select(Notice.id)
           .where(Notice.status == "held", Notice.next_attempt_at <= to_micros(now))
           .order_by(Notice.next_attempt_at).limit(BATCH).tuples()]
    released = 0
    for notice_id in due:
        with write_transaction():
            released += _release(notice_id, now) == "pending"
    return released


__all__ = ["quiet_until", "quiet_ended", "release_held", "window_end", "QUIETED"]
