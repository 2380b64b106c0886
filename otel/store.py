"""Keeping the spans of a trace until they can be put together, and storing its run.

The SDK's batch processor exports spans as they end, so a trace comes in several exports
and its children usually before its root. Every span is kept (table `otel_span`, keyed by
trace and span id) and each export that brings a trace new spans puts its whole run
together again from every span kept for it: the root is the run, the other spans are its
steps in start order. So the stored run depends on the set of spans alone, never on the
order they came in, and a span sent again changes nothing.

The run is stored through `models.ingest.store_executions` (its validation and write
hooks), re-posted under the same `external_id` when later spans come, its steps replaced
by position. One export is one write transaction.

What is kept is bounded: a trace's spans go once none of its spans has come for
`pending_seconds`, and when more than `pending_spans` spans are kept, the traces holding
the oldest go, whole. Both are checked at every export. A span that comes after its trace
was let go starts it afresh (its run, if stored, is left as it is until the root comes
again).
"""
from __future__ import annotations

from dataclasses import dataclass

import peewee
from pydantic import ValidationError

from models.db import database, is_sqlite, to_micros, utcnow, write_transaction
from models.ingest import store_executions
from models.schemas import ExecutionIn, StepIn, input_error

from .mapping import Mapped, Outcome, Rejected, put_together
from .models import OtelSpan, OtelTrace

PURGE_TRACES = 1000  # expired traces deleted per export at most (the rest go with the next)
_CHUNK = 1000  # rows or keys per statement


@dataclass(frozen=True)
class Limits:
    """What one export may ask for and how much is kept between exports."""

    pending_spans: int = 100_000  # RUNWATCH_OTLP_PENDING_SPANS
    pending_seconds: int = 3600  # RUNWATCH_OTLP_PENDING_SECONDS
    steps_per_run: int = 2000  # RUNWATCH_MAX_STEPS_PER_RUN
    spans_per_export: int = 5000  # RUNWATCH_MAX_STEPS_PER_REQUEST


@dataclass(slots=True)
class _Kept:
    root: bool
    start_ns: int
    data: str


def ingest(spans: list[Mapped], limits: Limits, outcome: Outcome | None = None,
           now=None) -> Outcome:
    """Keep the new spans of an export, and store or update the run of every trace that
    has its root and got new spans. One transaction: all of it or none."""
    outcome = outcome or Outcome()
    traces: dict[str, dict[int, Mapped]] = {}
    for span in spans:  # the first of a span sent twice in one export counts
        traces.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
    if not traces:
        return outcome
    now_us = to_micros(now or utcnow())
    with write_transaction():
        ids = _trace_rows(sorted(traces), now_us)
        kept = _kept_spans(list(ids.values()))
        rows, runs = [], []
        for trace_hex, incoming in traces.items():
            trace = ids[trace_hex]
            known = kept.get(trace, {})
            new = _within_limit([s for key, s in incoming.items() if key not in known],
                                known, limits.steps_per_run, outcome)
            if not new:
                continue
            try:
                run = _run_of(trace_hex, known, new)
            except Rejected as exc:
                outcome.reject(len(new), str(exc))
                continue
            rows.extend((trace, s.span_id, s.root, s.start_ns, _json(s.model)) for s in new)
            outcome.accepted += len(new)
            if run is not None:
                runs.append(run)
        _insert_spans(rows)
        if runs:
            store_executions(runs)
            outcome.runs = len(runs)
        purge(now_us, limits)
    return outcome


def _chunks(items: list, size: int = _CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _trace_rows(trace_ids: list[str], now_us: int) -> dict[str, int]:
    """Row ids of these traces, created when new and touched (`touched_at`) when not; on
    PostgreSQL the upsert locks them, in trace id order so that two exports never wait for
    each other in a circle, until the transaction ends."""
    found: dict[str, int] = {}
    table = OtelTrace._meta.table_name
    one = f"({database.param}, {database.param})"
    for chunk in _chunks(trace_ids):
        cursor = database.execute_sql(
            f'INSERT INTO "{table}" ("trace_id", "touched_at") VALUES '
            + ", ".join([one] * len(chunk))
            + ' ON CONFLICT ("trace_id") DO UPDATE SET "touched_at" = EXCLUDED."touched_at" '
            'RETURNING "trace_id", "id"', [value for trace in chunk for value in (trace, now_us)])
        found.update(cursor.fetchall())
    return found


def _kept_spans(trace_ids: list[int]) -> dict[int, dict[int, _Kept]]:
    """Every span kept for these traces, by trace and span id (read by hand: peewee's
    conversion of each value costs ten times the query)."""
    kept: dict[int, dict[int, _Kept]] = {}
    table = OtelSpan._meta.table_name
    for chunk in _chunks(trace_ids):
        cursor = database.execute_sql(
            f'SELECT "trace_id", "span_id", "root", "start_ns", "data" FROM "{table}" '
            f'WHERE "trace_id" IN ({", ".join([database.param] * len(chunk))})', chunk)
        for trace, span_id, root, start_ns, data in cursor.fetchall():
            kept.setdefault(trace, {})[span_id] = _Kept(bool(root), start_ns, data)
    return kept


def _within_limit(new: list[Mapped], known: dict[int, _Kept], most: int,
                  outcome: Outcome) -> list[Mapped]:
    """The new spans, less the steps past `most` per trace."""
    steps = sum(1 for span in known.values() if not span.root)
    allowed, over = [], 0
    for span in new:
        if not span.root:
            if steps >= most:
                over += 1
                continue
            steps += 1
        allowed.append(span)
    if over:
        outcome.reject(over, f"trace {new[0].trace_id} has more than {most} spans besides its "
                             "root (RUNWATCH_MAX_STEPS_PER_RUN)")
    return allowed


def _run_of(trace_hex: str, known: dict[int, _Kept], new: list[Mapped]) -> ExecutionIn | None:
    """The trace's run from every span known (kept and new), or None while its root has
    not come. Steps are ordered by start time, then span id; of several spans without a
    parent, the earliest is the root."""
    roots, steps = [], []
    for span_id, kept in known.items():
        (roots if kept.root else steps).append((kept.start_ns, span_id, kept))
    for span in new:
        (roots if span.root else steps).append((span.start_ns, span.span_id, span.model))
    if not roots:
        return None
    roots.sort(key=lambda entry: entry[:2])
    steps.sort(key=lambda entry: entry[:2])
    try:
        root = _model(roots[0][2])
        models = [_model(step) for _, _, step in steps]
        return put_together(root, models)
    except ValidationError as exc:
        raise Rejected(f"trace {trace_hex}: {input_error(exc).message}") from None


def _json(model: ExecutionIn | StepIn) -> str:
    """A validated run or step as JSON, to be read back by its schema."""
    return model.__pydantic_serializer__.to_json(model).decode()


def _model(span: ExecutionIn | StepIn | _Kept) -> ExecutionIn | StepIn:
    """A span's run or step: mapped now, or read back as it was kept."""
    if isinstance(span, _Kept):
        return (ExecutionIn if span.root else StepIn).model_validate_json(span.data)
    return span


def _insert_spans(rows: list[tuple]) -> None:
    """INSERT the new spans in few statements (built by hand: peewee's per-value SQL
    generation costs more than the database's own work here)."""
    table = OtelSpan._meta.table_name
    columns = '"trace_id", "span_id", "root", "start_ns", "data"'
    one = "(" + ", ".join([database.param] * 5) + ")"
    for chunk in _chunks(rows):
        sql = (f'INSERT INTO "{table}" ({columns}) VALUES ' + ", ".join([one] * len(chunk))
               + " ON CONFLICT DO NOTHING")
        database.execute_sql(sql, [value for row in chunk for value in row])


def purge(now_us: int, limits: Limits) -> int:
    """Let go of traces not touched in `pending_seconds`, and of the traces holding the
    oldest spans while more than `pending_spans` are kept. Returns how many traces went."""
    cutoff = now_us - limits.pending_seconds * 1_000_000
    victims = set(OtelTrace.select(OtelTrace.id).where(OtelTrace.touched_at < cutoff)
                  .limit(PURGE_TRACES).scalars())
    newest = OtelSpan.select(peewee.fn.MAX(OtelSpan.id)).scalar()
    if newest is not None and newest > limits.pending_spans:
        # Span ids only grow: once every span at or below newest - limit is gone, at most
        # `limit` remain.
        victims.update(OtelSpan.select(OtelSpan.trace).distinct()
                       .where(OtelSpan.id <= newest - limits.pending_spans).scalars())
    if not victims:
        return 0
    if not is_sqlite():  # a trace another export is adding to now goes next time
        victims = set(OtelTrace.select(OtelTrace.id).where(OtelTrace.id.in_(list(victims)))
                      .for_update(skip_locked=True).scalars())
    for chunk in _chunks(sorted(victims)):
        OtelSpan.delete().where(OtelSpan.trace.in_(chunk)).execute()
        OtelTrace.delete().where(OtelTrace.id.in_(chunk)).execute()
    return len(victims)
