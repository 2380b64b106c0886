"""The history's query parameters, declared once: the parser reads these names, the API
document describes them, the page's form shows them. "filter" ones may also sit inside
`filter=<JSON>`; "paging" ones may sit beside it (they page, not filter)."""
from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.executions import STATUSES
from models.inputs import Text, TimeZone
from models.schemas import QueryParam

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
MAX_EXTERNAL_IDS = 50
MAX_EXTERNAL_ID = 200  # as long as a stored one may be
MAX_QUERY = 300  # as long as the error text a run's row keeps (ERROR_EXCERPT_CHARS)
MAX_PARTS = 16  # several workflows/statuses: up to this many index walks, merged
SORT_FOUND_UP_TO = 5_000  # duration order: sort up to this many matches instead of walking
WorkflowName = Annotated[Text, Field(max_length=MAX_NAME)]
ExternalId = Annotated[Text, Field(max_length=MAX_EXTERNAL_ID)]
Search = Annotated[Text, Field(max_length=MAX_QUERY)]
DateOrTime = date | datetime
RANGE = "From 1970-01-01 to 2100-01-01."


class FilterObject(BaseModel):
    """What `filter=<JSON>` holds: the filter parameters, as one object."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    workflow: WorkflowName | list[WorkflowName] | None = None
    status: Literal[STATUSES] | list[Literal[STATUSES]] | None = None
    external_id: ExternalId | list[ExternalId] | None = None
    q: Search | None = None
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
    QueryParam("external_id", ExternalId, "The run's exact `external_id`; repeat for several "
               f"(at most {MAX_EXTERNAL_IDS}).", repeated=True, group="filter"),
    QueryParam("q", Search, "Find runs: a run id (`2011` or `#2011`), an exact `external_id`, "
               "or text contained in the error message (case-insensitive; `%` and `_` are "
               "plain characters). The error text searched is the part a list shows, its "
               f"first {MAX_QUERY} characters.", group="filter"),
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
FORM_FIELDS = ("workflow", "status", "external_id", "q", "from", "to", "tz", "sort", "limit")
# What the export takes besides the filter: its format (it has no order or page of its own).
EXPORT_FORMATS = ("csv", "ndjson")
