"""The execution history: the page `/executions` and the API that shares its query string."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from itertools import chain
from typing import Literal
from urllib.parse import urlencode

from flask import (Blueprint, Response, current_app, flash, jsonify, redirect, request,
                   url_for)

from models import Execution
from models.db import connection
from models.times import to_micros, utcnow
from models.executions import STATUSES
from models.inputs import EARLIEST_QUERY_DATE, LATEST_QUERY_DATE
from models.payloads import mask_text
from models.schemas import QueryParam
from history.export import MEDIA_TYPES, export_lines
from history.filters import PARAMETERS, SORTS, FilterError, HistoryFilter, after_id
from history.parameters import EXPORT_FORMATS
from history.parsing import unknown_parameters
from history.rollups import DAY
from history.schemas import HistoryPage
from history.service import HistoryResult, query_history, workflow_names
from workflows.stats import needing_attention

from views.common import render_page, wants_partial
from views.extensions import sees_secrets
from views.formatting import ago, iso_micros, viewer_zone
from views.links import link_builder
from views.operations import Operation

bp = Blueprint("history", __name__)
KNOWN = tuple(p.name for p in PARAMETERS)
EXPORT_PARAMETERS = (*(p for p in PARAMETERS if p.group in ("filter", "json")),
                     QueryParam("format", Literal[EXPORT_FORMATS],
                                "csv (a header row, then a row per run; the default) or "
                                "ndjson (a JSON object per line)."))
EXPORT_KNOWN = tuple(p.name for p in EXPORT_PARAMETERS)
# What the API document says of the history API.
OPERATIONS = {
    "history.api_list": Operation({200: HistoryPage}, query=PARAMETERS),
    "history.api_export": Operation(
        {200: None}, query=EXPORT_PARAMETERS,
        answer_content={"text/csv": {"schema": {"type": "string"}},
                        "application/x-ndjson": {"schema": {"type": "string"}}}),
}
QUICK_RANGES = (("1h", timedelta(hours=1)), ("24h", timedelta(days=1)),
                ("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
FRESH_POLL_SECONDS = 20
MAX_FRESH = 100
WORKFLOW_SUGGESTIONS = 1000
RUN_ID_MARK = 987654321987654321  # stands for a run's id in the export's address template


def parse_filter(page: bool = True) -> HistoryFilter:
    """The history filter of this request (raises FilterError on bad parameters). Without
    `tz`, a page reads and shows times in the account's zone, the API in UTC."""
    return HistoryFilter.from_args(request.args, secret=current_app.secret_key,
                                   path=url_for("history.index"),
                                   default_tz=viewer_zone().key if page else "UTC")


def refuse_unknown(known: tuple[str, ...], advice: str = "") -> None:
    """400 naming the first parameter of the query string that is none of `known`."""
    unknown = unknown_parameters(request.args, known)
    if unknown:
        listed = ", ".join(repr(name[:40]) for name in unknown)
        raise FilterError({unknown[0]: f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                                       f"{listed}; use {', '.join(known)}{advice}"})


@bp.get("/api/automations/executions")
def api_list():
    """Runs matching the filter, one keyset page, with counts per status."""
    refuse_unknown(KNOWN)
    f = parse_filter(page=False)
    found = query_history(f, utcnow(), with_bars=False)
    execution_url = link_builder("executions.show", external=True)
    reveal = sees_secrets()
    return jsonify({
        "data": [{"id": r.id, "workflow": r.workflow_name, "status": r.status,
                  "started_at": iso_micros(r.started_micros),
                  "finished_at": iso_micros(r.finished_micros),
                  "duration_ms": r.duration_ms, "step_count": r.step_count,
                  "error_message": (r.error_message if reveal or not r.error_message
                                    else mask_text(r.error_message)),
                  "maintenance": bool(r.maintenance),
                  "url": execution_url(execution_id=r.id)}
                 for r in found.rows],
        "next_cursor": f.encode_cursor(found.next_cursor) if found.next_cursor else None,
        "counts": found.counts,
    })


@bp.get("/api/automations/executions/export")
def api_export():
    """Every run matching the filter, newest first, streamed as CSV or NDJSON."""
    refuse_unknown(EXPORT_KNOWN, " (the export streams every matching run, newest first: "
                                 "no sort, limit or cursor)")
    fmt = request.args.get("format") or "csv"
    if fmt not in EXPORT_FORMATS:
        raise FilterError({"format": f"format must be {' or '.join(EXPORT_FORMATS)}"})
    args = request.args.copy()
    args.pop("format", None)
    f = HistoryFilter.from_args(args, secret=current_app.secret_key)
    # One run's address, cut around its id: building a million through the URL map would
    # cost more than reading the runs.
    prefix, suffix = link_builder("executions.show", external=True)(
        execution_id=RUN_ID_MARK).split(str(RUN_ID_MARK))
    lines = export_lines(f, fmt, (prefix, suffix), iso_micros,
                         None if sees_secrets() else mask_text)
    name = f"runwatch-executions.{fmt}"
    # The first batch is read before the answer starts: a failure there is still a clean
    # error status, not a cut-off download.
    first = next(lines, "")
    return Response(chain([first], _connected(lines)), mimetype=MEDIA_TYPES[fmt].split(";")[0],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _connected(lines):
    """The rest of a streamed answer, read on a connection of its own: the request's is
    closed once the view returns, before the answer is sent. (It needs no request context:
    everything it uses from the request was read before.)"""
    with connection():
        yield from lines


@bp.get("/")
def home():
    """The start page is the history."""
    return index()


@bp.get("/executions")
def index():
    """The history page: filter form, status chips, histogram and one page of runs."""
    unknown = [] if wants_partial() else unknown_parameters(request.args, KNOWN)
    if unknown:
        # Dropped with a note, not refused: a link from elsewhere still shows the history.
        flash(f"Ignored the unknown parameter{'s' if len(unknown) > 1 else ''} "
              f"{', '.join(name[:40] for name in unknown)}.")
        kept = [(k, v) for k, v in request.args.items(multi=True) if k in KNOWN]
        try:
            return redirect(HistoryFilter.from_args(
                kept, secret=current_app.secret_key, path=url_for("history.index"),
                default_tz=viewer_zone().key).url_with())
        except FilterError:
            return redirect(url_for("history.index") + ("?" + urlencode(kept) if kept else ""))
    try:
        f = parse_filter()
    except FilterError as exc:
        return render_page("history/index.html", "history/_results.html", status=400,
                           form=exc.values, errors=exc.errors, **_choices())
    if not wants_partial() and request.query_string.decode() != f.query_string():
        # Plain form submissions carry empty fields, `filter=` carries JSON: send both to
        # the canonical address.
        return redirect(f.url_with())
    attention = None if wants_partial() else needing_attention()
    body, status, headers = render_page("history/index.html", "history/_results.html",
                                        **_history(f), **_choices(), attention=attention)
    if wants_partial():
        headers["HX-Push-Url"] = f.url_with()
    return body, status, headers


@bp.get("/executions/new")
def fresh():
    """How many runs matching the filter arrived after run `after` (polled by the page)."""
    try:
        f = parse_filter()
        after = after_id(request.args)
    except FilterError:
        return "Bad filter or `after`.", 400
    new = (Execution.select(Execution.id).where(*f.conditions(), Execution.id > after)
           .limit(MAX_FRESH).count())
    return render_page("history/_fresh.html", "history/_fresh.html", f=f, new=new,
                       max_new=MAX_FRESH, poll=FRESH_POLL_SECONDS, page_url=f.url_with(),
                       fresh_url=f.url_with(path=url_for("history.fresh"), after=after))


def _history(f: HistoryFilter) -> dict:
    now = utcnow()
    found = query_history(f, now)
    live = (f.cursor is None and f.sort == "-started_at"
            and (f.end is None or f.end.micros >= to_micros(now)))
    return {
        "f": f, "form": f.form_values(), "errors": {}, "counts": found.counts,
        "all_total": found.total,
        "shown_total": found.matching,
        "histogram": _histogram(f, found),
        "rows": _rows(f, found.rows, now),
        "older_url": f.url_with(cursor=found.next_cursor) if found.next_cursor else None,
        "newest_url": f.url_with(cursor=None) if f.cursor else None,
        "quick_ranges": [(label, f.url_with(start=_minute(f, now - delta), end=None))
                         for label, delta in QUICK_RANGES],
        "fresh_url": f.url_with(path=url_for("history.fresh"),
                                after=found.rows[0].id if found.rows else 0) if live else None,
        "poll": FRESH_POLL_SECONDS,
        "clear_url": f.cleared().url_with(),
        "csv_url": f.export_url(url_for("history.api_export"), "csv"),
    }


def _choices() -> dict:
    return {"workflow_names": workflow_names(WORKFLOW_SUGGESTIONS), "statuses": STATUSES,
            "sorts": SORTS}


def _minute(f: HistoryFilter, moment: datetime) -> str:
    return moment.astimezone(f.zone).replace(tzinfo=None).isoformat(timespec="minutes")


def _histogram(f: HistoryFilter, found: HistoryResult) -> dict:
    edges, width, bars = found.edges, found.bar_width, found.bars
    shown = f.statuses or STATUSES
    highest = max((sum(bar[s] for s in shown) for bar in bars), default=0)
    at = [f.local(edge) for edge in edges]  # each edge once, not once per bar side
    out = []
    for k, bar in enumerate(bars):
        local_start, local_end = at[k], f.local(edges[k + 1] - 1)
        label = local_start.strftime("%Y-%m-%d" if width >= DAY else "%Y-%m-%d %H:%M")
        if _is_midnight(local_start) and _is_midnight(at[k + 1]):
            span = (local_start.date().isoformat(), local_end.date().isoformat())
        else:
            span = (local_start.replace(tzinfo=None).isoformat(),
                    local_end.replace(tzinfo=None).isoformat())
        zoom = _zoom_span(local_start, local_end, span)
        runs = sum(bar[s] for s in shown)
        out.append({
            "label": label, "runs": runs,
            "url": f.url_with(start=zoom[0], end=zoom[1]) if zoom else None,
            "segments": [(s, bar[s], 100.0 * bar[s] / highest if highest else 0)
                         for s in shown if bar[s]],
            "title": f"{label}: {runs} runs" + "".join(f", {bar[s]} {s}" for s in shown
                                                       if bar[s]),
        })
    return {"bars": out, "highest": highest, "shown": shown,
            "first": out[0]["label"] if out else "", "last": out[-1]["label"] if out else ""}


def _zoom_span(local_start: datetime, local_end: datetime,
               span: tuple[str, str]) -> tuple[str, str] | None:
    """A bar's from/to, cut to the range a query accepts; None for a bar wholly outside it
    (runs that an older release stored far in the past or future)."""
    first, last = local_start.date(), local_end.date()
    if last < EARLIEST_QUERY_DATE or first > LATEST_QUERY_DATE:
        return None
    return (EARLIEST_QUERY_DATE.isoformat() if first < EARLIEST_QUERY_DATE else span[0],
            LATEST_QUERY_DATE.isoformat() if last > LATEST_QUERY_DATE else span[1])


def _is_midnight(moment: datetime) -> bool:
    return moment.time() == time()


def _rows(f: HistoryFilter, rows: list, now: datetime) -> list[dict]:
    by_workflow: dict[str, str] = {}
    execution_url = link_builder("executions.show")
    out = []
    for run in rows:
        name = run.workflow_name
        if name not in by_workflow:
            by_workflow[name] = f.url_with(workflows=(name,))
        local = f.local(run.started_micros)
        out.append({
            "id": run.id, "status": run.status, "workflow": name,
            "workflow_url": by_workflow[name], "started_iso": iso_micros(run.started_micros),
            "started_exact": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "started_ago": ago(run.started_at, now, local), "duration_ms": run.duration_ms,
            "step_count": run.step_count, "error_message": run.error_message,
            "maintenance": bool(run.maintenance), "url": execution_url(execution_id=run.id),
        })
    return out
