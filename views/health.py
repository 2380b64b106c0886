"""`GET /healthz`: whether this process reaches its database and how the jobs fare, for load
balancers and monitors. It needs no credentials and tells nothing about the data."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

import scheduling
from alerts.watchdog import GRACE_SECONDS, health
from models.availability import is_unavailable
from models.db import connection, database

from .common import RETRY_AFTER_SECONDS

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 `{"status": "ok", "database": "ok", "scheduler": …, "outbox": n}`, or 503
    `{"status": "error", "database": "unavailable"}` when the database does not answer."""
    scan_seconds = current_app.config["ALERT_SCAN_SECONDS"]
    try:
        with connection():
            database.execute_sql("SELECT 1").fetchall()
            alerting = health(scan_seconds)
            scheduler = scheduling.state(alerting.last_scan_at,
                                         stalled_after=3 * scan_seconds + GRACE_SECONDS)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        response = jsonify({"status": "error", "database": "unavailable"})
        return response, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return jsonify({"status": "ok", "database": "ok", "scheduler": scheduler,
                    "outbox": alerting.backlog})
