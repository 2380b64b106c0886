"""One pull of a source, the same for every kind: the window from its cursor, the kind's
pages of runs stored through the write path (`store_executions`: its write hooks see them as
any report), what each run was when stored kept beside it, and the outcome recorded.

Idempotent by construction: a run is stored under its `external_id`, so pulling it again
updates it; one pulled again unchanged (the same digest) is not written at all. A pull that
fails (the engine is down, refuses, answers garbage) keeps what it stored, records the
error, and leaves the cursor where the next pull finds again what it missed.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Flask
from pydantic import ValidationError

from models.availability import is_unavailable
from models.bulk import upsert_rows
from models.db import write_transaction
from models.ingest import store_executions
from models.schemas import ExecutionIn, InputError, input_error
from models.times import iso, to_micros, utcnow

from .kinds import KINDS, PulledRun, Window
from .kinds.prefect import PAGE
from .models import Source, SourceRun
from .remote import PullError, Remote

log = logging.getLogger(__name__)

FIRST_LOOK_BACK = timedelta(days=1)  # the first pull: runs of the day before the source
MAX_PAGES = 25  # pages one pull reads at most; the next goes on from where it stopped
MAX_NOTES = 5  # runs left out that the last error names


@dataclass(frozen=True)
class PullSettings:
    """What a pull needs of the configuration."""

    allow_private: bool = False  # RUNWATCH_WEBHOOK_ALLOW_PRIVATE
    timeout: float = 10.0  # RUNWATCH_SOURCE_TIMEOUT_SECONDS: one request, look-up to answer
    max_steps: int = 2000  # RUNWATCH_MAX_STEPS_PER_RUN
    page_size: int = PAGE
    max_pages: int = MAX_PAGES


def settings_from(app: Flask) -> PullSettings:
    """The pull settings of `app`."""
    config = app.config
    return PullSettings(allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
                        timeout=float(config["SOURCE_TIMEOUT_SECONDS"]),
                        max_steps=int(config["MAX_STEPS_PER_RUN"]))


@dataclass
class Outcome:
    """What one pull did: runs stored (new or changed) and new among them, runs left out
    (with why), whether it read everything it asked for, the error that stopped it."""

    stored: int = 0
    new: int = 0
    left_out: list[str] = field(default_factory=list)
    complete: bool = False
    error: str | None = None

    def message(self) -> str | None:
        """The source's `last_error`: the error, else the runs left out, else None."""
        if self.error:
            return self.error
        if not self.left_out:
            return None
        shown = "; ".join(self.left_out[:MAX_NOTES])
        more = len(self.left_out) - MAX_NOTES
        return (f"{len(self.left_out)} run(s) left out: {shown}"
                + (f" (and {more} more)" if more > 0 else ""))


def digest_of(report: dict) -> str:
    """What a pulled run is, in 64 hex digits: equal digests, nothing to write."""
    text = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=lambda value: iso(value) if isinstance(value, datetime) else str(value))
    return hashlib.sha256(text.encode()).hexdigest()


def open_ids(source_id: int) -> list[str]:
    """The engine's ids of the runs still open when this source last pulled them."""
    return [remote_id for (remote_id,) in SourceRun.select(SourceRun.remote_id)
            .where((SourceRun.source == source_id) & (SourceRun.open == True))  # noqa: E712
            .order_by(SourceRun.id).tuples()]


def pull_source(source_id: int, settings: PullSettings,
                now: datetime | None = None) -> Outcome | None:
    """Pull one source now and record the outcome; None when there is no such source."""
    source = Source.get_or_none(Source.id == source_id)
    if source is None:
        return None
    now = now or utcnow()
    kind = KINDS[source.type]()
    remote = Remote(source.url, kind.headers(source.token), settings.allow_private,
                    settings.timeout)
    start = source.cursor or (source.created_at - FIRST_LOOK_BACK)
    window = Window(start - kind.overlap, now, open_ids(source.id))
    outcome, resume_at, window_read = Outcome(), None, False
    try:
        pages = kind.pull(remote, window, page_size=settings.page_size,
                          max_steps=settings.max_steps)
        for count, page in enumerate(pages):
            window_read = window_read or page.resume_at is None  # the open runs follow it
            if count == settings.max_pages:
                break
            store_page(source.id, page.runs, outcome)
            resume_at = page.resume_at or resume_at
        else:
            window_read = outcome.complete = True
    except PullError as exc:
        outcome.error = exc.message
    cursor = now if window_read else (max(resume_at, source.cursor) if resume_at and source.cursor
                                      else resume_at or source.cursor)
    _record(source.id, cursor, outcome)
    return outcome


def store_page(source_id: int, runs: list[PulledRun], outcome: Outcome) -> None:
    """Store the runs of one page that differ from what was stored of them (one
    transaction), and keep what each is now beside it."""
    by_id = {run.remote_id: run for run in runs}  # a run twice in a page: its last report
    known = {remote_id: digest for remote_id, digest in SourceRun.select(
        SourceRun.remote_id, SourceRun.digest).where(
        (SourceRun.source == source_id) & SourceRun.remote_id.in_(list(by_id))).tuples()}
    changed: list[tuple[PulledRun, ExecutionIn, str]] = []
    for remote_id, run in by_id.items():
        digest = digest_of(run.report)
        if known.get(remote_id) == digest:
            continue
        try:
            changed.append((run, ExecutionIn.model_validate(run.report), digest))
        except ValidationError as exc:
            outcome.left_out.append(f"{remote_id}: {input_error(exc).message}")
    if not changed:
        return
    try:
        _store(source_id, changed)
    except InputError:  # one run the stored one refuses (say, a start after its finish)
        for one in changed:
            try:
                _store(source_id, [one])
            except InputError as exc:
                outcome.left_out.append(f"{one[0].remote_id}: {exc.message}")
                changed = [each for each in changed if each is not one]
    outcome.stored += len(changed)
    outcome.new += sum(1 for run, _, _ in changed if run.remote_id not in known)


def _store(source_id: int, changed: list[tuple[PulledRun, ExecutionIn, str]]) -> None:
    with write_transaction():
        results = store_executions([item for _, item, _ in changed])
        upsert_rows(SourceRun._meta.table_name,
                    ("source_id", "remote_id", "execution_id", "open", "digest"),
                    ("source_id", "remote_id"),
                    [(source_id, run.remote_id, execution_id, run.open, digest)
                     for (run, _, digest), (execution_id, _) in zip(changed, results,
                                                                    strict=True)],
                    replace=("execution_id", "open", "digest"))


def _record(source_id: int, cursor: datetime | None, outcome: Outcome) -> None:
    """The outcome on the source; its cursor moved to `cursor` (None: kept)."""
    values = {"last_pull_at": utcnow(), "last_pulled": outcome.stored,
              "last_error": outcome.message(), "runs": Source.runs + outcome.new}
    if cursor is not None:
        values["cursor"] = cursor
    with write_transaction():
        Source.update(values).where(Source.id == source_id).execute()


def claim_due(now: datetime) -> list[int]:
    """The enabled sources whose pull is due, each claimed for this pass by moving its next
    pull one interval on (a conditional UPDATE: two processes never pull one source twice);
    a pull that fails is tried again then."""
    claimed = []
    due = (Source.select(Source.id, Source.next_pull_at, Source.interval_seconds)
           .where((Source.enabled == True) & (Source.next_pull_at <= now))  # noqa: E712
           .order_by(Source.next_pull_at).limit(100).tuples())
    for source_id, due_at, interval in list(due):
        with write_transaction():
            taken = (Source.update(next_pull_at=now + timedelta(seconds=interval))
                     .where((Source.id == source_id)
                            & (Source.next_pull_at == to_micros(due_at)))
                     .execute())
        if taken:
            claimed.append(source_id)
    return claimed


def job(app: Flask, now: datetime | None = None) -> list[int]:
    """The scheduled job: pull every source that is due, one after another; a failure of
    one source is its recorded error, never the job's. The sources pulled."""
    settings = settings_from(app)
    claimed = claim_due(now or utcnow())
    for source_id in claimed:
        try:
            pull_source(source_id, settings, now)
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the database is away: the scheduler says so, the next pass retries
            log.exception("source %s: the pull failed", source_id)
            _record(source_id, None, Outcome(error=f"the pull failed: {type(exc).__name__}: "
                                                    f"{str(exc)[:500]}"))
    return claimed
