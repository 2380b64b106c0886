"""Maintenance windows: planned quiet for one workflow or for every workflow.

A window is one-off (`starts_at`–`ends_at`) or recurring: each time its cron expression
fires in its zone it begins, and it lasts `duration_minutes`. Its starts follow the rule of
a workflow's schedule across daylight saving time (workflows/schedule.py): a wall-clock
time the clocks skip does not start one, a time that happens twice starts one, at its first
occurrence.

Runs that start inside a window of their workflow are marked when they are stored (a
window made later does not mark runs stored before it); a scheduled run expected inside one
is not missed; notices decided inside one are held until it ends (alerts/quiet.py).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Iterable, Union

from pydantic import AfterValidator, Field, RootModel

from models.db import write_transaction
from models.inputs import Name, SettingTime, Text, TimeZone, whole
from models.schemas import Answer, InputError, Strict, parse
from models.times import from_micros, iso, to_micros, utcnow
from workflows import schedule as schedules
from workflows.schemas import checked_schedule, checked_zone

from .models import MaintenanceWindow

MAX_WINDOWS = 1000
MAX_MINUTES = 10_080  # 7 days
MAX_REASON = 2000
W = MaintenanceWindow


class _WindowFields(Strict):
    workflow: Name | None = Field(None, description="The workflow it covers; null: every "
                                  "workflow.")
    reason: Annotated[Text, Field(max_length=MAX_REASON)] | None = None


class OneOffWindowIn(_WindowFields):
    """A window from `starts_at` to `ends_at` (after it)."""

    starts_at: SettingTime
    ends_at: SettingTime


class RecurringWindowIn(_WindowFields):
    """A window that begins each time `schedule` fires in `timezone` and lasts
    `duration_minutes`."""

    schedule: Annotated[str, Field(max_length=schedules.MAX_LENGTH, description=(
        "A 5-field cron expression that fires at least once in any five years: each time it "
        "fires (in `timezone`) a window begins."), json_schema_extra={"format": "cron"}),
        AfterValidator(checked_schedule)]
    timezone: Annotated[TimeZone, AfterValidator(checked_zone)] = "UTC"
    duration_minutes: whole(1, MAX_MINUTES)


class WindowIn(RootModel[Union[OneOffWindowIn, RecurringWindowIn]]):
    """A maintenance window, one-off or recurring; `workflow` null covers every workflow."""


def parse_window(body: bytes) -> OneOffWindowIn | RecurringWindowIn:
    """A window's JSON body, validated as the shape its fields choose (a `schedule` or
    `duration_minutes` makes it recurring); InputError names the first bad field, a field
    of the other shape among them."""
    try:
        keys = json.loads(body or b"null")
    except ValueError:
        keys = None
    recurring = isinstance(keys, dict) and bool({"schedule", "duration_minutes"} & set(keys))
    mixed = sorted(set(keys) & {"starts_at", "ends_at"}) if recurring else []
    if mixed:
        raise InputError(f"{mixed[-1]}: a recurring window (schedule, duration_minutes) has "
                         "no starts_at or ends_at", mixed[-1])
    window = parse(RecurringWindowIn if recurring else OneOffWindowIn, body)
    if not recurring and window.ends_at <= window.starts_at:
        raise InputError("ends_at: must be after starts_at", "ends_at")
    return window


@dataclass(frozen=True)
class Window:
    """A window as the rules read it (times aware, in UTC)."""

    id: int
    workflow: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    schedule: str | None
    timezone: str
    duration_minutes: int | None
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: MaintenanceWindow) -> "Window":
        return cls(row.id, row.workflow_name, row.starts_at, row.ends_at, row.schedule,
                   row.timezone or "UTC", row.duration_minutes, row.reason, row.created_at)

    def covers(self, name: str) -> bool:
        return self.workflow is None or self.workflow == name

    def interval_at(self, when: datetime) -> tuple[datetime, datetime] | None:
        """The stretch of this window that holds `when` (start inclusive, end exclusive)."""
        if self.schedule is None:
            if self.starts_at <= when < self.ends_at:
                return self.starts_at, self.ends_at
            return None
        length = timedelta(minutes=self.duration_minutes)
        # The last start at or before `when` is the first one after `when - length`, if any
        # such start is not after `when`; a later start in that stretch would end later.
        found = None
        moment = when - length
        for _ in range(schedules.SEARCH_STEPS):
            try:
                start = schedules.next_expected(self.schedule, self.timezone, moment)
            except (ValueError, KeyError, OverflowError):  # a zone this system lost
                return found
            if start is None or start > when:
                return found
            found, moment = (start, start + length), start
        return found

    def next_after(self, when: datetime) -> tuple[datetime, datetime] | None:
        """The stretch that holds `when`, else the next one to begin after it."""
        current = self.interval_at(when)
        if current is not None:
            return current
        if self.schedule is None:
            return (self.starts_at, self.ends_at) if self.starts_at > when else None
        try:
            start = schedules.next_expected(self.schedule, self.timezone, when)
        except (ValueError, KeyError, OverflowError):
            return None
        return None if start is None else (start, start + timedelta(
            minutes=self.duration_minutes))


class Windows:
    """The windows of some workflows, read once (one query), asked about many times; each
    window's stretch at a moment is worked out once (a recurring one's is a cron search),
    however many workflows it covers."""

    def __init__(self, windows: Iterable[Window]):
        self.windows = list(windows)
        self._intervals: dict[tuple[int, datetime], tuple[datetime, datetime] | None] = {}

    def interval(self, window: Window, when: datetime) -> tuple[datetime, datetime] | None:
        """`window.interval_at(when)`, remembered."""
        key = (window.id, when)
        if key not in self._intervals:
            self._intervals[key] = window.interval_at(when)
        return self._intervals[key]

    @classmethod
    def of(cls, names: Iterable[str] | None = None) -> "Windows":
        """The windows covering these workflows (every window when `names` is None)."""
        query = W.select().order_by(W.id)
        if names is not None:
            names = sorted(set(names))
            if not names:
                return cls([])
            query = query.where(W.workflow_name.is_null() | W.workflow_name.in_(names))
        return cls(Window.of(row) for row in query)

    def window_at(self, name: str, when: datetime) -> tuple[Window, datetime] | None:
        """The window covering workflow `name` at `when` that ends last, with that end."""
        best = None
        for window in self.windows:
            if window.covers(name):
                interval = self.interval(window, when)
                if interval is not None and (best is None or interval[1] > best[1]):
                    best = (window, interval[1])
        return best

    def quiet_end(self, name: str, when: datetime, steps: int = 20) -> datetime | None:
        """When the windows covering `name` at `when` end, following windows that begin
        before the one before them ends; None when none covers it."""
        end = None
        moment = when
        for _ in range(steps):
            found = self.window_at(name, moment)
            if found is None or found[1] <= moment:
                break
            end = moment = found[1]
        return end


def window_at(workflow_name: str, when: datetime) -> Window | None:
    """The maintenance window covering a workflow at `when`, or None."""
    found = Windows.of([workflow_name]).window_at(workflow_name, when)
    return found[0] if found else None


def in_maintenance(runs: list[tuple[str, int]]) -> list[bool]:
    """Whether each (workflow name, started_at in microseconds) lies inside a window of its
    workflow: the write path's rule, every window read once for the whole write."""
    windows = Windows.of(name for name, _ in runs)
    if not windows.windows:
        return [False] * len(runs)
    return [windows.window_at(name, from_micros(started)) is not None
            for name, started in runs]


# --- the API's answers and changes -------------------------------------------------------

class Stretch(Answer):
    """One stretch of a window: from `starts_at` to `ends_at`."""

    starts_at: datetime
    ends_at: datetime


class WindowAnswer(Answer):
    """A maintenance window: one-off (`starts_at`, `ends_at`) or recurring (`schedule`,
    `timezone`, `duration_minutes`); `active` now; `next`: the stretch under way, else the
    next to begin (null when none will)."""

    id: int
    workflow: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    schedule: str | None
    timezone: str
    duration_minutes: int | None
    reason: str | None
    active: bool
    next: Stretch | None
    created_at: datetime


class WindowList(Answer):
    """Every maintenance window, by id."""

    data: list[WindowAnswer]


def window_json(window: Window, now: datetime) -> dict:
    """A window as the API answers it: `active` now, and its `next` stretch (the current
    one while active; null when none is to come)."""
    upcoming = window.next_after(now)
    return {"id": window.id, "workflow": window.workflow, "starts_at": iso(window.starts_at),
            "ends_at": iso(window.ends_at), "schedule": window.schedule,
            "timezone": window.timezone, "duration_minutes": window.duration_minutes,
            "reason": window.reason,
            "active": window.interval_at(now) is not None,
            "next": ({"starts_at": iso(upcoming[0]), "ends_at": iso(upcoming[1])}
                     if upcoming else None),
            "created_at": iso(window.created_at)}


def list_windows() -> list[Window]:
    """Every window, by id."""
    return Windows.of().windows


def create_window(window: OneOffWindowIn | RecurringWindowIn,
                  now: datetime | None = None) -> Window:
    """Store a window (from `parse_window`); InputError (409) past MAX_WINDOWS."""
    now = now or utcnow()
    recurring = isinstance(window, RecurringWindowIn)
    with write_transaction():
        if W.select().count() >= MAX_WINDOWS:
            raise InputError(f"There are {MAX_WINDOWS} maintenance windows already, the most "
                             "Runwatch keeps; delete one first.", None, "conflict", 409)
        row_id = W.insert(
            workflow_name=window.workflow,
            starts_at=None if recurring else to_micros(window.starts_at),
            ends_at=None if recurring else to_micros(window.ends_at),
            schedule=window.schedule if recurring else None,
            timezone=window.timezone if recurring else "UTC",
            duration_minutes=window.duration_minutes if recurring else None,
            reason=window.reason, created_at=to_micros(now)).execute()
    return Window.of(W.get_by_id(row_id))


def delete_window(window_id: int, now: datetime | None = None) -> bool:
    """Delete a window; the notices it held are looked at again by the next scan. False
    when there is no such window."""
    from .quiet import quiet_ended

    with write_transaction():
        row = W.get_or_none(W.id == window_id)
        if row is None:
            return False
        W.delete().where(W.id == window_id).execute()
        quiet_ended(now or utcnow(), workflow_name=row.workflow_name)
    return True


__all__ = ["WindowIn", "OneOffWindowIn", "RecurringWindowIn", "parse_window", "Window",
           "Windows", "window_at", "in_maintenance", "window_json", "list_windows",
           "create_window", "delete_window", "MAX_WINDOWS"]
