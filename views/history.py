"""The execution history: the page `/executions` and the API that shares its query string."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Callable

from flask import Blueprint, current_app, jsonify, redirect, request, url_for

from models import Execution, Workflow
from models.db import iso, to_micros, utcnow
from models.executions import STATUSES
from history.filters import SORTS, FilterError, HistoryFilter, list_query
from history.rollups import DAY, bar_edges, count_bars, started_extent, total

from .common import render_page, wants_partial
from .ingest import execution_url

bp = Blueprint("history", __name__)
QUICK_RANGES = (("1h", timedelta(hours=1)), ("24h", timedelta(days=1)),
                ("7d", timedelta(days=7)), ("30d", timedelta(days=30)))
FRESH_POLL_SECONDS = 20
MAX_FRESH = 100
WORKFLOW_SUGGESTIONS = 1000


def parse_filter() -> HistoryFilter:
    """The history filter of this request (raises FilterError on bad parameters)."""
    return HistoryFilter.from_args(request.args, secret=current_app.secret_key)


def history_url(f: HistoryFilter | None = None, endpoint: str = "history.index") -> str:
    """The page (or another endpoint) for `f`, with its canonical query string."""
    query = f.query_string() if f else ""
    return url_for(endpoint) + ("?" + query if query else "")


def _window(f: HistoryFilter, ids: list[int] | None) -> tuple[int, int] | None:
    if ids == []:
        return None
    earliest, latest = started_extent(ids)
    return f.time_window(earliest, latest, utcnow())


def _counts(ids: list[int] | None, edges: list[int]) -> tuple[list[dict], dict[str, int]]:
    bars = count_bars(ids, edges)
    return bars, total(bars)


def _matching(f: HistoryFilter, counts: dict[str, int]) -> int:
    return sum(counts[status] for status in f.statuses or STATUSES)


@bp.get("/api/automations/executions")
def api_list():
    """Runs matching the filter, one keyset page, with counts per status."""
    f = parse_filter()
    ids = f.workflow_ids()
    window = _window(f, ids)
    _, counts = _counts(ids, list(window) if window else [])
    rows, next_cursor = f.page(list_query(), _matching(f, counts))
    return jsonify({
        "data": [{"id": r.id, "workflow": r.workflow_name, "status": r.status,
                  "started_at": iso(r.started_at), "finished_at": iso(r.finished_at),
                  "duration_ms": r.duration_ms, "step_count": r.step_count,
                  "error_message": r.error_message, "url": execution_url(r.id)} for r in rows],
        "next_cursor": f.encode_cursor(next_cursor) if next_cursor else None,
        "counts": counts,
    })


@bp.get("/")
def home():
    """The start page is the history."""
    return index()


@bp.get("/executions")
def index():
    """The history page: filter form, status chips, histogram and one page of runs."""
    try:
        f = parse_filter()
    except FilterError as exc:
        return render_page("history/index.html", "history/_results.html", status=400,
                           form=_form_values(), errors=exc.errors, **_choices())
    canonical = f.query_string()
    if not wants_partial() and request.query_string.decode() != canonical:
        # Plain form submissions carry empty fields: send them to the canonical address.
        return redirect(history_url(f))
    body, status, headers = render_page("history/index.html", "history/_results.html",
                                        **_history(f), **_choices())
    if wants_partial():
        headers["HX-Push-Url"] = history_url(f)
    return body, status, headers


@bp.get("/executions/new")
def fresh():
    """How many runs matching the filter arrived after run `after` (polled by the page)."""
    try:
        f = parse_filter()
        after = int(request.args.get("after", ""))
    except (FilterError, ValueError):
        return "Bad filter or `after`.", 400
    new = (Execution.select(Execution.id).where(*f.conditions(), Execution.id > after)
           .limit(MAX_FRESH).count())
    return render_page("history/_fresh.html", "history/_fresh.html", f=f, after=after,
                       new=new, max_new=MAX_FRESH, poll=FRESH_POLL_SECONDS,
                       page_url=history_url(f))


def _history(f: HistoryFilter) -> dict:
    base = url_for("history.index")

    def link(query: str) -> str:
        return base + ("?" + query if query else "")

    ids = f.workflow_ids()
    window = _window(f, ids)
    edges, width = bar_edges(*window, f.zone) if window else ([], 0)
    bars, counts = _counts(ids, edges)
    rows, next_cursor = f.page(list_query(), _matching(f, counts))
    now = utcnow()
    live = (f.cursor is None and f.sort == "-started_at"
            and (f.end is None or f.end.micros >= to_micros(now)))
    return {
        "f": f, "form": _form_values(), "errors": {}, "counts": counts,
        "all_total": sum(counts.values()),
        "shown_total": _matching(f, counts),
        "histogram": _histogram(f, edges, width, bars, link),
        "rows": _rows(f, rows, now, link),
        "older_url": link(f.but(cursor=next_cursor).query_string()) if next_cursor else None,
        "newest_url": link(f.but().query_string()) if f.cursor else None,
        "quick_ranges": [(label, link(f.with_range(_minute(f, now - delta), None)))
                         for label, delta in QUICK_RANGES],
        "fresh_url": (history_url(f, "history.fresh") + ("&" if f.to_args() else "?")
                      + f"after={rows[0].id if rows else 0}") if live else None,
        "poll": FRESH_POLL_SECONDS,
        "clear_url": link(""),
    }


def _choices() -> dict:
    names = (Workflow.select(Workflow.name).order_by(Workflow.name)
             .limit(WORKFLOW_SUGGESTIONS).tuples())
    return {"workflow_names": [n for (n,) in names], "statuses": STATUSES, "sorts": SORTS}


def _form_values() -> dict:
    """What the form shows: the request's own values, so a bad one can be corrected."""
    args = request.args
    statuses = {part.strip() for value in args.getlist("status") for part in value.split(",")}
    return {"workflow": list(dict.fromkeys(w for w in args.getlist("workflow") if w)),
            "status": statuses,
            **{name: args.get(name, "") for name in ("from", "to", "tz", "sort", "limit")}}


def _minute(f: HistoryFilter, moment: datetime) -> str:
    return moment.astimezone(f.zone).replace(tzinfo=None).isoformat(timespec="minutes")


def _histogram(f: HistoryFilter, edges: list[int], width: int, bars: list[dict],
               link: Callable[[str], str]) -> dict:
    shown = f.statuses or STATUSES
    highest = max((sum(bar[s] for s in shown) for bar in bars), default=0)
    out = []
    for start, end, bar in zip(edges, edges[1:], bars):
        local_start, local_end = f.local(start), f.local(end - 1)
        label = local_start.strftime("%Y-%m-%d" if width >= DAY else "%Y-%m-%d %H:%M")
        if _is_midnight(local_start) and _is_midnight(f.local(end)):
            span = (local_start.date().isoformat(), local_end.date().isoformat())
        else:
            span = (local_start.replace(tzinfo=None).isoformat(),
                    local_end.replace(tzinfo=None).isoformat())
        runs = sum(bar[s] for s in shown)
        out.append({
            "label": label, "url": link(f.with_range(*span)), "runs": runs,
            "segments": [(s, bar[s], 100.0 * bar[s] / highest if highest else 0)
                         for s in shown if bar[s]],
            "title": f"{label}: {runs} runs" + "".join(f", {bar[s]} {s}" for s in shown
                                                       if bar[s]),
        })
    return {"bars": out, "highest": highest, "shown": shown,
            "first": out[0]["label"] if out else "", "last": out[-1]["label"] if out else ""}


def _is_midnight(moment: datetime) -> bool:
    return moment.time() == time()


def _rows(f: HistoryFilter, rows: list, now: datetime,
          link: Callable[[str], str]) -> list[dict]:
    by_workflow: dict[str, str] = {}
    out = []
    for run in rows:
        name = run.workflow_name
        if name not in by_workflow:
            by_workflow[name] = link(f.but(workflows=(name,)).query_string())
        local = run.started_at.astimezone(f.zone)
        out.append({
            "id": run.id, "status": run.status, "workflow": name,
            "workflow_url": by_workflow[name], "started_iso": iso(run.started_at),
            "started_exact": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "started_ago": _ago(run.started_at, now, local), "duration_ms": run.duration_ms,
            "step_count": run.step_count, "error_message": run.error_message,
            "url": url_for("executions.show", execution_id=run.id),
        })
    return out


def _ago(moment: datetime, now: datetime, local: datetime) -> str:
    seconds = (now - moment).total_seconds()
    if seconds < 45:
        return "just now" if seconds > -60 else local.strftime("%Y-%m-%d %H:%M")
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    if seconds < 30 * 86400:
        return f"{round(seconds / 86400)} d ago"
    return local.strftime("%Y-%m-%d")
