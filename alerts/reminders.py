"""Reminders: while an alerted failing or late episode goes on unacknowledged, a rule with
`remind_every_minutes` sends a reminder every that many minutes, with the facts as they
are then (webhook type `workflow.reminder`, data as the episode's notice plus
`reminder_number`).

A `Reminder` row per rule and workflow holds the episode and when its next reminder is
due: written when the episode's failing or missed notice is decided, deleted when the
episode ends. The alerts job reads the due rows from the `due_at` index (an idle scan finds
nothing there in one probe) and decides each in a transaction that holds the row (SQLite:
the write lock; PostgreSQL: `FOR UPDATE`), so two scanners send each reminder once; the
notice's unique key, which counts an episode's reminders by `number`, backs that up.

A reminder's notice carries its episode as the episode's notices do, negated for a late
episode: failing and late episodes are counted apart, and the two kinds of reminder must
not share a key.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from peewee import EXCLUDED, Case

from models.db import is_sqlite, write_transaction
from models.executions import Workflow
from models.times import to_micros
from workflows.models import WorkflowSummary

from .acknowledge import current_acknowledgements
from .bodies import LateNotice, known_streak, streak_body
from .config import AlertConfig
from .models import AlertRule, AlertState, Notice, Reminder, channels_of
from .notices import queue_notices
from .streaks import as_micros

BATCH = 500  # reminders decided per scan; the rest wait for the next one
S = WorkflowSummary
R = Reminder


def _failing_goes_on(rule_id: int, workflow_id: int, episode: int) -> AlertState | None:
    """The rule's state of the workflow while failing episode `episode` is alerted."""
    return (AlertState.select()
            .where(AlertState.rule == rule_id, AlertState.workflow == workflow_id,
                   AlertState.alerted == True, AlertState.episode == episode)  # noqa: E712
            .first())


def remind_later(rule: AlertRule, workflow_id: int, kind: str, episode: int,
                 now: datetime) -> None:
    """The failing or missed notice of an episode is decided (or sent after a quiet): its
    first reminder is due one interval from `now`, under a rule that reminds. A late
    episode does not take the place of a failing one that goes on (one row per rule and
    workflow); reminders already sent of the same episode keep their count."""
    if not rule.remind_every_minutes:
        return
    if kind == "missed":
        current = R.get_or_none(R.rule == rule.id, R.workflow == workflow_id)
        if (current is not None and current.kind == "failing"
                and _failing_goes_on(rule.id, workflow_id, current.episode)):
            return
    same = (R.kind == EXCLUDED.kind) & (R.episode == EXCLUDED.episode)
    (R.insert(rule=rule.id, workflow=workflow_id, kind=kind, episode=episode, number=0,
              due_at=now + timedelta(minutes=rule.remind_every_minutes))
     .on_conflict(conflict_target=[R.rule, R.workflow],
                  update={R.kind: EXCLUDED.kind, R.episode: EXCLUDED.episode,
                          R.due_at: EXCLUDED.due_at, R.number: Case(None, [(same, R.number)], 0)})
     .execute())


def stop_reminders(workflow_id: int, kind: str, rule_id: int | None = None) -> None:
    """An episode of a workflow ended (under one rule, or under every rule): no more
    reminders of it."""
    query = R.delete().where(R.workflow == workflow_id, R.kind == kind)
    if rule_id is not None:
        query = query.where(R.rule == rule_id)
    query.execute()


def remind_ongoing(rule: AlertRule, now: datetime) -> None:
    """A rule begins to remind (or changes its interval): the episodes it has told of and
    that go on are reminded of one interval from `now`."""
    for workflow_id, episode in (AlertState.select(AlertState.workflow, AlertState.episode)
                                 .where(AlertState.rule == rule.id,
                                        AlertState.alerted == True)  # noqa: E712
                                 .tuples()):
        remind_later(rule, workflow_id, "failing", episode, now)
    late = S.select(S.workflow, S.late_episode).where(S.late == True)  # noqa: E712
    if rule.workflow_name is not None:
        late = late.where(S.name == rule.workflow_name)
    for workflow_id, episode in late.tuples():
        told = Notice.select().where(Notice.rule == rule.id, Notice.workflow == workflow_id,
                                     Notice.kind == "missed", Notice.episode == episode)
        if told.exists():
            remind_later(rule, workflow_id, "missed", episode, now)


def send_reminders(config: AlertConfig, now: datetime) -> int:
    """Queue the reminders that are due; returns how many notices were queued."""
    due = [rid for (rid,) in R.select(R.id).where(R.due_at <= to_micros(now))
           .order_by(R.due_at).limit(BATCH).tuples()]
    queued = 0
    for reminder_id in due:
        with write_transaction():
            queued += _remind(reminder_id, config, now)
    return queued


def _hold(reminder_id: int) -> Reminder | None:
    query = (R.select(R, AlertRule, Workflow.id, Workflow.name)
             .join(AlertRule).switch(R).join(Workflow).where(R.id == reminder_id))
    if not is_sqlite():
        query = query.for_update(of=R)
    return query.first()


def _remind(reminder_id: int, config: AlertConfig, now: datetime) -> int:
    """Decide one due reminder, in the caller's transaction; how many notices it queued."""
    row = _hold(reminder_id)
    now_us = to_micros(now)
    if row is None or as_micros(row.due_at) > now_us:
        return 0  # another scan sent it, or the episode ended, meanwhile
    rule, workflow_id, name = row.rule, row.workflow_id, row.workflow.name
    if row.kind == "failing":
        state = _failing_goes_on(rule.id, workflow_id, row.episode)
        goes_on = state is not None
    else:
        summary = (S.select(S.workflow, S.late_expected_at, Workflow.grace_seconds)
                   .join(Workflow, on=(S.workflow == Workflow.id))
                   .where(S.workflow == workflow_id, S.late == True,  # noqa: E712
                          S.late_episode == row.episode).first())
        goes_on = summary is not None
    covers = rule.workflow_name in (None, name)
    if not goes_on or not covers or not rule.remind_every_minutes:
        row.delete_instance()
        return 0
    interval = rule.remind_every_minutes * 60_000_000
    due = as_micros(row.due_at) + interval
    if due <= now_us:  # the job did not run for a while: one reminder now, not one per scan
        due = now_us + interval
    number = row.number
    queued = 0
    if rule.enabled and workflow_id not in current_acknowledgements([workflow_id]):
        extra = {"reminder_number": number + 1}
        if row.kind == "failing":
            body = streak_body("reminder", name, rule, known_streak(state), config, now, **extra)
            episode = row.episode
        else:
            expected = as_micros(summary.late_expected_at)
            told = LateNotice(workflow_id, name, summary.workflow.grace_seconds, expected,
                              config)
            body = told.body("reminder", rule, now, **extra)
            episode = -row.episode
        queued = queue_notices(channels_of([rule.id])[rule.id], "reminder", body, now,
                               workflow_id=workflow_id, episode=episode, number=number + 1)
        if queued:  # none while the workflow is quiet: then the count waits too
            number += 1
    R.update(due_at=due, number=number).where(R.id == reminder_id).execute()
    return queued
