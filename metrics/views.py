"""`GET /metrics`: the Prometheus text format, for a bearer token with the `metrics`, `read`
or `admin` scope (no session: views/auth.py's guard)."""
from __future__ import annotations

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
    with connection():
        snapshot = read_snapshot(utcnow(), current_app.config["ALERT_SCAN_SECONDS"])
    return Response(render(snapshot), content_type=CONTENT_TYPE_PLAIN_0_0_4,
                    headers={"Cache-Control": "no-store"})
