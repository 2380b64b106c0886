"""Notices: their webhook body, their outbox rows, and how the API shows them."""
from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field
from werkzeug.datastructures import MultiDict

from models.times import from_micros, iso, to_micros
from models.executions import Workflow, load_json
from models.inputs import Name, control_character, whole_number
from models.payloads import mask_text
from models.schemas import InputError, QueryParam

from .channels import CHANNELS
from .models import KINDS, NOTICE_STATES, AlertChannel, Attempt, Notice, by_parent
from .quiet import QUIETED, quiet_until, window_end

DEFAULT_LOG_LIMIT = 50
MAX_LOG_LIMIT = 500
MAX_ID = 2**62
EVENT_TYPES = {"failing": "workflow.failing", "recovered": "workflow.recovered",
               "missed": "workflow.missed", "resumed": "workflow.recovered",
               "reminder": "workflow.reminder", "test": "test"}
# The delivery log's query parameters, as the API document describes them; `from_args`
# reads the same names with the same bounds.
PARAMETERS = (
    QueryParam("rule", Annotated[int, Field(ge=1, le=MAX_ID)], "Only notices of this rule."),
    QueryParam("workflow", Name,
               "Only notices about the workflow of this name."),
    QueryParam("status", Literal[NOTICE_STATES], "Only notices in this delivery state."),
    QueryParam("type", Literal[KINDS], "Only notices of this kind."),
    QueryParam("limit", Annotated[int, Field(ge=1, le=MAX_LOG_LIMIT)],
               f"Page size (default {DEFAULT_LOG_LIMIT})."),
    QueryParam("cursor", Annotated[int, Field(ge=1, le=MAX_ID)],
               "`next_cursor` of the previous page."),
)


def _iso_micros(value) -> str | None:
    if value is None:
        return None
    return iso(value if isinstance(value, datetime) else from_micros(value))


def notice_body(kind: str, now: datetime, *, workflow: str, failure_count: int, threshold: int,
                first_failure_at, last_failure_at, last_error: str | None,
                execution_url: str | None, rule_id: int, **schedule) -> dict:
    """The JSON a webhook receives (e-mails show the same facts). Notices about a schedule
    add `expected_at`, `grace_seconds` and `last_run_at` (`schedule`)."""
    return {"type": EVENT_TYPES[kind], "timestamp": iso(now), "data": {
        "workflow": workflow, "failure_count": failure_count, "threshold": threshold,
        "first_failure_at": _iso_micros(first_failure_at),
        "last_failure_at": _iso_micros(last_failure_at),
        "last_error": mask_text(last_error) if last_error else last_error,
        "execution_url": execution_url, "rule_id": rule_id, **schedule}}


def queue_notices(channels: list[AlertChannel], kind: str, body: dict, now: datetime, *,
                  workflow_id: int | None = None, episode: int | None = None,
                  number: int = 0) -> int:
    """Write one outbox row per channel; a row decided before is left alone. Returns new rows.
    `number` tells an episode's reminders apart.

    While the workflow is quiet (alerts/quiet.py) a failing or missed notice is written
    `held` until the quiet ends, and a reminder not at all; a recovery whose failing or
    missed notice was held and never sent is written `dropped`, and that one dropped too.
    Any other recovery decided inside a maintenance window is `held` until the window ends
    (no notice is queued during one; a mute keeps only its own kinds back).
    """
    if not channels:
        return 0
    status, due, silent = "pending", now, set()
    if workflow_id is not None and kind in QUIETED:
        until = quiet_until(workflow_id, body["data"]["workflow"], now)
        if until is not None:
            if kind == "reminder":
                return 0
            status, due = "held", until
    elif workflow_id is not None and kind in OPENED_BY:
        silent = unsent_openers(channels, OPENED_BY[kind], workflow_id, episode)
        until = window_end(body["data"]["workflow"], now)
        if until is not None:
            status, due = "held", until
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    rows = [{"rule": ch.rule_id, "channel_id": ch.id, "workflow": workflow_id, "kind": kind,
             "episode": episode, "number": number, "channel_type": ch.type,
             "channel_options": ch.options_json,
             "payload": payload, "status": "dropped" if ch.id in silent else status,
             "attempts": 0, "next_attempt_at": to_micros(due), "created_at": to_micros(now)}
            for ch in channels]
    return Notice.insert_many(rows).on_conflict_ignore().as_rowcount().execute()


# The notice that opens the episode a recovery closes, by the recovery's kind.
OPENED_BY = {"recovered": "failing", "resumed": "missed"}


def unsent_openers(channels: list[AlertChannel], kind: str, workflow_id: int,
                   episode: int | None) -> set[int]:
    """The channels whose notice of kind `kind` opening this episode was held and never
    sent (held or dropped); those still held are dropped now."""
    ids = [ch.id for ch in channels]
    rules = sorted({ch.rule_id for ch in channels})  # the unique key's index: rule, channel
    found = {channel_id for (channel_id,) in Notice.select(Notice.channel_id).where(
        Notice.rule.in_(rules), Notice.workflow == workflow_id, Notice.episode == episode, Notice.kind == kind,
        Notice.channel_id.in_(ids), Notice.status.in_(("held", "dropped"))).tuples()}
    if found:
        Notice.update(status="dropped").where(
            Notice.rule.in_(rules), Notice.workflow == workflow_id, Notice.episode == episode, Notice.kind == kind,
            Notice.channel_id.in_(list(found)), Notice.status == "held").execute()
    return found


def attempts_by_notice(notice_ids: list[int]) -> dict[int, list[Attempt]]:
    """The attempts of several notices, oldest first, in one query."""
    return by_parent(notice_ids, Attempt.select().where(Attempt.notice.in_(notice_ids))
                     .order_by(Attempt.attempted_at, Attempt.id), "notice_id")


def target_of(notice: Notice) -> str:
    """Where a notice goes, for people: a webhook by its scheme and host alone."""
    kind = CHANNELS.get(notice.channel_type)
    if kind is None:
        return notice.channel_type
    return kind.target(kind.masked(load_json(notice.channel_options)))


def notice_json(notice: Notice, attempts: list[Attempt]) -> dict:
    """A notice as the API answers it."""
    payload = load_json(notice.payload)
    return {
        "id": notice.id, "rule_id": notice.rule_id, "type": notice.kind,
        "workflow": payload["data"]["workflow"],
        "channel": {"id": notice.channel_id, "type": notice.channel_type,
                    "target": target_of(notice)},
        "status": notice.status, "attempt_count": notice.attempts,
        "created_at": iso(notice.created_at), "delivered_at": iso(notice.delivered_at),
        "next_attempt_at": (iso(notice.next_attempt_at)
                            if notice.status in ("pending", "held") else None),
        "last_error": notice.last_error,
        "attempts": [{"at": iso(a.attempted_at), "outcome": a.outcome, "ok": a.ok,
                      "response": a.response, "latency_ms": a.latency_ms, "error": a.error}
                     for a in attempts],
        "payload": payload,
    }


@dataclass(frozen=True)
class NoticeFilter:
    """A validated query of the delivery log: rule, workflow, state, type, page size and cursor.

    The page and the API read their query string with `from_args` alone, and every link
    to another page of the log comes from `url_with`.
    """

    rule_id: int | None = None
    workflow: str | None = None  # a workflow's name
    status: str | None = None
    kind: str | None = None
    limit: int = DEFAULT_LOG_LIMIT
    cursor: int | None = None  # the id of the last notice of the previous page

    @classmethod
    def from_args(cls, args: MultiDict, default_limit: int = DEFAULT_LOG_LIMIT) -> "NoticeFilter":
        """Validate query arguments; raises InputError naming the first bad one."""
        return cls(rule_id=_whole(args, "rule", 1, MAX_ID),
                   workflow=_name(args, "workflow"),
                   status=_choice(args, "status", NOTICE_STATES),
                   kind=_choice(args, "type", KINDS),
                   limit=_whole(args, "limit", 1, MAX_LOG_LIMIT) or default_limit,
                   cursor=_whole(args, "cursor", 1, MAX_ID))

    def to_args(self, default_limit: int = DEFAULT_LOG_LIMIT) -> list[tuple[str, str]]:
        """The canonical query arguments, defaults left out."""
        pairs = [("rule", self.rule_id), ("workflow", self.workflow), ("status", self.status),
                 ("type", self.kind),
                 ("limit", None if self.limit == default_limit else self.limit),
                 ("cursor", self.cursor)]
        return [(name, str(value)) for name, value in pairs if value is not None]

    def args_with(self, default_limit: int = DEFAULT_LOG_LIMIT, **changes) -> dict[str, str]:
        """The canonical query arguments with some parts replaced (e.g. `cursor=`), for url_for."""
        return dict(replace(self, **changes).to_args(default_limit))

    def page(self) -> tuple[list[Notice], int | None]:
        """The newest matching notices after the cursor, and the cursor of the next page."""
        conditions = [term for term in (
            Notice.id < self.cursor if self.cursor is not None else None,
            Notice.rule == self.rule_id if self.rule_id is not None else None,
            Notice.workflow.in_(Workflow.select(Workflow.id)
                                .where(Workflow.name == self.workflow))
            if self.workflow is not None else None,
            Notice.status == self.status if self.status is not None else None,
            Notice.kind == self.kind if self.kind is not None else None) if term is not None]
        query = Notice.select().order_by(Notice.id.desc()).limit(self.limit + 1)
        if conditions:
            query = query.where(functools.reduce(operator.and_, conditions))
        rows = list(query)
        more = len(rows) > self.limit
        rows = rows[:self.limit]
        return rows, (rows[-1].id if more else None)


def _whole(args: MultiDict, name: str, low: int, high: int) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    value = whole_number(raw, low, high)
    if value is None:
        raise InputError(f"{name}: must be a whole number from {low} to {high}", name)
    return value


def _name(args: MultiDict, name: str) -> str | None:
    raw = args.get(name) or None
    if raw is not None and (len(raw) > 200 or control_character(raw)):
        raise InputError(f"{name}: a workflow name has 1 to 200 characters and no control "
                         "characters", name)
    return raw


def _choice(args: MultiDict, name: str, choices: tuple[str, ...]) -> str | None:
    raw = args.get(name) or None
    if raw is not None and raw not in choices:
        raise InputError(f"{name}: must be one of {', '.join(choices)}", name)
    return raw
