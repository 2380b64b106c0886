"""Reported runs as rows: the state write hooks see (RunState), the rows and payload texts
a report becomes, and their insertion in bulk, each new id matched to its row by key."""
from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Iterable

from .bulk import copies, insert_numbered, insert_rows
from .executions import Execution, Step, StepPayload, Workflow, dump_json, excerpt
from .fingerprints import fingerprint
from .schemas import ErrorIn, ExecutionIn, StepIn
from .times import to_micros, utcnow


@dataclass(frozen=True)
class RunState:
    """What lists and alerts care about in one execution, at one moment."""

    id: int
    workflow_id: int
    status: str
    started_at: int  # microseconds since the epoch, UTC
    finished_at: int | None
    duration_ms: int | None
    fingerprint: int | None  # the error's group (models.fingerprints); None without an error
    maintenance: bool = False  # started inside a maintenance window: not in streaks


Change = tuple[RunState | None, RunState]
STATE_FIELDS = (Execution.id, Execution.workflow, Execution.status, Execution.started_at,
                Execution.finished_at, Execution.duration_ms, Execution.error_fingerprint,
                Execution.maintenance)


def state_of_row(id_, workflow_id, status, started, finished, duration, fingerprint,
                 maintenance) -> RunState:
    return RunState(id_, workflow_id, status, to_micros(started),
                    to_micros(finished) if finished else None, duration, fingerprint,
                    bool(maintenance))


def duration_between(started: int | None, finished: int | None) -> int | None:
    if started is None or finished is None:
        return None
    return (finished - started) // 1000


def bulk_insert(model, names: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT rows of ready-to-store values (`names`: the model's fields, in the rows'
    order)."""
    fields = model._meta.fields
    insert_rows(model._meta.table_name, [fields[name].column_name for name in names], rows)


def insert_returning_ids(model, names: tuple[str, ...], rows: list[tuple],
                         key: tuple[str, ...]) -> list[int]:
    """INSERT rows as `bulk_insert` does; the new id of each row, in the rows' order.

    Neither SQLite nor PostgreSQL promises that RETURNING gives rows in the order of the
    VALUES, so each returned id is matched to its row by the `key` columns it returns with
    it, never by position. Rows alike in every key column are one and the same row to the
    database: any of their ids may go with any of them, each once. PostgreSQL draws the
    ids of many rows first and takes them by COPY (`insert_numbered`): no matching.
    """
    fields = model._meta.fields
    columns = [fields[name].column_name for name in names]
    if copies(rows):
        return insert_numbered(model._meta.table_name, columns, rows,
                               model._meta.primary_key.column_name)
    where = [names.index(name) for name in key]
    returning = (model._meta.primary_key.column_name,
                 *(fields[name].column_name for name in key))
    ids_by_key: dict[tuple, list[int]] = {}
    for new_id, *values in insert_rows(model._meta.table_name, columns, rows,
                                       returning=returning):
        ids_by_key.setdefault(tuple(values), []).append(new_id)
    key_of = itemgetter(*where) if len(where) > 1 else lambda row: (row[where[0]],)
    ids = [ids_by_key[key_of(row)].pop() for row in rows]
    if any(ids_by_key.values()):
        raise AssertionError("RETURNING gave ids that match no inserted row")
    return ids


EXECUTION_FIELDS = ("workflow", "external_id", "status", "started_at", "finished_at",
                    "duration_ms", "error_message", "error_type", "error_fingerprint",
                    "step_count", "failed_step", "created_at", "updated_at", "maintenance",
                    "rerun_of")
STEP_FIELDS = ("execution", "position", "name", "action", "status", "started_at",
               "finished_at", "duration_ms", "error_message")
PAYLOAD_FIELDS = ("input", "output", "error")
NO_RUN_TEXT, NO_STEP_TEXT = (None,) * 3, (None,) * 4
NEW_FINGERPRINT = EXECUTION_FIELDS.index("error_fingerprint")
NEW_MAINTENANCE = EXECUTION_FIELDS.index("maintenance")


def error_values(error: ErrorIn | None) -> tuple[str | None, str | None, int | None]:
    """The error's excerpt, type and fingerprint (its group, read from the other two), as
    the run's row keeps them for lists and groups."""
    if error is None:
        return None, None, None
    message = excerpt(error.message)
    return message, error.type, fingerprint(error.type, message)


def error_columns(error: ErrorIn | None) -> dict:
    return dict(zip(("error_message", "error_type", "error_fingerprint"), error_values(error)))


def error_json(error: ErrorIn | None) -> str | None:
    return None if error is None else dump_json(error.model_dump(exclude_none=True))


# Payload texts by the id() of the reported run or step they belong to: serialised before
# the write transaction, so the write lock is held for writing alone.
Texts = dict[int, tuple]


def payload_texts(items: Iterable[ExecutionIn | StepIn]) -> Texts:
    """The stored JSON texts of runs (input, output, error) and of their steps (input,
    output, error, logs): made before a write transaction begins, so that the write lock
    is held for writing alone."""
    texts: Texts = {}
    for item in items:
        if isinstance(item, StepIn):
            texts[id(item)] = _step_texts(item)
            continue
        texts[id(item)] = (dump_json(item.input), dump_json(item.output),
                           error_json(item.error))
        for step in item.steps:
            texts[id(step)] = _step_texts(step)
    return texts


def _step_texts(step: StepIn) -> tuple:
    return (dump_json(step.input), dump_json(step.output), error_json(step.error), step.logs)


def workflow_ids(names: Iterable[str]) -> dict[str, int]:
    """Ids of the named workflows, creating those not seen before."""
    wanted = set(names)
    found = dict(Workflow.select(Workflow.name, Workflow.id)
                 .where(Workflow.name.in_(list(wanted))).tuples())
    missing = wanted - found.keys()
    if missing:
        now = utcnow()
        Workflow.insert_many([{"name": n, "created_at": now} for n in sorted(missing)]) \
            .on_conflict_ignore().execute()
        found.update(Workflow.select(Workflow.name, Workflow.id)
                     .where(Workflow.name.in_(list(missing))).tuples())
    return found


def step_status(step: StepIn) -> str:
    if step.status:
        return step.status
    if step.error is not None:
        return "failure"
    return "success" if step.finished_at else "running"


def step_tails(steps: list[tuple[int, StepIn]]) -> list[tuple]:
    """Rows for Step without their run's id (the order of STEP_FIELDS[1:]): a batch's
    steps are made rows before its runs have ids. The status is the fourth value."""
    tails = []
    for position, step in steps:
        started, finished, error = step.started_at, step.finished_at, step.error
        started = to_micros(started) if started else None
        finished = to_micros(finished) if finished else None
        tails.append((position, step.name, step.action, step_status(step), started, finished,
                      duration_between(started, finished),
                      None if error is None else excerpt(error.message)))
    return tails


def rows_of_steps(execution_id: int, steps: list[tuple[int, StepIn]], texts: Texts):
    """Rows for Step (in the order of STEP_FIELDS) and the payload texts that go with
    them."""
    return ([(execution_id, *tail) for tail in step_tails(steps)],
            [texts[id(step)] for _, step in steps])


def positioned(steps: list[StepIn], first_default: int) -> list[tuple[int, StepIn]]:
    """Steps keyed by position (default: counting from `first_default`); the last one wins."""
    pairs = [(first_default + index if step.position is None else step.position, step)
             for index, step in enumerate(steps)]
    if all(a[0] < b[0] for a, b in zip(pairs, pairs[1:])):
        return pairs  # in order already, each position once (most reports)
    by_position = dict(pairs)
    return sorted(by_position.items(), key=lambda item: item[0])


def insert_step_rows(rows: list[tuple], payloads: list[tuple]) -> None:
    ids = insert_returning_ids(Step, STEP_FIELDS, rows, key=("execution", "position"))
    bulk_insert(StepPayload, ("step", "input", "output", "error", "logs"),
                 [(step_id, *texts) for step_id, texts in zip(ids, payloads, strict=True)
                  if texts != NO_STEP_TEXT])
