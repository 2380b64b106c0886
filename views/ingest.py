"""The ingestion API: automations report their runs and steps here."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from models.execution_detail import execution_summary
from models.ingest import add_steps, patch_execution, store_executions
from models.schemas import BatchIn, ExecutionIn, ExecutionPatch, StepBudget, StepsIn, parse

from .common import api_error
from .extensions import sees_secrets
from .links import absolute_url, link_builder

bp = Blueprint("ingest", __name__, url_prefix="/api/automations/executions")


def execution_url(execution_id: int) -> str:
    """The absolute address of an execution's page."""
    return absolute_url("executions.show", execution_id=execution_id)


def _answer(execution_id: int, status: int):
    body = execution_summary(execution_id, masked=not sees_secrets())
    body["url"] = execution_url(execution_id)
    return jsonify(body), status


def _body(schema):
    """The request body read against `schema`, its steps counted against the limits."""
    config = current_app.config
    return parse(schema, request.get_data(), StepBudget(config["MAX_STEPS_PER_REQUEST"],
                                                        config["MAX_STEPS_PER_RUN"]))


def _not_found(execution_id: int):
    return api_error(404, "not_found", f"There is no execution {execution_id}.")


@bp.post("")
def create():
    """Store one run with its steps; the same external_id again updates it."""
    item = _body(ExecutionIn)
    [(execution_id, created)] = store_executions([item])
    return _answer(execution_id, 201 if created else 200)


@bp.post("/batch")
def create_batch():
    """Store up to 1000 runs, all or none."""
    batch = _body(BatchIn)
    stored = store_executions(batch.executions, in_batch=True)
    url = link_builder("executions.show", external=True)  # the URL map bound once
    return jsonify({"data": [{"id": i, "url": url(execution_id=i), "created": created}
                             for i, created in stored]}), 201


@bp.patch("/<int:execution_id>")
def update(execution_id: int):
    """Change status, finished_at, error or output of a run."""
    patch = _body(ExecutionPatch)
    if not patch_execution(execution_id, patch):
        return _not_found(execution_id)
    return _answer(execution_id, 200)


@bp.post("/<int:execution_id>/steps")
def steps(execution_id: int):
    """Append steps to a run, or replace those at the same position."""
    body = _body(StepsIn)
    if not add_steps(execution_id, body.steps):
        return _not_found(execution_id)
    return _answer(execution_id, 200)
