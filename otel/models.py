"""The spans kept to join the spans of a trace that come in several exports."""
from __future__ import annotations

import peewee

from models.base import BaseModel, UTCMicros


class OtelTrace(BaseModel):
    """A trace whose spans are kept: one row per trace id, touched by each export of it."""

    trace_id = peewee.CharField(max_length=32, unique=True)  # lower-case hex
    touched_at = UTCMicros(index=True)  # when a span of it last came

    class Meta:
        table_name = "otel_trace"


class OtelSpans(BaseModel):
    """The new spans one export brought for one kept trace, as the runs (root spans) and
    steps (the others) they map to, validated."""

    trace = peewee.ForeignKeyField(OtelTrace, on_delete="CASCADE", backref="spans")
    # Every span kept is numbered as it comes; this row holds numbers first .. first+size-1
    # (what RUNWATCH_OTLP_PENDING_SPANS counts).
    first = peewee.BigIntegerField(index=True)
    size = peewee.IntegerField()
    keys = peewee.TextField()  # JSON [[span id, 1 if root else 0, start ns], ...]: roots, then steps
    roots = peewee.TextField()  # JSON list of runs (ExecutionIn), one per root key
    steps = peewee.TextField()  # JSON list of steps (StepIn), one per other key

    class Meta:
        table_name = "otel_spans"


MODELS = [OtelTrace, OtelSpans]
