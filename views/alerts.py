"""Failure alerts: rules, their state and the delivery log."""
from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("alerts", __name__)


@bp.get("/alerts")
def index():
    """The alerts page."""
    return render_template("alerts/index.html")
