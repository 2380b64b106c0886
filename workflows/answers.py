"""A workflow as the API answers it (the overview's rows, a workflow's detail)."""
from __future__ import annotations

import functools

from alerts.acknowledge import acknowledgement_json
from alerts.models import Acknowledgement
from models.times import iso, utcnow
from reruns.settings import hook_json, hooks_of
from views.extensions import sees_secrets
from views.formatting import iso_micros
from views.links import link_builder
from workflows import schedule as schedules
from workflows.forms import muted_until
from workflows.stats import Figures


def links(external: bool = True):
    """Builders of run and workflow links (absolute ones for the API)."""
    return (link_builder("executions.show", external=external),
            link_builder("workflows.show", external=external))


def reruns(rows) -> dict[int, dict | None]:
    """The re-run hooks of a page of workflows as the API shows them, by workflow id."""
    hooks = hooks_of([row.workflow_id for row in rows])
    reveal = sees_secrets()
    return {row.workflow_id: hook_json(hooks.get(row.workflow_id), reveal) for row in rows}


def workflow_json(row, figure: Figures, execution_url, workflow_url,
                  acknowledged: Acknowledgement | None = None, rerun: dict | None = None) -> dict:
    """A workflow as the API answers it; `acknowledged`: its acknowledgement that holds;
    `rerun`: its re-run hook as the caller may see it."""
    settings = row
    recent = figure.recent or []
    last = recent[0] if recent else None
    around = execution_url.template("execution_id")
    return {
        "name": row.name, "state": row.state, "streak": row.streak,
        "last_run": ({"id": last[0], "status": last[1], "started_at": iso_micros(last[2]),
                      "url": execution_url(execution_id=last[0])} if last else None),
        "recent_runs": (_recent_json(tuple(recent), *around) if around else
                        [{"id": run_id, "status": status,
                          "url": execution_url(execution_id=run_id)}
                         for run_id, status, _ in recent]),
        "runs_24h": figure.runs_24h, "success_rate_7d": figure.success_rate_7d,
        "duration_p50_ms_7d": figure.percentile(0.5),
        "duration_p95_ms_7d": figure.percentile(0.95),
        "schedule": settings.schedule,
        "schedule_description": schedules.describe(settings.schedule) if settings.schedule
        else None,
        "timezone": settings.timezone, "grace_seconds": settings.grace_seconds,
        "max_duration_seconds": settings.max_duration_seconds,
        "next_expected_at": iso(row.expected_at) if settings.schedule else None,
        "late_since": iso(row.late_expected_at) if row.late else None,
        "description": settings.description,
        "muted_until": muted_until(row.muted_until, utcnow()),
        "acknowledged": acknowledgement_json(acknowledged), "rerun": rerun,
        "url": workflow_url(name=row.name),
    }


@functools.lru_cache(maxsize=20_000)  # a page of the overview answers the same ones again
def _recent_json(recent: tuple, before: str, after: str) -> list[dict]:
    """The last runs as the API lists them (read, never changed), their links made of the
    run link's text around the id."""
    return [{"id": run_id, "status": status, "url": f"{before}{run_id}{after}"}
            for run_id, status, _ in recent]


__all__ = ["links", "reruns", "workflow_json"]
