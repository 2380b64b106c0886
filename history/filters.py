"""The execution-history filter: one object parses, validates, queries and renders it.

The page, the API, paging links and the histogram all start from
`HistoryFilter.from_args(request.args, secret=...)`; nothing else reads the query string,
and every link is `f.url_with(...)` of it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Iterable, Literal, NamedTuple
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

import peewee
from itsdangerous import BadData, URLSafeSerializer
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.datastructures import MultiDict

from models.db import database, from_micros, is_sqlite, to_micros
from models.executions import STATUSES, Execution, Workflow
from models.inputs import (EARLIEST_QUERY_DATE, LATEST_QUERY_DATE, MAX_ID, Text, TimeZone,
                           query_date_in_range, whole_number, zone_names)
from models.schemas import InputError, QueryParam

SORTS = {
    "-started_at": "newest first",
    "started_at": "oldest first",
    "-duration": "longest first",
    "duration": "shortest first",
}
DEFAULT_SORT = "-started_at"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_WORKFLOWS = 50
MAX_NAME = 200
MAX_PARTS = 16  # several workflows/statuses: up to this many index walks, merged
SORT_FOUND_UP_TO = 5_000  # duration order: sort up to this many matches instead of walking
# The query parameters, declared once: the parser below reads these names and the API
# document describes them. "filter" ones may also sit inside `filter=<JSON>`; "paging" ones
# may sit beside it (they page, not filter).
WorkflowName = Annotated[Text, Field(max_length=MAX_NAME)]
DateOrTime = date | datetime
RANGE = "From 1970-01-01 to 2100-01-01."


class FilterObject(BaseModel):
    """What `filter=<JSON>` holds: the filter parameters, as one object."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    workflow: WorkflowName | list[WorkflowName] | None = None
    status: Literal[STATUSES] | list[Literal[STATUSES]] | None = None
    from_: DateOrTime | None = Field(None, alias="from")
    to: DateOrTime | None = None
    tz: TimeZone | None = None


PARAMETERS = (
    QueryParam("workflow", WorkflowName,
               f"Exact workflow name; repeat for several (at most {MAX_WORKFLOWS}).",
               repeated=True, group="filter"),
    QueryParam("status", Literal[STATUSES],
               "Run status; repeat, or separate with commas, for several.",
               repeated=True, group="filter"),
    QueryParam("from", DateOrTime, "Runs started at or after this ISO 8601 date-time, or this "
               f"date (YYYY-MM-DD). Without an offset it is read in `tz`. {RANGE}",
               group="filter"),
    QueryParam("to", DateOrTime, "Runs started at or before this ISO 8601 date-time; a date "
               f"covers that whole day. Without an offset it is read in `tz`. {RANGE} Not "
               "before `from`.", group="filter"),
    QueryParam("tz", TimeZone,
               "IANA time zone in which `from` and `to` are read (default UTC).",
               group="filter"),
    QueryParam("sort", Literal[tuple(SORTS)], "Order of the runs (default -started_at).",
               group="paging"),
    QueryParam("limit", Annotated[int, Field(ge=1, le=MAX_LIMIT)],
               f"Page size (default {DEFAULT_LIMIT}).", group="paging"),
    QueryParam("cursor", str, "`next_cursor` of the previous page.", group="paging"),
    QueryParam("filter", FilterObject, "The filter as one JSON object instead of the "
               'filter parameters (not with them), e.g. {"workflow": ["a"], "status": '
               '["failure"], "from": "2026-11-01"}; sort, limit and cursor go beside it.',
               group="json"),
)
SINGLE_VALUED = tuple(p.name for p in PARAMETERS if not p.repeated and p.group != "json")
FILTER_KEYS = tuple(p.name for p in PARAMETERS if p.group == "filter")
PAGING_KEYS = tuple(p.name for p in PARAMETERS if p.group == "paging")
FORM_FIELDS = ("workflow", "status", "from", "to", "tz", "sort", "limit")
DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
CURSOR_SALT = "runwatch.history.cursor"
SHOWN_FROM = to_micros(datetime(1, 1, 2, tzinfo=timezone.utc))  # any zone's local time fits
SHOWN_UNTIL = to_micros(datetime(9999, 12, 30, tzinfo=timezone.utc))


class FilterError(InputError):
    """One or more bad parameters; `errors` maps each field to its message, `values` holds
    what was submitted (as `HistoryFilter.form_values` does), so a form can be corrected."""

    def __init__(self, errors: dict[str, str], values: dict[str, Any] | None = None):
        field_name, message = next(iter(errors.items()))
        super().__init__(message, field_name)
        self.errors = errors
        self.values = values if values is not None else _submitted(MultiDict())


@dataclass(frozen=True)
class Bound:
    """One end of the started_at range: as written (canonical) and as microseconds."""

    text: str
    micros: int
    is_date: bool


@dataclass(frozen=True)
class Cursor:
    """Where the previous page stopped: the sort value and id of its last row."""

    phase: int  # duration sorts: 0 while walking finished runs, 1 for those without one
    value: int | None
    id: int


@dataclass(frozen=True)
class HistoryFilter:
    """A validated history query: workflows, statuses, range, zone, order and page."""

    workflows: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start: Bound | None = None
    end: Bound | None = None
    tz: str = "UTC"
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None
    secret: str = field(default="", repr=False, compare=False)
    path: str = field(default="", repr=False, compare=False)  # where url_with links lead

    # --- parsing ----------------------------------------------------------------------------

    @classmethod
    def from_args(cls, args: Any, *, secret: str, path: str = "") -> "HistoryFilter":
        """Validate query arguments (a MultiDict, dict or pairs, plain or as `filter=<JSON>`);
        raises FilterError naming fields. `path` is where `url_with` links lead."""
        values = _non_empty(args)
        if "filter" in values:
            values = _from_json(values)
        errors: dict[str, str] = {}
        for name in SINGLE_VALUED:
            if len(values.getlist(name)) > 1:
                errors[name] = f"give {name} once, not {len(values.getlist(name))} times"
        one = {name: values.getlist(name)[-1] for name in SINGLE_VALUED if name in values}

        workflows = _workflows(values.getlist("workflow"), errors)
        statuses = _statuses(values.getlist("status"), errors)
        zone, tz = _zone(one.get("tz", "UTC"), errors)
        start = _bound(one.get("from"), zone, False, "from", errors)
        end = _bound(one.get("to"), zone, True, "to", errors)
        if start and end and start.micros > end.micros:
            errors["from"] = "from is after to"
        sort = one.get("sort", DEFAULT_SORT)
        if sort not in SORTS:
            errors["sort"] = f"sort must be one of {', '.join(SORTS)}"
            sort = DEFAULT_SORT
        limit = _limit(one.get("limit"), errors)
        cursor = _decode_cursor(one.get("cursor"), sort, secret, errors)
        if errors:
            raise FilterError(errors, _submitted(values))
        return cls(workflows, statuses, start, end, tz, sort, limit, cursor, secret, path)

    # --- rendering --------------------------------------------------------------------------

    def to_args(self) -> list[tuple[str, str]]:
        """The canonical query arguments, in a fixed order, defaults left out."""
        args = [("workflow", name) for name in self.workflows]
        args += [("status", status) for status in self.statuses]
        if self.start:
            args.append(("from", self.start.text))
        if self.end:
            args.append(("to", self.end.text))
        if self.tz != "UTC":
            args.append(("tz", self.tz))
        if self.sort != DEFAULT_SORT:
            args.append(("sort", self.sort))
        if self.limit != DEFAULT_LIMIT:
            args.append(("limit", str(self.limit)))
        if self.cursor:
            args.append(("cursor", self.encode_cursor(self.cursor)))
        return args

    def query_string(self) -> str:
        """The canonical query string (without `?`)."""
        return urlencode(self.to_args())

    def url_with(self, *, path: str | None = None, after: int | None = None,
                 **changes: Any) -> str:
        """The canonical URL of this filter with some parts replaced, e.g. `cursor=next`,
        `workflows=(name,)` or `start="2026-11-01", end=None`; without changes, its own URL.

        Any change but `cursor` starts from page one. `start`/`end` may be texts, kept as
        written; `after` is the fresh-runs poll's own parameter, last.
        """
        if path is None and after is None and changes and changes.keys() <= {"start", "end"} \
                and all(isinstance(v, (str, type(None))) for v in changes.values()):
            # Histogram bars and quick ranges: only the range differs from link to link.
            before, behind = self._range_parts
            bounds = [f"{name}={quote_plus(text)}" for name, text
                      in (("from", changes.get("start")), ("to", changes.get("end"))) if text]
            query = "&".join(part for part in (before, *bounds, behind) if part)
            return self.path + "?" + query if query else self.path
        if path is None and after is None and changes.keys() == {"workflows"} \
                and len(changes["workflows"]) == 1:
            # Each row's workflow link: one workflow in front of the rest of the filter.
            rest = self._workflow_rest
            query = f"workflow={quote_plus(changes['workflows'][0])}" + (f"&{rest}" if rest else "")
            return self.path + "?" + query
        if changes:
            for name, is_end in (("start", False), ("end", True)):
                if isinstance(changes.get(name), str):
                    changes[name] = self._bound_as_written(changes[name], is_end)
            target = self.but(**changes)
        else:
            target = self
        args = target.to_args()
        if after is not None:
            args.append(("after", str(after)))
        query = urlencode(args)
        base = self.path if path is None else path
        return base + "?" + query if query else base

    @cached_property
    def _range_parts(self) -> tuple[str, str]:
        """The canonical query string around `from`/`to` on page one: before and behind."""
        args = replace(self, start=None, end=None, cursor=None).to_args()
        at = sum(1 for key, _ in args if key in ("workflow", "status"))
        return urlencode(args[:at]), urlencode(args[at:])

    @cached_property
    def _workflow_rest(self) -> str:
        """The canonical query string after `workflow`, on page one."""
        return urlencode(replace(self, workflows=(), cursor=None).to_args())

    def _bound_as_written(self, text: str, is_end: bool) -> Bound:
        errors: dict[str, str] = {}
        bound = _bound(text, self.zone, is_end, "to" if is_end else "from", errors)
        if bound is None:
            raise ValueError(next(iter(errors.values())))
        return Bound(text, bound.micros, bound.is_date)

    def cleared(self) -> "HistoryFilter":
        """The empty filter, with the same path and secret (for a "clear the filter" link)."""
        return HistoryFilter(secret=self.secret, path=self.path)

    def form_values(self) -> dict[str, Any]:
        """What a form shows for this filter: the fields of the canonical query string."""
        args = MultiDict(self.to_args())
        return _submitted(args)

    def but(self, **changes) -> "HistoryFilter":
        """A copy with some parts changed; any change but `cursor` starts from page one."""
        if "cursor" not in changes:
            changes["cursor"] = None
        return replace(self, **changes)

    def is_empty(self) -> bool:
        """Whether nothing narrows the runs (order and page size aside)."""
        return not (self.workflows or self.statuses or self.start or self.end)

    def describe(self) -> str:
        """A sentence for people: 'failure runs of invoice-sync since 2026-11-01, newest first'."""
        what = " or ".join(self.statuses) + " runs" if self.statuses else "All runs"
        if self.statuses:
            what = what[0].upper() + what[1:]
        parts = [what]
        if self.workflows:
            parts.append("of " + ", ".join(self.workflows))
        if self.start and self.end:
            parts.append(f"from {self.start.text} to {self.end.text}")
        elif self.start:
            parts.append(f"since {self.start.text}")
        elif self.end:
            parts.append(f"until {self.end.text}")
        if (self.start or self.end) and self.tz != "UTC":
            parts.append(f"({self.tz})")
        return " ".join(parts) + ", " + SORTS[self.sort]

    @property
    def zone(self) -> ZoneInfo:
        """The zone in which times are read and shown."""
        return ZoneInfo(self.tz)

    # --- querying ---------------------------------------------------------------------------

    def workflow_ids(self) -> list[int] | None:
        """Ids of the named workflows (None: no workflow restriction)."""
        return self._workflow_ids

    def knowing_workflow_ids(self, ids: list[int] | None) -> "HistoryFilter":
        """A copy that already knows its workflows' ids (looked up, maybe cached, elsewhere)."""
        copy = replace(self)
        copy.__dict__["_workflow_ids"] = ids  # what the cached property would have found
        return copy

    @cached_property
    def _workflow_ids(self) -> list[int] | None:
        if not self.workflows:
            return None
        found = (Workflow.select(Workflow.id).where(Workflow.name.in_(list(self.workflows)))
                 .order_by(Workflow.id).tuples())
        return [row[0] for row in found]

    def conditions(self, with_status: bool = True, workflow_ids: list[int] | None = None,
                   statuses: list[str] | None = None,
                   started: peewee.Node = Execution.started_at) -> list[peewee.Expression]:
        """WHERE terms of the filter (optionally without the status restriction; `started`
        in place of the start time in the date range)."""
        terms: list[peewee.Expression] = []
        ids = self.workflow_ids() if workflow_ids is None else workflow_ids
        if ids is not None:
            terms.append(_one_or_in(Execution.workflow, ids))
        wanted = statuses or list(self.statuses)
        if with_status and wanted:
            terms.append(_one_or_in(Execution.status, wanted))
        if self.start:
            terms.append(started >= self.start.micros)
        if self.end:
            terms.append(started <= self.end.micros)
        return terms

    def apply(self, query: peewee.ModelSelect, phase: int | None = None,
              workflow_ids: list[int] | None = None, statuses: list[str] | None = None,
              sort_found: bool = False) -> peewee.ModelSelect:
        """The query narrowed by the filter, ordered, after the cursor, limited to limit + 1.

        `sort_found` orders by an expression, so the database narrows by the filter's own
        indexes and sorts what it found, instead of walking a whole duration index.
        """
        started = Execution.started_at
        if is_sqlite() and not sort_found and not self.sort.endswith("started_at"):
            # Given a date range with both ends, SQLite reads the whole range from the start
            # time's index and sorts it (a week: tens of thousands of runs) rather than walk
            # the duration index, which holds the start time to check; an expression hides
            # the start time's index. (PostgreSQL weighs both with its statistics.)
            started = Execution.started_at + 0
        terms = self.conditions(workflow_ids=workflow_ids, statuses=statuses, started=started)
        query = query.where(*terms) if terms else query
        descending = self.sort.startswith("-")
        if self.sort.endswith("started_at"):
            key = Execution.started_at
        else:
            # An expression hides the duration index from the planner when sorting found rows.
            key = Execution.duration_ms + 0 if sort_found else Execution.duration_ms
            phase = phase if phase is not None else (self.cursor.phase if self.cursor else 0)
            query = query.where(key.is_null(phase == 1))
            if phase == 1:
                key = None
        cursor = self.cursor if (self.cursor and (phase is None or self.cursor.phase == phase)) \
            else None
        if key is None:
            if cursor:
                query = query.where(Execution.id < cursor.id if descending
                                    else Execution.id > cursor.id)
            order = [Execution.id.desc() if descending else Execution.id]
        else:
            if cursor:
                after = peewee.Tuple(key, Execution.id)
                mark = peewee.Tuple(cursor.value, cursor.id)
                query = query.where(after < mark if descending else after > mark)
            order = [key.desc(), Execution.id.desc()] if descending else [key, Execution.id]
        return query.order_by(*order).limit(self.limit + 1)

    def page(self, matching: int | None = None) -> tuple[list["Row"], Cursor | None]:
        """One page of rows (`list_query`'s columns) and the next page's cursor (None at the end).

        `matching`, the number of runs the filter matches when known (from the rollups),
        lets a small set in duration order be sorted rather than found by walking an index.
        """
        if self.sort.endswith("started_at"):
            rows = self._merged(None, False)
        else:
            small = matching is not None and matching <= SORT_FOUND_UP_TO
            phase = self.cursor.phase if self.cursor else 0
            rows = self._merged(phase, small)
            if phase == 0 and len(rows) <= self.limit:
                rest = replace(self, limit=self.limit - len(rows))
                rows += rest._merged(1, small)
        if len(rows) <= self.limit:
            return rows, None
        last = rows[self.limit - 1]
        return rows[:self.limit], self.cursor_after(last)

    def _merged(self, phase: int | None, small: bool) -> list["Row"]:
        """Rows of one phase; several workflows or statuses are read apart and merged, so
        each part walks its own index in order instead of sorting everything that matches."""
        ids = self.workflow_ids()
        by_workflow = [[i] for i in ids] if ids and len(ids) > 1 else [ids]
        statuses = list(self.statuses)
        by_status = ([[s] for s in statuses] if len(statuses) > 1
                     and self.sort.endswith("started_at") else [statuses])
        if len(by_workflow) * len(by_status) > MAX_PARTS:
            by_workflow, by_status = [ids], [statuses]
        parts = [self._fetch(phase, w, st or None, small)
                 for w in by_workflow for st in by_status]
        if len(parts) == 1:
            return parts[0]
        rows = [row for part in parts for row in part]
        rows.sort(key=self._row_key, reverse=self.sort.startswith("-"))
        return rows[:self.limit + 1]

    def _fetch(self, phase: int | None, workflow_ids: list[int] | None,
               statuses: list[str] | None, small: bool) -> list["Row"]:
        """`apply(list_query(), ...)`'s rows, from SQL text built once per query shape."""
        cursor = self.cursor if (self.cursor and (phase is None or self.cursor.phase == phase)) \
            else None
        shape = (type(database.obj), self.sort, phase, small,
                 None if workflow_ids is None else len(workflow_ids),
                 len(statuses or self.statuses), self.start is not None, self.end is not None,
                 cursor is not None and cursor.value is None, cursor is not None)
        compiled = _COMPILED.get(shape)
        if compiled is None:
            compiled = _COMPILED[shape] = self._compile(phase, workflow_ids, statuses, small,
                                                        cursor)
        sql, slots = compiled
        values = {"limit": self.limit + 1,
                  "start": self.start.micros if self.start else None,
                  "end": self.end.micros if self.end else None,
                  "cursor_value": cursor.value if cursor else None,
                  "cursor_id": cursor.id if cursor else None}
        for index, workflow_id in enumerate(workflow_ids or ()):
            values[("workflow", index)] = workflow_id
        for index, status in enumerate(statuses or self.statuses):
            values[("status", index)] = status
        params = [values[slot.name] if isinstance(slot, _Slot) else slot for slot in slots]
        return [Row(*row) for row in database.execute_sql(sql, params).fetchall()]

    def _compile(self, phase: int | None, workflow_ids: list[int] | None,
                 statuses: list[str] | None, small: bool,
                 cursor: Cursor | None) -> tuple[str, list]:
        """The SQL of `apply` for this shape, with each value replaced by a named slot."""
        slots: dict[object, _Slot] = {}

        def slot(name: object, kind: type = int) -> object:
            marker = (SENTINEL + len(slots)) if kind is int else f"\x00slot{len(slots)}"
            slots[marker] = _Slot(name)
            return marker

        shaped = replace(
            self,
            start=Bound("", slot("start"), False) if self.start else None,
            end=Bound("", slot("end"), False) if self.end else None,
            cursor=Cursor(cursor.phase, None if cursor.value is None else slot("cursor_value"),
                          slot("cursor_id")) if cursor else None,
            statuses=tuple(slot(("status", i), str) for i in range(len(self.statuses))))
        shaped = replace(shaped, limit=slot("limit") - 1)
        ids = None if workflow_ids is None else [slot(("workflow", i))
                                                  for i in range(len(workflow_ids))]
        wanted = None if not statuses else [slot(("status", i), str)
                                            for i in range(len(statuses))]
        if wanted:  # the same slots whether given here or taken from the filter
            shaped = replace(shaped, statuses=tuple(wanted))
        sql, params = shaped.apply(list_query(), phase, ids, wanted, small).sql()
        return sql, [slots.get(param, param) if isinstance(param, (int, str)) else param
                     for param in params]

    def _row_key(self, row) -> tuple:
        if self.sort.endswith("started_at"):
            return (row.started_micros, row.id)
        return (row.duration_ms is not None, row.duration_ms or 0, row.id)

    def cursor_after(self, row) -> Cursor:
        """The cursor that continues after `row` in this filter's order."""
        if self.sort.endswith("started_at"):
            return Cursor(0, row.started_micros, row.id)
        if row.duration_ms is None:
            return Cursor(1, None, row.id)
        return Cursor(0, row.duration_ms, row.id)

    def encode_cursor(self, cursor: Cursor) -> str:
        """An opaque, signed token for `cursor` (bound to this sort order)."""
        payload = [self.sort, cursor.phase, cursor.value, cursor.id]
        return _serializer(self.secret).dumps(payload)

    def time_window(self, earliest: int | None, latest: int | None,
                    now: datetime) -> tuple[int, int] | None:
        """[start, end) microseconds the filter covers, closed by the data where it is open."""
        if self.start is None and earliest is None:
            return None
        end = self.end.micros + 1 if self.end else max(to_micros(now),
                                                       (latest or 0) + 1)
        start = self.start.micros if self.start else earliest
        return start, max(end, start + 1)

    def local(self, micros: int) -> datetime:
        """A stored time in the filter's zone (a time within a day of year 1 or year 9999,
        which only an older release could store, is shown as a day later or earlier)."""
        return from_micros(min(max(micros, SHOWN_FROM), SHOWN_UNTIL)).astimezone(self.zone)


@dataclass(frozen=True)
class _Slot:
    """Where a value goes in a compiled query's parameters."""

    name: object


class Row(NamedTuple):
    """One listed run: the narrow columns of `list_query` (times as stored, microseconds)."""

    id: int
    status: str
    started_micros: int
    finished_micros: int | None
    duration_ms: int | None
    step_count: int
    error_message: str | None
    workflow_name: str

    @property
    def started_at(self) -> datetime:
        """When the run started (aware, UTC)."""
        return from_micros(self.started_micros)

    @property
    def finished_at(self) -> datetime | None:
        """When the run finished (aware, UTC), if it has."""
        return None if self.finished_micros is None else from_micros(self.finished_micros)


SENTINEL = 7_000_000_000_000_000_000  # far beyond any id or time: marks a slot while compiling
_COMPILED: dict[tuple, tuple[str, list]] = {}  # SQL text per query shape, for this process


def list_query() -> peewee.ModelSelect:
    """The narrow columns a history row shows, with the workflow's name; never payloads."""
    return (Execution.select(Execution.id, Execution.status, Execution.started_at,
                             Execution.finished_at, Execution.duration_ms, Execution.step_count,
                             Execution.error_message, Workflow.name.alias("workflow_name"))
            .join(Workflow).objects())


# --- parsing helpers ----------------------------------------------------------------------

def _non_empty(args: Any) -> MultiDict:
    """Every parameter's non-empty values, from a MultiDict, a dict or (key, value) pairs."""
    given = args if isinstance(args, MultiDict) else MultiDict(args)
    return MultiDict((key, str(value)) for key, value in given.items(multi=True)
                     if value is not None and str(value) != "")


def _submitted(args: MultiDict) -> dict[str, Any]:
    """The values a form shows: as submitted, so a bad one can be corrected."""
    statuses = {part.strip() for value in args.getlist("status") for part in value.split(",")}
    return {"workflow": list(dict.fromkeys(args.getlist("workflow"))), "status": statuses,
            **{name: args.get(name, "") for name in ("from", "to", "tz", "sort", "limit")}}


def _from_json(args: MultiDict) -> MultiDict:
    """`filter=<JSON object>` turned into the plain parameters it stands for, beside the
    paging parameters given with it; FilterError names the key at fault."""
    texts = args.getlist("filter")
    form = _submitted(args)
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
        elif key in ("workflow", "status") and isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                errors[key] = f"{key} must be a string or a list of strings"
            out.setlist(key, [item for item in value if item != ""])
        elif isinstance(value, str):
            if value != "":
                out.add(key, value)
        else:
            errors[key] = (f"{key} must be a string or a list of strings"
                           if key in ("workflow", "status") else f"{key} must be a string")
    if errors:
        raise FilterError(errors, _submitted(MultiDict(
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


def _workflows(names: list[str], errors: dict[str, str]) -> tuple[str, ...]:
    unique = tuple(dict.fromkeys(names))
    if any(len(name) > MAX_NAME for name in unique):
        errors["workflow"] = f"workflow names have at most {MAX_NAME} characters"
    elif any("\x00" in name for name in unique):  # no name holds one; PostgreSQL refuses it
        errors["workflow"] = "workflow names contain no NUL character"
    elif len(unique) > MAX_WORKFLOWS:
        errors["workflow"] = f"at most {MAX_WORKFLOWS} workflows at once"
    return unique


def _statuses(raw: list[str], errors: dict[str, str]) -> tuple[str, ...]:
    wanted = {part.strip() for value in raw for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(STATUSES))
    if unknown:
        errors["status"] = (f"unknown status {unknown[0]!r}; use "
                            f"{', '.join(STATUSES)}")
    return tuple(s for s in STATUSES if s in wanted)


def _zone(name: str, errors: dict[str, str]) -> tuple[ZoneInfo, str]:
    if name in zone_names():  # the names the API document lists, nothing else ZoneInfo reads
        return ZoneInfo(name), name
    errors["tz"] = f"unknown time zone {name[:64]!r}; use an IANA name like Europe/Berlin"
    return ZoneInfo("UTC"), "UTC"


def _bound(text: str | None, zone: ZoneInfo, is_end: bool, name: str,
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


def _limit(text: str | None, errors: dict[str, str]) -> int:
    if text is None:
        return DEFAULT_LIMIT
    limit = whole_number(text.strip(), 1, MAX_LIMIT)
    if limit is None:
        errors["limit"] = f"limit must be a whole number from 1 to {MAX_LIMIT}"
        return DEFAULT_LIMIT
    return limit


def _decode_cursor(text: str | None, sort: str, secret: str,
                   errors: dict[str, str]) -> Cursor | None:
    if text is None:
        return None
    try:
        payload = _serializer(secret).loads(text)
    except (BadData, ValueError, TypeError):
        errors["cursor"] = "cursor is not one this server gave out; start from the first page"
        return None
    if (not isinstance(payload, list) or len(payload) != 4 or payload[0] != sort
            or payload[1] not in (0, 1) or not _is_int(payload[3])
            or not (payload[2] is None or _is_int(payload[2]))):
        errors["cursor"] = "cursor belongs to another sort order; start from the first page"
        return None
    return Cursor(payload[1], payload[2], payload[3])


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=CURSOR_SALT)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_or_in(column: peewee.Field, values: Iterable) -> peewee.Expression:
    values = list(values)
    if not values:  # only unknown workflow names: nothing matches
        return peewee.SQL("1 = 0")
    return column == values[0] if len(values) == 1 else column.in_(values)


def after_id(args: Any) -> int:
    """The fresh-runs poll's `after` (the newest run shown); FilterError when missing or bad."""
    after = whole_number(_non_empty(args).get("after", ""), 0, MAX_ID)
    if after is None:
        raise FilterError({"after": "after must be the id of a run"})
    return after


__all__ = ["HistoryFilter", "FilterError", "list_query", "after_id", "Cursor", "Bound", "SORTS",
           "DEFAULT_LIMIT", "MAX_LIMIT"]
