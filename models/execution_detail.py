"""Reading one execution: what its page shows, one step, its neighbours, and the API answer.

Plain queries over the models, callable without Flask. Payloads come back as the
stored JSON text; showing them (masking, cutting) is `payloads`' job.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import peewee

from .db import database
from .times import from_micros, iso, to_micros
from .executions import (FINISHED_STATUSES, Execution, ExecutionPayload, Step, StepPayload,
                         Workflow)
from .payloads import mask, mask_text

EXECUTION_PARTS = ("input", "output", "error")
STEP_PARTS = ("input", "output", "error", "logs")


@dataclass(slots=True)
class StepRow:
    """A step as the trace lists it (no payloads)."""

    position: int
    name: str
    action: str | None
    status: str
    started_us: int | None  # microseconds, as stored: 2,000 rows need no datetime objects
    finished_us: int | None
    duration_ms: int | None
    error_message: str | None

    @property
    def started_at(self) -> datetime | None:
        """When the step started (UTC)."""
        return _time(self.started_us)

    @property
    def finished_at(self) -> datetime | None:
        """When the step finished (UTC)."""
        return _time(self.finished_us)


@dataclass
class ExecutionDetail:
    """One execution with what its page needs; payloads as stored JSON text."""

    id: int
    workflow: str
    external_id: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    step_count: int
    failed_step: int | None
    error_message: str | None
    updated_at: int  # microseconds; changes with every write to the execution or its steps
    input: str | None = None
    output: str | None = None
    error: dict | None = None
    steps: list[StepRow] = field(default_factory=list)
    previous_id: int | None = None
    next_id: int | None = None
    workflow_id: int = 0
    maintenance: bool = False  # started inside a maintenance window of its workflow
    rerun_of: int | None = None  # the run this one re-runs, as reported

    @property
    def live(self) -> bool:
        """Whether the execution may still change (pending or running)."""
        return self.status not in FINISHED_STATUSES


_DETAIL_FIELDS = (Execution.id, Workflow.name, Execution.external_id, Execution.status,
                  Execution.started_at, Execution.finished_at, Execution.duration_ms,
                  Execution.step_count, Execution.failed_step, Execution.error_message,
                  Execution.updated_at.cast("BIGINT"), Execution.maintenance,
                  Execution.workflow, Execution.rerun_of)


def load_execution(execution_id: int, with_steps: bool = True) -> ExecutionDetail | None:
    """The execution with its payload texts, its steps in order (no step payloads), neighbours."""
    row = (Execution.select(*_DETAIL_FIELDS).join(Workflow)
           .where(Execution.id == execution_id).tuples().first())
    if row is None:
        return None
    *fields, maintenance, workflow_id, rerun_of = row
    execution = ExecutionDetail(*fields, workflow_id=workflow_id, maintenance=bool(maintenance),
                                rerun_of=rerun_of)
    payload = (ExecutionPayload.select(ExecutionPayload.input, ExecutionPayload.output,
                                       ExecutionPayload.error)
               .where(ExecutionPayload.execution == execution_id).tuples().first())
    if payload:
        execution.input, execution.output = payload[0], payload[1]
        execution.error = json.loads(payload[2]) if payload[2] else None
    if with_steps:
        execution.steps = load_steps(execution_id)
    execution.previous_id, execution.next_id = neighbours(execution)
    return execution


def _time(value) -> datetime | None:
    return None if value is None else from_micros(value)


def load_steps(execution_id: int) -> list[StepRow]:
    """The steps of an execution in position order, without their payloads."""
    query = (Step.select(Step.position, Step.name, Step.action, Step.status,
                         Step.started_at, Step.finished_at, Step.duration_ms,
                         Step.error_message)
             .where(Step.execution == execution_id).order_by(Step.position))
    # Plain columns read straight from the cursor: peewee's per-value conversion would
    # cost more than the query itself for thousands of steps, and times stay integers.
    return [StepRow(*row) for row in database.execute(query).fetchall()]



def neighbours(execution: ExecutionDetail) -> tuple[int | None, int | None]:
    """Ids of the executions of its workflow started just before and just after this one."""
    key = peewee.Tuple(Execution.started_at, Execution.id)
    here = (to_micros(execution.started_at), execution.id)
    same = Execution.select(Execution.id).where(Execution.workflow == execution.workflow_id)
    before = (same.where(key < here)
              .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).scalar())
    after = (same.where(key > here)
             .order_by(Execution.started_at, Execution.id).limit(1).scalar())
    return before, after


def execution_version(execution_id: int) -> int | None:
    """When the execution or its steps last changed (microseconds); None if there is none."""
    return (Execution.select(Execution.updated_at.cast("BIGINT"))
            .where(Execution.id == execution_id).scalar())


def load_step(execution_id: int, position: int) -> tuple[StepRow, dict] | None:
    """One step with its stored payload texts (`input`, `output`, `error`, `logs`)."""
    row = (Step.select(Step.position, Step.name, Step.action, Step.status,
                       Step.started_at.cast("BIGINT"), Step.finished_at.cast("BIGINT"),
                       Step.duration_ms, Step.error_message, StepPayload.input,
                       StepPayload.output, StepPayload.error, StepPayload.logs)
           .join(StepPayload, peewee.JOIN.LEFT_OUTER)
           .where(Step.execution == execution_id, Step.position == position).tuples().first())
    if row is None:
        return None
    return StepRow(*row[:8]), dict(zip(STEP_PARTS, row[8:], strict=True))


def step_error(execution_id: int, position: int) -> dict | None:
    """The stored error of one step (message, type, stack), or None."""
    text = (StepPayload.select(StepPayload.error).join(Step)
            .where(Step.execution == execution_id, Step.position == position).scalar())
    return json.loads(text) if text else None


def execution_summary(execution_id: int, masked: bool = False) -> dict | None:
    """The narrow fields of one execution, as the API answers after a write."""
    row = (Execution.select(Execution, Workflow.name.alias("workflow_name"))
           .join(Workflow).where(Execution.id == execution_id).objects().first())
    if row is None:
        return None
    return {
        "id": row.id, "workflow": row.workflow_name, "external_id": row.external_id,
        "status": row.status, "started_at": iso(row.started_at),
        "finished_at": iso(row.finished_at), "duration_ms": row.duration_ms,
        "step_count": row.step_count, "failed_step": row.failed_step,
        "error_message": (mask_text(row.error_message) if masked and row.error_message
                          else row.error_message),
        "maintenance": bool(row.maintenance), "rerun_of": row.rerun_of,
    }


# --- The API answer ------------------------------------------------------------------------

def api_document(execution_id: int, url: str, masked: bool = False,
                 extra: dict | None = None) -> str | None:
    """The execution as API JSON, payloads whole; None if there is none.

    Stored payloads are already JSON text, so they are spliced in as they are:
    nothing is parsed and re-encoded, and big numbers and key order survive.
    `masked` is for callers who may not see secrets: every payload, error and log is
    then masked as the pages mask it. `extra`: keys the features add, after the steps.
    """
    summary = execution_summary(execution_id, masked)
    if summary is None:
        return None
    raw = _masked if masked else _raw
    payload = (ExecutionPayload.select(ExecutionPayload.input, ExecutionPayload.output,
                                       ExecutionPayload.error)
               .where(ExecutionPayload.execution == execution_id).tuples().first())
    summary["url"] = url
    fields = [(key, json.dumps(value, ensure_ascii=False)) for key, value in summary.items()]
    fields += [(part, raw(text))
               for part, text in zip(EXECUTION_PARTS, payload or (None,) * 3, strict=True)]
    fields.append(("steps", "[" + ",".join(_step_json(row, raw)
                                           for row in _steps_whole(execution_id)) + "]"))
    fields += [(key, json.dumps(value, ensure_ascii=False)) for key, value in (extra or {}).items()]
    return _object(fields)


def _steps_whole(execution_id: int):
    return (Step.select(Step.position, Step.name, Step.action, Step.status, Step.started_at,
                        Step.finished_at, Step.duration_ms, StepPayload.input,
                        StepPayload.output, StepPayload.error, StepPayload.logs)
            .join(StepPayload, peewee.JOIN.LEFT_OUTER)
            .where(Step.execution == execution_id).order_by(Step.position).tuples())


def _step_json(row: tuple, raw) -> str:
    position, name, action, status, started, finished, duration, input_, output, error, logs = row
    if logs and raw is _masked:
        logs = mask_text(logs)
    plain = {"position": position, "name": name, "action": action, "status": status,
             "started_at": iso(started), "finished_at": iso(finished), "duration_ms": duration}
    fields = [(key, json.dumps(value, ensure_ascii=False)) for key, value in plain.items()]
    fields += [("input", raw(input_)), ("output", raw(output)), ("error", raw(error)),
               ("logs", json.dumps(logs, ensure_ascii=False))]
    return _object(fields)


def _raw(stored: str | None) -> str:
    if stored is None:
        return "null"
    if "NaN" in stored or "Infinity" in stored:
        # Refused at ingestion now; an older release stored them, and JSON has no such
        # numbers: they are answered as null (the same text, parsed, if only in strings).
        return json.dumps(json.loads(stored, parse_constant=lambda _: None), ensure_ascii=False)
    return stored


def _masked(stored: str | None) -> str:
    if stored is None:
        return "null"
    return json.dumps(mask(json.loads(stored, parse_constant=lambda _: None)), ensure_ascii=False)


def _object(fields: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in fields) + "}"

