"""The background jobs, and the lease that lets exactly one process run them at a time.

Every process that may run the jobs (each web worker unless RUNWATCH_SCHEDULER=false, and
`flask --app app scheduler`) keeps a `Runner`: a thread that takes or renews the lease in
the database every `lease / 3` seconds, and an APScheduler that runs the `JOBS` only while
this process holds it. The lease is one row (`scheduler_lease`) changed by a conditional
UPDATE, so it works alike on SQLite and PostgreSQL, on one machine or several (whose clocks
agree to well within a lease). A holder that dies stops renewing; once its lease has run
out, a waiting process takes it over at its next try and runs every job at once.

A job that is running when its process loses the lease (the database stopped answering)
finishes its pass; no new pass starts until the lease is held again.
"""
from __future__ import annotations

import atexit
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import click
import peewee
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

import alerts.scheduler
import history.retention
import history.rollups
import metrics.totals
import sources.pull
from models.availability import is_unavailable
from models.base import BaseModel, UTCMicros
from models.db import connection
from models.times import utcnow

log = logging.getLogger(__name__)

LEASE_ID = 1


@dataclass(frozen=True)
class Job:
    """A background job: `run(app)` every `every` seconds, or every so many seconds as the
    setting named `every` says."""

    name: str
    run: Callable[[Flask], object]
    every: int | str

    def interval(self, app: Flask) -> int:
        return int(app.config[self.every]) if isinstance(self.every, str) else self.every


# The jobs the lease holder runs, one line each.
JOBS: tuple[Job, ...] = (
    # time out runs, scan streaks, queue missed notices, deliver
    Job("alerts", alerts.scheduler.tick, every="ALERT_SCAN_SECONDS"),
    Job("retention", history.retention.job, every=60),  # with RUNWATCH_RETENTION_DAYS set
    Job("rollups", history.rollups.fold_job, every=60),  # PostgreSQL's shards of past hours
    Job("sources", sources.pull.job, every=5),  # pull each source whose interval is up
    Job("metrics", metrics.totals.job, every=600),  # fold settled days into run totals
)


class SchedulerLease(BaseModel):
    """Who runs the jobs: one row; `holder` is NULL when released (or never taken)."""

    id = peewee.IntegerField(primary_key=True)
    holder = peewee.CharField(max_length=255, null=True)
    acquired_at = UTCMicros(null=True)   # when the present holder took it
    expires_at = UTCMicros(null=True)    # the holder must renew before this

    class Meta:
        table_name = "scheduler_lease"


MODELS = [SchedulerLease]


def holder_id() -> str:
    """This process, unique across machines and restarts: host:pid:random."""
    return f"{socket.gethostname()[:200]}:{os.getpid()}:{secrets.token_hex(4)}"


def _gone(holder: str) -> bool:
    """Whether `holder` names a process of this machine that no longer runs. Another
    machine's process, or a process id now reused, is waited for until its lease runs out."""
    host, _, pid = holder.rpartition(":")[0].rpartition(":")  # host:pid:random
    if host != socket.gethostname()[:200] or not pid.isascii() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but another user's
        return False
    return False


class Lease:
    """The database lease, as one process sees it."""

    def __init__(self, holder: str, seconds: float):
        self.holder = holder
        self.seconds = seconds

    def try_hold(self) -> bool:
        """Take the lease when it is free, run out or held by a process of this machine that
        is gone (a restart after kill -9 takes over at once), or renew it when this process
        holds it."""
        now = utcnow()
        with connection():
            SchedulerLease.insert(id=LEASE_ID).on_conflict_ignore().execute()
            mine = SchedulerLease.holder == self.holder
            free = SchedulerLease.holder.is_null() | (SchedulerLease.expires_at < now)
            current = SchedulerLease.select(SchedulerLease.holder).where(
                SchedulerLease.id == LEASE_ID).scalar()
            if current and current != self.holder and _gone(current):
                free |= SchedulerLease.holder == current
            taken = (SchedulerLease
                     .update(holder=self.holder,
                             expires_at=now + timedelta(seconds=self.seconds),
                             acquired_at=peewee.Case(None, [(mine, SchedulerLease.acquired_at)],
                                                     UTCMicros().db_value(now)))
                     .where((SchedulerLease.id == LEASE_ID) & (mine | free))
                     .execute())
        return taken == 1

    def release(self) -> None:
        """Give the lease up, so a waiting process takes it at its next try."""
        with connection():
            (SchedulerLease.update(holder=None, expires_at=None, acquired_at=None)
             .where((SchedulerLease.id == LEASE_ID) & (SchedulerLease.holder == self.holder))
             .execute())


class Runner:
    """One process's part: keep trying for the lease; run the jobs while holding it."""

    def __init__(self, app: Flask, jobs: tuple[Job, ...] = JOBS):
        self.app = app
        self.jobs = jobs
        self.lease = Lease(holder_id(), float(app.config["SCHEDULER_LEASE_SECONDS"]))
        self.renew_seconds = max(self.lease.seconds / 3, 0.2)
        self._held_until = 0.0  # time.monotonic() until which the lease is surely ours
        self._holding = False
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self.scheduler = BackgroundScheduler(daemon=True, timezone="UTC")
        for job in jobs:
            seconds = job.interval(app)
            # Added paused (no next run time): resumed when the lease is taken.
            self.scheduler.add_job(self._run, "interval", args=[job], seconds=seconds,
                                   id=job.name, name=job.name, max_instances=1, coalesce=True,
                                   misfire_grace_time=seconds, next_run_time=None)

    @property
    def holder(self) -> str:
        return self.lease.holder

    def holds(self) -> bool:
        """Whether this process surely holds the lease now."""
        return time.monotonic() < self._held_until

    def start(self) -> "Runner":
        self.scheduler.start(paused=False)
        self._thread = threading.Thread(target=self._keep, name="scheduler-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: bool = True) -> None:
        """Stop trying, let a running job finish (when `wait`), and release the lease (once)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.renew_seconds + 15)
        try:
            self.scheduler.shutdown(wait=wait)
        except Exception:  # already shut down
            pass
        self._held_until = 0.0
        try:
            self.lease.release()
        except Exception as exc:  # the database is away: the lease runs out by itself
            log.warning("could not release the scheduler lease: %s", exc)

    def request_stop(self) -> None:
        """Ask `wait` to return (safe in a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        """Block until `stop` is called (for the standalone process)."""
        while not self._stop.wait(1.0):
            pass

    def _keep(self) -> None:
        while not self._stop.is_set():
            self.renew()
            self._stop.wait(self.renew_seconds)

    def renew(self) -> None:
        """One try: take or renew the lease; start or stop running the jobs accordingly."""
        started = time.monotonic()
        try:
            with self.app.app_context():
                held = self.lease.try_hold()
        except Exception as exc:  # the database does not answer: keep trying
            if not self._failing:
                log.warning("scheduler lease: the database does not answer (%s)", exc)
            self._failing = True
            held = None
        else:
            if self._failing:
                log.warning("scheduler lease: the database answers again")
            self._failing = False
        if held:
            self._held_until = started + self.lease.seconds
        elif held is False:
            self._held_until = 0.0
        if self._stop.is_set():
            return
        if self.holds() and not self._holding:
            self._holding = True
            log.info("scheduler: %s holds the lease and runs the jobs", self.holder)
            now = datetime.now(timezone.utc)
            for job in self.jobs:  # catch up at once: the last holder may be long gone
                self.scheduler.modify_job(job.name, next_run_time=now)
        elif not self.holds() and self._holding:
            self._holding = False
            log.warning("scheduler: %s lost the lease and stops running the jobs", self.holder)
            for job in self.jobs:
                self.scheduler.pause_job(job.name)

    def _run(self, job: Job) -> None:
        if not self.holds():
            return
        with self.app.app_context():
            try:
                job.run(self.app)
            except Exception as exc:  # keep the job alive; /healthz shows a beat that stops
                if is_unavailable(exc):
                    log.warning("job %s: the database does not answer (%s)", job.name,
                                str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
                else:
                    log.exception("job %s failed", job.name)


_lock = threading.Lock()
_started: dict[int, Runner] = {}  # by process id: one runner per process


def current_runner() -> Runner | None:
    """The runner of this process, if it runs one."""
    return _started.get(os.getpid())


def start(app: Flask) -> Runner:
    """Start this process's runner for `app` (once per process)."""
    with _lock:
        runner = _started.get(os.getpid())
        if runner is None:
            runner = Runner(app).start()
            _started[os.getpid()] = runner
            atexit.register(runner.stop, wait=False)
        return runner


def _in_reloader_parent(app: Flask) -> bool:
    """Under `flask run` with the reloader, only the child (WERKZEUG_RUN_MAIN) serves."""
    context = click.get_current_context(silent=True)
    reload = context.params.get("reload") if context is not None else None
    if reload is None:
        reload = app.debug
    return bool(reload) and os.environ.get("WERKZEUG_RUN_MAIN") != "true"


def should_start(app: Flask) -> bool:
    """Whether a serving process takes part: not when RUNWATCH_SCHEDULER=false, not in CLI
    commands other than `run` (`flask scheduler` starts its own), not in the reloader's
    parent."""
    if not app.config["SCHEDULER"]:
        return False
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
        context = click.get_current_context(silent=True)
        if context is None or context.info_name != "run":
            return False
    return not _in_reloader_parent(app)


def init_app(app: Flask) -> Runner | None:
    """Take part in the lease from this process, when it should."""
    if not should_start(app):
        return None
    return start(app)


def state(last_beat: datetime | None, stalled_after: float, now: datetime | None = None) -> str:
    """The scheduler as /healthz tells it (see README "Health"):

    - `off`: no process holds the lease (none ever did, or the last one stopped cleanly)
      and this process runs no scheduler;
    - `stalled`: a holder exists (its lease held, or run out without a release) but
      neither its scan beat nor its taking of the lease is within `stalled_after` seconds;
    - `standby`: this process runs a scheduler and waits while another holds the lease
      (or the lease is free and it is about to take it);
    - `running`: the lease is held by this process, or (seen from a process that runs no
      scheduler) by another, and the scan beat is recent.
    """
    now = now or utcnow()
    row = SchedulerLease.get_or_none(SchedulerLease.id == LEASE_ID)
    runner = current_runner()
    if row is None or row.holder is None:
        return "standby" if runner is not None else "off"
    marks = [t for t in (last_beat, row.acquired_at) if t is not None]
    if not marks or (now - max(marks)).total_seconds() > stalled_after:
        return "stalled"
    if runner is not None and row.holder != runner.holder:
        return "standby"
    return "running"
