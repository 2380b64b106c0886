"""Sending a re-run request: the run's values put into the hook's body (or Runwatch's own
body, signed per Standard Webhooks when the hook has a secret), one POST with a deadline,
and the answer recorded beside who asked.

The request is recorded before it is sent (its id is the `webhook-id`), and its answer
after: a receiver that refuses, fails or never answers is a recorded request, never an
error of the page or API that asked.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import peewee

from standardwebhooks import Webhook

from alerts.outbound import TransportError, post
from models.db import write_transaction
from models.executions import Execution, ExecutionPayload, Workflow, load_json
from models.payloads import mask_url
from models.times import iso, utcnow

from .models import Rerun, RerunHook
from .settings import hook_of


@dataclass(frozen=True)
class RunValues:
    """What a body template may use of the run re-run."""

    execution_id: int
    external_id: str | None
    workflow: str
    workflow_id: int
    input: object

    def placeholders(self) -> dict[str, object]:
        """Each placeholder of a body template and the value that replaces it."""
        return {"$input": self.input, "$execution_id": self.execution_id,
                "$external_id": self.external_id, "$workflow": self.workflow}


class NoHook(LookupError):
    """The run's workflow has no re-run hook."""

    def __init__(self, workflow: str):
        super().__init__(workflow)
        self.workflow = workflow


def run_values(execution_id: int) -> RunValues | None:
    """The run's values, or None when there is no such run."""
    row = (Execution.select(Execution.id, Execution.external_id, Workflow.name, Workflow.id,
                            ExecutionPayload.input)
           .join(Workflow).switch(Execution)
           .join(ExecutionPayload, on=(ExecutionPayload.execution == Execution.id),
                 join_type=peewee.JOIN.LEFT_OUTER)
           .where(Execution.id == execution_id).tuples().first())
    if row is None:
        return None
    id_, external_id, workflow, workflow_id, input_text = row
    return RunValues(id_, external_id, workflow, workflow_id, load_json(input_text))


def filled(template, values: dict[str, object]):
    """The body template with every string equal to a placeholder replaced by its value."""
    if isinstance(template, str):
        return values.get(template, template)
    if isinstance(template, list):
        return [filled(item, values) for item in template]
    if isinstance(template, dict):
        return {key: filled(item, values) for key, item in template.items()}
    return template


def request_of(hook: RerunHook, run: RunValues, rerun: Rerun) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one re-run request: the hook's headers over Runwatch's own,
    and the Standard Webhooks headers when the hook has a secret."""
    if hook.body is None:
        body = {"type": "execution.rerun", "timestamp": iso(rerun.requested_at),
                "data": {"workflow": run.workflow, "execution_id": run.execution_id,
                         "external_id": run.external_id, "input": run.input,
                         "requested_by": rerun.requested_by}}
    else:
        body = filled(hook.body, run.placeholders())
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    headers = {"Content-Type": "application/json", "User-Agent": "Runwatch-Reruns/1"}
    if hook.secret:
        message_id = f"msg_runwatch_rerun_{rerun.id}"
        headers.update({"webhook-id": message_id,
                        "webhook-timestamp": str(int(rerun.requested_at.timestamp())),
                        "webhook-signature": Webhook(hook.secret).sign(
                            message_id, rerun.requested_at, text)})
    ours = {name.lower(): name for name in headers}
    for name, value in hook.headers.items():
        headers.pop(ours.get(name.lower(), name), None)
        headers[name] = value
    return text.encode(), headers


def send_rerun(execution_id: int, requested_by: str, *, allow_private: bool,
               timeout: float) -> Rerun | None:
    """Send the run's re-run request once and record it with its answer; None when there
    is no such run, NoHook when its workflow has no hook."""
    run = run_values(execution_id)
    if run is None:
        return None
    hook = hook_of(run.workflow_id)
    if hook is None:
        raise NoHook(run.workflow)
    with write_transaction():
        rerun = Rerun.create(execution=execution_id, requested_by=requested_by,
                             requested_at=utcnow(), target=mask_url(hook.url))
    body, headers = request_of(hook, run, rerun)
    started = time.perf_counter()
    try:
        answer = post(hook.url, body, headers, allow_private=allow_private, timeout=timeout,
                      keep_body=True)
        rerun.ok, rerun.status, rerun.answer = (200 <= answer.status < 300, answer.status,
                                                answer.body)
    except TransportError as exc:
        rerun.ok, rerun.error = False, exc.message
    rerun.duration_ms = round((time.perf_counter() - started) * 1000)
    with write_transaction():
        rerun.save(only=[Rerun.ok, Rerun.status, Rerun.answer, Rerun.error, Rerun.duration_ms])
    return rerun
