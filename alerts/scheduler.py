"""The in-process APScheduler job: scan, then deliver, every RUNWATCH_ALERT_SCAN_SECONDS."""
from __future__ import annotations

import atexit
import logging
import os
import threading
from datetime import datetime, timezone

import click
from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask

from models.db import connection

from .delivery import DeliveryResult, deliver_due
from .scan import ScanResult, scan
from .config import AlertConfig, config_from

log = logging.getLogger(__name__)
_lock = threading.Lock()
_started: dict[int, BackgroundScheduler] = {}  # by process id: one scheduler per process


def run_once(config: AlertConfig) -> tuple[ScanResult, DeliveryResult]:
    """One scan and one delivery pass, on a connection of their own."""
    with connection():
        scanned = scan(config)
        delivered = deliver_due(config)
    return scanned, delivered


def _tick(app: Flask) -> None:
    with app.app_context():
        try:
            run_once(config_from(app))
        except Exception:  # keep the job alive; the watchdog shows a scan that stops beating
            log.exception("alert scan failed")
        if app.config.get("RETENTION_DAYS"):
            _purge(app.config["RETENTION_DAYS"])


# Runs deleted per tick at most (50 batches of 500): a first pass over a long history
# is spread over several ticks and never holds the scan back for long.
PURGE_BATCHES = 50


def _purge(days: int) -> None:
    """The retention job: delete expired runs (history/retention.py)."""
    from history.retention import purge_expired
    from models.db import utcnow

    try:
        with connection():
            purge_expired(utcnow(), days, max_batches=PURGE_BATCHES)
    except Exception:
        log.exception("retention purge failed")


def _in_reloader_parent(app: Flask) -> bool:
    """Under `flask run` with the reloader, only the child (WERKZEUG_RUN_MAIN) serves."""
    context = click.get_current_context(silent=True)
    reload = context.params.get("reload") if context is not None else None
    if reload is None:
        reload = app.debug
    return bool(reload) and os.environ.get("WERKZEUG_RUN_MAIN") != "true"


def should_start(app: Flask) -> bool:
    """Whether this process should run the jobs: not in CLI commands other than `run`."""
    if not app.config["SCHEDULER"]:
        return False
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
        context = click.get_current_context(silent=True)
        if context is None or context.info_name != "run":
            return False
    return not _in_reloader_parent(app)


def init_app(app: Flask) -> BackgroundScheduler | None:
    """Start the alert job for `app` once per process, when this process should run it."""
    if not should_start(app):
        return None
    with _lock:
        if os.getpid() in _started:
            return _started[os.getpid()]
        scheduler = BackgroundScheduler(daemon=True, timezone="UTC")
        scheduler.add_job(_tick, "interval", args=[app], seconds=app.config["ALERT_SCAN_SECONDS"],
                          id="alerts", max_instances=1, coalesce=True,
                          misfire_grace_time=app.config["ALERT_SCAN_SECONDS"],
                          next_run_time=datetime.now(timezone.utc))  # catch up after a restart
        scheduler.start()
        _started[os.getpid()] = scheduler
        atexit.register(scheduler.shutdown, wait=False)
        return scheduler
