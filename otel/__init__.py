"""OpenTelemetry intake: OTLP/HTTP trace exports become runs (`POST /v1/traces`).

A feature package: `MODELS` are its tables (the spans kept until their trace can be put
together), `init_app(app)` wires it into an app.
"""
from __future__ import annotations

from flask import Flask

from views.operations import register_operations

from .models import MODELS

__all__ = ["MODELS", "init_app"]


def init_app(app: Flask) -> None:
    """Add `POST /v1/traces`."""
    from .views import OPERATIONS, bp

    app.register_blueprint(bp)
    register_operations(app, OPERATIONS)
