"""What the sources API takes (a new source, a change to one) and answers."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema

from alerts.channels import URL_PATTERN
from alerts.config import ALLOW_PRIVATE
from alerts.outbound import checked_url
from alerts.services.options import SECRET
from models.inputs import MAX_ID, PLAIN_PATTERN, control_character, whole
from models.schemas import Answer, QueryParam, Strict, left_out

from .kinds import KINDS

DEFAULT_INTERVAL = 60
DEFAULT_LIMIT, MAX_LIMIT = 100, 500
MIN_INTERVAL, MAX_INTERVAL = 10, 86_400


def _source_url(value: str, info: ValidationInfo) -> str:
    """An http(s) URL without credentials in it; the private-address rule of webhooks."""
    value = checked_url(value, bool((info.context or {}).get(ALLOW_PRIVATE)))
    if "@" in urlsplit(value).netloc:
        raise ValueError("must not hold a user name or password: send them as `token`")
    return value


def _token(value: str) -> str:
    if control_character(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


SourceUrl = Annotated[str, Field(max_length=2000), WithJsonSchema({
    "type": "string", "maxLength": 2000, "pattern": URL_PATTERN, "description": (
        "The engine's API URL (for Prefect, what its clients use as PREFECT_API_URL); "
        "http(s), a host that is localhost or a private address only with "
        "RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true.")}), AfterValidator(_source_url)]
Token = Annotated[str, Field(min_length=1, max_length=2000, description=(
    "The engine's credentials (for Prefect: a Prefect Cloud API key, or `user:password` of a "
    "server's PREFECT_SERVER_API_AUTH_STRING); a secret, masked for tokens without `admin`."),
    json_schema_extra={"pattern": PLAIN_PATTERN, **SECRET}), AfterValidator(_token)]
Interval = Annotated[whole(MIN_INTERVAL, MAX_INTERVAL), Field(description=(
    "Seconds between two pulls."))]
KindName = Literal[tuple(KINDS)]  # type: ignore[valid-type]


class SourceIn(Strict):
    """A new source: an engine's API that Runwatch pulls runs from."""

    type: KindName
    url: SourceUrl
    token: Token | None = None
    interval_seconds: Interval = DEFAULT_INTERVAL
    enabled: bool = True


class SourcePatch(Strict):
    """A change to a source: only the fields sent change; `token` null removes it."""

    url: SourceUrl = left_out()
    token: Token | None = None
    interval_seconds: Interval = left_out()
    enabled: bool = left_out()


class SourceAnswer(Answer):
    """A source: where it pulls from, when, and what its last pull did."""

    id: int
    type: KindName
    url: str
    token: str | None  # masked for tokens without `admin`
    interval_seconds: int
    enabled: bool
    created_at: datetime
    updated_at: datetime
    cursor: datetime | None  # the next pull asks for runs changed since (less an overlap)
    next_pull_at: datetime | None  # null while paused
    last_pull_at: datetime | None
    last_pulled: int | None  # runs the last pull stored (new or changed)
    last_error: str | None
    runs: int  # runs this source has brought in all


class SourceList(Answer):
    """Sources, oldest first, a page at a time."""

    data: list[SourceAnswer]
    next_cursor: str | None


PARAMETERS = (
    QueryParam("limit", Annotated[int, Field(ge=1, le=MAX_LIMIT)],
               f"Page size (default {DEFAULT_LIMIT})."),
    QueryParam("cursor", Annotated[int, Field(ge=1, le=MAX_ID)],
               "`next_cursor` of the previous page."),
)
