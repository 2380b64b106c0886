"""Sources: the API `/api/automations/sources` and the Sources page under Settings (add,
pause and resume, pull now, delete, and what each source's last pull did)."""
from __future__ import annotations

import json

from flask import Blueprint, current_app, flash, jsonify, redirect, request, url_for
from pydantic import ValidationError

from alerts.config import ALLOW_PRIVATE
from models.inputs import MAX_ID, whole_number
from models.schemas import InputError, input_error
from views.common import api_error, render_page
from views.extensions import sees_secrets
from views.operations import Operation

from .kinds import KINDS
from .models import Source
from .schemas import (DEFAULT_INTERVAL, DEFAULT_LIMIT, MAX_LIMIT, PARAMETERS, SourceAnswer,
                      SourceIn, SourceList, SourcePatch)
from .service import (create_source, delete_source, list_sources, pull_soon, set_enabled,
                      source_json, update_source)

bp = Blueprint("sources", __name__)
API = "/api/automations/sources"
OPERATIONS = {
    "sources.api_list": Operation({200: SourceList}, query=PARAMETERS),
    "sources.api_create": Operation({201: SourceAnswer}, SourceIn),
    "sources.api_show": Operation({200: SourceAnswer}),
    "sources.api_update": Operation({200: SourceAnswer}, SourcePatch),
    "sources.api_delete": Operation({204: None}),
}
FORM_FIELDS = ("type", "url", "token", "interval_seconds")
PAGE_SOURCES = 500  # sources the page lists; the API pages through any number


def _parse(schema, body: bytes):
    """A JSON body validated by `schema` (URLs under the private-address rule)."""
    try:
        return schema.model_validate_json(body or b"", context={
            ALLOW_PRIVATE: bool(current_app.config["WEBHOOK_ALLOW_PRIVATE"])})
    except ValidationError as exc:
        raise input_error(exc) from None


def _not_found(source_id: int):
    return api_error(404, "not_found", f"There is no source {source_id}.")


def _answer(source: Source, status: int = 200):
    return jsonify(source_json(source, sees_secrets())), status


def _whole_arg(name: str, high: int) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    value = whole_number(raw, 1, high)
    if value is None:
        raise InputError(f"{name}: must be a whole number from 1 to {high}", name)
    return value


# --- API -----------------------------------------------------------------------------------

@bp.get(API)
def api_list():
    """Sources, oldest first: `limit`, `cursor`."""
    after, limit = _whole_arg("cursor", MAX_ID), _whole_arg("limit", MAX_LIMIT)
    sources, next_id = list_sources(after, limit or DEFAULT_LIMIT)
    reveal = sees_secrets()
    return jsonify({"data": [source_json(s, reveal) for s in sources],
                    "next_cursor": str(next_id) if next_id else None})


@bp.post(API)
def api_create():
    """Add a source; its first pull is due at once."""
    source = create_source(_parse(SourceIn, request.get_data()))
    response, status = _answer(source, 201)
    response.headers["Location"] = url_for("sources.api_show", source_id=source.id)
    return response, status


@bp.get(f"{API}/<int:source_id>")
def api_show(source_id: int):
    """One source."""
    source = Source.get_or_none(Source.id == source_id)
    return _answer(source) if source else _not_found(source_id)


@bp.patch(f"{API}/<int:source_id>")
def api_update(source_id: int):
    """Change a source: `url`, `token` (null removes it), `interval_seconds`, `enabled`."""
    source = update_source(source_id, _parse(SourcePatch, request.get_data()))
    return _answer(source) if source else _not_found(source_id)


@bp.delete(f"{API}/<int:source_id>")
def api_delete(source_id: int):
    """Delete a source; the runs it brought stay."""
    return ("", 204) if delete_source(source_id) else _not_found(source_id)


# --- The page ------------------------------------------------------------------------------

def _page(status: int = 200, values: dict | None = None, errors: dict | None = None):
    sources, _ = list_sources(None, PAGE_SOURCES)
    return render_page("sources/index.html", "sources/_list.html", status,
                       sources=sources, kinds=KINDS,
                       values=values or {"type": next(iter(KINDS)),
                                         "interval_seconds": str(DEFAULT_INTERVAL)},
                       errors=errors or {})


@bp.get("/settings/sources")
def index():
    """Every source, what its last pull did, and the form that adds one."""
    return _page()


@bp.post("/settings/sources")
def create():
    """Add a source from the form (the API's rules, each error beside its field)."""
    values = {name: request.form.get(name, "") for name in FORM_FIELDS}
    interval = values["interval_seconds"].strip()
    body = {"type": values["type"], "url": values["url"].strip(),
            "token": values["token"] or None,
            "interval_seconds": int(interval) if interval.isascii() and interval.isdigit()
            else interval}
    try:
        source = create_source(_parse(SourceIn, json.dumps(body).encode()))
    except InputError as exc:
        field = exc.field if exc.field in FORM_FIELDS else "url"
        values["token"] = ""  # never sent back to the page
        return _page(400, values, {field: exc.message})
    flash(f"Source {source.id} added: its first pull comes within seconds.")
    return redirect(url_for("sources.index"), 303)


def _acted(source_id: int, done: bool, message: str, shown: bool = True):
    """Back to the page, at the source when it is still listed (`shown`), saying what
    was done."""
    flash(message if done else f"There is no source {source_id}.")
    anchor = f"source-{source_id}" if done and shown else None
    return redirect(url_for("sources.index", _anchor=anchor), 303)


@bp.post("/settings/sources/<int:source_id>/pause")
def pause(source_id: int):
    """Stop pulling a source until it is resumed."""
    return _acted(source_id, set_enabled(source_id, False) is not None,
                  f"Source {source_id} is paused: it is not pulled until you resume it.")


@bp.post("/settings/sources/<int:source_id>/resume")
def resume(source_id: int):
    """Pull a paused source again, the first time at once."""
    return _acted(source_id, set_enabled(source_id, True) is not None,
                  f"Source {source_id} is pulled again, the next time within seconds.")


@bp.post("/settings/sources/<int:source_id>/pull")
def pull(source_id: int):
    """Make a source's pull due now."""
    return _acted(source_id, pull_soon(source_id),
                  f"Source {source_id} is pulled within seconds; reload to see what it brought.")


@bp.post("/settings/sources/<int:source_id>/delete")
def delete(source_id: int):
    """Delete a source (after its confirmation); the runs it brought stay."""
    return _acted(source_id, delete_source(source_id),
                  f"Source {source_id} is deleted; the runs it brought stay.", shown=False)
