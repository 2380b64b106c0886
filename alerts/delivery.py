"""Delivery: claim outbox notices with a conditional UPDATE, record the attempt, send.

A claim is a short lease (`LEASE`), renewed by a heartbeat while the send runs, so it never
runs out while its process still sends, and a process that dies mid-send lets another take
the notice seconds later. The attempt is written before the notice goes out, its outcome
unknown (`ok` NULL) until the answer; taking the notice again marks such an attempt
"interrupted: outcome unknown". The notice's body and id stay the same on every try, so a
receiver recognises the repeat that a crash mid-send may cause (its `webhook-id`).
Due notices are sent side by side, a few at a time, so a receiver that hangs holds back no
one else.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.db import connection, write_transaction
from models.times import to_micros, utcnow
from models.executions import load_json

from .channels import CHANNELS, Outgoing, TransportError
from .models import INTERRUPTED, Attempt, Notice
from .config import AlertConfig

log = logging.getLogger(__name__)


def lease(config: AlertConfig) -> timedelta:
    """How long a claim holds without renewal: a process that died mid-send holds its
    notice this long at most. While the send runs, the heartbeat renews it every third."""
    return timedelta(seconds=config.lease_seconds)


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
          lease_from: datetime | None = None) -> int | None:
    """Take a notice due at `now` for this process, for `lease(config)` from `lease_from`
    (default `now`), and record the attempt about to be made; returns the attempt's id, or
    None when the notice is not due or another took it.

    An earlier attempt still without an outcome belongs to a process that died mid-send:
    it is marked interrupted, its outcome unknown.
    """
    now_us = to_micros(now)
    until = to_micros((lease_from or now) + lease(config))
    with write_transaction():
        taken = (Notice.update(status="sending", lease_until=until,
                               attempts=Notice.attempts + 1)
                 .where(Notice.id == notice_id, _claimable(now_us)).execute())
        if taken != 1:
            return None
        (Attempt.update(error=INTERRUPTED)
         .where(Attempt.notice == notice_id, Attempt.ok.is_null()).execute())
        return Attempt.insert(notice=notice_id, attempted_at=lease_from or now, ok=None,
                              response=None, latency_ms=None, error=None).execute()


class Heartbeat:
    """Renews a claim's lease every third of it while the send runs (on a connection of
    its own); a renewal that fails is tried again a second later."""

    def __init__(self, notice_id: int, config: AlertConfig, lease_from: datetime):
        self.notice_id, self.config = notice_id, config
        self.lease_from, self.started = lease_from, time.monotonic()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"runwatch-lease-{notice_id}")

    def _run(self) -> None:
        held = lease(self.config)
        wait = held.total_seconds() / 3
        while not self.stopped.wait(wait):
            until = self.lease_from + timedelta(seconds=time.monotonic() - self.started) + held
            try:
                with connection():
                    (Notice.update(lease_until=to_micros(until))
                     .where(Notice.id == self.notice_id, Notice.status == "sending").execute())
                wait = held.total_seconds() / 3
            except Exception:  # the database may be away a moment: try again soon
                log.warning("could not renew the lease of notice %s", self.notice_id,
                            exc_info=True)
                wait = min(1.0, held.total_seconds() / 3)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


def backoff(config: AlertConfig, attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: the retry delay, doubling each time."""
    return timedelta(seconds=config.retry_seconds * 2 ** (attempts - 1))


def _send(notice: Notice, config: AlertConfig) -> str:
    """Send once; returns the receiver's answer or raises TransportError."""
    kind = CHANNELS.get(notice.channel_type)
    if kind is None:
        raise TransportError(f"unknown channel type {notice.channel_type!r}", permanent=True)
    outgoing = Outgoing(notice.id, notice.kind, load_json(notice.payload),
                        load_json(notice.channel_options), notice.episode)
    try:
        return kind.send(outgoing, config)
    except TransportError:
        raise
    except Exception as exc:  # a broken channel must not stop the other notices
        raise TransportError(f"{type(exc).__name__}: {exc}") from None


def attempt(notice_id: int, attempt_id: int, config: AlertConfig,
            now: datetime | None = None, lease_from: datetime | None = None) -> str:
    """Send a claimed notice once and record how its attempt went; returns its new status.
    A retry is due the backoff after `now`; the lease, renewed meanwhile, counts from
    `lease_from` (default `now`)."""
    now = now or utcnow()
    notice = Notice.get_by_id(notice_id)
    started = time.perf_counter()
    ok, error, permanent = True, None, False
    with Heartbeat(notice_id, config, lease_from or now):
        try:
            response = _send(notice, config)
        except TransportError as exc:
            ok, response, error, permanent = False, exc.response, exc.message, exc.permanent
    latency_ms = round((time.perf_counter() - started) * 1000)
    attempts = notice.attempts
    if ok:
        values = {"status": "delivered", "delivered_at": to_micros(utcnow()),
                  "last_error": None}
    elif permanent or attempts >= config.max_attempts:  # retrying cannot help a permanent one
        values = {"status": "failed", "last_error": error}
    else:
        values = {"status": "pending", "last_error": error,
                  "next_attempt_at": to_micros(now + backoff(config, attempts))}
    with write_transaction():
        (Attempt.update(ok=ok, response=response, latency_ms=latency_ms, error=error)
         .where(Attempt.id == attempt_id).execute())
        (Notice.update(lease_until=None, **values)
         .where(Notice.id == notice_id, Notice.status == "sending").execute())
    return values["status"]


def _claim_and_send(chains: list[list[int]], config: AlertConfig, now: datetime) -> list[str]:
    """Claim and send each notice, up to `config.delivery_workers` chains at once, each on
    a connection of its own, the notices of a chain one after the other in its order;
    returns each one's new status, or "claimed" if another had it (chain after chain).

    A notice is claimed just before it is sent, and its lease counts from then (`now` plus
    the time the pass has taken so far), so one that waited for a free worker still gets
    its whole lease.
    """
    if not chains:
        return []
    started = time.monotonic()

    def one(notice_id: int) -> str:
        claimed_at = now + timedelta(seconds=time.monotonic() - started)
        with connection():
            attempt_id = claim(notice_id, now, config, lease_from=claimed_at)
            if attempt_id is None:
                return "claimed"
            return attempt(notice_id, attempt_id, config, now, claimed_at)

    workers = max(1, min(config.delivery_workers, len(chains)))
    with ThreadPoolExecutor(workers, thread_name_prefix="runwatch-delivery") as pool:
        return [status for statuses in pool.map(lambda chain: [one(n) for n in chain], chains)
                for status in statuses]


def deliver_due(config: AlertConfig, now: datetime | None = None,
                limit: int = 200) -> DeliveryResult:
    """One delivery pass: every notice that is due now, oldest first in line. Notices of
    one workflow to one channel go in the order they were decided (a failing notice before
    the recovery decided with it), the rest side by side."""
    now = now or utcnow()
    chains: dict[tuple, list[int]] = {}
    for notice_id, channel_id, workflow_id in (
            Notice.select(Notice.id, Notice.channel_id, Notice.workflow)
            .where(_claimable(to_micros(now)))
            .order_by(Notice.next_attempt_at, Notice.id).limit(limit).tuples()):
        key = (channel_id, workflow_id) if workflow_id is not None else (notice_id,)
        chains.setdefault(key, []).append(notice_id)
    counts = {"delivered": 0, "pending": 0, "failed": 0, "claimed": 0}
    for status in _claim_and_send([sorted(chain) for chain in chains.values()], config, now):
        counts[status] += 1
    return DeliveryResult(counts["delivered"], counts["pending"], counts["failed"])


def deliver_now(notice_ids: list[int], config: AlertConfig) -> list[str]:
    """Send these notices at once (a test notice, a redelivery) if no one else has them."""
    return _claim_and_send([[notice_id] for notice_id in notice_ids], config, utcnow())


def redeliver(notice_id: int, now: datetime | None = None) -> bool:
    """Queue a failed notice again with a fresh set of attempts; False if it is not failed."""
    now = now or utcnow()
    return (Notice.update(status="pending", attempts=0, next_attempt_at=to_micros(now),
                          last_error=None)
            .where(Notice.id == notice_id, Notice.status == "failed").execute()) == 1
