"""Silence, found by the alerts job: runs that never end, and scheduled runs that never come.

Both read the summaries through an index on the moment something becomes due
(`timeout_at`, `due_at`), so an idle scan is three index probes that find nothing, whatever
the size of the history or the number of scheduled workflows.

- **Runs that never end.** A workflow's `timeout_at` is its oldest open run's start plus its
  maximum duration. When it has passed, each of its runs open longer than that is set to
  `failure` through the ordinary write path (so streaks, counts and alerts see a failure),
  finished at start + limit, with a `Timeout` error naming the limit.
- **Missed runs.** `due_at` is the first expected time after the later of the last start
  and the moment the schedule was set, plus the grace. When it has passed and no late
  episode is open, one is opened (`late`, counted in `late_episode`) and a **missed** notice
  is queued to every enabled rule covering the workflow. When a run starts, the summary's
  `due_at` moves to the next expected time: an open episode whose `due_at` lies ahead (or
  whose schedule was removed) is closed, and when a run started after the missed time it
  queues a **resumed** notice (`workflow.recovered`) to rules that notify recovery.
  A run expected inside a maintenance window of the workflow is not missed: its `due_at`
  moves on to the first expected time after the window.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from models.db import is_sqlite, write_transaction
from models.times import from_micros, to_micros
from models.executions import Execution, Workflow
from models.ingest import RunState, patch_execution
from models.schemas import ErrorIn, ExecutionPatch
from alerts.config import AlertConfig
from alerts.maintenance import Windows
from alerts.models import AlertChannel, AlertRule, Notice
from alerts.bodies import LateNotice
from alerts.notices import queue_notices
from alerts.reminders import remind_later, stop_reminders
from alerts.rules import rules_with_channels

from . import schedule as schedules
from .models import RANKS, WorkflowSummary
from .summary import OPEN_STATUSES, recount, state_of

S = WorkflowSummary
BATCH = 500          # workflows handled per scan and kind; the rest wait for the next scan
RUNS_PER_WORKFLOW = 1000  # runs timed out per workflow and scan


TIMEOUT = "Timeout"  # the error type of a run failed for exceeding its maximum duration


def replaces_timeout(before: RunState, status: str, sent: set[str], stored_type) -> bool:
    """Whether a report replaces a timeout (a write path's error rule): the run was failed
    with a `Timeout` error and is now reported in another status without an error of its
    own. Then the error goes (and the finish the timeout gave it, if the run is reported
    open again)."""
    return (before.status == "failure" and status != "failure" and "error" not in sent
            and stored_type() == TIMEOUT)


def _duration_words(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def timeout_error(limit_seconds: int) -> ErrorIn:
    """The error a run gets when it has not finished within the maximum duration."""
    return ErrorIn.model_construct(
        type=TIMEOUT, stack=None,
        message=(f"The run did not finish within its workflow's maximum duration of "
                 f"{limit_seconds} s ({_duration_words(limit_seconds)}); Runwatch marked it "
                 "failed. A later report of this run replaces this."))


def time_out_runs(config: AlertConfig | None, now: datetime) -> int:
    """Fail the runs that are open past their workflow's maximum duration; returns how many."""
    now_us = to_micros(now)
    due = list(S.select(S.workflow, Workflow.max_duration_seconds)
               .join(Workflow, on=(S.workflow == Workflow.id))
               .where(S.timeout_at <= now_us).order_by(S.timeout_at).limit(BATCH).tuples())
    failed = 0
    for workflow_id, limit in due:
        runs = []
        if limit:
            cutoff = now_us - limit * 1_000_000
            runs = list(Execution.select(Execution.id, Execution.started_at)
                        .where(Execution.workflow == workflow_id,
                               Execution.status.in_(OPEN_STATUSES),
                               Execution.started_at <= cutoff)
                        .order_by(Execution.started_at).limit(RUNS_PER_WORKFLOW).tuples())
        for run_id, started in runs:
            patch = ExecutionPatch.model_construct(
                status="failure", finished_at=from_micros(to_micros(started) + limit * 1_000_000),
                error=timeout_error(limit))
            failed += patch_execution(run_id, patch, only_unfinished=True)
        if not runs:
            # The summary was behind (settings or runs changed in a way it did not follow).
            with write_transaction():
                recount([workflow_id])
    return failed


def _covering_rules(name: str, recovery: bool) -> list[tuple[AlertRule, list[AlertChannel]]]:
    return [(rule, channels) for rule, channels in rules_with_channels()
            if rule.workflow_name in (None, name) and (rule.notify_recovery or not recovery)]


def _queue(kind: str, row: WorkflowSummary, settings: Workflow, expected_at: int | None,
           config: AlertConfig, now: datetime,
           rules: list[tuple[AlertRule, list[AlertChannel]]] | None = None) -> int:
    """Queue a notice of a late episode to `rules` (default: every rule covering it); a
    missed notice starts the reminders of rules that remind."""
    if rules is None:
        rules = _covering_rules(row.name, recovery=(kind == "resumed"))
    if not rules:
        return 0
    told = LateNotice(row.workflow_id, row.name, settings.grace_seconds, expected_at, config)
    decided = 0
    for rule, channels in rules:
        decided += queue_notices(channels, kind, told.body(kind, rule, now), now,
                                 workflow_id=row.workflow_id, episode=row.late_episode)
        if kind == "missed":
            remind_later(rule, row.workflow_id, "missed", row.late_episode, now)
    return decided


def _after_windows(row: WorkflowSummary, expected: int) -> int | None:
    """When an expected run falls inside a maintenance window of the workflow, the first
    expected time after the windows (that is not inside one either); else None."""
    windows = Windows.of([row.name])
    moment, moved = from_micros(expected), False
    for _ in range(100):
        found = windows.window_at(row.name, moment)
        if found is None:
            break
        try:
            moment = schedules.next_expected(row.workflow.schedule,
                                             row.workflow.timezone or "UTC",
                                             found[1] - timedelta(microseconds=1))
        except (ValueError, KeyError, OverflowError):  # a zone this system no longer knows
            moment = None
        if moment is None:
            return None
        moved = True
    return to_micros(moment) if moved else None


def _hold(workflow_id: int):
    query = (S.select(S, Workflow.id, Workflow.grace_seconds, Workflow.schedule,
                      Workflow.timezone)
             .join(Workflow, on=(S.workflow == Workflow.id)).where(S.workflow == workflow_id))
    if not is_sqlite():
        query = query.for_update(of=S)
    return query.first()


def missed_runs(config: AlertConfig, now: datetime) -> int:
    """Open late episodes whose run is overdue and close those whose runs came; queue their
    notices. Returns how many notices were queued."""
    now_us = to_micros(now)
    decided = 0
    overdue = [wid for (wid,) in S.select(S.workflow)
               .where(S.late == False, S.due_at <= now_us)  # noqa: E712 (SQL, not Python)
               .order_by(S.due_at).limit(BATCH).tuples()]
    for workflow_id in overdue:
        with write_transaction():
            row = _hold(workflow_id)
            if row is None or row.late or row.due_at is None or to_micros(row.due_at) > now_us:
                continue  # another scan opened it, or a run came meanwhile
            expected = to_micros(row.expected_at) if row.expected_at else None
            later = _after_windows(row, expected) if expected and row.workflow.schedule else None
            if later is not None:  # expected inside a maintenance window: not missed
                S.update(expected_at=later,
                         due_at=later + row.workflow.grace_seconds * 1_000_000).where(
                    S.workflow == workflow_id).execute()
                continue
            (S.update(late=True, late_episode=S.late_episode + 1, late_expected_at=expected,
                      state="late", rank=RANKS["late"])
             .where(S.workflow == workflow_id).execute())
            row.late_episode += 1
            decided += _queue("missed", row, row.workflow, expected, config, now)
    ended = [wid for (wid,) in S.select(S.workflow)
             .where(S.late == True, (S.due_at > now_us) | S.due_at.is_null())  # noqa: E712
             .limit(BATCH).tuples()]
    for workflow_id in ended:
        with write_transaction():
            row = _hold(workflow_id)
            if row is None or not row.late or (row.due_at is not None
                                               and to_micros(row.due_at) <= now_us):
                continue
            state = state_of(False, row.finished_status)
            S.update(late=False, state=state, rank=RANKS[state]).where(
                S.workflow == workflow_id).execute()
            stop_reminders(workflow_id, "missed")
            missed_at = to_micros(row.late_expected_at) if row.late_expected_at else None
            came = row.last_started_at is not None and (
                missed_at is None or to_micros(row.last_started_at) > missed_at)
            if came:  # a run started: the episode is over (else the schedule changed)
                decided += _queue("resumed", row, row.workflow, missed_at, config, now)
    return decided


def present_late(workflow_id: int, rules: list[tuple[AlertRule, list[AlertChannel]]],
                 config: AlertConfig, now: datetime) -> int:
    """Rules that see a workflow for the first time (just made or enabled) while it is late:
    a missed notice of the open episode to each that has not told of it. Returns how many
    were queued.

    The caller decides this in the transaction that holds the workflow's mark for the scan,
    so one scan does it; a rule told of the episode before (enabled, disabled and enabled
    again, with other channels since) is found in the outbox by the episode's key.
    """
    row = (S.select(S, Workflow.id, Workflow.grace_seconds, Workflow.schedule)
           .join(Workflow, on=(S.workflow == Workflow.id))
           .where(S.workflow == workflow_id, S.late == True).first())  # noqa: E712
    if row is None or not rules:
        return 0
    told = {rule_id for (rule_id,) in Notice.select(Notice.rule).where(
        Notice.rule.in_([rule.id for rule, _ in rules]), Notice.workflow == workflow_id,
        Notice.kind == "missed", Notice.episode == row.late_episode).distinct().tuples()}
    untold = [(rule, channels) for rule, channels in rules if rule.id not in told]
    expected = to_micros(row.late_expected_at) if row.late_expected_at else None
    return _queue("missed", row, row.workflow, expected, config, now, untold)


__all__ = ["time_out_runs", "missed_runs", "present_late", "timeout_error", "replaces_timeout", "TIMEOUT"]
