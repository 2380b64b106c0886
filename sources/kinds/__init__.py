"""The source kinds: the registry `KINDS` is the only place a kind is listed. The next
engine (n8n's public API, Airflow's REST API, GitHub Actions) is one module beside
`prefect.py` and one line here."""
from __future__ import annotations

from .base import Kind, Page, PulledRun, Window
from .prefect import Prefect

KINDS: dict[str, type[Kind]] = {"prefect": Prefect}

__all__ = ["KINDS", "Kind", "Page", "PulledRun", "Window"]
