"""Delivery: claim outbox notices with a conditional UPDATE, send, record every attempt.

A claim is a lease: a process that dies mid-send leaves a notice `sending` until the
lease runs out, and then any process may take it again. Nothing is held in memory.
Every attempt ends by its deadline, and a lease outlasts the longest deadline, so a lease
never runs out while its send still runs. Due notices are sent side by side, a few at a
time, so a receiver that hangs holds back no one else.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.db import connection, to_micros, utcnow, write_transaction
from models.executions import load_json

from .channels import CHANNELS, Outgoing, TransportError
from .models import Attempt, Notice
from .config import AlertConfig

# Beyond the attempt's deadline, a claim also covers loading the notice and recording
# how the attempt went.
LEASE_MARGIN = timedelta(seconds=60)


def lease(config: AlertConfig) -> timedelta:
    """How long a claim holds: the longest attempt deadline of any channel, plus the margin."""
    return timedelta(seconds=max(config.webhook_timeout, config.smtp_timeout)) + LEASE_MARGIN


@dataclass(frozen=True)
class DeliveryResult:
    """What one delivery pass did."""

    delivered: int
    retrying: int
    failed: int


def _claimable(now_us: int):
    return (((Notice.status == "pending") & (Notice.next_attempt_at <= now_us))
            | ((Notice.status == "sending") & (Notice.lease_until < now_us)))


def claim(notice_id: int, now: datetime, config: AlertConfig,
          lease_from: datetime | None = None) -> bool:
    """Take a notice due at `now` for this process, for `lease(config)` from `lease_from`
    (default `now`); False when it is not due or another took it."""
    now_us = to_micros(now)
    until = to_micros((lease_from or now) + lease(config))
    taken = (Notice.update(status="sending", lease_until=until)
             .where(Notice.id == notice_id, _claimable(now_us)).execute())
    return taken == 1


def backoff(config: AlertConfig, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: the retry delay, doubling each time."""
    return timedelta(seconds=config.retry_seconds * 2 ** (attempts - 1))


def _send(notice: Notice, config: AlertConfig) -> str:
    """Send once; returns the receiver's answer or raises TransportError."""
    kind = CHANNELS.get(notice.channel_type)
    if kind is None:
        raise TransportError(f"unknown channel type {notice.channel_type!r}", permanent=True)
    outgoing = Outgoing(notice.id, notice.kind, load_json(notice.payload),
                        load_json(notice.channel_options))
    try:
        return kind.send(outgoing, config)
    except TransportError:
        raise
    except Exception as exc:  # a broken channel must not stop the other notices
        raise TransportError(f"{type(exc).__name__}: {exc}") from None


def attempt(notice_id: int, config: AlertConfig, now: datetime | None = None) -> str:
    """Send a claimed notice once and record the attempt; returns its new status."""
    now = now or utcnow()
    notice = Notice.get_by_id(notice_id)
    started = time.perf_counter()
    ok, error, permanent = True, None, False
    try:
        response = _send(notice, config)
    except TransportError as exc:
        ok, response, error, permanent = False, exc.response, exc.message, exc.permanent
    latency_ms = round((time.perf_counter() - started) * 1000)
    attempts = notice.attempts + 1
    if ok:
        values = {"status": "delivered", "delivered_at": to_micros(utcnow()),
                  "last_error": None}
    elif permanent or attempts >= config.max_attempts:  # retrying cannot help a permanent one
        values = {"status": "failed", "last_error": error}
    else:
        values = {"status": "pending", "last_error": error,
                  "next_attempt_at": to_micros(now + backoff(config, attempts))}
    with write_transaction():
        Attempt.create(notice=notice_id, attempted_at=now, ok=ok, response=response,
                       latency_ms=latency_ms, error=error)
        (Notice.update(attempts=attempts, lease_until=None, **values)
         .where(Notice.id == notice_id, Notice.status == "sending").execute())
    return values["status"]


def _claim_and_send(notice_ids: list[int], config: AlertConfig, now: datetime) -> list[str]:
    """Claim and send each notice, up to `config.delivery_workers` at once, each on a
    connection of its own; returns each one's new status, or "claimed" if another had it.

    A notice is claimed just before it is sent, and its lease counts from then (`now` plus
    the time the pass has taken so far), so one that waited for a free worker still gets
    its whole lease.
    """
    if not notice_ids:
        return []
    started = time.monotonic()

    def one(notice_id: int) -> str:
        claimed_at = now + timedelta(seconds=time.monotonic() - started)
        with connection():
            if not claim(notice_id, now, config, lease_from=claimed_at):
                return "claimed"
            return attempt(notice_id, config, now)

    workers = max(1, min(config.delivery_workers, len(notice_ids)))
    with ThreadPoolExecutor(workers, thread_name_prefix="runwatch-delivery") as pool:
        return list(pool.map(one, notice_ids))


def deliver_due(config: AlertConfig, now: datetime | None = None,
                limit: int = 200) -> DeliveryResult:
    """One delivery pass: every notice that is due now, oldest first in line."""
    now = now or utcnow()
    due = [nid for (nid,) in Notice.select(Notice.id).where(_claimable(to_micros(now)))
           .order_by(Notice.next_attempt_at, Notice.id).limit(limit).tuples()]
    counts = {"delivered": 0, "pending": 0, "failed": 0, "claimed": 0}
    for status in _claim_and_send(due, config, now):
        counts[status] += 1
    return DeliveryResult(counts["delivered"], counts["pending"], counts["failed"])


def deliver_now(notice_ids: list[int], config: AlertConfig) -> list[str]:
    """Send these notices at once (a test notice, a redelivery) if no one else has them."""
    return _claim_and_send(notice_ids, config, utcnow())


def redeliver(notice_id: int, now: datetime | None = None) -> bool:
    """Queue a failed notice again with a fresh set of attempts; False if it is not failed."""
    now = now or utcnow()
    return (Notice.update(status="pending", attempts=0, next_attempt_at=to_micros(now),
                          last_error=None)
            .where(Notice.id == notice_id, Notice.status == "failed").execute()) == 1
