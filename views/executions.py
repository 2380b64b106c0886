"""The execution history."""
from __future__ import annotations

from flask import Blueprint

from models import Execution, Workflow

from .common import render_page

bp = Blueprint("executions", __name__)
PAGE_SIZE = 50


@bp.get("/")
def home():
    """The start page is the history."""
    return index()


@bp.get("/executions")
def index():
    """Runs, newest first."""
    rows = (Execution.select(Execution, Workflow.name.alias("workflow_name"))
            .join(Workflow)
            .order_by(Execution.started_at.desc(), Execution.id.desc())
            .limit(PAGE_SIZE).objects())
    return render_page("executions/index.html", "executions/_rows.html", rows=list(rows))
