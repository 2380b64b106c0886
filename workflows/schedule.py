"""Schedules: 5-field cron expressions read in an IANA zone, and when a run is expected.

Expressions are parsed and stepped by croniter, on the zone's wall-clock time; turning a
wall-clock time into an instant is where daylight saving time matters, and the rule is to
expect only what every cron daemon runs, so that a change of the clocks never makes a
"missed" notice of its own:

- a wall-clock time that does not exist that day (spring forward: 02:30 in Europe/Berlin on
  the last Sunday of March) is not expected; cron implementations differ on it (some run it
  at 03:00, some skip it), and either way the next time is the next one that exists;
- a wall-clock time that happens twice (fall back: 02:30 on the last Sunday of October) is
  expected once, at its first occurrence.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from croniter import croniter
from cron_descriptor import get_description

from models.inputs import zone_names

UTC = timezone.utc
FIELDS = 5
MAX_LENGTH = 200
SEARCH_STEPS = 1000  # wall-clock times tried before a schedule is said never to come
HORIZON = timedelta(days=366 * 5)  # a schedule must fire within five years of any time


class ScheduleError(ValueError):
    """A schedule or zone that cannot be used, with a message for people."""


def zone(name: str) -> ZoneInfo:
    """The zone called `name` (an IANA name such as Europe/Berlin)."""
    if not isinstance(name, str) or name not in zone_names():
        raise ScheduleError("unknown time zone; use an IANA name like Europe/Berlin or UTC")
    return ZoneInfo(name)


def check(expression: str) -> str:
    """The expression, normalised (single spaces), if it is a 5-field cron expression that
    fires at least once in any five years; else ScheduleError."""
    if not isinstance(expression, str) or len(expression) > MAX_LENGTH:
        raise ScheduleError(f"must be a cron expression of at most {MAX_LENGTH} characters")
    fields = expression.split()
    if len(fields) != FIELDS:
        raise ScheduleError("must have 5 fields: minute hour day-of-month month day-of-week "
                            f"(found {len(fields)}), e.g. */5 * * * *")
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ScheduleError(f"{normalised!r} is not a valid cron expression")
    start = datetime(2000, 1, 1)
    try:
        first = croniter(normalised, start).get_next(datetime)
    except (ValueError, KeyError, OverflowError):  # croniter's "failed to find next date"
        first = None
    if first is None or first - start > HORIZON:
        raise ScheduleError(f"{normalised!r} never fires (no such date)")
    return normalised


@lru_cache(maxsize=4096)
def describe(expression: str) -> str:
    """The expression in words, e.g. "Every 5 minutes"."""
    try:
        return get_description(expression)
    except Exception:  # the describer is a nicety: an expression croniter takes still works
        return expression


def _instant(wall: datetime, where: ZoneInfo) -> datetime | None:
    """The instant of a wall-clock time in `where`: its first occurrence; None if the
    clocks skip it."""
    first = wall.replace(tzinfo=where, fold=0)
    there_and_back = first.astimezone(UTC).astimezone(where).replace(tzinfo=None)
    if there_and_back != wall:
        return None  # in the gap of a spring-forward change
    return first.astimezone(UTC)


def next_expected(expression: str, zone_name: str, after: datetime) -> datetime | None:
    """The first time the schedule expects a run strictly after the instant `after`
    (aware), or None if there is none in reach."""
    where = ZoneInfo(zone_name)
    after = after.astimezone(UTC)
    wall = after.astimezone(where).replace(tzinfo=None)
    steps = croniter(expression, wall)
    for _ in range(SEARCH_STEPS):
        try:
            candidate = steps.get_next(datetime)
        except (ValueError, KeyError, OverflowError):
            return None
        instant = _instant(candidate, where)
        if instant is not None and instant > after:
            return instant
    return None


def upcoming(expression: str, zone_name: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next `count` expected times after `after`."""
    found: list[datetime] = []
    moment = after
    while len(found) < count:
        moment = next_expected(expression, zone_name, moment)
        if moment is None:
            break
        found.append(moment)
    return found
