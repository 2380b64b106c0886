"""One run in detail (page and API)."""
from __future__ import annotations

from flask import Blueprint, abort

from models import Execution

bp = Blueprint("details", __name__)


@bp.get("/executions/<int:execution_id>")
def show(execution_id: int):
    """The run's page."""
    abort(404) if not Execution.select().where(Execution.id == execution_id).exists() else None
    abort(501)
