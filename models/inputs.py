"""What request input may hold: the rules every schema, query parser and route share.

Plain functions and pydantic types, no Flask: names without control characters, texts
without NUL, times in the accepted range, finite JSON numbers, whole numbers written in
ASCII digits, and ids the database can hold.
"""
from __future__ import annotations

import json
from functools import lru_cache
from math import isfinite
import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any
from zoneinfo import available_timezones

from pydantic import (AfterValidator, AwareDatetime, BeforeValidator, ConfigDict, Field,
                      TypeAdapter, ValidationInfo, WithJsonSchema)
from pydantic_core import PydanticCustomError

UTC = timezone.utc
MAX_NAME = 200
# Control characters (C0, DEL, C1) and the Unicode line and paragraph separators: each of
# them breaks a line somewhere (an e-mail subject, a log line, a terminal).
CONTROL_CLASS = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"  # as a pattern writes them
CONTROL = re.compile(f"[{CONTROL_CLASS}]")
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(hours=24)  # how far after the time of receipt a reported time may be
EARLIEST_QUERY_DATE = date(1970, 1, 1)
LATEST_QUERY_DATE = date(2100, 1, 1)
MAX_ID = 2**63 - 1  # the largest integer SQLite and PostgreSQL (bigint) hold
MAX_POSITION = 1_000_000  # the highest step position
ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def control_character(text: str) -> str | None:
    """The first control character or line separator in `text`, as U+XXXX, or None."""
    found = CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def _plain_name(text: str) -> str:
    found = control_character(text)
    if found:
        raise PydanticCustomError("control_character",
                                  "must not contain control characters or line breaks "
                                  "(found {char})", {"char": found})
    return text


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "must not contain a NUL character (U+0000)")
    return text


def non_finite(value: Any) -> bool:
    """Whether a parsed JSON value holds NaN or an infinity anywhere (1e400 parses as one)."""
    kind = type(value)
    if kind is float:
        return not isfinite(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return False
    for item in value:  # scalars are looked at here, without a call each
        kind = type(item)
        if kind is float:
            if not isfinite(item):
                return True
        elif (kind is dict or kind is list) and non_finite(item):
            return True
    return False


def _finite(value: Any) -> Any:
    if non_finite(value):
        raise PydanticCustomError("non_finite_number",
                                  "NaN and Infinity are not JSON numbers (nor is a number too "
                                  "large for a double, such as 1e400)")
    return value


def latest_accepted_time(now: datetime | None = None) -> datetime:
    """The latest started_at/finished_at accepted: 24 hours after the time of receipt."""
    return (now or datetime.now(UTC)) + LATEST_AHEAD


# The latest time accepted when last worked out: it only grows, so a time at or before it
# is accepted without reading the clock again (thousands of times in a batch).
_latest = [EARLIEST_TIME]


def _accepted_time(value: datetime) -> datetime:
    """Times without an offset are UTC; the result lies from 1970 to 24 hours from now."""
    if value.tzinfo is not UTC:
        try:
            # Without an offset, or at +00:00 (a `Z`): the same wall time, named UTC.
            value = (value.astimezone(UTC) if value.utcoffset() else
                     value.replace(tzinfo=UTC))
        except (OverflowError, ValueError):  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
            value = None
    if value is not None and EARLIEST_TIME <= value <= _latest[0]:
        return value
    _latest[0] = latest_accepted_time()
    if value is None or not EARLIEST_TIME <= value <= _latest[0]:
        raise PydanticCustomError(
            "time_range", "must be from 1970-01-01T00:00:00Z to 24 hours after the time of "
            "receipt ({latest})", {"latest": _latest[0].isoformat(timespec="seconds")
                                   .replace("+00:00", "Z")})
    return value


# What the validators below enforce, as the API document states it (JSON Schema).
PLAIN_PATTERN = f"^[^{CONTROL_CLASS}]*$"
# "Holds no NUL", said as not matching one rather than as `^[^\x00]*$`: the same strings,
# but a tool that folds a `maxLength` into such a pattern gets `[^\x00]{0,100000}` for an
# error message, a regular expression that takes seconds to compile (schemathesis builds it
# anew for each schema it appears in).
NO_NUL = {"not": {"pattern": "\\x00"}}
TIME_RANGE = ("From 1970-01-01T00:00:00Z to 24 hours after the time of receipt; without an "
              "offset, UTC.")
# A name (workflow, step, external id, an alert rule's workflow): 1-200 characters, any
# Unicode but control characters and line breaks.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME,
                            json_schema_extra={"pattern": PLAIN_PATTERN}),
                 AfterValidator(_plain_name)]
# Free text (error messages, stack traces, logs, actions): anything but NUL, which
# PostgreSQL cannot store in text.
Text = Annotated[str, Field(json_schema_extra=NO_NUL),
                 AfterValidator(_no_nul)]
def _integral(value: Any) -> Any:
    return int(value) if type(value) is float and value.is_integer() else value


def whole(low: int, high: int) -> Any:
    """A whole number from `low` to `high`. JSON Schema counts 2.0 as an integer too (some
    JSON writers put numbers so): it is taken as 2; 2.5 is refused."""
    return Annotated[int, Field(ge=low, le=high), BeforeValidator(_integral)]


# The usual way a time is written (`T`, seconds, at most six decimals, `Z` or an offset):
# read by the standard library, whose datetimes carry `timezone.utc` itself. pydantic's carry
# an offset object of their own, which each comparison and conversion to UTC asks for its
# offset: most of the cost of validating a batch's thousands of times. Every string this
# reads, pydantic reads as the same time; the standard library refusing one (a month 13, a
# leap second), pydantic reads it and answers its own error.
_USUAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                         r"(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})")


_TIME = TypeAdapter(datetime, config=ConfigDict(strict=True))


def _usual_time(value: Any, info: ValidationInfo) -> datetime:
    if info.mode != "json":  # a datetime (a model made in Python), as pydantic reads it
        return _TIME.validate_python(value)
    if type(value) is str and _USUAL_TIME.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    # Any other value as pydantic reads it in JSON, with its errors.
    return _TIME.validate_json(json.dumps(value))


# A reported time: aware, in UTC, from 1970-01-01 to 24 hours after the time of receipt.
Timestamp = Annotated[datetime, Field(description=TIME_RANGE), BeforeValidator(_usual_time),
                      AfterValidator(_accepted_time)]
def _before_2100(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    if value >= LATEST_SETTING_TIME:
        raise PydanticCustomError("time_range", "must be before 2100-01-01T00:00:00Z")
    return value


# A time a user sets (a mute's end, a maintenance window's): with its offset, in UTC,
# before 2100-01-01.
LATEST_SETTING_TIME = datetime(2100, 1, 1, tzinfo=UTC)
SettingTime = Annotated[AwareDatetime, Field(description=(
    "A time with its offset (e.g. 2026-12-07T22:00:00Z or …+01:00), before 2100-01-01.")),
    AfterValidator(_before_2100)]
# Any JSON value with finite numbers only, so what is stored is served back as valid JSON.
Payload = Annotated[Any, AfterValidator(_finite)]


@lru_cache(maxsize=1)
def zone_names() -> frozenset[str]:
    """The IANA zone names this system knows: the only ones a `tz` or `timezone` takes."""
    return frozenset(available_timezones()) | {"UTC"}


def _alternatives(names: list[str]) -> str:
    """A pattern matching exactly `names`, grouped by their leading parts
    (`Europe/(?:Berlin|Paris)`): far shorter than the list, and as exact."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        head, slash, rest = name.partition("/")
        groups.setdefault(head + slash, []).append(rest)
    return "|".join(head.replace("+", "\\+") if not head.endswith("/")
                    else f"{head}(?:{_alternatives(rest)})" for head, rest in groups.items())


# An IANA zone name. The document states the names as one pattern rather than a list of
# some 600 (a list would be tried value by value by any tool that covers a document).
TimeZone = Annotated[str, Field(max_length=64), WithJsonSchema({
    "type": "string", "pattern": f"^(?:{_alternatives(list(zone_names()))})$",
    "description": "An IANA time zone name, e.g. Europe/Berlin or UTC."})]


def whole_number(text: str | None, low: int, high: int) -> int | None:
    """`text` as an int from `low` to `high` when it is ASCII digits alone, else None.

    `str.isdigit()` and `int()` both take digits of other scripts (², ٣); a query
    parameter takes 0-9 only.
    """
    if text is None or len(text) > len(str(high)) or not ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def query_date_in_range(day: date) -> bool:
    """Whether a `from`/`to` of a query lies from 1970-01-01 to 2100-01-01."""
    return EARLIEST_QUERY_DATE <= day <= LATEST_QUERY_DATE


__all__ = ["CONTROL_CLASS", "whole", "Name", "Text", "Timestamp", "SettingTime", "Payload",
           "TimeZone", "zone_names", "LATEST_SETTING_TIME",
           "control_character", "non_finite", "whole_number", "query_date_in_range",
           "latest_accepted_time", "MAX_ID", "MAX_POSITION", "MAX_NAME", "EARLIEST_TIME",
           "EARLIEST_QUERY_DATE", "LATEST_QUERY_DATE"]
