"""The alerts job, in its order of work: time out runs, scan streaks, queue missed notices,
release held notices whose quiet has ended, queue due reminders, deliver (run by the lease
holder, see scheduling.py, every RUNWATCH_ALERT_SCAN_SECONDS; and by `flask alerts scan`,
for cron)."""
from __future__ import annotations

import time
from datetime import datetime

from flask import Flask

from models.db import connection
from models.times import utcnow
from workflows.silence import missed_runs, time_out_runs

from .config import AlertConfig, config_from
from .delivery import DeliveryResult, deliver_due
from .quiet import release_held
from .reminders import send_reminders
from .scan import ScanResult, record_scan, scan_streaks


def run_once(config: AlertConfig, now: datetime | None = None, *,
             deliver: bool = True) -> tuple[ScanResult, DeliveryResult | None]:
    """One pass of the alerts job on a connection of its own: what it decided, and what it
    delivered (None when `deliver` is false).

    A notice is dated when it is decided (after the runs that decide it were read); `now`
    fixes that time instead, for tests and benchmarks that run on a clock of their own.
    """
    started = time.perf_counter()
    clock = (lambda: now) if now is not None else utcnow
    with connection():
        # Runs past their maximum duration fail first, so the streaks count them now.
        time_out_runs(config, clock())
        examined, decided = scan_streaks(config, clock)
        decided += missed_runs(config, clock())
        # Held notices after the decisions: an episode that this pass saw end (a success
        # scanned, a run that came) drops its held notice rather than sending it; before
        # delivery, so that one released now goes out in this pass.
        decided += release_held(config, clock())
        decided += send_reminders(config, clock())
        scanned = record_scan(clock(), (time.perf_counter() - started) * 1000, examined,
                              decided)
        delivered = deliver_due(config) if deliver else None
    return scanned, delivered


def scan(config: AlertConfig, now: datetime | None = None) -> ScanResult:
    """The alerts job's decisions without its delivery (for tests and benchmarks that
    deliver on a clock of their own)."""
    return run_once(config, now, deliver=False)[0]


def tick(app: Flask) -> None:
    """The scheduled job: `run_once` with the app's configuration."""
    run_once(config_from(app))
