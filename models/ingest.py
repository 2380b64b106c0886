"""Storing reported runs: create, upsert by external id, patch, and add steps.

Every write happens in one transaction: a batch is stored whole or not at all.
Features that keep derived data (rollups, alert bookkeeping) register a write
hook (models/hooks.py), called inside that transaction with the before/after state of
each run. A report becomes rows in models/run_rows.py; a run reported again is compared
with what is stored in models/reposts.py.
"""
from __future__ import annotations

import peewee

from .db import write_transaction
from .executions import FINISHED_STATUSES, Execution, ExecutionPayload, Step, dump_json
from .hooks import in_maintenance, run_write_hooks
from .reposts import (clears_error, existing_by_key, locked, replaces_error,
                      stored_error_type, stored_start_conflict, update_existing)
from .run_rows import (EXECUTION_FIELDS, NEW_FINGERPRINT, NEW_MAINTENANCE, NO_RUN_TEXT,
                       PAYLOAD_FIELDS, STATE_FIELDS, Change, RunState, Texts, bulk_insert,
                       duration_between,
                       error_columns, error_json, error_values, insert_returning_ids,
                       insert_step_rows, payload_texts, positioned, rows_of_steps,
                       state_of_row, step_tails, workflow_ids)
from .schemas import ExecutionIn, ExecutionPatch, InputError, StepIn
from .times import to_micros, utcnow


def _write_steps(execution_id: int, steps: list[tuple[int, StepIn]], replace: bool,
                 texts: Texts) -> None:
    if not steps:
        return
    if replace:
        Step.delete().where(Step.execution == execution_id,
                            Step.position.in_([p for p, _ in steps])).execute()
    rows, payloads = rows_of_steps(execution_id, steps, texts)
    insert_step_rows(rows, payloads)


def _refresh_step_summary(execution_id: int) -> None:
    count, failed = (Step.select(peewee.fn.COUNT(Step.id),
                                 peewee.fn.MIN(peewee.Case(None, [(Step.status == "failure",
                                                                   Step.position)])))
                     .where(Step.execution == execution_id).tuples().get())
    Execution.update(step_count=count, failed_step=failed, updated_at=utcnow()) \
        .where(Execution.id == execution_id).execute()


def _upsert_payload(execution_id: int, values: dict) -> None:
    if not values:
        return
    ExecutionPayload.insert(execution=execution_id, **values).on_conflict(
        conflict_target=[ExecutionPayload.execution], update=values).execute()


def store_executions(items: list[ExecutionIn], texts: Texts | None = None, *,
                     in_batch: bool = False) -> list[tuple[int, bool]]:
    """Store runs all-or-nothing; returns (id, created) per item, in order. `texts`: what
    `payload_texts` made of the same items, when the caller holds the write lock already.
    `in_batch`: the items are a batch's, so an error names the item by its index."""
    texts = payload_texts(items) if texts is None else texts
    for attempt in range(3):
        try:
            with write_transaction():
                _check_origins(items, in_batch)
                return _store(items, texts)
        except peewee.IntegrityError:
            # Another writer created the same external id first: look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _check_origins(items: list[ExecutionIn], in_batch: bool) -> None:
    """Refuse a `rerun_of` that names no stored run (InputError naming the item's field)."""
    wanted = {item.rerun_of for item in items if item.rerun_of is not None}
    if not wanted:
        return
    found = {id_ for (id_,) in Execution.select(Execution.id)
             .where(Execution.id.in_(sorted(wanted))).tuples()}
    for index, item in enumerate(items):
        if item.rerun_of is not None and item.rerun_of not in found:
            field = f"executions.{index}.rerun_of" if in_batch else "rerun_of"
            raise InputError(f"{field}: there is no execution {item.rerun_of}", field)


def _store(items: list[ExecutionIn], texts: Texts) -> list[tuple[int, bool]]:
    now = utcnow()
    now_us = to_micros(now)
    workflows = workflow_ids(item.workflow for item in items)
    keys = [(workflows[i.workflow], i.external_id) for i in items if i.external_id is not None]
    if len(set(keys)) != len(keys):
        # The same run twice in one batch: store in order, each seeing the one before.
        results = []
        for item in items:
            results.extend(_store_ordered(item, workflows, now, texts))
        return results
    existing = existing_by_key(keys)

    results: list[tuple[int, bool] | None] = [None] * len(items)
    reposts: list[tuple[RunState, ExecutionIn]] = []
    new_rows, new_items, new_index = [], [], []
    for index, item in enumerate(items):
        wf = workflows[item.workflow]
        before = existing.get((wf, item.external_id)) if item.external_id else None
        if before is not None:
            reposts.append((before, item))
            results[index] = (before.id, False)
            continue
        started = to_micros(item.started_at) if item.started_at else now_us
        finished = to_micros(item.finished_at) if item.finished_at else None
        steps = positioned(item.steps, 0)
        tails = step_tails(steps)
        failed = next((tail[0] for tail in tails if tail[3] == "failure"), None)
        new_rows.append((wf, item.external_id, item.status, started, finished,
                         duration_between(started, finished), *error_values(item.error),
                         len(steps), failed, now_us, now_us))
        new_items.append((item, steps, tails))
        new_index.append(index)
    marks = in_maintenance([(item.workflow, row[3])
                            for row, (item, *_) in zip(new_rows, new_items, strict=True)])
    new_rows = [(*row, mark, item.rerun_of)
                for row, mark, (item, *_) in zip(new_rows, marks, new_items, strict=True)]

    changes: list[Change] = list(zip([before for before, _ in reposts],
                                     update_existing(reposts, now, texts), strict=True))
    # Matched by every column inserted: runs without an external id share a key otherwise.
    ids = insert_returning_ids(Execution, EXECUTION_FIELDS, new_rows, key=EXECUTION_FIELDS)
    payload_rows, step_rows, step_payloads = [], [], []
    for execution_id, row, (item, steps, tails), index in zip(ids, new_rows, new_items,
                                                              new_index, strict=True):
        results[index] = (execution_id, True)
        workflow_id, _, status, started, finished, duration = row[:6]
        changes.append((None, RunState(execution_id, workflow_id, status, started, finished,
                                       duration, row[NEW_FINGERPRINT],
                                       row[NEW_MAINTENANCE])))
        run_texts = texts[id(item)]
        if run_texts != NO_RUN_TEXT:
            payload_rows.append((execution_id, *run_texts))
        step_rows += [(execution_id, *tail) for tail in tails]
        step_payloads += [texts[id(step)] for _, step in steps]
    bulk_insert(ExecutionPayload, ("execution", *PAYLOAD_FIELDS), payload_rows)
    insert_step_rows(step_rows, step_payloads)
    run_write_hooks(changes)
    return results  # type: ignore[return-value]


def _store_ordered(item: ExecutionIn, workflows: dict[str, int], now,
                   texts: Texts) -> list[tuple[int, bool]]:
    wf = workflows[item.workflow]
    before = existing_by_key([(wf, item.external_id)]).get((wf, item.external_id))
    if before is None:
        return _store([item], texts)
    [after] = update_existing([(before, item)], now, texts)
    run_write_hooks([(before, after)])
    return [(before.id, False)]


def _load_state(execution_id: int) -> RunState | None:
    row = locked(Execution.select(*STATE_FIELDS).where(Execution.id == execution_id)
                 .tuples()).first()
    return state_of_row(*row) if row else None


def patch_execution(execution_id: int, patch: ExecutionPatch, *,
                    only_unfinished: bool = False) -> bool:
    """Change status, finished_at, error or output of a run; False if there is no such run
    (or, with `only_unfinished`, if it has finished meanwhile)."""
    sent = patch.model_fields_set
    error_text, output_text = error_json(patch.error), dump_json(patch.output)
    with write_transaction():
        before = _load_state(execution_id)
        if before is None or (only_unfinished and before.status in FINISHED_STATUSES):
            return False
        now = utcnow()
        values: dict = {"updated_at": now}
        status, finished = before.status, before.finished_at
        if "status" in sent:
            status = values["status"] = patch.status
        if "finished_at" in sent:
            finished = to_micros(patch.finished_at) if patch.finished_at else None
            if finished is not None and finished < before.started_at:
                raise stored_start_conflict()
            values["finished_at"] = finished
            values["duration_ms"] = duration_between(before.started_at, finished)
        replaced = replaces_error(before, status, sent, stored_error_type(execution_id))
        if replaced and status not in FINISHED_STATUSES and "finished_at" not in sent:
            finished = values["finished_at"] = values["duration_ms"] = None
        replaced = replaced or clears_error(status, sent)
        if "error" in sent or replaced:
            values.update(error_columns(patch.error))
        Execution.update(values).where(Execution.id == execution_id).execute()
        payload = {}
        if "error" in sent or replaced:
            payload["error"] = error_text
        if "output" in sent:
            payload["output"] = output_text
        _upsert_payload(execution_id, payload)
        after = RunState(before.id, before.workflow_id, status, before.started_at, finished,
                         duration_between(before.started_at, finished),
                         values.get("error_fingerprint", before.fingerprint), before.maintenance)
        run_write_hooks([(before, after)])
    return True


def add_steps(execution_id: int, steps: list[StepIn]) -> bool:
    """Append steps, or replace those at the same position; False if there is no such run."""
    texts = payload_texts(steps)
    with write_transaction():
        if not Execution.select().where(Execution.id == execution_id).exists():
            return False
        last = (Step.select(peewee.fn.MAX(Step.position))
                .where(Step.execution == execution_id).scalar())
        _write_steps(execution_id, positioned(steps, 0 if last is None else last + 1),
                     replace=True, texts=texts)
        _refresh_step_summary(execution_id)
    return True




__all__ = ["store_executions", "patch_execution", "add_steps", "payload_texts", "workflow_ids",
           "RunState", "Change"]
