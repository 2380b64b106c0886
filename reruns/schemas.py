"""What the re-run API takes (a workflow's `rerun` setting) and answers (a request sent,
the hook as shown, a run's re-runs)."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

from alerts.channels import SECRET_PATTERN, URL_PATTERN, checked_secret
from alerts.services.options import SECRET, ServiceUrl
from models.executions import STATUSES
from models.inputs import PLAIN_PATTERN, Payload, control_character
from models.schemas import Answer, ExecutionAnswer as CoreExecutionAnswer, Strict

# A header's name as HTTP takes it (RFC 9110's token); the ones that say how the request
# is framed are Runwatch's to set.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
MAX_HEADERS = 50
# The strings of a body template that stand for a value of the run re-run.
PLACEHOLDERS = ("$input", "$execution_id", "$external_id", "$workflow")


def _checked_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise PydanticCustomError("header", "{name!r} is not a header name",
                                      {"name": name})
        if name.lower() in FRAMING:
            raise PydanticCustomError("header", "{name} is set by Runwatch", {"name": name})
        if control_character(value):
            raise PydanticCustomError("header", "the value of {name} holds a control "
                                      "character or line break", {"name": name})
    return headers


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# What the document says of headers: names as HTTP takes them but the framing ones (in any
# case), values without control characters.
HEADERS_SCHEMA = {
    "type": "object", "maxProperties": MAX_HEADERS, **SECRET,
    "propertyNames": {"minLength": 1, "maxLength": 200, "pattern": (
        f"^(?!(?:{'|'.join(_any_case(name) for name in sorted(FRAMING))})$)"
        + HEADER_NAME.pattern[1:])},
    "additionalProperties": {"type": "string", "maxLength": 8000, "pattern": PLAIN_PATTERN},
    "description": "Sent with the request, by name; their values are secrets (masked like "
                   "the URL)."}
Headers = Annotated[dict[Annotated[str, Field(min_length=1, max_length=200)],
                         Annotated[str, Field(max_length=8000)]],
                    Field(max_length=MAX_HEADERS), AfterValidator(_checked_headers),
                    WithJsonSchema(HEADERS_SCHEMA)]


class RerunIn(Strict):
    """A workflow's re-run hook: where a re-run request goes and what it says."""

    url: Annotated[ServiceUrl, Field(json_schema_extra={"pattern": URL_PATTERN})]
    headers: Headers = {}
    body: Payload = Field(None, description=(
        "JSON sent as the body; a string equal to " + ", ".join(f"`{p}`" for p in PLACEHOLDERS)
        + " is replaced by that value of the run. Null: Runwatch's own body "
        "`{\"type\": \"execution.rerun\", \"timestamp\", \"data\": {\"workflow\", "
        "\"execution_id\", \"external_id\", \"input\", \"requested_by\"}}`."))
    secret: Annotated[str | None, Field(json_schema_extra={"pattern": SECRET_PATTERN,
                                                          **SECRET})] = None

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: str | None) -> str | None:
        return checked_secret(value) if value and value.strip() else None


class HookAnswer(Answer):
    """A workflow's re-run hook as the API shows it: the URL, header values and secret
    masked for tokens without `admin`."""

    url: str
    headers: dict[str, str]
    body: Any
    secret: str | None


class RerunAnswer(Answer):
    """One re-run request: who asked, when, where it went and what came back."""

    id: int
    execution_id: int
    requested_by: str
    requested_at: datetime
    target: str
    ok: bool | None
    status: int | None
    answer: str | None
    error: str | None
    duration_ms: int | None


class LinkedRun(Answer):
    """A run reported as a re-run of this one."""

    id: int
    status: Annotated[str, Field(json_schema_extra={"enum": list(STATUSES)})]
    started_at: datetime
    url: str


class ExecutionAnswer(CoreExecutionAnswer):
    """An execution, whole and unmasked, with every step in position order, its re-run
    requests and the runs reported as its re-runs."""

    reruns: list[RerunAnswer]
    rerun_runs: list[LinkedRun]
