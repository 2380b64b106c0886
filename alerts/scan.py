"""The scan: look at workflows whose finished runs changed, decide notices, queue them.

Its cost follows what changed, not the size of the history: it reads the small
`AlertDirty` table, and per marked workflow and rule it reads the finished runs after the
last one it examined (`AlertState.seen_*`), in order, in keyset pages of an index, so every
streak that reached a rule's threshold is alerted — and its end announced — however soon it
ended. A run that finished after later ones (it started before the position) is counted
where it belongs when the streak at the position is read again (three indexed queries).

A run that changed behind the last finished run may also complete a streak that a success
has ended already (F, F, S examined, then an older F reported): the summaries mark such a
run (`AlertDirty` with the run's negated id), and the scan reads the streak around it
(`closed_streak`, four indexed queries). When that streak lies behind a rule's position, has
reached its threshold and was never alerted, the rule sends a failing notice that says it
has already recovered, then the recovery — keyed by the success that ended the streak.

Each workflow (and each marked run) is decided in a transaction of its own that holds its
`AlertDirty` row (SQLite: the write lock; PostgreSQL: `FOR UPDATE`), so two scanners racing
decide it once; the notices' unique key backs that up.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable

from models.db import is_sqlite, write_transaction
from models.times import from_micros, iso, to_micros
from models.executions import Execution, Workflow, load_json

from .models import AlertChannel, AlertDirty, AlertRule, AlertState, Notice, ScanStatus
from .bodies import known_streak, streak_body
from .notices import queue_notices
from .reminders import remind_later, stop_reminders
from .rules import rules_with_channels
from .config import AlertConfig
from workflows.silence import present_late
from .streaks import (ORIGIN, Position, Streak, as_micros, closed_streak, closing_success,
                      current_streak, finished_after)

BATCH = 500
MAX_BATCHES = 40
PAGE = 500          # finished runs read at once when replaying a workflow
MAX_REPLAY = 20_000  # runs replayed per workflow and scan; the rest waits for the next scan

@dataclass(frozen=True)
class ScanResult:
    """What one scan did."""

    examined: int
    decided: int
    duration_ms: float


def _ended(before: AlertState | None, streak: Streak) -> bool:
    """Whether a success came after the last failure the alerted streak was known to have."""
    if before is None or not before.alerted or streak.last_success is None:
        return False
    known = (as_micros(before.last_failure_at), before.last_failure_id)
    return streak.last_success > known


class _Decider:
    """One rule's view of one workflow while its runs are replayed: alerted or not, the
    episode, and the failing notice owed for a streak that reached the threshold (sent with
    the facts as far as that streak went within this scan)."""

    def __init__(self, rule: AlertRule, channels: list[AlertChannel], state: AlertState | None,
                 workflow_id: int, name: str, config: AlertConfig, clock):
        self.rule, self.channels, self.state = rule, channels, state
        self.workflow_id, self.name, self.config, self.clock = workflow_id, name, config, clock
        self.alerted = state.alerted if state else False
        self.episode = state.episode if state else 0
        self.owed = False
        self.decided = 0

    def _queue(self, kind: str, facts: Streak) -> None:
        at = self.clock()
        body = streak_body(kind, self.name, self.rule, facts, self.config, at)
        self.decided += queue_notices(self.channels, kind, body, at,
                                      workflow_id=self.workflow_id, episode=self.episode)

    def start(self, facts: Streak) -> None:
        """The streak as it stands at the position (after runs that finished late)."""
        if _ended(self.state, facts):
            # A success ended the alerted streak (a new one may have begun since): the
            # recovery tells of the streak that ended, as the last scan saw it.
            self.alerted = False
            stop_reminders(self.workflow_id, "failing", self.rule.id)
            if self.rule.notify_recovery:
                self._queue("recovered", known_streak(self.state))
        self.failure(facts)

    def failure(self, facts: Streak) -> None:
        if facts.count >= self.rule.threshold and not self.alerted:
            self.alerted, self.episode, self.owed = True, self.episode + 1, True

    def success(self, facts: Streak) -> None:
        """A success ends the streak `facts` describe."""
        self.finish(facts)
        if self.alerted:
            self.alerted = False
            stop_reminders(self.workflow_id, "failing", self.rule.id)
            if self.rule.notify_recovery:
                self._queue("recovered", facts)

    def finish(self, facts: Streak) -> None:
        """Send the failing notice owed, with the facts as far as the streak went."""
        if self.owed:
            self.owed = False
            self._queue("failing", facts)
            remind_later(self.rule, self.workflow_id, "failing", self.episode, self.clock())

    def save(self, facts: Streak, position: Position | None) -> None:
        values = {"streak": facts.count, "first_failure_at": facts.first_failure_at,
                  "last_failure_at": facts.last_failure_at,
                  "last_failure_id": facts.last_failure_id, "last_error": facts.last_error,
                  "alerted": self.alerted, "episode": self.episode,
                  "updated_at": to_micros(self.clock()),
                  "seen_started_at": position[0] if position else None,
                  "seen_id": position[1] if position else None}
        (AlertState.insert(rule=self.rule.id, workflow=self.workflow_id, **values)
         .on_conflict(conflict_target=[AlertState.rule, AlertState.workflow],
                      update={getattr(AlertState, k): v for k, v in values.items()})
         .execute())


def _replay(workflow_id: int, position: Position | None, deciders: list[_Decider]) -> bool:
    """Decide for rules that share a position: the streak at the position, then every
    finished run after it in order. Returns False when runs are left for the next scan."""
    facts = current_streak(workflow_id, position)
    if position is None:  # never examined: start from the streak as it is now
        position = facts.newest()
    for decider in deciders:
        decider.start(facts)
    done, replayed = position is None, 0
    while not done and replayed < MAX_REPLAY:
        runs = finished_after(workflow_id, position, PAGE)
        for started, run_id, status, error in runs:
            if status == "failure":
                facts = replace(facts, count=facts.count + 1,
                                first_failure_at=facts.first_failure_at if facts.count else started,
                                last_failure_at=started, last_failure_id=run_id,
                                last_error=error)
                for decider in deciders:
                    decider.failure(facts)
            else:
                for decider in deciders:
                    decider.success(facts)
                facts = replace(facts, count=0, first_failure_at=None,
                                last_success=(started, run_id))
            position = (started, run_id)
        replayed += len(runs)
        done = len(runs) < PAGE
    for decider in deciders:
        decider.finish(facts)
        decider.save(facts, position)
    return done


def _start_at(state: AlertState | None, rule: AlertRule, created: int) -> Position | None:
    """Where a rule's replay of a workflow starts: after the last run it examined; from the
    first run of a workflow made after the rule (every run of it came later); else (a rule
    made while the workflow had runs, or a state an older release kept) from the streak as
    it is now (None)."""
    if state is not None:
        return ((as_micros(state.seen_started_at), state.seen_id)
                if state.seen_id is not None else None)
    return ORIGIN if created >= as_micros(rule.created_at) else None


def _examine(workflow_id: int, name: str, created: int,
             rules: list[tuple[AlertRule, list[AlertChannel]]],
             config: AlertConfig, clock) -> tuple[int, bool]:
    """Decide the notices of one workflow under its rules: (how many were queued, whether
    every run was examined)."""
    states = {s.rule_id: s for s in AlertState.select().where(
        AlertState.workflow == workflow_id, AlertState.rule.in_([r.id for r, _ in rules]))}
    groups: dict[Position | None, list[_Decider]] = {}
    for rule, channels in rules:
        state = states.get(rule.id)
        position = _start_at(state, rule, created)
        groups.setdefault(position, []).append(
            _Decider(rule, channels, state, workflow_id, name, config, clock))
    done = True
    for position, deciders in groups.items():
        done = _replay(workflow_id, position, deciders) and done
    decided = sum(d.decided for group in groups.values() for d in group)
    # Rules that had not looked at this workflow (just made, or enabled again: see
    # alerts.rules.update_rule) see the present: a late episode already open is told now.
    # Their failing streaks were read from the streak as it is now, above.
    fresh = [(rule, channels) for rule, channels in rules
             if rule.id not in states or states[rule.id].seen_id is None]
    if fresh:
        decided += present_late(workflow_id, fresh, config, clock())
    return decided, done


def _applies(rule: AlertRule, name: str) -> bool:
    return rule.workflow_name is None or rule.workflow_name == name


def _parse_micros(text: str | None) -> int | None:
    return None if text is None else to_micros(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _alerted(rule: AlertRule, workflow_id: int, facts: Streak, end: Position) -> bool:
    """Whether a failing notice of this rule already told of (part of) this streak: one
    decided while it was open, or after it had ended (keyed by the success `end`). Its
    failures lie between the notice's first and last failure, so the two overlap."""
    seen = set()
    for episode, text in (Notice.select(Notice.episode, Notice.payload)
                          .where(Notice.rule == rule.id, Notice.workflow == workflow_id,
                                 Notice.kind == "failing").tuples()):
        if episode == -end[1]:
            return True
        if episode in seen:
            continue  # the same decision, to another channel
        seen.add(episode)
        data = load_json(text)["data"]
        first, last = (_parse_micros(data.get("first_failure_at")),
                       _parse_micros(data.get("last_failure_at")))
        if (first is not None and last is not None
                and first <= facts.last_failure_at and last >= facts.first_failure_at):
            return True
    return False


def _late_run(run_id: int, rules: list[tuple[AlertRule, list[AlertChannel]]],
              config: AlertConfig, clock) -> int:
    """Decide the notices of the streak that a run changed out of order belongs to, when a
    success has ended it already; returns how many were queued.

    Only rules whose position has passed that success decide it: the replay of a rule that
    has not got there yet reads the streak in order (the run is counted in the streak at
    the rule's position, or read after it). A rule sends it once, unless a failing notice
    already told of part of it (a streak alerted while open and extended after its
    recovery, or a failure landing inside an alerted streak): no second alert.
    """
    E = Execution
    run = (E.select(E.workflow, E.started_at, Workflow.name).join(Workflow)
           .where(E.id == run_id).tuples().first())
    if run is None:
        return 0  # deleted since
    workflow_id, started, name = run[0], as_micros(run[1]), run[2]
    applicable = {rule.id: (rule, channels) for rule, channels in rules if _applies(rule, name)}
    if not applicable:
        return 0
    positions = {state.rule_id: (as_micros(state.seen_started_at), state.seen_id) for state in
                 AlertState.select(AlertState.rule, AlertState.seen_started_at, AlertState.seen_id)
                 .where(AlertState.workflow == workflow_id,
                        AlertState.rule.in_(list(applicable)),
                        AlertState.seen_id.is_null(False))}
    if not positions:
        return 0
    end = closing_success(workflow_id, (started, run_id))
    if end is None:
        return 0  # the streak is still open: the replay at each rule's position counts it
    passed = [applicable[rule_id] for rule_id, position in positions.items() if position >= end]
    if not passed:
        return 0
    facts = closed_streak(workflow_id, end)
    decided = 0
    for rule, channels in passed:
        if facts.count < rule.threshold or _alerted(rule, workflow_id, facts, end):
            continue
        for kind, extra in (("failing", {"already_recovered": True,
                                         "recovered_at": iso(from_micros(end[0]))}),
                            ("recovered", {})):
            if kind == "recovered" and not rule.notify_recovery:
                continue
            at = clock()
            body = streak_body(kind, name, rule, facts, config, at, **extra)
            decided += queue_notices(channels, kind, body, at, workflow_id=workflow_id,
                                     episode=-end[1])
    return decided


def _hold(key: int) -> int | None:
    """Inside the transaction of a workflow (or a run: its negated id): its mark's `seq`,
    held until the end (PostgreSQL locks the row; SQLite holds the write lock already); None
    when another scan took it."""
    query = AlertDirty.select(AlertDirty.seq).where(AlertDirty.workflow_id == key)
    if not is_sqlite():
        query = query.for_update()
    return query.scalar()


def _clear(key: int, seq: int) -> None:
    """Delete a mark as this scan saw it: a change stored meanwhile bumped its `seq`."""
    AlertDirty.delete().where(AlertDirty.workflow_id == key, AlertDirty.seq == seq).execute()


def scan_streaks(config: AlertConfig, clock: Callable[[], datetime]) -> tuple[int, int]:
    """Examine every workflow marked since the last scan and queue the notices its streaks
    decide, each dated by `clock()` when decided; returns (examined, queued)."""
    examined = decided = 0
    rules = None
    for _ in range(MAX_BATCHES):
        keys = [key for (key,) in AlertDirty.select(AlertDirty.workflow_id)
                .order_by(AlertDirty.marked_at).limit(BATCH).tuples()]
        if not keys:
            break
        if rules is None:
            rules = rules_with_channels()
        for key in keys:
            if key < 0:  # a run that changed out of order
                with write_transaction():
                    seq = _hold(key)
                    if seq is None:
                        continue
                    decided += _late_run(-key, rules, config, clock)
                    _clear(key, seq)
                examined += 1
        marked = [key for key in keys if key > 0]
        workflows = {wid: (name, as_micros(created)) for wid, name, created in
                     Workflow.select(Workflow.id, Workflow.name, Workflow.created_at)
                     .where(Workflow.id.in_(marked)).tuples()} if marked else {}
        for workflow_id in marked:
            with write_transaction():
                seq = _hold(workflow_id)
                if seq is None:
                    continue  # another scan examined it meanwhile
                name, created = workflows.get(workflow_id, (None, None))
                applicable = [(r, c) for r, c in rules if name is not None and _applies(r, name)]
                done = True
                if applicable:
                    queued, done = _examine(workflow_id, name, created, applicable, config,
                                            clock)
                    decided += queued
                if done:
                    _clear(workflow_id, seq)
            examined += 1
        if len(keys) < BATCH:
            break
    return examined, decided


def record_scan(now: datetime, duration_ms: float, examined: int, decided: int) -> ScanResult:
    """Record that a scan ran, for the watchdog on the alerts page; what it did."""
    values = {"last_scan_at": to_micros(now), "duration_ms": duration_ms,
              "examined": examined, "decided": decided}
    (ScanStatus.insert(id=1, scans=1, **values)
     .on_conflict(conflict_target=[ScanStatus.id],
                  update={**{getattr(ScanStatus, k): v for k, v in values.items()},
                          ScanStatus.scans: ScanStatus.scans + 1})
     .execute())
    return ScanResult(examined, decided, duration_ms)
