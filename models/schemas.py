"""Request schemas of the ingestion API and how their errors are reported."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from .inputs import MAX_ID, MAX_POSITION, Name, Payload, Text, Timestamp, whole

Status = Literal["pending", "running", "success", "failure"]
MAX_BATCH = 1000
MAX_STEPS_PER_REQUEST = 5000  # defaults of RUNWATCH_MAX_STEPS_PER_REQUEST / _PER_RUN
MAX_STEPS_PER_RUN = 2000


@dataclass
class StepBudget:
    """How many steps one request may still carry, counted while it is validated.

    Passed as pydantic's validation context, so a body with far too many steps is refused
    at the first step over the limit, before the rest is read into models.
    """

    per_request: int = MAX_STEPS_PER_REQUEST
    per_run: int = MAX_STEPS_PER_RUN
    seen: int = field(default=0, init=False)

    def count_one(self) -> None:
        """Count a step of the request; past the limit, the body is refused."""
        self.seen += 1
        if self.seen > self.per_request:
            raise PydanticCustomError(
                "too_many_steps", "a request carries at most {limit} steps in all; send the "
                "rest in further requests", {"limit": self.per_request})

    def check_run(self, steps: list) -> None:
        """Refuse one run's steps beyond the per-run limit."""
        if len(steps) > self.per_run:
            raise PydanticCustomError(
                "too_many_steps", "a run carries at most {limit} steps per request; append "
                "the rest with POST …/executions/<id>/steps", {"limit": self.per_run})


def _budget(info: ValidationInfo) -> StepBudget | None:
    return (info.context or {}).get("steps") if isinstance(info.context, dict) else None


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ErrorIn(Strict):
    message: Annotated[Text, Field(max_length=100_000)]
    type: Annotated[Text, Field(max_length=200)] | None = None
    stack: Text | None = None


def _check_order(started: datetime | None, finished: datetime | None) -> None:
    if started and finished and finished < started:
        raise PydanticCustomError("time_order", "finished_at is before started_at")


class StepIn(Strict):
    position: whole(0, MAX_POSITION) | None = None
    name: Name
    action: Annotated[Text, Field(max_length=200)] | None = None
    status: Status | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    input: Payload = None
    output: Payload = None
    error: ErrorIn | None = None
    logs: Text | None = None

    @model_validator(mode="after")
    def _times_in_order(self, info: ValidationInfo):
        # Called for every step of a batch: the checks of _check_order and _budget, inline.
        started, finished = self.started_at, self.finished_at
        if started and finished and finished < started:
            _check_order(started, finished)
        context = info.context
        if type(context) is dict:
            budget = context.get("steps")
            if budget is not None:
                budget.count_one()
        return self


# A list of steps stops at its first error, so a step over the limit ends the reading.
Steps = Annotated[list[StepIn], Field(fail_fast=True)]


def _steps_of_one_run(steps: list[StepIn], info: ValidationInfo) -> list[StepIn]:
    budget = _budget(info)
    if budget is not None:
        budget.check_run(steps)
    return steps


class ExecutionIn(Strict):
    workflow: Name
    external_id: Name | None = None
    status: Status
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    input: Payload = None
    output: Payload = None
    error: ErrorIn | None = None
    steps: Steps = []
    # The id of the run this one runs again (a re-run's report links it to its origin).
    rerun_of: Annotated[whole(1, MAX_ID) | None, Field(description=(
        "The id of a stored run this one runs again with the same input."))] = None

    _one_run = field_validator("steps")(_steps_of_one_run)

    @model_validator(mode="after")
    def _times_in_order(self):
        _check_order(self.started_at, self.finished_at)
        return self


class BatchIn(Strict):
    executions: Annotated[list[ExecutionIn], Field(min_length=1, max_length=MAX_BATCH,
                                                   fail_fast=True)]


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def left_out() -> Any:
    """A PATCH field that may be left out (then nothing changes) but never sent as null:
    pydantic does not validate the default, and the document shows no `default: null`."""
    return Field(None, json_schema_extra=_no_default)


class ExecutionPatch(Strict):
    status: Status = left_out()
    finished_at: Timestamp | None = None
    error: ErrorIn | None = None
    output: Payload = None


class StepsIn(Strict):
    steps: Annotated[Steps, Field(min_length=1)]

    _one_run = field_validator("steps")(_steps_of_one_run)


class InputError(ValueError):
    """A request body that cannot be stored; `field` names the culprit, `status` is the
    HTTP status to answer (400, or 413 for a request that asks for too much work)."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid",
                 status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status = status


def parse(schema: type[BaseModel], body: bytes,
          budget: StepBudget | None = None, context: dict | None = None) -> BaseModel:
    """Validate a JSON body against `schema`, raising InputError for the first problem.

    Steps count against `budget` (the default limits when none is given); `context` adds
    to the validation context (e.g. whether a URL may name a private address).
    """
    try:
        return schema.model_validate_json(body or b"", context={
            "steps": budget or StepBudget(), **(context or {})})
    except ValidationError as exc:
        raise input_error(exc) from None


def input_error(exc: ValidationError) -> InputError:
    """An InputError naming the first field pydantic complained about."""
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return InputError("The request body is not valid JSON.", None, "invalid_json")
    if first["type"] == "model_type" and not first["loc"]:
        return InputError("The request body must be a JSON object.", None, "invalid_json")
    loc = list(first["loc"])
    message = first["msg"]
    if first["type"] == "too_many_steps":
        while loc and isinstance(loc[-1], int):  # name the list, not the step past the limit
            loc.pop()
        field = ".".join(map(str, loc)) or None
        return InputError(f"{field}: {message}", field, "too_many_steps", 413)
    field = ".".join(str(part) for part in loc) or None
    if first["type"] == "time_order":
        # A model-level check: name the field it is about.
        field = ".".join([*map(str, loc), "finished_at"])
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
    # Started inside a maintenance window of its workflow (marked when stored): it neither
    # extends nor breaks a streak.
    maintenance: bool
    rerun_of: int | None  # the run this one runs again, as reported
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
