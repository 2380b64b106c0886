"""Re-runs: the API that sends a run's re-run request, the run page's button, and what a
run's page and API show of its re-runs (a part of the run, views/run_parts.py)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, url_for
from flask_login import current_user

from models.executions import Execution
from models.payloads import mask_text, mask_url
from models.times import iso
from views.common import api_error
from views.links import absolute_url
from views.operations import Operation

from .models import Rerun
from .schemas import ExecutionAnswer, RerunAnswer
from .send import NoHook, send_rerun
from .settings import hook_of

bp = Blueprint("reruns", __name__)
NO_HOOK = ("{workflow!r} has no re-run hook: set one in the workflow's settings (its page, "
           "{url}, or PATCH /api/automations/workflows/<name> with `rerun`).")
OPERATIONS = {
    "reruns.api_rerun": Operation({201: RerunAnswer}, errors={
        409: "The run's workflow has no re-run hook; the message says where to set one."}),
    # The run's answer, with the keys this feature adds to it (`run_part`).
    "executions.api_detail": Operation({200: ExecutionAnswer}),
}
RUN_TEMPLATE = "reruns/_run.html"
SHOWN_RERUNS = 20  # the latest requests a run shows; older ones stay recorded


def rerun_json(rerun: Rerun, masked: bool = False) -> dict:
    """A re-run request as the API answers it (its target masked when stored; the answer's
    credentials masked too for callers who may not see secrets)."""
    answer = mask_text(rerun.answer) if masked and rerun.answer else rerun.answer
    return {"id": rerun.id, "execution_id": rerun.execution_id,
            "requested_by": rerun.requested_by, "requested_at": iso(rerun.requested_at),
            "target": rerun.target, "ok": rerun.ok, "status": rerun.status,
            "answer": answer, "error": rerun.error, "duration_ms": rerun.duration_ms}


def run_part(execution_id: int, masked: bool) -> dict:
    """What a run shows of its re-runs: the requests sent, newest first, and the runs
    reported as its re-runs, oldest first; the run it re-runs is the core's `rerun_of`."""
    reruns = (Rerun.select().where(Rerun.execution == execution_id)
              .order_by(Rerun.id.desc()).limit(SHOWN_RERUNS))
    linked = (Execution.select(Execution.id, Execution.status, Execution.started_at)
              .where(Execution.rerun_of == execution_id).order_by(Execution.id).limit(100))
    return {"reruns": [rerun_json(rerun, masked) for rerun in reruns],
            "rerun_runs": [{"id": run.id, "status": run.status,
                            "started_at": iso(run.started_at),
                            "url": absolute_url("executions.show", execution_id=run.id)}
                           for run in linked]}


def run_page(run) -> dict:
    """What the run page shows of its re-runs: as the API does, and where its workflow's
    hook sends a request (masked), or None when there is none."""
    hook = hook_of(run.workflow_id)
    return {**run_part(run.id, masked=True), "target": mask_url(hook.url) if hook else None}


def _send(execution_id: int) -> Rerun | None:
    config = current_app.config
    return send_rerun(execution_id, current_user.email,
                      allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE"]),
                      timeout=config["RERUN_TIMEOUT_SECONDS"])


def _no_hook_message(workflow: str) -> str:
    return NO_HOOK.format(workflow=workflow,
                          url=absolute_url("workflows.show", name=workflow) + "#rerun")


@bp.post("/api/automations/executions/<int:execution_id>/rerun")
def api_rerun(execution_id: int):
    """Send the run's re-run request (its workflow's hook) once; the request as recorded,
    with the receiver's answer or why none came."""
    try:
        rerun = _send(execution_id)
    except NoHook as exc:
        return api_error(409, "conflict", _no_hook_message(exc.workflow))
    if rerun is None:
        return api_error(404, "not_found", f"There is no execution {execution_id}.")
    return jsonify(rerun_json(rerun)), 201


@bp.post("/executions/<int:execution_id>/rerun")
def rerun_form(execution_id: int):
    """The run page's "Re-run with this input" (after its confirmation): back to the run,
    which shows the answer."""
    try:
        rerun = _send(execution_id)
    except NoHook as exc:
        flash(_no_hook_message(exc.workflow))
        return redirect(url_for("executions.show", execution_id=execution_id), 303)
    if rerun is None:
        abort(404, f"There is no execution {execution_id}.")
    if rerun.ok:
        flash(f"Re-run requested: the receiver answered HTTP {rerun.status}.")
    else:
        flash("The re-run request failed: " + (rerun.error or f"HTTP {rerun.status}") + ".")
    return redirect(url_for("executions.show", execution_id=execution_id,
                            _anchor="reruns"), 303)
