"""The scan: look at workflows whose finished runs changed, decide notices, queue them.

Its cost follows what changed, not the size of the history: it reads the small
`AlertDirty` table, and per marked workflow three indexed queries find the streak.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import peewee

from models.db import to_micros, utcnow, write_transaction
from models.executions import Execution, Workflow

from .models import AlertChannel, AlertDirty, AlertRule, AlertState, ScanStatus
from .notices import notice_body, queue_notices
from .rules import channels_of
from .config import AlertConfig

BATCH = 500
MAX_BATCHES = 40


@dataclass(frozen=True)
class Streak:
    """The failures in a row at the end of a workflow's finished runs (by `started_at`)."""

    count: int
    first_failure_at: int | None
    last_failure_at: int | None  # of the last failure at all, also when the streak is 0
    last_failure_id: int | None
    last_error: str | None
    last_success: tuple[int, int] | None = None  # (started_at, id): where the streak begins


@dataclass(frozen=True)
class ScanResult:
    """What one scan did."""

    examined: int
    decided: int
    duration_ms: float


def _micros(value) -> int | None:
    return None if value is None else (value if isinstance(value, int) else to_micros(value))


def current_streak(workflow_id: int) -> Streak:
    """The streak of a workflow, from its last success on (pending/running runs don't count)."""
    E = Execution
    newest_first = (E.started_at.desc(), E.id.desc())
    last_success = (E.select(E.started_at, E.id)
                    .where(E.workflow == workflow_id, E.status == "success")
                    .order_by(*newest_first).limit(1).tuples().first())
    last_failure = (E.select(E.id, E.started_at, E.error_message)
                    .where(E.workflow == workflow_id, E.status == "failure")
                    .order_by(*newest_first).limit(1).tuples().first())
    anchor = (_micros(last_success[0]), last_success[1]) if last_success else None
    if last_failure is None:
        return Streak(0, None, None, None, None, anchor)
    failure_id, failure_at, error = last_failure[0], _micros(last_failure[1]), last_failure[2]
    if anchor is not None and (failure_at, failure_id) < anchor:
        return Streak(0, None, failure_at, failure_id, error, anchor)
    streak = E.select(peewee.fn.COUNT(E.id), peewee.fn.MIN(E.started_at)).where(
        E.workflow == workflow_id, E.status == "failure")
    if anchor is not None:
        streak = streak.where(peewee.Tuple(E.started_at, E.id) > peewee.Tuple(*anchor))
    count, first = streak.tuples().get()
    return Streak(count, _micros(first), failure_at, failure_id, error, anchor)


def _rules_with_channels() -> list[tuple[AlertRule, list[AlertChannel]]]:
    rules = list(AlertRule.select().where(AlertRule.enabled))
    channels = channels_of([rule.id for rule in rules])
    return [(rule, channels[rule.id]) for rule in rules]


def _body(kind: str, name: str, rule: AlertRule, facts: Streak | AlertState,
          config: AlertConfig, now: datetime) -> dict:
    count = facts.count if isinstance(facts, Streak) else facts.streak
    return notice_body(kind, now, workflow=name, failure_count=count, threshold=rule.threshold,
                       first_failure_at=facts.first_failure_at,
                       last_failure_at=facts.last_failure_at, last_error=facts.last_error,
                       execution_url=config.execution_url(facts.last_failure_id), rule_id=rule.id)


def _ended(before: AlertState | None, streak: Streak) -> bool:
    """Whether a success came after the last failure the alerted streak was known to have."""
    if before is None or not before.alerted or streak.last_success is None:
        return False
    known = (_micros(before.last_failure_at), before.last_failure_id)
    return streak.last_success > known


def _examine(workflow_id: int, name: str, rules: list[tuple[AlertRule, list[AlertChannel]]],
             config: AlertConfig, now: datetime) -> int:
    """Decide the notices of one workflow under its rules; returns how many were queued."""
    streak = current_streak(workflow_id)
    states = {s.rule_id: s for s in AlertState.select().where(
        AlertState.workflow == workflow_id, AlertState.rule.in_([r.id for r, _ in rules]))}
    decided = 0
    for rule, channels in rules:
        before = states.get(rule.id)
        alerted = before.alerted if before else False
        episode = before.episode if before else 0
        if _ended(before, streak):
            # A success ended the alerted streak (a new one may have begun since): the
            # recovery tells of the streak that ended, as the last scan saw it.
            alerted = False
            if rule.notify_recovery:
                decided += queue_notices(channels, "recovered",
                                         _body("recovered", name, rule, before, config, now),
                                         now, workflow_id=workflow_id, episode=episode)
        if streak.count >= rule.threshold and not alerted:
            alerted, episode = True, episode + 1
            decided += queue_notices(channels, "failing",
                                     _body("failing", name, rule, streak, config, now),
                                     now, workflow_id=workflow_id, episode=episode)
        values = {"streak": streak.count, "first_failure_at": streak.first_failure_at,
                  "last_failure_at": streak.last_failure_at,
                  "last_failure_id": streak.last_failure_id, "last_error": streak.last_error,
                  "alerted": alerted, "episode": episode, "updated_at": to_micros(now)}
        (AlertState.insert(rule=rule.id, workflow=workflow_id, **values)
         .on_conflict(conflict_target=[AlertState.rule, AlertState.workflow],
                      update={getattr(AlertState, k): v for k, v in values.items()})
         .execute())
    return decided


def _applies(rule: AlertRule, name: str) -> bool:
    return rule.workflow_name is None or rule.workflow_name == name


def scan(config: AlertConfig, now: datetime | None = None) -> ScanResult:
    """Examine every workflow marked since the last scan and queue the notices it decides."""
    started = time.perf_counter()
    now = now or utcnow()
    examined = decided = 0
    rules = None
    for _ in range(MAX_BATCHES):
        marked = list(AlertDirty.select(AlertDirty.workflow_id, AlertDirty.seq)
                      .order_by(AlertDirty.marked_at).limit(BATCH).tuples())
        if not marked:
            break
        if rules is None:
            rules = _rules_with_channels()
        names = dict(Workflow.select(Workflow.id, Workflow.name)
                     .where(Workflow.id.in_([wid for wid, _ in marked])).tuples())
        for workflow_id, seq in marked:
            with write_transaction():
                name = names.get(workflow_id)
                applicable = [(r, c) for r, c in rules if name is not None and _applies(r, name)]
                if applicable:
                    decided += _examine(workflow_id, name, applicable, config, now)
                # Only what this scan saw is cleared: a run stored meanwhile bumped `seq`.
                AlertDirty.delete().where(AlertDirty.workflow_id == workflow_id,
                                          AlertDirty.seq == seq).execute()
            examined += 1
        if len(marked) < BATCH:
            break
    duration_ms = (time.perf_counter() - started) * 1000
    _beat(now, duration_ms, examined, decided)
    return ScanResult(examined, decided, duration_ms)


def _beat(now: datetime, duration_ms: float, examined: int, decided: int) -> None:
    """Record that a scan ran, for the watchdog on the alerts page."""
    values = {"last_scan_at": to_micros(now), "duration_ms": duration_ms,
              "examined": examined, "decided": decided}
    (ScanStatus.insert(id=1, scans=1, **values)
     .on_conflict(conflict_target=[ScanStatus.id],
                  update={**{getattr(ScanStatus, k): v for k, v in values.items()},
                          ScanStatus.scans: ScanStatus.scans + 1})
     .execute())
