"""Workflows: the overview of which automations need attention, each one's health over a
period, its settings (schedule, grace, maximum duration), and what the alerts job calls to
find silence (runs that never end, scheduled runs that never come).

A feature package: `MODELS` are its tables, `MIGRATIONS` their changes by schema version,
`init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.hooks import register_delete_hook, register_error_rule, register_write_hook
from models.startup import at_start
from views.operations import register_operations

from .migrations import MIGRATIONS
from .models import MODELS
from .summary import apply_changes, ensure_summaries, remove_runs

__all__ = ["MIGRATIONS", "MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Keep summaries and duration counts current at every write (and for runs stored
    before them), let a report replace a timeout, add the pages and the API (the alerts
    job times runs out and finds missed runs with workflows.silence)."""
    from .silence import replaces_timeout
    from .views import OPERATIONS, bp

    register_write_hook(app, apply_changes)
    register_delete_hook(app, remove_runs)
    register_error_rule(app, replaces_timeout)
    at_start(app, ensure_summaries, "building the workflow summaries")
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
