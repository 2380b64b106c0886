"""What every source kind declares, and what a pull hands it and gets back.

A kind is one module of `sources/kinds/` with one class: how its token goes on requests,
how far back each pull looks again (`overlap`), and `pull`, which reads the engine's runs
changed in a window and yields them as Runwatch reports (`PulledRun`), page by page.
Storing them, the cursor and the errors are `sources.pull`'s, the same for every kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterator

from ..remote import Remote


@dataclass(frozen=True)
class Window:
    """What one pull asks for: runs changed from `since` to `until`, and again the runs
    still open (pending or running) when last pulled, by the engine's ids."""

    since: datetime
    until: datetime
    open_ids: list[str]


@dataclass(frozen=True)
class PulledRun:
    """One engine run as a report of the ingestion API (`report`, a dict ExecutionIn
    validates), under the engine's id for it."""

    remote_id: str
    report: dict
    open: bool


@dataclass(frozen=True)
class Page:
    """Runs read together, and where a pull that stops after them may start again next
    time (None: not before the window's start)."""

    runs: list[PulledRun]
    resume_at: datetime | None = None


class Kind:
    """A source kind, declared as class keywords: `class Prefect(Kind, kind="prefect",
    label="Prefect")`; its docstring says what its URL is."""

    kind: str
    label: str
    overlap = timedelta(minutes=2)  # how far before the cursor each pull looks again

    def __init_subclass__(cls, *, kind: str, label: str, **rest):
        super().__init_subclass__(**rest)
        cls.kind, cls.label = kind, label

    @staticmethod
    def headers(token: str | None) -> dict[str, str]:
        """The headers that carry the token on every request."""
        return {"Authorization": f"Bearer {token}"} if token else {}

    def pull(self, remote: Remote, window: Window, *, page_size: int,
             max_steps: int) -> Iterator[Page]:
        """The runs changed in `window` and the open ones, page by page (PullError when
        the engine fails to answer as its API says)."""
        raise NotImplementedError
