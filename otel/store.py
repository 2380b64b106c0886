"""Keeping the spans of a trace until they can be put together, and storing its run.

The SDK's batch processor exports spans as they end, so a trace comes in several exports
and its children usually before its root. Every span is kept, as the validated run or step
it maps to (table `otel_spans`: one row per trace and export, the span ids in it), and
each export that brings a trace new spans puts its whole run together again from every
span kept for it: the root is the run, the other spans are its steps in start order. So
the stored run depends on the set of spans alone, never on the order they came in, and a
span id already kept is skipped: sending spans again changes nothing.

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

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json, to_json

from models.bulk import chunks, insert_rows, placeholders, upsert_rows
from models.db import database, is_sqlite, write_transaction
from models.times import to_micros, utcnow
from models.ingest import payload_texts, store_executions
from models.schemas import ExecutionIn, StepIn, input_error

from .mapping import Mapped, Outcome, put_together
from .models import OtelSpans, OtelTrace

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
    """One kept row: its spans' keys, and their runs and steps read only when needed."""

    keys: list  # [[span id, 1 if root else 0, start ns], ...]: roots, then steps
    roots: str
    steps: str

    def entries(self) -> list[tuple[int, int, bool, ExecutionIn | StepIn]]:
        """(start, span id, is root, run or step) of each span, read back by its schema."""
        models = [*_RUNS.validate_json(self.roots), *_STEPS.validate_json(self.steps)]
        return [(start_ns, span_id, bool(root), model)
                for (span_id, root, start_ns), model in zip(self.keys, models, strict=True)]


_RUNS = TypeAdapter(list[ExecutionIn])
_STEPS = TypeAdapter(list[StepIn])


@dataclass
class _Plan:
    """What an export does to one trace, worked out from the spans kept when it was read."""

    kept_ids: frozenset[int]  # the span ids kept then
    new: list[Mapped]  # the spans to keep now
    run: ExecutionIn | None  # the run to store, once the root is known
    rejected: list[tuple[int, str]]
    row: tuple = ()  # (size, keys, roots, steps) of the row to write


def ingest(spans: list[Mapped], limits: Limits, outcome: Outcome | None = None,
           now=None) -> Outcome:
    """Keep the new spans of an export, and store or update the run of every trace that
    has its root and got new spans. One transaction: all of it or none.

    The runs are put together before the write lock is taken, from the spans kept then;
    inside it, a trace whose kept spans changed meanwhile (another export of it) is worked
    out again, so the lock is held for checking and writing alone.
    """
    outcome = outcome or Outcome()
    traces: dict[str, dict[int, Mapped]] = {}
    for span in spans:  # the first of a span sent twice in one export counts
        traces.setdefault(span.trace_id, {}).setdefault(span.span_id, span)
    if not traces:
        return outcome
    order = sorted(traces)
    before = _kept_by_trace_id(order)
    plans = {t: _plan(t, traces[t], before.get(t, []), limits) for t in order}
    texts = payload_texts([plan.run for plan in plans.values() if plan.run is not None])
    now_us = to_micros(now or utcnow())
    replaced = []  # kept until the end: `texts` is keyed by the id() of live runs and steps
    with write_transaction():
        ids = _trace_rows(order, now_us)
        now_kept = _kept_keys(list(ids.values()))
        for trace_hex, plan in plans.items():
            if now_kept.get(ids[trace_hex], frozenset()) != plan.kept_ids:
                kept = _kept_spans([ids[trace_hex]]).get(ids[trace_hex], [])
                replaced.append(plan)
                plans[trace_hex] = plan = _plan(trace_hex, traces[trace_hex], kept, limits)
                if plan.run is not None:
                    texts.update(payload_texts([plan.run]))
        runs = [plan.run for plan in plans.values() if plan.run is not None]
        _insert_spans([(ids[t], plan.row) for t, plan in plans.items() if plan.new])
        if runs:
            store_executions(runs, texts)
        purge(now_us, limits)
    for plan in plans.values():
        for count, reason in plan.rejected:
            outcome.reject(count, reason)
        outcome.accepted += len(plan.new)
    outcome.runs = len(runs)
    return outcome


def _plan(trace_hex: str, incoming: dict[int, Mapped], known: list[_Kept],
          limits: Limits) -> _Plan:
    """The spans of `incoming` not kept yet (within the steps-per-run limit), the trace's
    run put together from them and the `known` rows, and the row that keeps them."""
    kept_ids = frozenset(key[0] for row in known for key in row.keys)
    rejected: list[tuple[int, str]] = []
    new = _within_limit([s for key, s in incoming.items() if key not in kept_ids],
                        known, limits.steps_per_run, rejected)
    if not new:
        return _Plan(kept_ids, [], None, rejected)
    try:
        run = _run_of(known, new)
    except ValidationError as exc:  # kept under rules since made stricter
        rejected.append((len(new), f"trace {trace_hex}: {input_error(exc).message}"))
        return _Plan(kept_ids, [], None, rejected)
    roots = [span for span in new if span.root]
    steps = [span for span in new if not span.root]
    keys = [[s.span_id, 1 if s.root else 0, s.start_ns] for s in (*roots, *steps)]
    row = (len(keys), to_json(keys).decode(),
           _RUNS.dump_json([s.model for s in roots]).decode(),
           _STEPS.dump_json([s.model for s in steps]).decode())
    return _Plan(kept_ids, roots + steps, run, rejected, row)


def _trace_rows(trace_ids: list[str], now_us: int) -> dict[str, int]:
    """Row ids of these traces, created when new and touched (`touched_at`) when not; on
    PostgreSQL the upsert locks them, in trace id order so that two exports never wait for
    each other in a circle, until the transaction ends."""
    return dict(upsert_rows(OtelTrace._meta.table_name, ("trace_id", "touched_at"), ("trace_id",),
                            [(trace, now_us) for trace in trace_ids], replace=("touched_at",),
                            returning=("trace_id", "id")))


def _kept_spans(trace_ids: list[int]) -> dict[int, list[_Kept]]:
    """Every row kept for these traces, by trace (read by hand: peewee's conversion of each
    value costs more than the query)."""
    table = OtelSpans._meta.table_name
    return _read_kept(trace_ids, f'SELECT "trace_id", "keys", "roots", "steps" FROM "{table}" '
                                 'WHERE "trace_id" IN ({})')


def _kept_by_trace_id(trace_ids: list[str]) -> dict[str, list[_Kept]]:
    """Every row kept for these traces (by trace id in hex), read without a lock."""
    spans, traces = OtelSpans._meta.table_name, OtelTrace._meta.table_name
    return _read_kept(trace_ids, f'SELECT "t"."trace_id", "s"."keys", "s"."roots", "s"."steps" '
                                 f'FROM "{spans}" AS "s" JOIN "{traces}" AS "t" '
                                 'ON "t"."id" = "s"."trace_id" WHERE "t"."trace_id" IN ({})')


def _read_kept(trace_ids: list, sql: str) -> dict:
    """Kept rows by trace, read in chunks by `sql` (its `{}` takes the chunk's parameters)."""
    kept: dict = {}
    for chunk in chunks(trace_ids, _CHUNK):
        cursor = database.execute_sql(sql.format(placeholders(len(chunk))), chunk)
        for trace, keys, roots, steps in cursor.fetchall():
            kept.setdefault(trace, []).append(_Kept(from_json(keys), roots, steps))
    return kept


def _kept_keys(trace_ids: list[int]) -> dict[int, frozenset[int]]:
    """The span ids kept for these traces (by row id)."""
    found: dict[int, set[int]] = {}
    table = OtelSpans._meta.table_name
    for chunk in chunks(trace_ids, _CHUNK):
        cursor = database.execute_sql(
            f'SELECT "trace_id", "keys" FROM "{table}" '
            f'WHERE "trace_id" IN ({placeholders(len(chunk))})', chunk)
        for trace, keys in cursor.fetchall():
            found.setdefault(trace, set()).update(key[0] for key in from_json(keys))
    return {trace: frozenset(ids) for trace, ids in found.items()}


def _within_limit(new: list[Mapped], known: list[_Kept], most: int,
                  rejected: list[tuple[int, str]]) -> list[Mapped]:
    """The new spans, less the steps past `most` per trace."""
    steps = sum(1 for row in known for key in row.keys if not key[1])
    allowed, over = [], 0
    for span in new:
        if not span.root:
            if steps >= most:
                over += 1
                continue
            steps += 1
        allowed.append(span)
    if over:
        rejected.append((over, f"trace {new[0].trace_id} has more than {most} spans besides "
                               "its root (RUNWATCH_MAX_STEPS_PER_RUN)"))
    return allowed


def _run_of(known: list[_Kept], new: list[Mapped]) -> ExecutionIn | None:
    """The trace's run from every span known (kept and new), or None while its root has
    not come. Steps are ordered by start time, then span id; of several spans without a
    parent, the earliest is the root."""
    if not any(span.root for span in new) and not any(
            key[1] for row in known for key in row.keys):
        return None
    entries = [entry for row in known for entry in row.entries()]
    entries.extend((s.start_ns, s.span_id, s.root, s.model) for s in new)
    entries.sort(key=lambda entry: entry[:2])
    root = next(model for _, _, is_root, model in entries if is_root)
    return put_together(root, [model for _, _, is_root, model in entries if not is_root])


def _insert_spans(rows: list[tuple[int, tuple]]) -> None:
    """The new rows, (trace row id, (size, keys, roots, steps)), numbered on from the last
    span kept."""
    if not rows:
        return
    table = OtelSpans._meta.table_name
    last = database.execute_sql(f'SELECT "first" + "size" FROM "{table}" '
                                'ORDER BY "first" DESC LIMIT 1').fetchone()
    number = last[0] if last else 0
    values = []
    for trace, (size, keys, roots, steps) in rows:
        values.append((trace, number, size, keys, roots, steps))
        number += size
    insert_rows(table, ("trace_id", "first", "size", "keys", "roots", "steps"), values)


def purge(now_us: int, limits: Limits) -> int:
    """Let go of traces not touched in `pending_seconds`, and of the traces holding the
    oldest spans while more than `pending_spans` are kept. Returns how many traces went."""
    cutoff = now_us - limits.pending_seconds * 1_000_000
    victims = set(OtelTrace.select(OtelTrace.id).where(OtelTrace.touched_at < cutoff)
                  .limit(PURGE_TRACES).scalars())
    last = (OtelSpans.select(OtelSpans.first + OtelSpans.size)
            .order_by(OtelSpans.first.desc()).limit(1).scalar())
    if last is not None and last > limits.pending_spans:
        # Spans are numbered as they come: once every row holding a number below
        # last - limit is gone, at most `limit` spans remain.
        victims.update(OtelSpans.select(OtelSpans.trace).distinct()
                       .where(OtelSpans.first < last - limits.pending_spans).scalars())
    if not victims:
        return 0
    if not is_sqlite():  # a trace another export is adding to now goes next time
        victims = set(OtelTrace.select(OtelTrace.id).where(OtelTrace.id.in_(list(victims)))
                      .for_update(skip_locked=True).scalars())
    for chunk in chunks(sorted(victims), _CHUNK):
        OtelSpans.delete().where(OtelSpans.trace.in_(chunk)).execute()
        OtelTrace.delete().where(OtelTrace.id.in_(chunk)).execute()
    return len(victims)
