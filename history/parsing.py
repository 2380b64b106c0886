"""Reading the history's query parameters: each value checked, every mistake named by its
field (FilterError), what was submitted kept so a form can show it again."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from models.times import to_micros
from models.executions import STATUSES
from models.inputs import (EARLIEST_QUERY_DATE, LATEST_QUERY_DATE, MAX_ID, query_date_in_range,
                           whole_number, zone_names)
from models.schemas import InputError

from .parameters import (DEFAULT_LIMIT, FILTER_KEYS, MAX_EXTERNAL_ID, MAX_EXTERNAL_IDS,
                         MAX_LIMIT, MAX_NAME, MAX_QUERY, MAX_WORKFLOWS, PAGING_KEYS)

DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
RUN_ID = re.compile(r"#?([0-9]{1,19})")
LISTS = ("workflow", "status", "external_id")  # filter keys that take several values
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class FilterError(InputError):
    """One or more bad parameters; `errors` maps each field to its message, `values` holds
    what was submitted (as `HistoryFilter.form_values` does), so a form can be corrected."""

    def __init__(self, errors: dict[str, str], values: dict[str, Any] | None = None):
        field_name, message = next(iter(errors.items()))
        super().__init__(message, field_name)
        self.errors = errors
        self.values = values if values is not None else submitted(MultiDict())


@dataclass(frozen=True)
class Bound:
    """One end of the started_at range: as written (canonical) and as microseconds."""

    text: str
    micros: int
    is_date: bool


def non_empty(args: Any) -> MultiDict:
    """Every parameter's non-empty values, from a MultiDict, a dict or (key, value) pairs."""
    given = args if isinstance(args, MultiDict) else MultiDict(args)
    return MultiDict((key, str(value)) for key, value in given.items(multi=True)
                     if value is not None and str(value) != "")


def submitted(args: MultiDict) -> dict[str, Any]:
    """The values a form shows: as submitted, so a bad one can be corrected."""
    statuses = {part.strip() for value in args.getlist("status") for part in value.split(",")}
    return {"workflow": list(dict.fromkeys(args.getlist("workflow"))), "status": statuses,
            "external_id": list(dict.fromkeys(args.getlist("external_id"))),
            **{name: args.get(name, "") for name in ("q", "from", "to", "tz", "sort", "limit")}}


def from_json(args: MultiDict) -> MultiDict:
    """`filter=<JSON object>` turned into the plain parameters it stands for, beside the
    paging parameters given with it; FilterError names the key at fault."""
    texts = args.getlist("filter")
    form = submitted(args)
    if len(texts) > 1:
        raise FilterError({"filter": f"give filter once, not {len(texts)} times"}, form)
    clash = next((key for key in FILTER_KEYS if key in args), None)
    if clash:
        raise FilterError({"filter": f"give {clash} inside filter or as a parameter, not "
                                     "both"}, form)
    try:
        given = json.loads(texts[0], parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested too deep
        raise FilterError({"filter": f"filter is not valid JSON ({exc})"}, form) from None
    if not isinstance(given, dict):
        raise FilterError({"filter": "filter must be a JSON object, like "
                                     '{"workflow": ["a"], "status": ["failure"]}'}, form)
    broken = _not_text_key(given)
    if broken:
        raise FilterError({broken: f"{broken} holds a lone surrogate (an escape from \\ud800 "
                                   "to \\udfff alone), which is not text"}, form)
    out = MultiDict((key, value) for key, value in args.items(multi=True)
                    if key in PAGING_KEYS)
    errors: dict[str, str] = {}
    for key, value in given.items():
        if key in PAGING_KEYS:
            errors[key] = f"{key} pages rather than filters: give it beside filter ({key}=…)"
        elif key not in FILTER_KEYS:
            errors[key] = f"unknown key {key[:40]!r} in filter; use {', '.join(FILTER_KEYS)}"
        elif value is None:
            continue
        elif key in LISTS and isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                errors[key] = f"{key} must be a string or a list of strings"
            out.setlist(key, [item for item in value if item != ""])
        elif isinstance(value, str):
            if value != "":
                out.add(key, value)
        else:
            errors[key] = (f"{key} must be a string or a list of strings"
                           if key in LISTS else f"{key} must be a string")
    if errors:
        raise FilterError(errors, submitted(MultiDict(
            (k, v) for k, v in out.items(multi=True) if isinstance(v, str))))
    return out


def _not_text_key(given: dict) -> str | None:
    """The key whose value holds a lone surrogate ("\\ud800" escapes one in JSON; a query
    string cannot), or "filter" for such a key itself: no database stores one and no page
    can show one. None when every string is text."""
    for key, value in given.items():
        if LONE_SURROGATE.search(key):
            return "filter"
        if any(isinstance(item, str) and LONE_SURROGATE.search(item)
               for item in (value if isinstance(value, list) else [value])):
            return key
    return None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def parse_workflows(names: list[str], errors: dict[str, str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(names))
    if any(len(name) > MAX_NAME for name in unique):
        errors["workflow"] = f"workflow names have at most {MAX_NAME} characters"
    elif any("\x00" in name for name in unique):  # no name holds one; PostgreSQL refuses it
        errors["workflow"] = "workflow names contain no NUL character"
    elif len(unique) > MAX_WORKFLOWS:
        errors["workflow"] = f"at most {MAX_WORKFLOWS} workflows at once"
    return unique


def parse_external_ids(values: list[str], errors: dict[str, str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(values))
    if any(len(value) > MAX_EXTERNAL_ID for value in unique):
        errors["external_id"] = f"external ids have at most {MAX_EXTERNAL_ID} characters"
    elif any("\x00" in value for value in unique):
        errors["external_id"] = "external ids contain no NUL character"
    elif len(unique) > MAX_EXTERNAL_IDS:
        errors["external_id"] = f"at most {MAX_EXTERNAL_IDS} external ids at once"
    return unique


def parse_query(text: str | None, errors: dict[str, str]) -> str | None:
    """`q` as searched: without the spaces around it (None when nothing is left)."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if len(text) > MAX_QUERY:
        errors["q"] = (f"q has at most {MAX_QUERY} characters (an error text is searched "
                       f"in its first {MAX_QUERY})")
    elif "\x00" in text:  # no stored text holds one; PostgreSQL refuses it
        errors["q"] = "q contains no NUL character"
    return text


def run_id_in(text: str) -> int | None:
    """The run id `q` names (`2011` or `#2011`), if it names one."""
    found = RUN_ID.fullmatch(text)
    if found is None:
        return None
    value = int(found.group(1))
    return value if 0 < value <= MAX_ID else None


def unknown_parameters(args: Any, known: tuple[str, ...]) -> list[str]:
    """The names in a query string that are none of `known`, in the order given."""
    names = args.keys() if isinstance(args, MultiDict) else MultiDict(args).keys()
    return list(dict.fromkeys(name for name in names if name not in known))


def parse_statuses(raw: list[str], errors: dict[str, str]) -> tuple[str, ...]:
    wanted = {part.strip() for value in raw for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        errors["status"] = (f"unknown status {unknown[0]!r}; use "
                            f"{', '.join(STATUSES)}")
    return tuple(s for s in STATUSES if s in wanted)


def parse_zone(name: str, errors: dict[str, str]) -> tuple[ZoneInfo, str]:
    if name in zone_names():  # the names the API document lists, nothing else ZoneInfo reads
        return ZoneInfo(name), name
    errors["tz"] = f"unknown time zone {name[:64]!r}; use an IANA name like Europe/Berlin"
    return ZoneInfo("UTC"), "UTC"


def parse_bound(text: str | None, zone: ZoneInfo, is_end: bool, name: str,
                errors: dict[str, str]) -> Bound | None:
    """A from/to value: a date (a `to` date covers the whole day) or a date-time."""
    if text is None:
        return None
    text = text.strip()
    try:
        if DATE_ONLY.fullmatch(text):
            day = date.fromisoformat(text)
            value = None
        else:
            value = datetime.fromisoformat(text)
            day = value.date()
    except ValueError:
        errors[name] = (f"{name} must be a date (2026-11-24) or an ISO 8601 date-time "
                        "(2026-11-24T10:00:00Z)")
        return None
    if not query_date_in_range(day):
        # Checked on the date as written, before any zone: nothing after this can overflow.
        errors[name] = (f"{name} must be from {EARLIEST_QUERY_DATE} to {LATEST_QUERY_DATE}, "
                        f"not {text[:40]}")
        return None
    if value is None:
        if is_end:
            return Bound(text, to_micros(_midnight(day + timedelta(days=1), zone)) - 1, True)
        return Bound(text, to_micros(_midnight(day, zone)), True)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    canonical = value.isoformat().replace("+00:00", "Z") if value.tzinfo is not zone \
        else value.replace(tzinfo=None).isoformat()
    return Bound(canonical, to_micros(value), False)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone)


def parse_limit(text: str | None, errors: dict[str, str]) -> int:
    if text is None:
        return DEFAULT_LIMIT
    limit = whole_number(text.strip(), 1, MAX_LIMIT)
    if limit is None:
        errors["limit"] = f"limit must be a whole number from 1 to {MAX_LIMIT}"
        return DEFAULT_LIMIT
    return limit


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def after_id(args: Any) -> int:
    """The fresh-runs poll's `after` (the newest run shown); FilterError when missing or bad."""
    after = whole_number(non_empty(args).get("after", ""), 0, MAX_ID)
    if after is None:
        raise FilterError({"after": "after must be the id of a run"})
    return after
