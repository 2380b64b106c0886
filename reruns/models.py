"""The tables of re-runs: each workflow's hook (where a re-run request goes) and every
request sent, with who asked and what the receiver answered."""
from __future__ import annotations

import peewee

from models.base import BaseModel, UTCMicros
from models.executions import Execution, Workflow, load_json
from models.ingest import RunState


class RerunHook(BaseModel):
    """Where a workflow's re-run request goes: a URL, headers, a body template (JSON; NULL:
    the default body) and a Standard Webhooks signing secret (NULL: unsigned)."""

    workflow = peewee.ForeignKeyField(Workflow, primary_key=True, on_delete="CASCADE")
    url = peewee.TextField()
    headers_json = peewee.TextField(default="{}")
    body_json = peewee.TextField(null=True)
    secret = peewee.TextField(null=True)
    updated_at = UTCMicros()

    @property
    def headers(self) -> dict[str, str]:
        """The headers sent, by name."""
        return load_json(self.headers_json) or {}

    @property
    def body(self):
        """The body template, or None for the default body."""
        return load_json(self.body_json)


class Rerun(BaseModel):
    """One re-run request: the run it re-runs, who asked and when, and the receiver's answer
    (`ok` is NULL while the request is on its way)."""

    execution = peewee.ForeignKeyField(Execution, on_delete="CASCADE", backref="reruns")
    requested_by = peewee.CharField(max_length=254)
    requested_at = UTCMicros()
    target = peewee.TextField()  # where it went, masked as pages show it
    ok = peewee.BooleanField(null=True)
    status = peewee.IntegerField(null=True)  # the answer's HTTP status; NULL: none came
    answer = peewee.TextField(null=True)  # the first bytes of the answer's body
    error = peewee.TextField(null=True)  # why no answer came, or why it was refused
    duration_ms = peewee.IntegerField(null=True)


MODELS = [RerunHook, Rerun]


def unlink_deleted(states: list[RunState]) -> None:
    """A delete hook: runs that re-ran a deleted run keep no link to it (their requests go
    with the run, by the foreign key's cascade)."""
    ids = [state.id for state in states]
    Execution.update(rerun_of=None).where(Execution.rerun_of.in_(ids)).execute()
