"""Workflows, their executions and steps; payloads live in tables of their own."""
from __future__ import annotations

import json

import peewee
from pydantic_core import PydanticSerializationError, to_json

from .base import BaseModel, UTCMicros

STATUSES = ("pending", "running", "success", "failure")
FINISHED_STATUSES = ("success", "failure")
ERROR_EXCERPT_CHARS = 300
ERROR_TYPE_CHARS = 200


class Workflow(BaseModel):
    """A named automation; created when first reported (or when its settings are first set).

    Its settings say when it is expected to run (`schedule`, a 5-field cron expression read
    in `timezone`, late after `grace_seconds`) and how long a run may take."""

    name = peewee.CharField(max_length=200, unique=True)
    created_at = UTCMicros()
    schedule = peewee.CharField(max_length=200, null=True)
    # Defaults in the database too: a process of an earlier release creates workflows.
    timezone = peewee.CharField(max_length=64, default="UTC",
                                constraints=[peewee.SQL("DEFAULT 'UTC'")])
    grace_seconds = peewee.IntegerField(default=300, constraints=[peewee.SQL("DEFAULT 300")])
    max_duration_seconds = peewee.IntegerField(null=True)
    description = peewee.TextField(null=True)
    schedule_set_at = UTCMicros(null=True)  # when the schedule was last set or changed
    # No failing, missed or reminder notice is sent for it before then (NULL: not muted).
    muted_until = UTCMicros(null=True)


class Execution(BaseModel):
    """One run of a workflow: the narrow row that lists scan."""

    # No index of its own: the indexes below that begin with the workflow serve its lookups
    # and the foreign key's cascade.
    workflow = peewee.ForeignKeyField(Workflow, backref="executions", on_delete="CASCADE",
                                      index=False)
    external_id = peewee.CharField(max_length=200, null=True)
    status = peewee.CharField(max_length=10)
    started_at = UTCMicros()
    finished_at = UTCMicros(null=True)
    duration_ms = peewee.BigIntegerField(null=True)
    step_count = peewee.IntegerField(default=0)
    failed_step = peewee.IntegerField(null=True)
    error_message = peewee.CharField(max_length=ERROR_EXCERPT_CHARS, null=True)
    error_type = peewee.CharField(max_length=ERROR_TYPE_CHARS, null=True)
    # The error's group (models.fingerprints), set with the two columns above.
    error_fingerprint = peewee.BigIntegerField(null=True)
    # Started inside a maintenance window of its workflow: shown marked, and it neither
    # extends nor breaks a streak.
    maintenance = peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT false")])
    created_at = UTCMicros()
    updated_at = UTCMicros()
    # The run this one re-runs, as its report said (`rerun_of`): no foreign key, so that
    # deleting the origin (retention) leaves this run; its delete hook clears the link.
    rerun_of = peewee.BigIntegerField(null=True, index=True)

    class Meta:
        indexes = (
            (("workflow", "external_id"), True),
            # Keyset paging by start time, alone or within a workflow / status.
            (("started_at", "id"), False),
            (("workflow", "started_at", "id"), False),
            (("status", "started_at", "id"), False),
            # With each run's error group last: error groups count a workflow's newest
            # failures from this index alone.
            (("workflow", "status", "started_at", "id", "error_fingerprint"), False),
            # Keyset paging by duration; the start time last, so that a date range is
            # checked from the index while it is walked.
            (("duration_ms", "id", "started_at"), False),
            (("workflow", "duration_ms", "id", "started_at"), False),
        )


# Each error group's failures of a workflow by start time: a group's first and last run in
# a period are one probe each. Failures alone: other runs do not pay for it.
Execution.add_index(Execution.index(Execution.workflow, Execution.error_fingerprint,
                                    Execution.started_at, Execution.id)
                    .where(Execution.status == "failure"))


class Payloads(BaseModel):
    """The JSON texts that executions and steps both keep apart (no table of its own)."""

    input = peewee.TextField(null=True)
    output = peewee.TextField(null=True)
    error = peewee.TextField(null=True)


class ExecutionPayload(Payloads):
    """The large parts of an execution: trigger input, output and error details."""

    execution = peewee.ForeignKeyField(Execution, primary_key=True, on_delete="CASCADE",
                                       backref="payload_rows")


class Step(BaseModel):
    """One step of an execution, ordered by `position`."""

    # No index of its own: the unique (execution, position) index serves its lookups.
    execution = peewee.ForeignKeyField(Execution, backref="steps", on_delete="CASCADE",
                                       index=False)
    position = peewee.IntegerField()
    name = peewee.CharField(max_length=200)
    action = peewee.CharField(max_length=200, null=True)
    status = peewee.CharField(max_length=10)
    started_at = UTCMicros(null=True)
    finished_at = UTCMicros(null=True)
    duration_ms = peewee.BigIntegerField(null=True)
    error_message = peewee.CharField(max_length=ERROR_EXCERPT_CHARS, null=True)

    class Meta:
        indexes = ((("execution", "position"), True),)


class StepPayload(Payloads):
    """The large parts of a step: input, output, error details and logs."""

    step = peewee.ForeignKeyField(Step, primary_key=True, on_delete="CASCADE",
                                  backref="payload_rows")
    logs = peewee.TextField(null=True)


# The standard library's encoder, for what pydantic-core's writes differently (below).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dump_json(value) -> str | None:
    """Serialise a payload for storage (None stays NULL); NaN and Infinity are refused, so
    what is stored is always valid JSON.

    pydantic-core writes the same compact JSON five times faster than the standard library,
    but writes NaN and Infinity as such and refuses lone surrogates: a text that may hold
    either is written again by the standard library, which refuses the first and keeps the
    second.
    """
    if value is None:
        return None
    try:
        text = to_json(value).decode()
    except PydanticSerializationError:
        return _ENCODER.encode(value)
    if "NaN" in text or "Infinity" in text:
        return _ENCODER.encode(value)
    return text


def load_json(text: str | None):
    """Read a stored payload back."""
    return None if text is None else json.loads(text)


def excerpt(message: str | None) -> str | None:
    """The first characters of an error message, for list rows."""
    if message is None:
        return None
    return message[:ERROR_EXCERPT_CHARS]
