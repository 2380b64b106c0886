"""The tables of sources: each engine Runwatch pulls runs from, and each run it brought."""
from __future__ import annotations

import peewee

from models.base import BaseModel, UTCMicros
from models.executions import Execution


class Source(BaseModel):
    """An engine's API that Runwatch pulls runs from every `interval_seconds` (when enabled):
    its kind (a key of `sources.kinds.KINDS`), URL and token, where the next pull starts
    (`cursor`), when it is due, and what the last pull did."""

    type = peewee.CharField(max_length=40)
    url = peewee.TextField()
    token = peewee.TextField(null=True)
    interval_seconds = peewee.IntegerField()
    enabled = peewee.BooleanField(default=True)
    created_at = UTCMicros()
    updated_at = UTCMicros()
    # The next pull asks for runs changed from here on (less the kind's overlap): a day
    # before the source was added (or its URL changed), then where the last pull got to.
    cursor = UTCMicros(null=True)
    next_pull_at = UTCMicros(index=True)
    last_pull_at = UTCMicros(null=True)  # when the last pull ended, well or not
    last_pulled = peewee.IntegerField(null=True)  # runs it stored (new or changed)
    last_error = peewee.TextField(null=True)  # why it failed, or which runs it left out
    runs = peewee.IntegerField(default=0)  # runs this source has brought in all


class SourceRun(BaseModel):
    """A run a source brought: the engine's id for it, the execution it is, whether it was
    still open (pending or running) when last pulled, and a digest of what was stored, so
    that pulling it again unchanged writes nothing."""

    source = peewee.ForeignKeyField(Source, on_delete="CASCADE")
    remote_id = peewee.CharField(max_length=200)
    execution = peewee.ForeignKeyField(Execution, on_delete="CASCADE")
    open = peewee.BooleanField()
    digest = peewee.CharField(max_length=64)

    class Meta:
        table_name = "source_run"
        indexes = ((("source", "remote_id"), True), (("source", "open"), False))


MODELS = [Source, SourceRun]
