"""What features add to one run's page and API answer (a re-run's requests, the runs that
re-ran it): each registers a part in its `init_app`, so the core's run page and API name
no feature."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from flask import Flask

KEY = "runwatch.run_parts"


@dataclass(frozen=True)
class RunPart:
    """One feature's part of a run: `read(execution_id, masked)` gives the keys it adds to
    the run's API answer; the page includes `template` with `page(run)` as `part` (the
    run as its page reads it; without `page`, the keys read masked)."""

    read: Callable[[int, bool], dict]
    template: str
    page: Callable[[Any], dict] | None = None


def register_run_part(app: Flask, part: RunPart) -> None:
    """Add a feature's part to `app`'s run page and run API."""
    parts = app.extensions.setdefault(KEY, [])
    if part not in parts:
        parts.append(part)


def run_parts_of(app: Flask) -> list[RunPart]:
    """The parts the features of `app` registered, in order."""
    return list(app.extensions.get(KEY, []))


__all__ = ["RunPart", "register_run_part", "run_parts_of"]
