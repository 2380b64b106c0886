"""The execution history: its filter and search, the per-hour and per-day run counts, the
export, and its pages.

A feature package: `MODELS` are its tables, `MIGRATIONS` their changes by schema version,
`init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from models.startup import at_start
from models.hooks import register_write_hook
from views.operations import register_operations

from . import changes
from .rollups import RunRollup, apply_changes, ensure_rollups
from .search import ensure_text_index, search_v8, search_v9

MODELS = [RunRollup, changes.HistoryChange]
MIGRATIONS = {8: search_v8, 9: search_v9}


def init_app(app: Flask) -> None:
    """Keep the run counts and the change counter current at every write, count runs stored
    before them, make the error-text index where it is missing, add the pages."""
    from .views import OPERATIONS, bp

    register_write_hook(app, apply_changes)
    register_write_hook(app, changes.bump)
    at_start(app, changes.start, "creating the change counter")
    at_start(app, ensure_rollups, "counting runs into the rollups")
    at_start(app, ensure_text_index, "making the error-text index")
    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
