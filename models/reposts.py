"""Reports of runs stored before (by external id): each compared with what is stored, and
only what differs written, all runs together in a few statements; the stored rows read
as "before" are locked, so that write hooks move each run from that state exactly once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .bulk import (BOUND_VALUES, chunks, delete_where_in, flat, placeholders,
                   update_where_in, upsert_rows)
from .db import database, is_sqlite
from .executions import FINISHED_STATUSES, Execution, ExecutionPayload, Step, StepPayload
from .hooks import current_hooks, in_maintenance
from .run_rows import (PAYLOAD_FIELDS, STATE_FIELDS, STEP_FIELDS, RunState, Texts,
                       duration_between, error_columns, insert_step_rows, positioned,
                       rows_of_steps)
from .schemas import ExecutionIn, InputError, StepIn
from .times import to_micros


def locked(query):
    """Lock the rows read as "before": write hooks move them from that state, exactly once.

    SQLite needs no row lock: its write transactions already run one at a time.
    """
    return query if is_sqlite() else query.for_update()


def existing_by_key(keys: list[tuple[int, str]]) -> dict[tuple[int, str], RunState]:
    """The runs stored under these (workflow id, external id) keys.

    Each key is one probe of the unique (workflow, external_id) index: two IN lists
    (external ids, workflow ids) let PostgreSQL choose a scan of the whole table, whose cost
    grows with every run stored, and so does a join to the keys as a VALUES list while the
    table is small enough (some 40 ms a batch at 100 k runs). On PostgreSQL each key is
    looked up by a LATERAL subquery (LIMIT 1 keeps it one, the key being unique), and the
    runs found are then read and locked in the order of their ids.
    """
    if not keys:
        return {}
    if is_sqlite():
        return _states(_JOINED, "", sorted(set(keys)))
    ids = sorted({id_ for chunk in chunks(sorted(set(keys)), BOUND_VALUES // 2)
                  for (id_,) in database.execute_sql(_probe(len(chunk)), flat(chunk))})
    return _states(f'{_TABLE} AS "t1" WHERE "t1"."id" IN ({{}})', ' FOR UPDATE OF "t1"', ids)


_TABLE = f'"{Execution._meta.table_name}"'
# SQLite probes the index once per key of the VALUES list joined.
_JOINED = (f'{_TABLE} AS "t1" JOIN (VALUES {{}}) AS "wanted" ON "t1"."workflow_id" = '
           f'"wanted"."column1" AND "t1"."external_id" = "wanted"."column2"')


def _probe(count: int) -> str:
    pairs = ", ".join([f"({placeholders(2)})"] * count)
    return (f'SELECT "t1"."id" FROM (VALUES {pairs}) AS "wanted" CROSS JOIN LATERAL '
            f'(SELECT "id" FROM {_TABLE} WHERE "workflow_id" = "wanted"."column1" AND '
            f'"external_id" = "wanted"."column2" LIMIT 1) AS "t1"')


def _states(source: str, lock: str, wanted: list) -> dict[tuple[int, str], RunState]:
    """The state of the runs of `source` (a FROM clause whose `{}` takes the placeholders
    of `wanted`: keys as pairs, or ids), by (workflow id, external id)."""
    found: dict[tuple[int, str], RunState] = {}
    # Written by hand, as bulk_insert is: peewee's SQL generation of a long VALUES list
    # costs twenty times the query.
    columns = ", ".join(f'"t1"."{field.column_name}"' for field in STATE_FIELDS)
    pairs = bool(wanted) and isinstance(wanted[0], tuple)
    for chunk in chunks(wanted, BOUND_VALUES // 2):
        values = (", ".join([f"({placeholders(2)})"] * len(chunk)) if pairs
                  else placeholders(len(chunk)))
        sql = (f'SELECT {columns}, "t1"."external_id" FROM {source.format(values)} '
               f'ORDER BY "t1"."id"{lock}')
        for *state, external_id in database.execute_sql(
                sql, flat(chunk) if pairs else list(chunk)).fetchall():
            found[(state[1], external_id)] = RunState(*state[:-1], bool(state[-1]))  # micros
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


def update_existing(reposts: list[tuple[RunState, ExecutionIn]], now,
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
    # A run whose start moves is marked anew: inside a maintenance window or not.
    moved = [(before, item) for before, item in reposts
             if _started(before, item) != before.started_at]
    marks = dict(zip([before.id for before, _ in moved],
                     in_maintenance([(item.workflow, _started(before, item))
                                     for before, item in moved]), strict=True))
    plans, afters, touched = [], [], []
    doomed_steps: list[int] = []
    step_rows: list[tuple] = []
    step_payloads: list[tuple] = []
    for before, item in reposts:
        row, payload_row = stored[before.id]
        plan = _plan_repost(before, item, row, texts, marks.get(before.id))
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
    delete_where_in(Step._meta.table_name, "id", sorted(doomed_steps))  # payloads go too
    insert_step_rows(step_rows, step_payloads)
    return afters


_POSITION, _STATUS = STEP_FIELDS.index("position"), STEP_FIELDS.index("status")


def _step_changes(execution_id: int, steps: list[StepIn], known: dict[int, tuple],
                  texts: Texts) -> tuple[dict, list[tuple], list[tuple], list[int]]:
    """The steps of a re-post that differ from those stored at their positions (`known`,
    from `_stored_steps`): their rows and payload texts to insert and the ids of the rows
    they replace; and the run's step count and first failed step once they are in."""
    statuses = {position: kept[1][_STATUS] for position, kept in known.items()}
    rows, payloads, replaced = [], [], []
    rows_sent, texts_sent = rows_of_steps(execution_id, positioned(steps, 0), texts)
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


def _started(before: RunState, item: ExecutionIn) -> int:
    """The start of a run reported again: the one sent, else the one stored."""
    sent = item.model_fields_set
    return (to_micros(item.started_at) if "started_at" in sent and item.started_at
            else before.started_at)


def _plan_repost(before: RunState, item: ExecutionIn, row: dict, texts: Texts,
                 maintenance: bool | None) -> _Repost:
    """The fields a re-post sets, worked out from the stored row `row` (by column);
    `maintenance`: the run's mark when its start moves (None: it keeps its own)."""
    sent = item.model_fields_set
    started = _started(before, item)
    finished = before.finished_at
    if "finished_at" in sent:
        finished = to_micros(item.finished_at) if item.finished_at else None
    elif item.status not in FINISHED_STATUSES:
        finished = None  # reported open again (a job run once more): it has no end yet
    if finished is not None and finished < started:
        raise stored_start_conflict()
    replaced = (replaces_error(before, item.status, sent, lambda: row[_COLUMN["error_type"]])
                or clears_error(item.status, sent))
    values = {"status": item.status, "started_at": started, "finished_at": finished,
              "duration_ms": duration_between(started, finished)}
    if maintenance is not None:
        values["maintenance"] = maintenance
    if "rerun_of" in sent:
        if item.rerun_of == before.id:
            raise InputError("rerun_of: a run cannot be a re-run of itself", "rerun_of")
        values["rerun_of"] = item.rerun_of
    if "error" in sent or replaced:
        values.update(error_columns(item.error))
    payload = {name: text
               for name, text in zip(PAYLOAD_FIELDS, texts[id(item)], strict=True)
               if name in sent or (replaced and name == "error")}
    after = RunState(before.id, before.workflow_id, item.status, started, finished,
                     values["duration_ms"], values.get("error_fingerprint", before.fingerprint),
                     before.maintenance if maintenance is None else maintenance)
    return _Repost(before, after, values, payload)


# Execution's columns by field name (the run's workflow is its `workflow_id` column).
_COLUMN = {name: field.column_name for name, field in Execution._meta.fields.items()}


def _stored_runs(ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """Each run's stored row (by column, timestamps as microseconds) and its payload texts
    (None where it has none)."""
    E, P = Execution._meta, ExecutionPayload._meta
    columns = [field.column_name for field in E.sorted_fields]
    select = ", ".join([f'e."{c}"' for c in columns] + [f'p."{c}"' for c in PAYLOAD_FIELDS])
    found = {}
    for chunk in chunks(sorted(set(ids)), BOUND_VALUES):
        sql = (f'SELECT {select} FROM "{E.table_name}" AS e LEFT JOIN "{P.table_name}" AS p '
               f'ON p."{P.primary_key.column_name}" = e."id" '
               f'WHERE e."id" IN ({placeholders(len(chunk))})')
        for values in database.execute_sql(sql, list(chunk)).fetchall():
            row = dict(zip(columns, values))
            found[row["id"]] = (row, dict(zip(PAYLOAD_FIELDS, values[len(columns):])))
    return found


_STEP_COLUMNS = [Step._meta.fields[name].column_name for name in STEP_FIELDS]
_STEP_TEXTS = ("input", "output", "error", "logs")


def _stored_steps(execution_ids: list[int]) -> dict[int, dict[int, tuple]]:
    """The stored steps of these runs: by run, by position, (step id, row in the order of
    STEP_FIELDS, payload texts) — what `rows_of_steps` makes of a step reported again."""
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
    update_where_in(Execution._meta.table_name, {"updated_at": now_us}, "id", sorted(ids))


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
        upsert_rows(Execution._meta.table_name, columns, ("id",), rows, replace=changed)


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
                    ("execution_id",), rows, replace=names)


def replaces_error(before: RunState, status: str, sent: set[str],
                   stored_type: Callable[[], str | None]) -> bool:
    """Whether a report replaces an error that Runwatch gave the run (a feature's rule, see
    models/hooks.py): the error goes, and the finish it gave, if the run is reported open
    again. `stored_type()` reads the stored error's type, asked only when a rule needs it."""
    return any(rule(before, status, sent, stored_type) for rule in current_hooks().replaces_error)


def clears_error(status: str, sent: set[str]) -> bool:
    """Whether a report clears the stored error: it sets a status other than failure and
    gives no error (a run reported a success is not shown beside its old error)."""
    return "status" in sent and status != "failure" and "error" not in sent


def stored_error_type(execution_id: int) -> Callable[[], str | None]:
    return lambda: (Execution.select(Execution.error_type)
                    .where(Execution.id == execution_id).scalar())
