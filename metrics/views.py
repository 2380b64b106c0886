"""`GET /metrics`: the Prometheus text format, for a bearer token with the `metrics`, `read`
or `admin` scope (no session: views/auth.py's guard)."""
from __future__ import annotations

import gc

from flask import Blueprint, Response, current_app
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from models.db import connection
from models.times import utcnow

from .exposition import render
from .read import read_snapshot

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape():
    """Every series, read from the database now."""
    # A scrape at 10,000 workflows makes some 100,000 rows and tuples, none in a cycle: they
    # would set off hundreds of the collector's young passes, each walking them (40 ms in
    # all, measured). Paused for the scrape; whatever else the process made meanwhile is
    # collected at the next pass after.
    pausing = gc.isenabled()
    if pausing:
        gc.disable()
    try:
        with connection():
            snapshot = read_snapshot(utcnow(), current_app.config["ALERT_SCAN_SECONDS"])
        body = render(snapshot)
    finally:
        if pausing:
            gc.enable()
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4,
                    headers={"Cache-Control": "no-store"})
