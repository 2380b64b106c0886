"""What the workflows API takes (settings, query parameters) and answers (its models)."""
from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from models.executions import STATUSES
from models.inputs import SettingTime, Text, TimeZone, whole
from models.schemas import Answer, QueryParam, Strict
from reruns.schemas import HookAnswer, RerunIn

from . import schedule as schedules
from .models import STATES
from .stats import MAX_LIMIT, MAX_QUERY

MAX_GRACE = 604_800       # 7 days
MAX_DURATION = 2_592_000  # 30 days
MAX_DESCRIPTION = 2000


def checked_schedule(value: str | None) -> str | None:
    """A schedule's validator: the expression normalised, or pydantic's error saying why."""
    try:
        return None if value is None else schedules.check(value)
    except schedules.ScheduleError as exc:
        raise PydanticCustomError("schedule", str(exc)) from None


def checked_zone(value: str) -> str:
    """A zone's validator: an IANA name this system knows."""
    try:
        schedules.zone(value)
    except schedules.ScheduleError as exc:
        raise PydanticCustomError("timezone", str(exc)) from None
    return value


class SettingsIn(Strict):
    """A workflow's settings; a PATCH sends the ones it changes."""

    schedule: Annotated[str | None, Field(description=(
        "A 5-field cron expression (minute hour day-of-month month day-of-week) that fires at "
        "least once in any five years, e.g. `*/5 * * * *`; null for none."),
        json_schema_extra={"format": "cron"}), AfterValidator(checked_schedule)] = None
    timezone: Annotated[TimeZone, AfterValidator(checked_zone)] = "UTC"
    grace_seconds: whole(0, MAX_GRACE) = 300
    max_duration_seconds: whole(1, MAX_DURATION) | None = None
    description: Annotated[Text, Field(max_length=MAX_DESCRIPTION)] | None = None
    # No failing, missed or reminder notice before then; null: not muted.
    muted_until: SettingTime | None = None
    # Where a re-run request goes (the run page's button, POST …/executions/<id>/rerun);
    # null: none. Sent whole: it replaces the hook there.
    rerun: RerunIn | None = None


LIST_PARAMETERS = (
    QueryParam("q", Annotated[str, Field(max_length=MAX_QUERY)],
               "A part of the name, any case."),
    QueryParam("state", Literal[STATES], "Only workflows in this state; repeat for several.",
               repeated=True),
    QueryParam("limit", Annotated[int, Field(ge=1, le=MAX_LIMIT)],
               "Page size, 1-500 (default 100)."),
    QueryParam("cursor", str, "`next_cursor` of the previous page."),
)
DETAIL_PARAMETERS = (
    QueryParam("from", dt.date | datetime, "Start of the period: a date or date-time "
               "(default: 29 days before today, in `tz`), from 1970-01-01 to 2100-01-01."),
    QueryParam("to", dt.date | datetime, "End of the period, inclusive (a date covers that "
               "whole day; default today), not before `from`. A period spans at most 400 "
               "days."),
    QueryParam("tz", TimeZone, "IANA zone of the days and of `from`/`to` without an offset "
                          "(default UTC)."),
)


class LastRun(Answer):
    id: int
    status: Literal[STATUSES]
    started_at: datetime
    url: str


class RecentRun(Answer):
    id: int
    status: Literal[STATUSES]
    url: str


class Acknowledged(Answer):
    """Who acknowledged the workflow's current failing or late episode, when, and why."""

    by: str
    at: datetime
    note: str | None


class WorkflowAnswer(Answer):
    """A workflow: its state, latest figures and settings."""

    name: str
    state: Literal[STATES]
    streak: int
    last_run: LastRun | None
    recent_runs: list[RecentRun]
    runs_24h: int
    success_rate_7d: float | None
    duration_p50_ms_7d: int | None
    duration_p95_ms_7d: int | None
    schedule: str | None
    schedule_description: str | None
    timezone: str
    grace_seconds: int
    max_duration_seconds: int | None
    next_expected_at: datetime | None
    late_since: datetime | None
    description: str | None
    muted_until: datetime | None
    acknowledged: Acknowledged | None
    rerun: HookAnswer | None  # its re-run hook, masked for tokens without `admin`
    url: str


class WorkflowList(Answer):
    """One page of workflows: late, then failing, then the rest, by name."""

    data: list[WorkflowAnswer]
    next_cursor: str | None


class Day(Answer):
    date: dt.date
    success: int
    failure: int
    pending: int
    running: int
    duration_p50_ms: int | None
    duration_p95_ms: int | None


class Metrics(Answer):
    days: list[Day]
    success_rate: float | None


class ErrorGroup(Answer):
    fingerprint: str
    type: str | None
    message: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    last_execution_url: str
    history_url: str


class Period(Answer):
    start: datetime = Field(alias="from")
    to: datetime
    tz: str


class WorkflowDetail(WorkflowAnswer):
    """A workflow with its days and error groups over a period."""

    period: Period
    metrics: Metrics
    errors: list[ErrorGroup]
