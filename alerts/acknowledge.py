"""Acknowledging a workflow's current failing or late episode: someone has seen it.

An acknowledgement names the episode it was given for (the summary's `failing_episode`
or `late_episode`), so it holds while that episode goes on and ends with it by itself — a
success, the late episode closed, or a new streak (a new episode) — with nothing to clear.
While it holds, the episode's reminders are not sent (alerts.reminders).
"""
from __future__ import annotations

from datetime import datetime

import peewee

from models.bulk import placeholders
from models.db import database, write_transaction
from models.executions import Workflow
from models.times import iso, utcnow
from workflows.models import WorkflowSummary

from .models import Acknowledgement

S = WorkflowSummary


class NothingToAcknowledge(Exception):
    """The workflow is neither late nor failing."""


def acknowledge(name: str, user, note: str | None = None,
                now: datetime | None = None) -> Acknowledgement | None:
    """Record that `user` (an account) has seen the current episode of workflow `name`,
    replacing an earlier acknowledgement; None when there is no such workflow. Raises
    NothingToAcknowledge when it is neither late nor failing."""
    with write_transaction():
        found = (Workflow.select(Workflow.id, S.late, S.late_episode, S.state,
                                 S.failing_episode)
                 .join(S, peewee.JOIN.LEFT_OUTER, on=(S.workflow == Workflow.id))
                 .where(Workflow.name == name).tuples().first())
        if found is None:
            return None
        workflow_id, late, late_episode, state, failing_episode = found
        if late:
            kind, episode = "late", late_episode
        elif state == "failing":
            kind, episode = "failing", failing_episode
        else:
            raise NothingToAcknowledge(f"{name} is neither late nor failing: there is "
                                       "nothing to acknowledge.")
        values = {"kind": kind, "episode": episode, "user_id": user.id, "by": user.email,
                  "at": now or utcnow(), "note": note}
        A = Acknowledgement
        (A.insert(workflow=workflow_id, **values)
         .on_conflict(conflict_target=[A.workflow],
                      update={getattr(A, key): value for key, value in values.items()})
         .execute())
    return A.get(A.workflow == workflow_id)


def current_acknowledgements(workflow_ids: list[int]) -> dict[int, Acknowledgement]:
    """The acknowledgements of these workflows that still hold (their episode goes on), by
    workflow id, in one query. Written by hand: peewee's generation of this statement costs
    more than the query."""
    if not workflow_ids:
        return {}
    param = database.param
    sql = (f'SELECT a.* FROM "{Acknowledgement._meta.table_name}" AS a JOIN '
           f'"{S._meta.table_name}" AS s ON s."workflow_id" = a."workflow_id" WHERE '
           f'a."workflow_id" IN ({placeholders(len(workflow_ids))}) AND ((a."kind" = {param} '
           f'AND s."late" = {param} AND s."late_episode" = a."episode") OR (a."kind" = {param} '
           f'AND s."streak" > 0 AND s."failing_episode" = a."episode"))')
    return {ack.workflow_id: ack for ack in Acknowledgement.raw(
        sql, *[int(i) for i in workflow_ids], "late", True, "failing")}


def acknowledgement_json(ack: Acknowledgement | None) -> dict | None:
    """An acknowledgement as each workflow of the API shows it."""
    if ack is None:
        return None
    return {"by": ack.by, "at": iso(ack.at), "note": ack.note}
