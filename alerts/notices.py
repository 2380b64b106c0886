"""Notices: their webhook body, their outbox rows, and how the API shows them."""
from __future__ import annotations

import functools
import json
import operator
from datetime import datetime

from models.db import from_micros, iso, to_micros
from models.executions import load_json

from .channels import CHANNELS
from .models import AlertChannel, Attempt, Notice, by_parent

EVENT_TYPES = {"failing": "workflow.failing", "recovered": "workflow.recovered", "test": "test"}


def _iso_micros(value) -> str | None:
    if value is None:
        return None
    return iso(value if isinstance(value, datetime) else from_micros(value))


def notice_body(kind: str, now: datetime, *, workflow: str, failure_count: int, threshold: int,
                first_failure_at, last_failure_at, last_error: str | None,
                execution_url: str | None, rule_id: int) -> dict:
    """The JSON a webhook receives (e-mails show the same facts)."""
    return {"type": EVENT_TYPES[kind], "timestamp": iso(now), "data": {
        "workflow": workflow, "failure_count": failure_count, "threshold": threshold,
        "first_failure_at": _iso_micros(first_failure_at),
        "last_failure_at": _iso_micros(last_failure_at), "last_error": last_error,
        "execution_url": execution_url, "rule_id": rule_id}}


def queue_notices(channels: list[AlertChannel], kind: str, body: dict, now: datetime, *,
                  workflow_id: int | None = None, episode: int | None = None) -> int:
    """Write one outbox row per channel; a row decided before is left alone. Returns new rows."""
    if not channels:
        return 0
    payload = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    rows = [{"rule": ch.rule_id, "channel_id": ch.id, "workflow": workflow_id, "kind": kind,
             "episode": episode, "channel_type": ch.type, "channel_options": ch.options_json,
             "payload": payload, "status": "pending", "attempts": 0,
             "next_attempt_at": to_micros(now), "created_at": to_micros(now)}
            for ch in channels]
    return Notice.insert_many(rows).on_conflict_ignore().as_rowcount().execute()


def attempts_by_notice(notice_ids: list[int]) -> dict[int, list[Attempt]]:
    """The attempts of several notices, oldest first, in one query."""
    return by_parent(notice_ids, Attempt.select().where(Attempt.notice.in_(notice_ids))
                     .order_by(Attempt.attempted_at, Attempt.id), "notice_id")


def target_of(notice: Notice) -> str:
    """Where a notice goes, for people."""
    kind = CHANNELS.get(notice.channel_type)
    return kind.target(load_json(notice.channel_options)) if kind else notice.channel_type


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
        "next_attempt_at": iso(notice.next_attempt_at) if notice.status == "pending" else None,
        "last_error": notice.last_error,
        "attempts": [{"at": iso(a.attempted_at), "ok": a.ok, "response": a.response,
                      "latency_ms": a.latency_ms, "error": a.error} for a in attempts],
        "payload": payload,
    }


def notices_page(*, limit: int, before: int | None = None, rule_id: int | None = None,
                 status: str | None = None,
                 kind: str | None = None) -> tuple[list[Notice], int | None]:
    """The newest notices (optionally older than id `before`) and the id to continue from."""
    query = Notice.select().order_by(Notice.id.desc()).limit(limit + 1)
    conditions = []
    if before is not None:
        conditions.append(Notice.id < before)
    if rule_id is not None:
        conditions.append(Notice.rule == rule_id)
    if status is not None:
        conditions.append(Notice.status == status)
    if kind is not None:
        conditions.append(Notice.kind == kind)
    if conditions:
        query = query.where(functools.reduce(operator.and_, conditions))
    rows = list(query)
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more else None)

