"""Request schemas of the ingestion API and how their errors are reported."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .inputs import MAX_POSITION, Name, Payload, Text, Timestamp

Status = Literal["pending", "running", "success", "failure"]
MAX_BATCH = 1000
MAX_STEPS = 10000


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
    position: Annotated[int, Field(ge=0, le=MAX_POSITION)] | None = None
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
    def _times_in_order(self):
        _check_order(self.started_at, self.finished_at)
        return self


class ExecutionIn(Strict):
    workflow: Name
    external_id: Name | None = None
    status: Status
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    input: Payload = None
    output: Payload = None
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
    output: Payload = None


class StepsIn(Strict):
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=MAX_STEPS)]


class InputError(ValueError):
    """A request body that cannot be stored; `field` names the culprit, `status` is the
    HTTP status to answer."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid",
                 status: int = 400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status = status


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
    loc = list(first["loc"])
    message = first["msg"]
    field = ".".join(str(part) for part in loc) or None
    if first["type"] == "time_order":
        # A model-level check: name the field it is about.
        field = ".".join([*map(str, loc), "finished_at"])
    elif first["type"] == "extra_forbidden":
        message = "Unknown field"
    return InputError(f"{field}: {message}" if field else message, field)
