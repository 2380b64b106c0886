"""Workflows: the overview of which automations need attention, each one's health over a
period, its settings (schedule, grace, maximum duration), and the scan steps that find
silence (runs that never end, scheduled runs that never come).

A feature package: `MODELS` are its tables, `init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.db import unless_unavailable
from models.ingest import register_delete_hook, register_write_hook

from .models import MODELS
from .summary import apply_changes, ensure_summaries, remove_runs

__all__ = ["MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Keep summaries and duration counts current at every write (and for runs stored
    before them), add the scan's steps, the pages and the API."""
    from alerts.scan import register_scan_step
    from .views import bp

    from .silence import missed_runs, time_out_runs

    register_write_hook(apply_changes)
    register_delete_hook(remove_runs)
    register_scan_step(time_out_runs, before_streaks=True)
    register_scan_step(missed_runs, before_streaks=False)
    unless_unavailable(ensure_summaries, "building the workflow summaries")
    app.register_blueprint(bp)
