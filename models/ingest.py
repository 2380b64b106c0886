"""Storing reported runs: create, upsert by external id, patch, and add steps.

Every write happens in one transaction: a batch is stored whole or not at all.
Features that keep derived data (rollups, alert bookkeeping) register a write
hook, called inside that transaction with the before/after state of each run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import peewee

from .db import (BOUND_VALUES, chunks, database, insert_rows, is_sqlite, placeholders,
                 to_micros, upsert_rows, utcnow, write_transaction)
from .executions import (FINISHED_STATUSES, Execution, ExecutionPayload, Step, StepPayload,
                         Workflow, dump_json, excerpt)
from .fingerprints import fingerprint
from .schemas import ErrorIn, ExecutionIn, ExecutionPatch, InputError, StepIn


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


Change = tuple[RunState | None, RunState]
WRITE_HOOKS: list[Callable[[list[Change]], None]] = []

_STATE_FIELDS = (Execution.id, Execution.workflow, Execution.status, Execution.started_at,
                 Execution.finished_at, Execution.duration_ms, Execution.error_fingerprint)


def register_write_hook(hook: Callable[[list[Change]], None]) -> None:
    """Call `hook(changes)` inside every transaction that creates or changes runs."""
    if hook not in WRITE_HOOKS:
        WRITE_HOOKS.append(hook)


DELETE_HOOKS: list[Callable[[list[RunState]], None]] = []


def register_delete_hook(hook: Callable[[list[RunState]], None]) -> None:
    """Call `hook(states)` inside every transaction that deletes runs (retention)."""
    if hook not in DELETE_HOOKS:
        DELETE_HOOKS.append(hook)


def run_delete_hooks(states: list[RunState]) -> None:
    """Tell the delete hooks about runs deleted in this transaction."""
    if states:
        for hook in DELETE_HOOKS:
            hook(states)


def _state(id_, workflow_id, status, started, finished, duration, fingerprint) -> RunState:
    return RunState(id_, workflow_id, status, to_micros(started),
                    to_micros(finished) if finished else None, duration, fingerprint)


def _run_hooks(changes: list[Change]) -> None:
    if changes:
        for hook in WRITE_HOOKS:
            hook(changes)


def _duration(started: int | None, finished: int | None) -> int | None:
    if started is None or finished is None:
        return None
    return (finished - started) // 1000


def _bulk_insert(model, names: tuple[str, ...], rows: list[tuple]) -> None:
    """INSERT rows of ready-to-store values (`names`: the model's fields, in the rows'
    order)."""
    fields = model._meta.fields
    insert_rows(model._meta.table_name, [fields[name].column_name for name in names], rows)


def _insert_returning_ids(model, names: tuple[str, ...], rows: list[tuple],
                          key: tuple[str, ...]) -> list[int]:
    """INSERT rows as `_bulk_insert` does; the new id of each row, in the rows' order.

    Neither SQLite nor PostgreSQL promises that RETURNING gives rows in the order of the
    VALUES, so each returned id is matched to its row by the `key` columns it returns with
    it, never by position. Rows alike in every key column are one and the same row to the
    database: any of their ids may go with any of them, each once.
    """
    fields = model._meta.fields
    columns = [fields[name].column_name for name in names]
    where = [names.index(name) for name in key]
    tail = ' RETURNING "{}", '.format(model._meta.primary_key.column_name) + ", ".join(
        f'"{fields[name].column_name}"' for name in key)
    ids_by_key: dict[tuple, list[int]] = {}
    for new_id, *values in insert_rows(model._meta.table_name, columns, rows, tail,
                                       returning=True):
        ids_by_key.setdefault(tuple(values), []).append(new_id)
    ids = [ids_by_key[tuple(row[i] for i in where)].pop() for row in rows]
    if any(ids_by_key.values()):
        raise AssertionError("RETURNING gave ids that match no inserted row")
    return ids


_EXECUTION_FIELDS = ("workflow", "external_id", "status", "started_at", "finished_at",
                     "duration_ms", "error_message", "error_type", "error_fingerprint",
                     "step_count", "failed_step", "created_at", "updated_at")
_STEP_FIELDS = ("execution", "position", "name", "action", "status", "started_at",
                "finished_at", "duration_ms", "error_message")
_PAYLOAD_FIELDS = ("input", "output", "error")
_NO_RUN_TEXT, _NO_STEP_TEXT = (None,) * 3, (None,) * 4
_NEW_FINGERPRINT = _EXECUTION_FIELDS.index("error_fingerprint")


def _error_values(error: ErrorIn | None) -> tuple[str | None, str | None, int | None]:
    """The error's excerpt, type and fingerprint (its group, read from the other two), as
    the run's row keeps them for lists and groups."""
    if error is None:
        return None, None, None
    message = excerpt(error.message)
    return message, error.type, fingerprint(error.type, message)


def _error_columns(error: ErrorIn | None) -> dict:
    return dict(zip(("error_message", "error_type", "error_fingerprint"), _error_values(error)))


def _error_json(error: ErrorIn | None) -> str | None:
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
            texts[id(item)] = (dump_json(item.input), dump_json(item.output),
                               _error_json(item.error), item.logs)
            continue
        texts[id(item)] = (dump_json(item.input), dump_json(item.output),
                           _error_json(item.error))
        texts.update(payload_texts(item.steps))
    return texts


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


def _step_status(step: StepIn) -> str:
    if step.status:
        return step.status
    if step.error is not None:
        return "failure"
    return "success" if step.finished_at else "running"


def _step_rows(execution_id: int, steps: list[tuple[int, StepIn]], texts: Texts):
    """Rows for Step (in the order of _STEP_FIELDS) and the payload texts that go with
    them."""
    rows, payloads = [], []
    for position, step in steps:
        started = to_micros(step.started_at) if step.started_at else None
        finished = to_micros(step.finished_at) if step.finished_at else None
        rows.append((execution_id, position, step.name, step.action, _step_status(step),
                     started, finished, _duration(started, finished),
                     excerpt(step.error.message if step.error else None)))
        payloads.append(texts[id(step)])
    return rows, payloads


def _positioned(steps: list[StepIn], first_default: int) -> list[tuple[int, StepIn]]:
    """Steps keyed by position (default: counting from `first_default`); the last one wins."""
    by_position: dict[int, StepIn] = {}
    for index, step in enumerate(steps):
        position = step.position if step.position is not None else first_default + index
        by_position[position] = step
    return sorted(by_position.items(), key=lambda item: item[0])


def _write_steps(execution_id: int, steps: list[tuple[int, StepIn]], replace: bool,
                 texts: Texts) -> None:
    if not steps:
        return
    if replace:
        Step.delete().where(Step.execution == execution_id,
                            Step.position.in_([p for p, _ in steps])).execute()
    rows, payloads = _step_rows(execution_id, steps, texts)
    _insert_step_rows(rows, payloads)


def _insert_step_rows(rows: list[tuple], payloads: list[tuple]) -> None:
    ids = _insert_returning_ids(Step, _STEP_FIELDS, rows, key=("execution", "position"))
    _bulk_insert(StepPayload, ("step", "input", "output", "error", "logs"),
                 [(step_id, *texts) for step_id, texts in zip(ids, payloads, strict=True)
                  if texts != _NO_STEP_TEXT])


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


def store_executions(items: list[ExecutionIn],
                     texts: Texts | None = None) -> list[tuple[int, bool]]:
    """Store runs all-or-nothing; returns (id, created) per item, in order. `texts`: what
    `payload_texts` made of the same items, when the caller holds the write lock already."""
    texts = payload_texts(items) if texts is None else texts
    for attempt in range(3):
        try:
            with write_transaction():
                return _store(items, texts)
        except peewee.IntegrityError:
            # Another writer created the same external id first: look again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


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
    existing = _existing_by_key(keys)

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
        steps = _positioned(item.steps, 0)
        failed = next((p for p, step in steps if _step_status(step) == "failure"), None)
        new_rows.append((wf, item.external_id, item.status, started, finished,
                         _duration(started, finished), *_error_values(item.error),
                         len(steps), failed, now_us, now_us))
        new_items.append((item, steps))
        new_index.append(index)

    changes: list[Change] = list(zip([before for before, _ in reposts],
                                     _update_existing(reposts, now, texts), strict=True))
    # Matched by every column inserted: runs without an external id share a key otherwise.
    ids = _insert_returning_ids(Execution, _EXECUTION_FIELDS, new_rows, key=_EXECUTION_FIELDS)
    payload_rows, step_rows, step_payloads = [], [], []
    for execution_id, row, (item, steps), index in zip(ids, new_rows, new_items, new_index,
                                                       strict=True):
        results[index] = (execution_id, True)
        workflow_id, _, status, started, finished, duration = row[:6]
        changes.append((None, RunState(execution_id, workflow_id, status, started, finished,
                                       duration, row[_NEW_FINGERPRINT])))
        run_texts = texts[id(item)]
        if run_texts != _NO_RUN_TEXT:
            payload_rows.append((execution_id, *run_texts))
        rows, payloads = _step_rows(execution_id, steps, texts)
        step_rows.extend(rows)
        step_payloads.extend(payloads)
    _bulk_insert(ExecutionPayload, ("execution", *_PAYLOAD_FIELDS), payload_rows)
    _insert_step_rows(step_rows, step_payloads)
    _run_hooks(changes)
    return results  # type: ignore[return-value]


def _store_ordered(item: ExecutionIn, workflows: dict[str, int], now,
                   texts: Texts) -> list[tuple[int, bool]]:
    wf = workflows[item.workflow]
    before = _existing_by_key([(wf, item.external_id)]).get((wf, item.external_id))
    if before is None:
        return _store([item], texts)
    [after] = _update_existing([(before, item)], now, texts)
    _run_hooks([(before, after)])
    return [(before.id, False)]


def _locked(query):
    """Lock the rows read as "before": write hooks move them from that state, exactly once.

    SQLite needs no row lock: its write transactions already run one at a time.
    """
    return query if is_sqlite() else query.for_update()


def _existing_by_key(keys: list[tuple[int, str]]) -> dict[tuple[int, str], RunState]:
    """The runs stored under these (workflow id, external id) keys.

    Joined to the keys as a VALUES list, so each key is one probe of the unique
    (workflow, external_id) index: two IN lists (external ids, workflow ids) let
    PostgreSQL choose a scan of the whole table, whose cost grows with every run stored.
    """
    if not keys:
        return {}
    found: dict[tuple[int, str], RunState] = {}
    # Written by hand, as _bulk_insert is: peewee's SQL generation of a long VALUES list
    # costs twenty times the query.
    columns = ", ".join(f'"t1"."{field.column_name}"' for field in _STATE_FIELDS)
    lock = "" if is_sqlite() else ' FOR UPDATE OF "t1"'
    for chunk in chunks(sorted(set(keys)), BOUND_VALUES // 2):
        pairs = ", ".join([f"({placeholders(2)})"] * len(chunk))
        sql = (f'SELECT {columns}, "t1"."external_id" FROM "{Execution._meta.table_name}" '
               f'AS "t1" JOIN (VALUES {pairs}) AS "wanted" ON "t1"."workflow_id" = '
               f'"wanted"."column1" AND "t1"."external_id" = "wanted"."column2" '
               f'ORDER BY "t1"."id"{lock}')
        params = [value for pair in chunk for value in pair]
        for *state, external_id in database.execute_sql(sql, params).fetchall():
            found[(state[1], external_id)] = RunState(*state)  # stored values: micros
    return found


def stored_start_conflict() -> InputError:
    """409: a finished_at before the stored run's start. The body alone is good; it is the
    run as stored that it does not fit (RFC 9110's conflict with the resource's state)."""
    return InputError("finished_at: finished_at is before the run's started_at",
                      "finished_at", "conflict", 409)


@dataclass
class _Repost:
    """What a re-post of a known run writes, next to what is stored."""

    before: RunState
    after: RunState
    values: dict  # Execution fields to set (timestamps as microseconds)
    payload: dict  # the run's payload texts sent, by column


def _update_existing(reposts: list[tuple[RunState, ExecutionIn]], now,
                     texts: Texts) -> list[RunState]:
    """Apply re-posts of known runs: sent fields overwrite, unsent ones stay. Each run is
    compared with what is stored and only what differs is written, all runs together in a
    few statements: a client re-sending its runs after an outage (most of them unchanged)
    costs about what sending them the first time did. Every re-post is a report, so each
    run's `updated_at` moves even when nothing else does."""
    if not reposts:
        return []
    ids = [before.id for before, _ in reposts]
    stored = _stored_runs(ids)
    stored_steps = _stored_steps([before.id for before, item in reposts if item.steps])
    now_us = to_micros(now)
    plans, afters, touched = [], [], []
    doomed_steps: list[int] = []
    step_rows: list[tuple] = []
    step_payloads: list[tuple] = []
    for before, item in reposts:
        row, payload_row = stored[before.id]
        plan = _plan_repost(before, item, row, texts)
        afters.append(plan.after)
        changed = (any(row[_COLUMN[name]] != value for name, value in plan.values.items())
                   or any(payload_row[name] != text for name, text in plan.payload.items()))
        if item.steps:
            counts, rows, payloads, replaced = _step_changes(
                before.id, item.steps, stored_steps.get(before.id, {}), texts)
            changed = (changed or bool(rows)
                       or any(row[_COLUMN[name]] != value for name, value in counts.items()))
            plan.values.update(counts)
            step_rows += rows
            step_payloads += payloads
            doomed_steps += replaced
        if changed:
            plan.values["updated_at"] = now_us
            plans.append(plan)
        else:
            touched.append(before.id)
    _touch(touched, now_us)
    _write_runs(plans, stored)
    _write_run_payloads(plans, stored)
    for chunk in chunks(sorted(doomed_steps), BOUND_VALUES):  # their payloads go with them
        database.execute_sql(f'DELETE FROM "{Step._meta.table_name}" WHERE "id" IN '
                             f'({placeholders(len(chunk))})', list(chunk))
    _insert_step_rows(step_rows, step_payloads)
    return afters


_POSITION, _STATUS = _STEP_FIELDS.index("position"), _STEP_FIELDS.index("status")


def _step_changes(execution_id: int, steps: list[StepIn], known: dict[int, tuple],
                  texts: Texts) -> tuple[dict, list[tuple], list[tuple], list[int]]:
    """The steps of a re-post that differ from those stored at their positions (`known`,
    from `_stored_steps`): their rows and payload texts to insert and the ids of the rows
    they replace; and the run's step count and first failed step once they are in."""
    statuses = {position: kept[1][_STATUS] for position, kept in known.items()}
    rows, payloads, replaced = [], [], []
    rows_sent, texts_sent = _step_rows(execution_id, _positioned(steps, 0), texts)
    for row, step_texts in zip(rows_sent, texts_sent, strict=True):
        kept = known.get(row[_POSITION])
        statuses[row[_POSITION]] = row[_STATUS]
        if kept is not None and kept[1:] == (row, step_texts):
            continue  # reported again as stored: the step keeps its row
        if kept is not None:
            replaced.append(kept[0])
        rows.append(row)
        payloads.append(step_texts)
    failures = [position for position, status in statuses.items() if status == "failure"]
    counts = {"step_count": len(statuses), "failed_step": min(failures, default=None)}
    return counts, rows, payloads, replaced


def _plan_repost(before: RunState, item: ExecutionIn, row: dict, texts: Texts) -> _Repost:
    """The fields a re-post sets, worked out from the stored row `row` (by column)."""
    sent = item.model_fields_set
    started = to_micros(item.started_at) if "started_at" in sent and item.started_at \
        else before.started_at
    finished = before.finished_at
    if "finished_at" in sent:
        finished = to_micros(item.finished_at) if item.finished_at else None
    if finished is not None and finished < started:
        raise stored_start_conflict()
    replaced = _timeout_replaced(before, row[_COLUMN["error_type"]], item.status, sent)
    if replaced and item.status not in FINISHED_STATUSES and "finished_at" not in sent:
        finished = None
    values = {"status": item.status, "started_at": started, "finished_at": finished,
              "duration_ms": _duration(started, finished)}
    if "error" in sent or replaced:
        values.update(_error_columns(item.error))
    payload = {name: text
               for name, text in zip(_PAYLOAD_FIELDS, texts[id(item)], strict=True)
               if name in sent or (replaced and name == "error")}
    after = RunState(before.id, before.workflow_id, item.status, started, finished,
                     values["duration_ms"], values.get("error_fingerprint", before.fingerprint))
    return _Repost(before, after, values, payload)


# Execution's columns by field name (the run's workflow is its `workflow_id` column).
_COLUMN = {name: field.column_name for name, field in Execution._meta.fields.items()}


def _stored_runs(ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """Each run's stored row (by column, timestamps as microseconds) and its payload texts
    (None where it has none)."""
    E, P = Execution._meta, ExecutionPayload._meta
    columns = [field.column_name for field in E.sorted_fields]
    select = ", ".join([f'e."{c}"' for c in columns] + [f'p."{c}"' for c in _PAYLOAD_FIELDS])
    found = {}
    for chunk in chunks(sorted(set(ids)), BOUND_VALUES):
        sql = (f'SELECT {select} FROM "{E.table_name}" AS e LEFT JOIN "{P.table_name}" AS p '
               f'ON p."{P.primary_key.column_name}" = e."id" '
               f'WHERE e."id" IN ({placeholders(len(chunk))})')
        for values in database.execute_sql(sql, list(chunk)).fetchall():
            row = dict(zip(columns, values))
            found[row["id"]] = (row, dict(zip(_PAYLOAD_FIELDS, values[len(columns):])))
    return found


_STEP_COLUMNS = [Step._meta.fields[name].column_name for name in _STEP_FIELDS]
_STEP_TEXTS = ("input", "output", "error", "logs")


def _stored_steps(execution_ids: list[int]) -> dict[int, dict[int, tuple]]:
    """The stored steps of these runs: by run, by position, (step id, row in the order of
    _STEP_FIELDS, payload texts) — what `_step_rows` makes of a step reported again."""
    select = ", ".join(['s."id"'] + [f's."{c}"' for c in _STEP_COLUMNS]
                       + [f'p."{c}"' for c in _STEP_TEXTS])
    found: dict[int, dict[int, tuple]] = {}
    width = len(_STEP_COLUMNS)
    for chunk in chunks(sorted(set(execution_ids)), BOUND_VALUES):
        sql = (f'SELECT {select} FROM "{Step._meta.table_name}" AS s LEFT JOIN '
               f'"{StepPayload._meta.table_name}" AS p ON p."step_id" = s."id" '
               f'WHERE s."execution_id" IN ({placeholders(len(chunk))})')
        for step_id, *values in database.execute_sql(sql, list(chunk)).fetchall():
            row, step_texts = tuple(values[:width]), tuple(values[width:])
            found.setdefault(row[0], {})[row[1]] = (step_id, row, step_texts)
    return found


def _touch(ids: list[int], now_us: int) -> None:
    """Runs reported again exactly as stored: only their last report moves."""
    for chunk in chunks(sorted(ids), BOUND_VALUES):
        database.execute_sql(f'UPDATE "{Execution._meta.table_name}" SET "updated_at" = '
                             f'{database.param} WHERE "id" IN ({placeholders(len(chunk))})',
                             [now_us, *chunk])


def _write_runs(plans: list[_Repost], stored: dict) -> None:
    """Write the changed runs' rows: one statement per set of fields changed. An upsert on
    the id, whose insert never happens, carries the values of many rows in one statement on
    both databases (the stored row fills the columns not set)."""
    columns = list(stored[plans[0].before.id][0]) if plans else []
    groups: dict[tuple, list[tuple]] = {}
    for plan in sorted(plans, key=lambda plan: plan.before.id):
        row = dict(stored[plan.before.id][0])
        row.update((_COLUMN[name], value) for name, value in plan.values.items())
        groups.setdefault(tuple(_COLUMN[name] for name in plan.values), []) \
            .append(tuple(row.values()))
    for changed, rows in groups.items():
        upsert_rows(Execution._meta.table_name, columns, ("id",),
                    ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in changed), rows)


def _write_run_payloads(plans: list[_Repost], stored: dict) -> None:
    """Write the payload texts of the changed runs that differ from those stored."""
    groups: dict[tuple, list[tuple]] = {}
    for plan in sorted(plans, key=lambda plan: plan.before.id):
        kept = stored[plan.before.id][1]
        if any(kept[name] != text for name, text in plan.payload.items()):
            groups.setdefault(tuple(plan.payload), []) \
                .append((plan.before.id, *plan.payload.values()))
    for names, rows in groups.items():
        upsert_rows(ExecutionPayload._meta.table_name, ("execution_id", *names),
                    ("execution_id",), ", ".join(f'"{n}" = EXCLUDED."{n}"' for n in names),
                    rows)


TIMEOUT = "Timeout"  # the error type of a run the scan failed for exceeding its maximum duration


def _replaces_timeout(before: RunState, status: str, sent: set[str]) -> bool:
    """Whether a report replaces a timeout: the run was failed with a `Timeout` error and
    is now reported in another status without an error of its own. Then the error goes (and
    the finish the timeout gave it, if the run is reported open again)."""
    if before.status != "failure" or status == "failure" or "error" in sent:
        return False
    kind = Execution.select(Execution.error_type).where(Execution.id == before.id).scalar()
    return _timeout_replaced(before, kind, status, sent)


def _timeout_replaced(before: RunState, error_type: str | None, status: str,
                      sent: set[str]) -> bool:
    """`_replaces_timeout`, given the run's stored error type."""
    return (before.status == "failure" and status != "failure" and "error" not in sent
            and error_type == TIMEOUT)


def _load_state(execution_id: int) -> RunState | None:
    row = _locked(Execution.select(*_STATE_FIELDS).where(Execution.id == execution_id)
                  .tuples()).first()
    return _state(*row) if row else None


def patch_execution(execution_id: int, patch: ExecutionPatch, *,
                    only_unfinished: bool = False) -> bool:
    """Change status, finished_at, error or output of a run; False if there is no such run
    (or, with `only_unfinished`, if it has finished meanwhile)."""
    sent = patch.model_fields_set
    error_text, output_text = _error_json(patch.error), dump_json(patch.output)
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
            values["duration_ms"] = _duration(before.started_at, finished)
        replaced = _replaces_timeout(before, status, sent)
        if replaced and status not in FINISHED_STATUSES and "finished_at" not in sent:
            finished = values["finished_at"] = values["duration_ms"] = None
        if "error" in sent or replaced:
            values.update(_error_columns(patch.error))
        Execution.update(values).where(Execution.id == execution_id).execute()
        payload = {}
        if "error" in sent or replaced:
            payload["error"] = error_text
        if "output" in sent:
            payload["output"] = output_text
        _upsert_payload(execution_id, payload)
        after = RunState(before.id, before.workflow_id, status, before.started_at, finished,
                         _duration(before.started_at, finished),
                         values.get("error_fingerprint", before.fingerprint))
        _run_hooks([(before, after)])
    return True


def add_steps(execution_id: int, steps: list[StepIn]) -> bool:
    """Append steps, or replace those at the same position; False if there is no such run."""
    texts = payload_texts(steps)
    with write_transaction():
        if not Execution.select().where(Execution.id == execution_id).exists():
            return False
        last = (Step.select(peewee.fn.MAX(Step.position))
                .where(Step.execution == execution_id).scalar())
        _write_steps(execution_id, _positioned(steps, 0 if last is None else last + 1),
                     replace=True, texts=texts)
        _refresh_step_summary(execution_id)
    return True


__all__ = ["store_executions", "patch_execution", "add_steps", "register_write_hook",
           "register_delete_hook", "run_delete_hooks", "payload_texts", "RunState", "Change"]
