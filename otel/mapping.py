"""How an OpenTelemetry span becomes a run (the trace's root) or one of its steps.

Plain functions over the `opentelemetry-proto` message classes, no Flask and no database:
a span's fields are turned into the fields the ingestion API takes, then validated by the
same schemas (`ExecutionIn`, `StepIn`).
"""
from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from models.executions import dump_json
from models.schemas import ErrorIn, ExecutionIn, StepIn, input_error

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
WORKFLOW = "runwatch.workflow"
ACTION = "runwatch.action"
INPUT = "runwatch.input"
OUTPUT = "runwatch.output"
# Attributes that say where a span goes; never part of an input.
RESERVED = frozenset({WORKFLOW, ACTION, INPUT, OUTPUT})
EXCEPTION = "exception"
MAX_ERROR_TYPE = 200  # ErrorIn's limits: longer values are cut, not refused
MAX_ERROR_MESSAGE = 100_000
MAX_ACTION = 200
# Doubles JSON cannot carry are kept as the names the protobuf JSON mapping gives them.
NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
ERROR = Status.STATUS_CODE_ERROR


def external_id(trace_hex: str) -> str:
    """The run's external id: `otel-` and the trace id in lower-case hex."""
    return f"otel-{trace_hex}"


def value(any_value: AnyValue):
    """An attribute value as JSON: strings, booleans, numbers, lists and objects as they
    are, bytes in base64, an empty value as null."""
    kind = any_value.WhichOneof("value")
    if kind == "string_value":
        return any_value.string_value
    if kind == "int_value":
        return any_value.int_value
    if kind == "bool_value":
        return any_value.bool_value
    if kind == "double_value":
        number = any_value.double_value
        if math.isfinite(number):
            return number
        return NON_FINITE.get(number, "NaN")
    if kind == "array_value":
        return [value(item) for item in any_value.array_value.values]
    if kind == "kvlist_value":
        return {pair.key: value(pair.value) for pair in any_value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(any_value.bytes_value).decode("ascii")
    return None


def json_value(any_value: AnyValue):
    """`runwatch.input`/`runwatch.output`: a string holding JSON text is parsed (by the
    parser the ingestion API reads bodies with, so as deep as it allows, without NaN); any
    other string, or a value of another type, is taken as it is."""
    found = value(any_value)
    if isinstance(found, str):
        try:
            return from_json(found, allow_inf_nan=False)
        except ValueError:
            return found
    return found


def _text(any_value: AnyValue | None) -> str | None:
    if any_value is None:
        return None
    found = value(any_value)
    if found is None or isinstance(found, str):
        return found or None
    return dump_json(found)


def moment(nanos: int) -> datetime | None:
    """A span time (nanoseconds since the epoch) as a UTC datetime, to the microsecond;
    0 (unset) as None."""
    if not nanos:
        return None
    return EPOCH + timedelta(0, 0, nanos // 1000)  # (days, seconds, microseconds)


def iso(nanos: int) -> str | None:
    """A span time as the API's ISO 8601 (for log lines)."""
    if not nanos:
        return None
    return (EPOCH + timedelta(0, 0, nanos // 1000)).isoformat().replace("+00:00", "Z")


def _exception(event: Span.Event) -> dict:
    attributes = {pair.key: pair.value for pair in event.attributes}
    kind = _text(attributes.get("exception.type"))
    message = _text(attributes.get("exception.message"))
    return {"message": (message or kind or "exception")[:MAX_ERROR_MESSAGE],
            "type": kind[:MAX_ERROR_TYPE] if kind else None,
            "stack": _text(attributes.get("exception.stacktrace"))}


def _log_line(event: Span.Event) -> str:
    """`<time> <name> <attributes as JSON>`, leaving out what the event lacks."""
    when, name = iso(event.time_unix_nano), event.name
    line = f"{when} {name}" if when and name else (when or name)
    attributes = event.attributes
    if attributes:
        text = dump_json({pair.key: value(pair.value) for pair in attributes})
        line = f"{line} {text}" if line else text
    return line


def _events(span: Span) -> tuple[dict | None, str | None]:
    """The error of the span's last `exception` event, and its other events as log lines."""
    events = span.events
    if not events:
        return None, None
    last = None
    for index in range(len(events) - 1, -1, -1):
        if events[index].name == EXCEPTION:
            last = index
            break
    lines = [_log_line(event) for index, event in enumerate(events) if index != last]
    return (None if last is None else _exception(events[last])), "\n".join(lines) or None


def _split(span: Span) -> tuple[dict, dict]:
    """The span's reserved attributes (raw values) and the others (as JSON)."""
    reserved, others = {}, {}
    for pair in span.attributes:
        key = pair.key
        if key in RESERVED:
            reserved[key] = pair.value
        else:
            others[key] = value(pair.value)
    return reserved, others


def _payloads(reserved: dict, others: dict) -> tuple:
    """The input (`runwatch.input`, else the other attributes) and output."""
    if not reserved:
        return others, None
    found = reserved.get(INPUT)
    given = reserved.get(OUTPUT)
    return (others if found is None else json_value(found),
            None if given is None else json_value(given))


def run_fields(span: Span, trace_hex: str) -> dict:
    """The run a root span stands for: workflow, times, status, input, output and the
    error of its last `exception` event (the first failed step's error is added when the
    run is put together)."""
    reserved, others = _split(span)
    run_input, output = _payloads(reserved, others)
    return {
        "workflow": _text(reserved.get(WORKFLOW)) or span.name,
        "external_id": external_id(trace_hex),
        "status": "failure" if span.status.code == ERROR else "success",
        "started_at": moment(span.start_time_unix_nano),
        "finished_at": moment(span.end_time_unix_nano),
        "input": run_input,
        "output": output,
        "error": _events(span)[0],
    }


def step_fields(span: Span, scope_name: str) -> dict:
    """The step a span other than the root stands for."""
    reserved, others = _split(span)
    step_input, output = _payloads(reserved, others)
    status = span.status
    failed = status.code == ERROR
    error, logs = _events(span)
    if error is None and failed and status.message:
        error = {"message": status.message[:MAX_ERROR_MESSAGE]}
    action = (_text(reserved.get(ACTION)) if reserved else None) or scope_name
    return {
        "name": span.name,
        "action": action[:MAX_ACTION] if action else None,
        "status": "failure" if failed else "success",
        "started_at": moment(span.start_time_unix_nano),
        "finished_at": moment(span.end_time_unix_nano),
        "input": step_input,
        "output": output,
        "error": error,
        "logs": logs,
    }


@dataclass(slots=True)
class Mapped:
    """One span, mapped and validated."""

    trace_id: str  # 32 lower-case hex digits
    span_id: int  # the 8 bytes as a signed 64-bit integer
    root: bool
    start_ns: int
    model: ExecutionIn | StepIn


_RUN_LIST = TypeAdapter(list[ExecutionIn])
_STEP_LIST = TypeAdapter(list[StepIn])


def validated(spans: list[tuple[Span, str, dict]], root: bool,
              outcome: Outcome) -> list[Mapped]:
    """Runs (root spans) or steps, validated by the ingestion schema: all in one call, or,
    when one is bad, one by one, each bad one rejected in `outcome` with its reason."""
    try:
        models = (_RUN_LIST if root else _STEP_LIST).validate_python([f for *_, f in spans])
    except ValidationError:
        models = [None] * len(spans)
    mapped = []
    for (span, trace_hex, fields), model in zip(spans, models, strict=True):
        if model is None:
            try:
                model = (ExecutionIn if root else StepIn).model_validate(fields)
            except ValidationError as exc:
                what = "root span" if root else "span"
                outcome.reject(1, f"{what} {span.span_id.hex()} ({span.name[:80]!r}): "
                                  f"{input_error(exc).message}")
                continue
        mapped.append(Mapped(trace_hex, int.from_bytes(span.span_id, "big", signed=True), root,
                             span.start_time_unix_nano, model))
    return mapped


def first_error(steps: list[StepIn]) -> ErrorIn | None:
    """The error of the first failed step that has one."""
    for step in steps:
        if step.status == "failure" and step.error is not None:
            return step.error
    return None


def put_together(root: ExecutionIn, steps: list[StepIn]) -> ExecutionIn:
    """The run of a trace: its root, its other spans as steps in the order given, and the
    root's own error or else the first failed step's. Each part was validated by the API's
    own schema (the steps per run are counted as they come)."""
    return root.model_copy(update={"steps": steps, "error": root.error or first_error(steps)})


@dataclass
class Outcome:
    """What became of an export's spans."""

    accepted: int = 0
    runs: int = 0  # runs created or brought up to date
    reasons: list[str] = field(default_factory=list)
    rejected: int = 0

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        self.reasons.append(reason)

    def message(self) -> str:
        """Why spans were rejected, in English, the first few reasons."""
        shown = "; ".join(self.reasons[:3])
        more = len(self.reasons) - 3
        noun = "span was" if self.rejected == 1 else "spans were"
        return (f"{self.rejected} {noun} rejected: {shown}"
                + (f" (and {more} more reasons)" if more > 0 else ""))


def map_export(export: ExportTraceServiceRequest, most: int, outcome: Outcome) -> list[Mapped]:
    """Every span of an export mapped and validated, up to `most` spans; the others are
    rejected in `outcome`. Roots come first."""
    roots, steps = [], []
    seen = 0
    for resource_spans in export.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            scope_name = scope_spans.scope.name
            for span in scope_spans.spans:
                seen += 1
                if seen > most:
                    continue
                trace_hex = span.trace_id.hex()
                if span.parent_span_id:
                    steps.append((span, trace_hex, step_fields(span, scope_name)))
                else:
                    roots.append((span, trace_hex, run_fields(span, trace_hex)))
    if seen > most:
        outcome.reject(seen - most, f"an export carries at most {most} spans "
                                    "(RUNWATCH_MAX_STEPS_PER_REQUEST); send smaller batches "
                                    "(OTEL_BSP_MAX_EXPORT_BATCH_SIZE)")
    return validated(roots, True, outcome) + validated(steps, False, outcome)
