"""One run in detail: the page, its htmx fragments, and the API answer."""
from __future__ import annotations

import json
from datetime import datetime

from flask import Blueprint, Response, abort, request, url_for

from models.details import (CUT_BYTES, Run, StepRow, compare_with_last_success, detail_json,
                            load_run, load_step, mask_text, run_version, show_json,
                            show_text, step_error, step_window, waterfall, window_start)

from .common import api_error, render_page, wants_partial
from .ingest import run_url

bp = Blueprint("executions", __name__)

PAGE = "executions/show.html"
RUN_PARTIAL = "executions/_execution.html"
POLL_SECONDS = 2
TEXT_PARTS = ("logs", "stack")


@bp.get("/executions/<int:execution_id>")
def show(execution_id: int):
    """The run's page; while the run is live, htmx polls it for the refreshed run section."""
    since = request.args.get("since")
    if since is not None and not since.isdigit():
        abort(400, "since must be the version number the page was rendered at.")
    if since is not None and _partial() and run_version(execution_id) == int(since):
        return "", 204  # nothing changed: htmx keeps the page as it is and polls again
    return _render(_run_or_404(execution_id, with_steps=True), RUN_PARTIAL)


@bp.get("/executions/<int:execution_id>/steps")
def steps(execution_id: int):
    """A slice of the step list from position `from`: the page showing it, or the rows alone."""
    start = request.args.get("from", "0")
    if not start.isdigit():
        abort(400, "from must be a step position (0 or more).")
    run = _run_or_404(execution_id, with_steps=True)  # the rows fragment needs them too
    return _render(run, "executions/_steps.html", steps_from=int(start))


@bp.get("/executions/<int:execution_id>/steps/<int:position>")
def step(execution_id: int, position: int):
    """One step's input, output, logs and error: the page with it open, or the panel alone."""
    run = _run_or_404(execution_id)
    selected = _step_or_404(run, position)
    return _render(run, "executions/_step.html", selected=selected,
                   steps_from=window_start(run.steps, position))


@bp.get("/executions/<int:execution_id>/payloads/<any(input, output, stack):part>")
def run_payload(execution_id: int, part: str):
    """A cut payload of the run in whole: the page with it whole, or the block alone."""
    run = _run_or_404(execution_id)
    stored = {"input": run.input, "output": run.output, "stack": _stack(run.error)}[part]
    block = payload_block(run.id, None, part, stored, whole=True)
    return _render(run, "executions/_payload.html", block=block, whole_part=part)


@bp.get("/executions/<int:execution_id>/steps/<int:position>/payloads/"
        "<any(input, output, logs, stack):part>")
def step_payload(execution_id: int, position: int, part: str):
    """A cut payload of a step in whole: the page with the step open, or the block alone."""
    run = _run_or_404(execution_id)
    selected = _step_or_404(run, position, whole_part=part)
    return _render(run, "executions/_payload.html", selected=selected,
                   block=selected["blocks"][part])


@bp.get("/executions/<int:execution_id>/compare")
def compare(execution_id: int):
    """What differs from the most recent successful run of the same workflow."""
    run = _run_or_404(execution_id)
    return _render(run, "executions/_compare.html",
                   comparison=compare_with_last_success(run))


@bp.get("/api/automations/executions/<int:execution_id>")
def api_detail(execution_id: int):
    """The run with its input, output, error and every step, whole and unmasked."""
    body = detail_json(execution_id, run_url(execution_id))
    if body is None:
        return api_error(404, "not_found", f"There is no execution {execution_id}.")
    return Response(body, mimetype="application/json")


# --- Building the page ---------------------------------------------------------------------

def _partial() -> bool:
    # A boosted link from another page wants the whole page, not one of these fragments.
    return wants_partial() and request.headers.get("HX-Boosted") != "true"


def _run_or_404(execution_id: int, with_steps: bool | None = None) -> Run:
    # A fragment needs the run's row only; the trace's steps are read for whole pages.
    run = load_run(execution_id, with_steps=not _partial() if with_steps is None else with_steps)
    if run is None:
        abort(404, f"There is no execution {execution_id}.")
    return run


def _step_or_404(run: Run, position: int, whole_part: str | None = None) -> dict:
    found = load_step(run.id, position)
    if found is None:
        abort(404, f"Execution {run.id} has no step at position {position}.")
    return step_view(run.id, *found, whole_part=whole_part)


def _render(run: Run, partial: str, whole_part: str | None = None, steps_from: int = 0,
            **context):
    """The full page (with a step open, a payload whole, the comparison…) or one partial."""
    if not _partial():
        partial = PAGE  # also for boosted requests, to which render_page gives the partial
    if partial == "executions/_steps.html":
        context.update(trace_view(run, steps_from))
    elif partial in (PAGE, RUN_PARTIAL):
        context.update(run_view(run, whole_part, steps_from))
    return render_page(PAGE, partial, run=run, **context)


def trace_view(run: Run, steps_from: int = 0) -> dict:
    """The waterfall of every step and the slice of the step list from `steps_from`."""
    return {
        "waterfall": waterfall(run), "window": step_window(run.steps, steps_from),
        # Step links share one url_for: a call per row would dominate the page's time.
        "step_url_prefix": url_for("executions.step", execution_id=run.id, position=0)[:-1],
    }


def run_view(run: Run, whole_part: str | None = None, steps_from: int = 0) -> dict:
    """What the run section shows: masked, cut payloads, the error, the trace."""
    error, error_step = run.error, None
    if error is None and run.failed_step is not None:
        # No run-level error was reported: the first failed step's error explains the run.
        error, error_step = step_error(run.id, run.failed_step), run.failed_step
    stack = payload_block(run.id, error_step, "stack", _stack(error), whole_part == "stack",
                          dom_id="run-stack")
    return {
        "input_block": payload_block(run.id, None, "input", run.input, whole_part == "input"),
        "output_block": payload_block(run.id, None, "output", run.output,
                                      whole_part == "output"),
        "error": error_view(error), "error_step": error_step, "stack_block": stack,
        "failed_row": next((s for s in run.steps if s.position == run.failed_step), None),
        "poll_seconds": POLL_SECONDS, **trace_view(run, steps_from),
    }


def step_view(execution_id: int, row: StepRow, texts: dict,
              whole_part: str | None = None) -> dict:
    """One step's panel: its row, its error and its payload blocks, masked and cut."""
    error = json.loads(texts["error"]) if texts["error"] else None
    stored = {"input": texts["input"], "output": texts["output"], "logs": texts["logs"],
              "stack": _stack(error)}
    blocks = {part: payload_block(execution_id, row.position, part, text, whole_part == part)
              for part, text in stored.items()}
    return {"row": row, "error": error_view(error), "blocks": blocks}


def error_view(error: dict | None) -> dict | None:
    """An error's message and type as the page shows them (secrets in the message masked)."""
    if error is None:
        return None
    return {"message": mask_text(error.get("message") or ""), "type": error.get("type")}


def _stack(error: dict | None) -> str | None:
    return (error or {}).get("stack")


def payload_block(execution_id: int, position: int | None, part: str, stored: str | None,
                  whole: bool = False, dom_id: str | None = None) -> dict:
    """A payload ready for `_payload.html`: the shown text and where the rest is."""
    show = show_text if part in TEXT_PARTS else show_json
    shown = show(stored, None if whole else CUT_BYTES)
    if position is None:
        rest = url_for("executions.run_payload", execution_id=execution_id, part=part)
    else:
        rest = url_for("executions.step_payload", execution_id=execution_id, position=position,
                       part=part)
    dom_id = dom_id or (f"run-{part}" if position is None else f"step-{position}-{part}")
    return {"part": part, "shown": shown, "rest_url": rest, "dom_id": dom_id,
            "cut_label": size_label(CUT_BYTES), "size_label": size_label(shown.stored_bytes)}


def size_label(size: int) -> str:
    """A byte count for people: 812 bytes, 64 KB, 9.5 MB."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


@bp.app_template_filter("utc_clock")
def utc_clock(value: datetime | None) -> str:
    """A UTC time to the millisecond: 2026-11-24 10:00:04.250."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"
