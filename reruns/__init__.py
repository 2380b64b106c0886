"""Re-runs: a workflow's hook that starts it again elsewhere (its engine, a CI workflow, a
small receiver), the request a run's page or API sends to it with the run's input, and the
links between a run and the runs reported as its re-runs (`rerun_of`).

A feature package: `MODELS` are its tables, `MIGRATIONS` their changes by schema version,
`init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.hooks import register_delete_hook
from views.operations import register_operations
from views.run_parts import RunPart, register_run_part

from .migrations import MIGRATIONS
from .models import MODELS, unlink_deleted

__all__ = ["MIGRATIONS", "MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Check the request deadline, clear links to deleted runs, add the API, the run page's
    button and what runs show of their re-runs."""
    from .views import OPERATIONS, RUN_TEMPLATE, bp, run_page, run_part

    _check_timeout(app)
    register_delete_hook(app, unlink_deleted)
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
    register_run_part(app, RunPart(run_part, RUN_TEMPLATE, run_page))


def _check_timeout(app: Flask) -> None:
    """RUNWATCH_RERUN_TIMEOUT_SECONDS: seconds (a fraction too) for a whole request."""
    value = app.config["RERUN_TIMEOUT_SECONDS"]
    try:
        app.config["RERUN_TIMEOUT_SECONDS"] = float(value)
    except (TypeError, ValueError):
        raise SystemExit(f"RUNWATCH_RERUN_TIMEOUT_SECONDS must be a number, not {value!r}")
    if not 0 < app.config["RERUN_TIMEOUT_SECONDS"] <= 60:
        raise SystemExit("RUNWATCH_RERUN_TIMEOUT_SECONDS must be more than 0 and at most 60")
