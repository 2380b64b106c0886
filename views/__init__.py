"""The core's pages and API (sign-in, settings, runs, ingestion, health, the API's
description) and the helpers every page shares (`common`, `formatting`, `links`, …).

Features register their own blueprints in `init_app`; importing a shared helper loads no
blueprint.
"""
from __future__ import annotations

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    """The core's blueprints, in the order they are registered."""
    from .auth import bp as auth
    from .executions import bp as executions
    from .health import bp as health
    from .ingest import bp as ingest
    from .openapi import bp as openapi
    from .settings import bp as settings

    return [auth, settings, ingest, executions, openapi, health]
