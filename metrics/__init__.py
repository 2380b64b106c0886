"""Prometheus metrics: `GET /metrics`, every value read from the database at scrape time, so
that every worker and every machine answers the same.

A feature package: `MODELS` are its tables (finished runs per workflow and status, folded
from the rollups' settled days: metrics.totals); it reads the summaries, rollups and the
outbox the other features keep. `init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.hooks import register_delete_hook, register_write_hook

from .totals import MODELS, apply_changes, remove_runs

__all__ = ["MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Keep the folded totals right when old runs change, and add `GET /metrics` (a bearer
    token with the `metrics`, `read` or `admin` scope). The `metrics` job folds days."""
    from .views import bp

    register_write_hook(app, apply_changes)
    register_delete_hook(app, remove_runs)
    app.register_blueprint(bp)
