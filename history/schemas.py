"""What the history API answers (`GET /api/automations/executions`); its query parameters
are declared in history/parameters.py."""
from __future__ import annotations

from datetime import datetime

from models.schemas import Answer, Status


class HistoryRow(Answer):
    """One execution in the history."""

    id: int
    workflow: str
    status: Status
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    step_count: int
    error_message: str | None
    maintenance: bool  # started inside a maintenance window: not counted in streaks
    url: str


class StatusCounts(Answer):
    """Executions per status for the whole filter, ignoring its own status restriction."""

    pending: int
    running: int
    success: int
    failure: int


class HistoryPage(Answer):
    """One page of the history; `next_cursor` is null on the last page."""

    data: list[HistoryRow]
    next_cursor: str | None
    counts: StatusCounts
