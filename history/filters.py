"""The execution-history filter: one object parses, validates, queries and renders it
(its parameters: parameters.py; reading them: parsing.py; its paging tokens: cursors.py;
its compiled page queries: compiled.py).

The page, the API, paging links and the histogram all start from
`HistoryFilter.from_args(request.args, secret=...)`; nothing else reads the query string,
and every link is `f.url_with(...)` of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Iterable
from urllib.parse import quote_plus, urlencode
from zoneinfo import ZoneInfo

import peewee
from werkzeug.datastructures import MultiDict

from models.db import is_sqlite
from models.times import from_micros, to_micros
from models.executions import Execution, Workflow

from .compiled import Row, list_query
from .cursors import Cursor, decode_cursor, encode_cursor
from .pages import cursor_after, read_page
from .parameters import DEFAULT_LIMIT, DEFAULT_SORT, MAX_LIMIT, PARAMETERS, SINGLE_VALUED, SORTS
from .parsing import (Bound, FilterError, after_id, from_json, non_empty, parse_bound,
                      parse_external_ids, parse_limit, parse_query, parse_statuses,
                      parse_workflows, parse_zone, submitted)
from .search import Search, search_terms

SHOWN_FROM = to_micros(datetime(1, 1, 2, tzinfo=timezone.utc))  # any zone's local time fits
SHOWN_UNTIL = to_micros(datetime(9999, 12, 30, tzinfo=timezone.utc))


@dataclass(frozen=True)
class HistoryFilter:
    """A validated history query: workflows, statuses, external ids, search, range, zone,
    order and page."""

    workflows: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    q: str | None = None  # a run id, an external id or error text (history/search.py)
    start: Bound | None = None
    end: Bound | None = None
    tz: str = "UTC"
    sort: str = DEFAULT_SORT
    limit: int = DEFAULT_LIMIT
    cursor: Cursor | None = None
    secret: str = field(default="", repr=False, compare=False)
    path: str = field(default="", repr=False, compare=False)  # where url_with links lead
    # The zone when `tz` is not given: the reader's own on pages (Settings), UTC in the API.
    default_tz: str = field(default="UTC", repr=False, compare=False)

    # --- parsing ----------------------------------------------------------------------------

    @classmethod
    def from_args(cls, args: Any, *, secret: str, path: str = "",
                  default_tz: str = "UTC") -> "HistoryFilter":
        """Validate query arguments (a MultiDict, dict or pairs, plain or as `filter=<JSON>`);
        raises FilterError naming fields. `path` is where `url_with` links lead; `default_tz`
        is the zone without `tz`."""
        values = non_empty(args)
        if "filter" in values:
            values = from_json(values)
        errors: dict[str, str] = {}
        for name in SINGLE_VALUED:
            if len(values.getlist(name)) > 1:
                errors[name] = f"give {name} once, not {len(values.getlist(name))} times"
        one = {name: values.getlist(name)[-1] for name in SINGLE_VALUED if name in values}

        workflows = parse_workflows(values.getlist("workflow"), errors)
        statuses = parse_statuses(values.getlist("status"), errors)
        external_ids = parse_external_ids(values.getlist("external_id"), errors)
        q = parse_query(one.get("q"), errors)
        zone, tz = parse_zone(one.get("tz", default_tz), errors)
        start = parse_bound(one.get("from"), zone, False, "from", errors)
        end = parse_bound(one.get("to"), zone, True, "to", errors)
        if start and end and start.micros > end.micros:
            errors["from"] = "from is after to"
        sort = one.get("sort", DEFAULT_SORT)
        if sort not in SORTS:
            errors["sort"] = f"sort must be one of {', '.join(SORTS)}"
            sort = DEFAULT_SORT
        limit = parse_limit(one.get("limit"), errors)
        cursor = decode_cursor(one.get("cursor"), sort, secret, errors)
        if errors:
            raise FilterError(errors, submitted(values))
        return cls(workflows, statuses, external_ids, q, start, end, tz, sort, limit, cursor,
                   secret, path, default_tz)

    # --- rendering --------------------------------------------------------------------------

    def to_args(self) -> list[tuple[str, str]]:
        """The canonical query arguments, in a fixed order, defaults left out."""
        args = [("workflow", name) for name in self.workflows]
        args += [("status", status) for status in self.statuses]
        args += [("external_id", value) for value in self.external_ids]
        if self.q:
            args.append(("q", self.q))
        if self.start:
            args.append(("from", self.start.text))
        if self.end:
            args.append(("to", self.end.text))
        if self.tz != self.default_tz:
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

    def export_url(self, path: str, fmt: str) -> str:
        """The export of this filter's runs in `fmt`: its filter alone (the export has no
        order or page) and its zone, then the format."""
        # The export reads a filter without `tz` in UTC, as the API does, not in the zone
        # of the account whose page this is: the zone goes along whenever it is not UTC.
        args = self.but(sort=DEFAULT_SORT, limit=DEFAULT_LIMIT, default_tz="UTC").to_args()
        return path + "?" + urlencode([*args, ("format", fmt)])

    @cached_property
    def _range_parts(self) -> tuple[str, str]:
        """The canonical query string around `from`/`to` on page one: before and behind."""
        args = replace(self, start=None, end=None, cursor=None).to_args()
        at = sum(1 for key, _ in args if key in ("workflow", "status", "external_id", "q"))
        return urlencode(args[:at]), urlencode(args[at:])

    @cached_property
    def _workflow_rest(self) -> str:
        """The canonical query string after `workflow`, on page one."""
        return urlencode(replace(self, workflows=(), cursor=None).to_args())

    def _bound_as_written(self, text: str, is_end: bool) -> Bound:
        errors: dict[str, str] = {}
        bound = parse_bound(text, self.zone, is_end, "to" if is_end else "from", errors)
        if bound is None:
            raise ValueError(next(iter(errors.values())))
        return Bound(text, bound.micros, bound.is_date)

    def cleared(self) -> "HistoryFilter":
        """The empty filter, with the same path and secret (for a "clear the filter" link)."""
        return HistoryFilter(secret=self.secret, path=self.path)

    def form_values(self) -> dict[str, Any]:
        """What a form shows for this filter: the fields of the canonical query string."""
        args = MultiDict(self.to_args())
        return submitted(args)

    def but(self, **changes) -> "HistoryFilter":
        """A copy with some parts changed; any change but `cursor` starts from page one."""
        if "cursor" not in changes:
            changes["cursor"] = None
        return replace(self, **changes)

    def is_empty(self) -> bool:
        """Whether nothing narrows the runs (order and page size aside)."""
        return not (self.workflows or self.statuses or self.start or self.end
                    or self.searches())

    def searches(self) -> bool:
        """Whether runs are looked for (by `q` or `external_id`): the run counts kept per
        hour cannot answer then, the matching runs are counted."""
        return bool(self.q or self.external_ids)

    def describe(self) -> str:
        """A sentence for people: 'failure runs of invoice-sync since 2026-11-01, newest first'."""
        what = " or ".join(self.statuses) + " runs" if self.statuses else "All runs"
        if self.statuses:
            what = what[0].upper() + what[1:]
        parts = [what]
        if self.workflows:
            parts.append("of " + ", ".join(self.workflows))
        if self.external_ids:
            parts.append("with external id " + " or ".join(self.external_ids))
        if self.q:
            parts.append(f"matching “{self.q}”")
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

    def walking(self) -> "HistoryFilter":
        """A copy whose error-text search walks the order's index (many runs match)."""
        copy = replace(self)
        copy.__dict__.update(self.__dict__)  # with what it has looked up already
        copy.__dict__["search"] = replace(self.search, walk=True)
        return copy

    @cached_property
    def search(self) -> Search | None:
        """What `q` looks for (None without `q`)."""
        return Search.of(self.q) if self.q else None

    @cached_property
    def _workflow_ids(self) -> list[int] | None:
        if not self.workflows:
            return None
        found = (Workflow.select(Workflow.id).where(Workflow.name.in_(list(self.workflows)))
                 .order_by(Workflow.id).tuples())
        return [row[0] for row in found]

    def conditions(self, with_status: bool = True, workflow_ids: list[int] | None = None,
                   statuses: list[str] | None = None,
                   started: peewee.Node = Execution.started_at,
                   with_search: bool = True) -> list[peewee.Expression]:
        """WHERE terms of the filter (optionally without the status restriction or `q`'s;
        `started` in place of the start time in the date range)."""
        terms: list[peewee.Expression] = []
        ids = self.workflow_ids() if workflow_ids is None else workflow_ids
        if ids is not None:
            terms.append(_one_or_in(Execution.workflow, ids))
        wanted = statuses or list(self.statuses)
        if with_status and wanted:
            terms.append(_one_or_in(Execution.status, wanted))
        if self.external_ids:
            terms.append(_one_or_in(Execution.external_id, self.external_ids))
        if self.q and with_search:
            terms.append(search_terms(self.search))
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
        """One page of rows and the next page's cursor (history/pages.py `read_page`)."""
        return read_page(self, matching)

    def cursor_after(self, row) -> Cursor:
        """The cursor that continues after `row` in this filter's order."""
        return cursor_after(self, row)

    def encode_cursor(self, cursor: Cursor) -> str:
        """An opaque, signed token for `cursor` (bound to this sort order)."""
        return encode_cursor(cursor, self.sort, self.secret)

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


def _one_or_in(column: peewee.Field, values: Iterable) -> peewee.Expression:
    values = list(values)
    if not values:  # only unknown workflow names: nothing matches
        return peewee.SQL("1 = 0")
    return column == values[0] if len(values) == 1 else column.in_(values)


__all__ = ["HistoryFilter", "FilterError", "list_query", "after_id", "Cursor", "Bound", "Row",
           "SORTS", "PARAMETERS", "SINGLE_VALUED", "DEFAULT_LIMIT", "MAX_LIMIT"]
