"""The spans kept to join the spans of a trace that come in several exports."""
from __future__ import annotations

import peewee

from models.db import BaseModel, UTCMicros


class OtelTrace(BaseModel):
    """A trace whose spans are kept: one row per trace id, touched by each new span."""

    trace_id = peewee.CharField(max_length=32, unique=True)  # lower-case hex
    touched_at = UTCMicros(index=True)  # when its last new span arrived

    class Meta:
        table_name = "otel_trace"


class OtelSpan(BaseModel):
    """One span of a kept trace, as the run (its root) or the step it maps to."""

    trace = peewee.ForeignKeyField(OtelTrace, on_delete="CASCADE", backref="spans")
    span_id = peewee.BigIntegerField()  # the 8 bytes, as a signed integer
    root = peewee.BooleanField()  # no parent: the run itself
    start_ns = peewee.BigIntegerField()  # steps are ordered by start, then span id
    data = peewee.TextField()  # the validated run or step, as JSON

    class Meta:
        table_name = "otel_span"
        indexes = ((("trace", "span_id"), True),)


MODELS = [OtelTrace, OtelSpan]
