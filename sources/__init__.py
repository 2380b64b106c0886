"""Sources: runs pulled from the engines that ran them (Prefect first), every source on its
own interval, by the scheduler's `sources` job, and stored through the write path like any
report. The kinds of source are a registry (`sources.kinds.KINDS`), one module each.

A feature package: `MODELS` are its tables, `init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from views.operations import register_operations

from .models import MODELS

__all__ = ["MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Add the API and the Sources page."""
    from .views import OPERATIONS, bp

    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
