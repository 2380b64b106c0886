"""What notices say: of a failing streak (as a rule's state holds it), and of a late
episode (the workflow's streak, its last run and a link, read once for every rule)."""
from __future__ import annotations

from datetime import datetime

from models.executions import Execution
from models.times import from_micros, iso, to_micros

from .config import AlertConfig
from .models import AlertRule, AlertState
from .notices import notice_body
from .streaks import Streak, as_micros, current_streak


def streak_body(kind: str, name: str, rule: AlertRule, facts: Streak, config: AlertConfig,
                at: datetime, **extra) -> dict:
    """The webhook body of a notice about a failing streak of workflow `name`."""
    return notice_body(kind, at, workflow=name, failure_count=facts.count,
                       threshold=rule.threshold, first_failure_at=facts.first_failure_at,
                       last_failure_at=facts.last_failure_at, last_error=facts.last_error,
                       execution_url=config.execution_url(facts.last_failure_id), rule_id=rule.id,
                       **extra)


def known_streak(state: AlertState) -> Streak:
    """The facts a state holds of the streak the last scan saw."""
    return Streak(state.streak, as_micros(state.first_failure_at), as_micros(state.last_failure_at),
                  state.last_failure_id, state.last_error)


def _last_run(workflow_id: int) -> tuple[int, int] | None:
    row = (Execution.select(Execution.id, Execution.started_at)
           .where(Execution.workflow == workflow_id)
           .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).tuples().first())
    return (row[0], to_micros(row[1])) if row else None


class LateNotice:
    """The facts of a late episode's notices as the workflow stands now; `body` gives each
    rule's."""

    def __init__(self, workflow_id: int, name: str, grace_seconds: int,
                 expected_at: int | None, config: AlertConfig):
        self.name, self.grace_seconds, self.expected_at = name, grace_seconds, expected_at
        self.streak = current_streak(workflow_id)
        self.last = _last_run(workflow_id)
        if self.last is not None:
            self.link = config.execution_url(self.last[0])
        elif config.workflow_url is not None:
            self.link = config.workflow_url(name)
        else:
            self.link = None

    def body(self, kind: str, rule: AlertRule, now: datetime, **extra) -> dict:
        """The webhook body of a notice of `kind` under `rule`."""
        streak, expected, last = self.streak, self.expected_at, self.last
        return notice_body(kind, now, workflow=self.name, failure_count=streak.count,
                           threshold=rule.threshold, first_failure_at=streak.first_failure_at,
                           last_failure_at=streak.last_failure_at, last_error=streak.last_error,
                           execution_url=self.link, rule_id=rule.id,
                           expected_at=iso(from_micros(expected)) if expected else None,
                           grace_seconds=self.grace_seconds,
                           last_run_at=iso(from_micros(last[1])) if last else None, **extra)
