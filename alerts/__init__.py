"""Failure alerts: rules, the scan that decides notices, the outbox and its delivery.

A feature package: `MODELS` are its tables, `MIGRATIONS` their changes by schema version,
`init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.hooks import register_maintenance_rule, register_write_hook
from views.operations import register_operations

from .migrations import MIGRATIONS
from .models import MODELS, mark_finished_changes

__all__ = ["MIGRATIONS", "MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Mark workflows whose finished runs change and runs that start inside a maintenance
    window, add the pages and API (the alerts job, alerts.scheduler.tick, is listed in
    scheduling.JOBS)."""
    from .maintenance import in_maintenance
    from .views import OPERATIONS, bp

    register_write_hook(app, mark_finished_changes)
    register_maintenance_rule(app, in_maintenance)
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
