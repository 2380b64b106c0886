"""A workflow as the API answers it (the overview's rows, a workflow's detail)."""
from __future__ import annotations

import functools

from alerts.acknowledge import acknowledgement_json, current_acknowledgements
from alerts.models import Acknowledgement
from models.bulk import id_list
from models.db import database
from models.times import iso, utcnow
from reruns.models import RerunHook
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


def attachments(rows) -> tuple[dict[int, Acknowledgement], dict[int, dict | None]]:
    """The acknowledgements that hold and the re-run hooks (as the caller may see them) of
    a page of workflows, by workflow id. One statement finds which of them have either
    (nearly always none); only those are read."""
    ids = [int(row.workflow_id) for row in rows]
    found: dict[str, list[int]] = {"ack": [], "hook": []}
    if ids:
        listed = id_list(ids)
        for kind, workflow_id in database.execute_sql(
                f'SELECT \'ack\', "workflow_id" FROM "{Acknowledgement._meta.table_name}" '
                f'WHERE "workflow_id" IN ({listed}) UNION ALL SELECT \'hook\', "workflow_id" '
                f'FROM "{RerunHook._meta.table_name}" WHERE "workflow_id" IN ({listed})'):
            found[kind].append(workflow_id)
    acks = current_acknowledgements(found["ack"]) if found["ack"] else {}
    hooks = hooks_of(found["hook"]) if found["hook"] else {}
    reveal = bool(hooks) and sees_secrets()
    return acks, {wid: hook_json(hooks.get(wid), reveal) for wid in ids}


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


__all__ = ["links", "attachments", "workflow_json"]
