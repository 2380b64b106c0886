"""A notice's facts as every service shows them, and their wording.

The facts are those of the webhook body (`alerts.notices.notice_body`), so every message
tells the same story as the e-mail and the webhook: workflow, kind, failure count,
threshold, first and last failure, last error, and a link to the run.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.inputs import CONTROL

# Reminders (SPEC §11) are a kind of their own; the rest are the notice kinds of today.
KINDS = ("failing", "recovered", "missed", "resumed", "reminder", "test")
ERROR_CHARS = 1000  # of the last error shown in a message: the run's page has the rest


@dataclass(frozen=True)
class Facts:
    """What a notice says: its kind and the data of its webhook body.

    `episode` is the notice's episode number (a failing streak's, or a late episode's for
    missed and resumed), which PagerDuty needs to resolve the incident a trigger opened.
    """

    kind: str
    workflow: str
    failure_count: int
    threshold: int
    first_failure_at: str | None
    last_failure_at: str | None
    last_error: str | None
    link: str | None
    rule_id: int | None
    timestamp: str
    episode: int | None = None
    expected_at: str | None = None
    grace_seconds: int | None = None
    last_run_at: str | None = None
    reminder_number: int | None = None
    already_recovered: bool = False

    @classmethod
    def of(cls, kind: str, payload: dict, episode: int | None = None) -> "Facts":
        """The facts of a notice of `kind` whose webhook body is `payload`."""
        if kind not in KINDS:
            raise ValueError(f"unknown notice kind {kind!r}")
        data = payload["data"]
        return cls(kind=kind, workflow=data["workflow"], failure_count=data["failure_count"],
                   threshold=data["threshold"], first_failure_at=data.get("first_failure_at"),
                   last_failure_at=data.get("last_failure_at"),
                   last_error=data.get("last_error"), link=data.get("execution_url"),
                   rule_id=data.get("rule_id"), timestamp=payload["timestamp"],
                   episode=episode, expected_at=data.get("expected_at"),
                   grace_seconds=data.get("grace_seconds"), last_run_at=data.get("last_run_at"),
                   reminder_number=data.get("reminder_number"),
                   already_recovered=bool(data.get("already_recovered")))

    @property
    def name(self) -> str:
        """The workflow's name on one line (an older release stored names with line breaks)."""
        return CONTROL.sub(" ", self.workflow)

    @property
    def late(self) -> bool:
        """Whether the notice is about a run that did not come rather than runs that failed."""
        return self.expected_at is not None

    @property
    def error(self) -> str | None:
        """The last error, cut to what a message shows."""
        if not self.last_error:
            return None
        return cut(self.last_error, ERROR_CHARS)


def cut(text: str, limit: int) -> str:
    """`text` within a service's limit of `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def headline(facts: Facts) -> str:
    """One sentence that says what happened (a header, a title, a summary)."""
    name = facts.name
    if facts.kind == "failing" and facts.already_recovered:
        return (f"{name} failed {facts.failure_count} times in a row "
                "(reported late: already recovered)")
    if facts.kind == "failing":
        return f"{name} is failing: {facts.failure_count} failures in a row"
    if facts.kind == "recovered":
        return f"{name} recovered after {facts.failure_count} failures in a row"
    if facts.kind == "missed":
        return f"{name} missed a run expected at {facts.expected_at}"
    if facts.kind == "resumed":
        return f"{name} runs again after a missed run"
    if facts.kind == "reminder":
        still = (f"still late (expected at {facts.expected_at})" if facts.late
                 else f"still failing: {facts.failure_count} failures in a row")
        number = f" #{facts.reminder_number}" if facts.reminder_number else ""
        return f"Reminder{number}: {name} is {still}"
    return f"Test notice for {name} (rule #{facts.rule_id})"


def fields(facts: Facts) -> list[tuple[str, str]]:
    """The facts as (label, value) pairs, those that are known, in the order shown."""
    pairs = [("Workflow", facts.name)]
    if facts.late:
        pairs += [("Expected at", facts.expected_at),
                  ("Grace", f"{facts.grace_seconds} s" if facts.grace_seconds is not None
                   else None),
                  ("Last run", facts.last_run_at or "never")]
    if facts.failure_count or not facts.late:
        pairs.append(("Failures in a row", f"{facts.failure_count} (threshold {facts.threshold})"))
    pairs += [("First failure", facts.first_failure_at), ("Last failure", facts.last_failure_at)]
    if facts.kind == "reminder" and facts.reminder_number:
        pairs.append(("Reminder", f"#{facts.reminder_number}"))
    return [(label, value) for label, value in pairs if value]


def link_text(facts: Facts) -> str:
    """What a button or link to `facts.link` says."""
    if facts.failure_count and not facts.late:
        return "Open the last failed run"
    return "Open in Runwatch"
