"""One execution: its page, the fragments htmx loads into it, and the API answer."""
from __future__ import annotations

import json
from typing import Callable

from flask import Blueprint, Response, abort, current_app, request, url_for

from models.compare import CompareOptions, compare_with_last_success, last_success
from models.times import utcnow
from models.inputs import MAX_ID, MAX_POSITION, whole_number
from models.execution_detail import (ExecutionDetail, StepRow, api_document,
                                     execution_version, load_execution, load_step, step_error)
from models.payloads import CUT_BYTES, mask_text, show_json, show_text

from .command_log import command_log, plain_text
from .common import api_error, render_page, wants_partial
from .extensions import sees_secrets
from .formatting import size_label
from .ingest import execution_url
from .links import link_builder
from .run_parts import run_parts_of
from .trace import slice_start, trace_of

bp = Blueprint("executions", __name__)

PAGE = "executions/show.html"
TEXT_PARTS = ("logs", "stack")


@bp.get("/executions/<int:execution_id>")
def show(execution_id: int):
    """The page; while the execution is live, htmx polls it for the refreshed section."""
    since = request.args.get("since")
    version = None if since is None else whole_number(since, 0, MAX_ID)
    if since is not None and version is None:
        abort(400, "since must be the version number the page was rendered at.")
    if version is not None and wants_partial() and execution_version(execution_id) == version:
        return "", 204  # nothing changed: htmx keeps the page as it is and polls again
    return _render(_execution_or_404(execution_id, with_steps=True), "execution")


@bp.get("/executions/<int:execution_id>/steps")
def steps(execution_id: int):
    """A slice of the step list from position `from`: the page showing it, or the rows alone."""
    start = whole_number(request.args.get("from", "0"), 0, MAX_POSITION)
    if start is None:
        abort(400, f"from must be a step position (0 to {MAX_POSITION}).")
    execution = _execution_or_404(execution_id, with_steps=True)  # the rows need them too
    return _render(execution, "steps", steps_from=start)


@bp.get("/executions/<int:execution_id>/steps/<int:position>")
def step(execution_id: int, position: int):
    """One step's input, output, logs and error: the page with it open, or the panel alone."""
    execution = _execution_or_404(execution_id)
    selected = _step_or_404(execution, position)
    return _render(execution, "step", selected=selected,
                   steps_from=slice_start(execution.steps, position, _steps_per_page()))


@bp.get("/executions/<int:execution_id>/payloads/<any(input, output, stack):part>")
def execution_payload(execution_id: int, part: str):
    """A cut payload of the execution in whole: the page with it whole, or the block alone."""
    execution = _execution_or_404(execution_id)
    stored = {"input": execution.input, "output": execution.output,
              "stack": _stack(execution.error)}[part]
    block = payload_block(execution.id, None, part, stored, whole=True)
    return _render(execution, "payload", block=block, whole_part=part)


@bp.get("/executions/<int:execution_id>/steps/<int:position>/payloads/"
        "<any(input, output, logs, stack):part>")
def step_payload(execution_id: int, position: int, part: str):
    """A cut payload of a step in whole: the page with the step open, or the block alone."""
    execution = _execution_or_404(execution_id)
    selected = _step_or_404(execution, position, whole_part=part)
    return _render(execution, "payload", selected=selected, block=selected["blocks"][part])


@bp.get("/executions/<int:execution_id>/compare")
def compare(execution_id: int):
    """What differs from the most recent successful execution of the same workflow;
    `unchanged=1` lists the same values too, `hide_ids=1` leaves out changed ids and times."""
    execution = _execution_or_404(execution_id)
    options = CompareOptions(unchanged=request.args.get("unchanged") == "1",
                             hide_volatile=request.args.get("hide_ids") == "1")
    return _render(execution, "compare",
                   comparison=compare_with_last_success(execution, options))


@bp.get("/api/automations/executions/<int:execution_id>")
def api_detail(execution_id: int):
    """The execution with its input, output, error and every step, whole; masked as the
    pages mask it for callers who may not see secrets (tokens without `admin`)."""
    masked = not sees_secrets()
    extra = {key: value for part in run_parts_of(current_app)
             for key, value in part.read(execution_id, masked).items()}
    body = api_document(execution_id, execution_url(execution_id), masked, extra)
    if body is None:
        return api_error(404, "not_found", f"There is no execution {execution_id}.")
    return Response(body, mimetype="application/json")


# --- Presenting the page and its fragments -------------------------------------------------

def _execution_or_404(execution_id: int, with_steps: bool | None = None) -> ExecutionDetail:
    # A fragment needs the execution's row only; the trace's steps are read for whole pages.
    wanted = not wants_partial() if with_steps is None else with_steps
    execution = load_execution(execution_id, with_steps=wanted)
    if execution is None:
        abort(404, f"There is no execution {execution_id}.")
    return execution


def _step_or_404(execution: ExecutionDetail, position: int,
                 whole_part: str | None = None) -> dict:
    found = load_step(execution.id, position)
    if found is None:
        abort(404, f"Execution {execution.id} has no step at position {position}.")
    return step_view(execution.id, *found, whole_part=whole_part)


def _steps_per_page() -> int:
    return current_app.config["RUN_STEPS_PER_PAGE"]


def present_trace(execution: ExecutionDetail, steps_from: int = 0, **_) -> dict:
    """The waterfall of every step and the slice of the step list from `steps_from`."""
    return {"trace": trace_of(execution, utcnow(), steps_from, _steps_per_page()),
            "step_url": step_urls(execution.id)}


def present_execution(execution: ExecutionDetail, steps_from: int = 0,
                      whole_part: str | None = None) -> dict:
    """The execution section: masked, cut payloads, the error, the trace."""
    error, error_step = execution.error, None
    if error is None and execution.failed_step is not None:
        # No execution-level error was reported: the first failed step's error explains it.
        error, error_step = step_error(execution.id, execution.failed_step), execution.failed_step
    stack = payload_block(execution.id, error_step, "stack", _stack(error),
                          whole_part == "stack", dom_id="run-stack")
    failed_row = next((s for s in execution.steps if s.position == execution.failed_step), None)
    return {
        "input_block": payload_block(execution.id, None, "input", execution.input,
                                     whole_part == "input"),
        "output_block": payload_block(execution.id, None, "output", execution.output,
                                      whole_part == "output"),
        "error": error_view(error), "error_step": error_step, "stack_block": stack,
        "failed_row": failed_row, "poll_seconds": current_app.config["RUN_REFRESH_SECONDS"],
        "log": command_log(execution.output),
        # The comparison is offered only when there is a success to compare with.
        "can_compare": last_success(execution) is not None,
        "run_parts": [(part.template, part.page(execution) if part.page
                       else part.read(execution.id, True)) for part in run_parts_of(current_app)],
        **present_trace(execution, steps_from),
    }


def _nothing_more(execution: ExecutionDetail, **_) -> dict:
    return {}


# Each fragment: its template and what it needs beyond the context its route gives.
# A request that is not a partial gets the whole page, which is the execution fragment's.
FRAGMENTS: dict[str, tuple[str, Callable[..., dict]]] = {
    "execution": ("executions/_execution.html", present_execution),
    "steps": ("executions/_steps.html", present_trace),
    "step": ("executions/_step.html", _nothing_more),
    "payload": ("executions/_payload.html", _nothing_more),
    "compare": ("executions/_compare.html", _nothing_more),
}


def _render(execution: ExecutionDetail, fragment: str, whole_part: str | None = None,
            steps_from: int = 0, **context):
    """The fragment for htmx, or the whole page with the fragment's part in place."""
    if not wants_partial():
        fragment = "execution"
    template, present = FRAGMENTS[fragment]
    context.update(present(execution, steps_from=steps_from, whole_part=whole_part))
    return render_page(PAGE, template, run=execution, **context)


def step_urls(execution_id: int) -> Callable[[int], str]:
    """The link to each step of one execution."""
    build = link_builder("executions.step")
    return lambda position: build(execution_id=execution_id, position=position)


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
    """An error's message and type as the page shows them (secrets in the message masked,
    a terminal's colour codes left out)."""
    if error is None:
        return None
    return {"message": mask_text(plain_text(error.get("message") or "")),
            "type": error.get("type")}


def _stack(error: dict | None) -> str | None:
    return (error or {}).get("stack")


def payload_block(execution_id: int, position: int | None, part: str, stored: str | None,
                  whole: bool = False, dom_id: str | None = None) -> dict:
    """A payload ready for `_payload.html`: the shown text and where the rest is."""
    show = show_text if part in TEXT_PARTS else show_json
    shown = show(stored, None if whole else CUT_BYTES)
    if position is None:
        rest = url_for("executions.execution_payload", execution_id=execution_id, part=part)
    else:
        rest = url_for("executions.step_payload", execution_id=execution_id,
                       position=position, part=part)
    dom_id = dom_id or (f"run-{part}" if position is None else f"step-{position}-{part}")
    return {"part": part, "shown": shown, "rest_url": rest, "dom_id": dom_id,
            "cut_label": size_label(CUT_BYTES), "size_label": size_label(shown.stored_bytes)}
