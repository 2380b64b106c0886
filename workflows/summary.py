"""Keeping each workflow's summary row current (its duration counts: workflows.durations).

`apply_changes` is a write hook: inside the transaction that stores runs, it moves each
touched workflow's summary (its streak, last finished run, latest start, oldest open run,
next expected run) from what it was to what the runs now say. A run appended after the last
finished one (the usual case) costs no query of history; a change elsewhere in a workflow's
past (a run finished late, a status re-reported) recounts that workflow from its indexes,
and marks the run for the alert scan (it may complete a streak that has ended already).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import peewee

from models.bulk import placeholders, upsert_rows
from models.db import database, is_sqlite
from models.times import from_micros, to_micros
from models.executions import FINISHED_STATUSES, Execution, Workflow
from models.ingest import Change, RunState
from alerts.models import mark_runs
from alerts.streaks import closing_success, current_streak

from . import schedule as schedules
from .errors import count_errors
from .durations import count_all_durations, count_durations
from .models import RANKS, RECENT, DurationRollup, WorkflowSummary, format_recent, parse_recent

OPEN_STATUSES = ("pending", "running")
Position = tuple[int, int]
S = WorkflowSummary


# --- summaries ----------------------------------------------------------------------------

def ensure_rows(workflow_ids: list[int]) -> None:
    """Create the summary rows these workflows lack (a workflow new to the overview)."""
    if not workflow_ids:
        return
    # Every NOT NULL column is given: peewee's defaults are not applied to INSERT … SELECT.
    query = (Workflow.select(Workflow.id, Workflow.name, peewee.Value("new"),
                             peewee.Value(RANKS["new"]), peewee.Value(0), peewee.Value(False),
                             peewee.Value(0), peewee.Value(""))
             .where(Workflow.id.in_(workflow_ids)).order_by(Workflow.id))
    (S.insert_from(query, [S.workflow, S.name, S.state, S.rank, S.streak, S.late,
                           S.late_episode, S.recent])
     .on_conflict_ignore().as_rowcount().execute())


_ROW = ("workflow_id", "name", "streak", "finished_started_at", "finished_id",
        "finished_status", "last_started_at", "open_started_at", "expected_at", "due_at", "late",
        "late_expected_at", "late_episode", "failing_episode", "recent")
_SETTING_COLUMNS = ("schedule", "timezone", "grace_seconds", "max_duration_seconds",
                    "schedule_set_at")


class _Row:
    """A summary row and its workflow's settings, as stored (times in microseconds)."""

    __slots__ = _ROW + _SETTING_COLUMNS

    def __init__(self, values):
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)
        self.late = bool(self.late)


def _locked(workflow_ids: list[int], lock: bool = True) -> list[tuple[_Row, _Row]]:
    """The summary rows of these workflows with their settings, locked until the end of the
    transaction on PostgreSQL (SQLite's write transaction holds every row already); with
    `lock` False, as they are now, unlocked."""
    if not workflow_ids:
        return []
    columns = ", ".join([f's."{c}"' for c in _ROW] + [f'w."{c}"' for c in _SETTING_COLUMNS])
    suffix = " FOR UPDATE OF s" if lock and not is_sqlite() else ""
    rows = database.execute_sql(
        f'SELECT {columns} FROM "{S._meta.table_name}" AS s JOIN "{Workflow._meta.table_name}" '
        f'AS w ON w."id" = s."workflow_id" WHERE s."workflow_id" IN '
        f'({placeholders(len(workflow_ids))}) ORDER BY s."workflow_id"{suffix}',
        list(workflow_ids)).fetchall()
    return [(row, row) for row in map(_Row, rows)]


def _micros(value) -> int | None:
    return None if value is None else (value if isinstance(value, int) else to_micros(value))


class _Facts:
    """A summary row's facts as plain values, moved along by changes."""

    def __init__(self, row: WorkflowSummary):
        self.streak = row.streak
        self.failing_episode = row.failing_episode
        self.finished = ((_micros(row.finished_started_at), row.finished_id)
                         if row.finished_id is not None else None)
        self.finished_status = row.finished_status
        self.last_started = _micros(row.last_started_at)
        self.open_started = _micros(row.open_started_at)
        self.recent = parse_recent(row.recent)
        self.recount_finished = self.recount_last = self.recount_open = False
        self.recount_recent = False
        self.appended: list[tuple[Position, str]] = []
        # Runs that changed behind the last finished run: they may complete a streak that
        # has ended already, which the alert scan looks for around each of them.
        self.out_of_order: list[int] = []

    def _see_recent(self, before: RunState | None, after: RunState) -> None:
        """Keep the last RECENT runs: a new run takes its place among them; a known one
        changes its status in place; anything else recounts them."""
        entry = (after.started_at, after.id, after.status)
        if before is not None:
            for index, (started, run_id, _) in enumerate(self.recent):
                if run_id == after.id:
                    if started == after.started_at:
                        self.recent[index] = entry
                    else:
                        self.recount_recent = True
                    return
            if len(self.recent) < RECENT or (after.started_at, after.id) > self.recent[-1][:2]:
                self.recount_recent = True  # it belongs among them now
            return
        if len(self.recent) < RECENT or (after.started_at, after.id) > self.recent[-1][:2]:
            self.recent = sorted([*self.recent, entry], reverse=True)[:RECENT]

    def see(self, before: RunState | None, after: RunState) -> None:
        self._see_recent(before, after)
        if self.last_started is None or after.started_at > self.last_started:
            self.last_started = after.started_at
        if before is not None and after.started_at < before.started_at:
            self.recount_last = True  # it may have been the latest start
        if after.status in OPEN_STATUSES and (self.open_started is None
                                              or after.started_at < self.open_started):
            self.open_started = after.started_at
        if (before is not None and before.status in OPEN_STATUSES
                and (after.status not in OPEN_STATUSES or after.started_at > before.started_at)):
            self.recount_open = True  # it may have been the oldest open run
        # A run inside a maintenance window neither extends nor breaks a streak: to the
        # streak and the last finished run, it has not finished.
        was = (before is not None and before.status in FINISHED_STATUSES
               and not before.maintenance)
        now_finished = after.status in FINISHED_STATUSES and not after.maintenance
        if was:
            if (not now_finished or before.status != after.status
                    or before.started_at != after.started_at):
                self.recount_finished = True
                self.out_of_order.append(after.id)
        elif now_finished:
            position = (after.started_at, after.id)
            if self.finished is None or position > self.finished:
                self.appended.append((position, after.status))
            else:
                self.recount_finished = True  # it finished behind the last finished run
                self.out_of_order.append(after.id)

    def settle(self, workflow_id: int) -> None:
        """Apply what was seen: count on from the appended runs, or recount."""
        if self.recount_finished:
            facts = current_streak(workflow_id)
            if facts.count and not self.streak:
                self.failing_episode += 1
            self.streak = facts.count
            self.finished = facts.newest()
            if self.finished is None:
                self.finished_status = None
            else:
                failure = ((facts.last_failure_at, facts.last_failure_id)
                           if facts.last_failure_id is not None else None)
                self.finished_status = "failure" if failure == self.finished else "success"
        else:
            for position, status in sorted(self.appended):
                if status == "failure" and not self.streak:
                    self.failing_episode += 1  # a streak begins: a new episode
                self.streak = self.streak + 1 if status == "failure" else 0
                self.finished, self.finished_status = position, status
        if self.recount_last:
            self.last_started = _micros(Execution.select(peewee.fn.MAX(Execution.started_at))
                                        .where(Execution.workflow == workflow_id).scalar())
        if self.recount_open:
            self.open_started = oldest_open(workflow_id)
        if self.recount_recent:
            E = Execution
            self.recent = [(_micros(started), run_id, status) for started, run_id, status in
                           E.select(E.started_at, E.id, E.status)
                           .where(E.workflow == workflow_id)
                           .order_by(E.started_at.desc(), E.id.desc()).limit(RECENT).tuples()]


def oldest_open(workflow_id: int) -> int | None:
    """The earliest started_at among the workflow's pending and running runs."""
    found = []
    for status in OPEN_STATUSES:
        row = (Execution.select(Execution.started_at)
               .where(Execution.workflow == workflow_id, Execution.status == status)
               .order_by(Execution.started_at).limit(1).tuples().first())
        if row:
            found.append(_micros(row[0]))
    return min(found) if found else None


def state_of(late: bool, finished_status: str | None) -> str:
    """late, failing (the last finished run failed), new (none finished) or ok."""
    if late:
        return "late"
    if finished_status == "failure":
        return "failing"
    return "new" if finished_status is None else "ok"


def expectation(settings: Workflow, last_started: int | None) -> tuple[int | None, int | None]:
    """(expected_at, due_at): the first run the schedule expects after the later of the
    last start and the moment the schedule was set, and when it is late."""
    if not settings.schedule:
        return None, None
    since = max(v for v in (last_started, _micros(settings.schedule_set_at), 0) if v is not None)
    try:
        expected = schedules.next_expected(settings.schedule, settings.timezone or "UTC",
                                           from_micros(since))
    except (ValueError, KeyError, OverflowError):  # a zone this system no longer knows
        return None, None
    if expected is None:
        return None, None
    return to_micros(expected), to_micros(expected + timedelta(seconds=settings.grace_seconds))


def _values(row: WorkflowSummary, settings: Workflow, facts: _Facts) -> dict:
    expected, due = _micros(row.expected_at), _micros(row.due_at)
    if (facts.last_started != _micros(row.last_started_at) or expected is None
            or not settings.schedule):
        expected, due = expectation(settings, facts.last_started)
    limit = settings.max_duration_seconds
    state = state_of(row.late, facts.finished_status)
    return {
        "workflow": row.workflow_id, "name": row.name, "state": state, "rank": RANKS[state],
        "streak": facts.streak,
        "finished_started_at": facts.finished[0] if facts.finished else None,
        "finished_id": facts.finished[1] if facts.finished else None,
        "finished_status": facts.finished_status,
        "last_started_at": facts.last_started, "open_started_at": facts.open_started,
        "timeout_at": (facts.open_started + limit * 1_000_000
                       if facts.open_started is not None and limit else None),
        "expected_at": expected, "due_at": due, "late": row.late,
        "late_expected_at": _micros(row.late_expected_at), "late_episode": row.late_episode,
        "failing_episode": facts.failing_episode,
        "recent": format_recent(facts.recent),
    }


def _write(values: list[dict]) -> None:
    if not values:
        return
    names = list(values[0])
    columns = tuple("workflow_id" if name == "workflow" else name for name in names)
    upsert_rows(S._meta.table_name, columns, ("workflow_id",),
                [tuple(v[name] for name in names) for v in values],
                replace=[c for c in columns if c != "workflow_id"])


def apply_changes(changes: list[Change]) -> None:
    """The write hook: move the touched workflows' summaries, duration and error counts."""
    count_durations(changes)
    count_errors(changes)
    by_workflow: dict[int, list[Change]] = defaultdict(list)
    for before, after in changes:
        by_workflow[after.workflow_id].append((before, after))
    ids = sorted(by_workflow)
    found = _locked(ids)
    if len(found) < len(ids):  # workflows new to the overview
        ensure_rows([wid for wid in ids if wid not in {row.workflow_id for row, _ in found}])
        found = _locked(ids)
    out, out_of_order = [], []
    for row, settings in found:
        facts = _Facts(row)
        for before, after in by_workflow[row.workflow_id]:
            facts.see(before, after)
        facts.settle(row.workflow_id)
        out.append(_values(row, settings, facts))
        out_of_order += facts.out_of_order
    _write(out)
    mark_runs(out_of_order)


def remove_runs(states: list[RunState]) -> None:
    """Runs deleted (retention): take out their durations and errors, and recount what of
    their workflows' summaries they were part of. Retention deletes the oldest runs, which
    are seldom among the last 20, the latest start, the oldest open run, the last finished
    run or a failing streak: most workflows it touches are not recounted at all.

    Which are is read first without a lock, and only those are locked and read again: a
    writer holds the summary rows of the workflows it writes until it commits, and
    retention would otherwise wait on the busiest workflows, whose summaries its runs
    seldom touch. A write at the same moment appends newer runs, which make the deleted
    ones matter less; only a re-report that turns the one success since a deleted failure
    into a failure, at that very moment, could leave its streak counting that failure, until
    the workflow's next success."""
    count_durations([(state, None) for state in states])
    count_errors([(state, None) for state in states])
    gone: dict[int, list[RunState]] = defaultdict(list)
    for state in states:
        gone[state.workflow_id].append(state)
    touched = [row.workflow_id for row, _ in _locked(sorted(gone), lock=False)
               if _removal(row, gone[row.workflow_id])]
    out = []
    for row, settings in _locked(touched):
        facts = _removal(row, gone[row.workflow_id])
        if facts is not None:
            facts.settle(row.workflow_id)
            out.append(_values(row, settings, facts))
    _write(out)


def _removal(row: _Row, runs: list[RunState]) -> _Facts | None:
    """The facts of a summary that these deleted runs were part of (what to recount), or
    None if they were part of none."""
    facts = _Facts(row)
    ids = {run.id for run in runs}
    facts.recount_recent = any(run_id in ids for _, run_id, _ in facts.recent)
    facts.recount_last = any(facts.last_started is None
                             or run.started_at >= facts.last_started for run in runs)
    facts.recount_open = any(run.status in OPEN_STATUSES for run in runs)
    facts.recount_finished = (any(facts.finished is None
                                  or (run.started_at, run.id) >= facts.finished for run in runs)
                              or _in_streak(row, runs))
    if (facts.recount_recent or facts.recount_last or facts.recount_open
            or facts.recount_finished):
        return facts
    return None


def _in_streak(row: _Row, runs: list[RunState]) -> bool:
    """Whether a deleted failure may have been part of the workflow's failing streak: only
    while it has one, and only if no success has ended a streak since the newest of them
    (one probe of the index; a deleted success ends no streak that is left)."""
    failures = [(run.started_at, run.id) for run in runs if run.status == "failure"]
    return bool(row.streak and failures
                and closing_success(row.workflow_id, max(failures)) is None)


def recount(workflow_ids: list[int]) -> None:
    """Rebuild the summaries of these workflows from their runs and settings."""
    if not workflow_ids:
        return
    ensure_rows(workflow_ids)
    out = []
    for row, settings in _locked(workflow_ids):
        facts = _Facts(row)
        facts.recount_finished = facts.recount_last = facts.recount_open = True
        facts.recount_recent = True
        facts.settle(row.workflow_id)
        row.expected_at = None  # the expectation is worked out again
        out.append(_values(row, settings, facts))
    _write(out)


def settings_changed(workflow_id: int) -> None:
    """A workflow's settings changed: its expected run and timeout follow them now."""
    ensure_rows([workflow_id])
    [(row, settings)] = _locked([workflow_id])
    facts = _Facts(row)
    row.expected_at = None
    _write([_values(row, settings, facts)])


def ensure_summaries(batch: int = 500) -> int:
    """Build the summaries and duration counts of runs stored before they existed (a
    database of an earlier release); returns how many workflows were summarised."""
    from models.db import connection, write_transaction

    done = 0
    with connection():
        fresh_durations = not DurationRollup.select().exists()
        while True:
            missing = [wid for (wid,) in Workflow.select(Workflow.id).where(
                ~peewee.fn.EXISTS(S.select(S.workflow).where(S.workflow == Workflow.id)))
                .order_by(Workflow.id).limit(batch).tuples()]
            if not missing:
                break
            with write_transaction():
                recount(missing)
            done += len(missing)
        if fresh_durations and done:
            count_all_durations()
    return done
