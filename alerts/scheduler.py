"""The alerts job: one scan, then one delivery pass (run by the lease holder, see scheduling.py,
every RUNWATCH_ALERT_SCAN_SECONDS), and `run_once` for cron."""
from __future__ import annotations

from flask import Flask

from models.db import connection

from .config import AlertConfig, config_from
from .delivery import DeliveryResult, deliver_due
from .scan import ScanResult, scan


def run_once(config: AlertConfig) -> tuple[ScanResult, DeliveryResult]:
    """One scan and one delivery pass, on a connection of their own."""
    with connection():
        scanned = scan(config)
        delivered = deliver_due(config)
    return scanned, delivered


def tick(app: Flask) -> None:
    """The scheduled job: `run_once` with the app's configuration."""
    run_once(config_from(app))
