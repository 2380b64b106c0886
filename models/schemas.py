"""Request schemas of the ingestion API and how their errors are reported."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      model_validator)
from pydantic_core import PydanticCustomError

Status = Literal["pending", "running", "success", "failure"]
MAX_BATCH = 1000
MAX_STEPS = 10000


def _as_utc(value: datetime) -> datetime:
    """Times without an offset are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ErrorIn(Strict):
    message: Annotated[str, Field(max_length=100_000)]
    type: Annotated[str, Field(max_length=200)] | None = None
    stack: str | None = None


def _check_order(started: datetime | None, finished: datetime | None) -> None:
    if started and finished and finished < started:
        raise PydanticCustomError("time_order", "finished_at is before started_at")


class StepIn(Strict):
    position: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    name: Name
    action: Annotated[str, Field(max_length=200)] | None = None
    status: Status | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    input: Any = None
    output: Any = None
    error: ErrorIn | None = None
    logs: str | None = None

    @model_validator(mode="after")
    def _times_in_order(self):
        _check_order(self.started_at, self.finished_at)
        return self


class ExecutionIn(Strict):
    workflow: Name
    external_id: Name | None = None
    status: Status
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    input: Any = None
    output: Any = None
    error: ErrorIn | None = None
    steps: Annotated[list[StepIn], Field(max_length=MAX_STEPS)] = []

    @model_validator(mode="after")
    def _times_in_order(self):
        _check_order(self.started_at, self.finished_at)
        return self


class BatchIn(Strict):
    executions: Annotated[list[ExecutionIn], Field(min_length=1, max_length=MAX_BATCH)]


class ExecutionPatch(Strict):
    status: Status | None = None
    finished_at: Timestamp | None = None
    error: ErrorIn | None = None
    output: Any = None


class StepsIn(Strict):
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=MAX_STEPS)]


class InputError(ValueError):
    """A request body that cannot be stored; `field` names the culprit."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


def parse(schema: type[BaseModel], body: bytes) -> BaseModel:
    """Validate a JSON body against `schema`, raising InputError for the first problem."""
    try:
        return schema.model_validate_json(body or b"")
    except ValidationError as exc:
        raise input_error(exc) from None


def input_error(exc: ValidationError) -> InputError:
    """An InputError naming the first field pydantic complained about."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return InputError("The request body is not valid JSON.", None, "invalid_json")
    if first["type"] == "model_type" and not first["loc"]:
        return InputError("The request body must be a JSON object.", None, "invalid_json")
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"]
    if first["type"] == "time_order":
        # A model-level check: name the field it is about.
        field = ".".join([*map(str, first["loc"]), "finished_at"])
    elif first["type"] == "extra_forbidden":
        message = "Unknown field"
    return InputError(f"{field}: {message}" if field else message, field)


# --- What the API document describes beside the request bodies ------------------------------
# Query parameters are declared once, beside the parser that reads them; answers are built
# by the views as plain dicts, and these models say what they hold (the tests hold the views
# to them).

@dataclass(frozen=True)
class QueryParam:
    """One query parameter of a list: its name, the type of one value, what it means."""

    name: str
    type: Any  # anything pydantic can describe, e.g. Annotated[int, Field(ge=1, le=500)]
    description: str
    repeated: bool = False  # may be given several times (`status=a&status=b`)
    group: str = ""  # how the parser treats it, e.g. "filter" or "paging"


class Answer(BaseModel):
    """An API answer: every key it holds is described."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """What went wrong: `code` for programs, `message` for people, `field` names the culprit."""

    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    field: str | None = None


class ErrorDocument(Answer):
    """Every API error: `{"error": {"code", "message", "field"?}}`."""

    error: ErrorDetail


class Ping(Answer):
    """Whose credentials these are."""

    ok: bool
    user: str


class ExecutionSummary(Answer):
    """A stored execution's narrow fields and its page."""

    id: int
    workflow: str
    external_id: str | None
    status: Status
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    step_count: int
    failed_step: int | None
    error_message: str | None
    url: str


class StepAnswer(Answer):
    """One step, whole: payloads as stored."""

    position: int
    name: str
    action: str | None
    status: Status
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    input: Any
    output: Any
    error: ErrorIn | None
    logs: str | None


class ExecutionAnswer(ExecutionSummary):
    """An execution, whole and unmasked, with every step in position order."""

    input: Any
    output: Any
    error: ErrorIn | None
    steps: list[StepAnswer]


class BatchItem(Answer):
    """One execution of a batch, in the order sent."""

    id: int
    url: str
    created: bool


class BatchAnswer(Answer):
    """A stored batch."""

    data: list[BatchItem]


class HistoryRow(Answer):
    """One execution in the history."""

    id: int
    workflow: str
    status: Status
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    step_count: int
    error_message: str | None
    url: str


class StatusCounts(Answer):
    """Executions per status for the whole filter, ignoring its own status restriction."""

    pending: int
    running: int
    success: int
    failure: int


class HistoryPage(Answer):
    """One page of the history; `next_cursor` is null on the last page."""

    data: list[HistoryRow]
    next_cursor: str | None
    counts: StatusCounts
