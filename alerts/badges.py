"""What the pages show beside a workflow whose alerts are quieted or seen: muted until,
acknowledged by, in maintenance until (the overview, a workflow's page, the Alerts page).

Read for a page of workflows at once: their mutes in one query, the acknowledgements that
still hold in one more (alerts.acknowledge), and the maintenance windows covering them in a
third (alerts.maintenance), each window's stretch at `now` worked out once for the page.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from models.executions import Workflow
from models.times import from_micros

from .acknowledge import current_acknowledgements
from .maintenance import Windows


@dataclass(frozen=True)
class Badges:
    """One workflow's marks; each None when it does not apply now."""

    muted_until: datetime | None = None
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_note: str | None = None
    maintenance_until: datetime | None = None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_by is not None


NONE = Badges()


def badges_of(names: Iterable[str], now: datetime) -> dict[str, Badges]:
    """The badges of the workflows called `names`, by name (workflows with none left out)."""
    names = sorted(set(names))
    if not names:
        return {}
    rows = list(Workflow.select(Workflow.id, Workflow.name, Workflow.muted_until)
                .where(Workflow.name.in_(names)).tuples())
    acknowledged = current_acknowledgements([workflow_id for workflow_id, _, _ in rows])
    windows = Windows.of(names)
    # Most workflows are in no window: only those covered by one under way now are followed
    # through the windows that succeed it.
    under_way = [window for window in windows.windows
                 if windows.interval(window, now) is not None]
    found = {}
    for workflow_id, name, muted in rows:
        muted = from_micros(muted) if isinstance(muted, int) else muted
        ack = acknowledged.get(workflow_id)
        maintenance = (windows.quiet_end(name, now)
                       if any(window.covers(name) for window in under_way) else None)
        badges = Badges(muted_until=muted if muted is not None and muted > now else None,
                        acknowledged_by=ack.by if ack else None,
                        acknowledged_at=ack.at if ack else None,
                        acknowledged_note=ack.note if ack else None,
                        maintenance_until=maintenance)
        if badges != NONE:
            found[name] = badges
    return found
