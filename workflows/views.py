"""Workflows: the overview `/workflows`, one workflow's page, their API and settings."""
from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, request, url_for)
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from alerts.badges import badges_of
from history import changes
from history.changes import cache
from history.filters import FilterError, HistoryFilter
from reruns.forms import HookForm
from reruns.settings import hook_of
from models.times import from_micros, iso, utcnow
from models.executions import STATUSES
from models.inputs import EARLIEST_QUERY_DATE, LATEST_QUERY_DATE
from models.schemas import InputError, parse
from workflows import settings as workflow_settings
from workflows.errors import error_groups
from workflows.answers import attachments, links, workflow_json
from workflows.forms import (MUTE_CHOICES, form_settings, next_expected,
                             schedule_preview, settings_form)
from workflows.models import STATES
from workflows.schemas import (DETAIL_PARAMETERS, LIST_PARAMETERS, MAX_DESCRIPTION, MAX_DURATION,
                               MAX_GRACE, SettingsIn, WorkflowAnswer, WorkflowDetail,
                               WorkflowList)
from workflows.stats import (PAGE_LIMIT, OverviewQuery, WorkflowQueryError,
                             encode_cursor, figures, metrics, overview_page, state_counts,
                             summary_of)

from views.common import api_error, render_page, wants_partial
from views.formatting import ago, format_duration, iso_micros, local, viewer_zone
from views.links import absolute_url
from views.operations import Operation

bp = Blueprint("workflows", __name__)
# What the API document says of each endpoint of the workflows API.
OPERATIONS = {
    "workflows.api_list": Operation({200: WorkflowList}, query=LIST_PARAMETERS),
    "workflows.api_show": Operation({200: WorkflowDetail}, query=DETAIL_PARAMETERS),
    "workflows.api_update": Operation({200: WorkflowAnswer, 201: WorkflowAnswer}, SettingsIn),
}
API = "/api/automations/workflows"
DEFAULT_DAYS = 30
MAX_DAYS = 400
QUICK_DAYS = (7, 30, 90)


def _period(args, default_tz: str = "UTC") -> HistoryFilter:
    """The period of a workflow's figures: `from`/`to`/`tz` as the history reads them,
    the last 30 days by default; without `tz`, in `default_tz`."""
    chosen = MultiDict([(key, value) for key in ("from", "to", "tz")
                        for value in args.getlist(key)])
    f = HistoryFilter.from_args(chosen, secret=current_app.secret_key,
                                path=url_for("history.index"), default_tz=default_tz)
    today = utcnow().astimezone(f.zone).date()
    if f.start is None:
        end_day = today if f.end is None else from_micros(f.end.micros).astimezone(f.zone).date()
        first = max(end_day - timedelta(days=DEFAULT_DAYS - 1), EARLIEST_QUERY_DATE)
        f = f.but(start=f._bound_as_written(first.isoformat(), False))
    if f.end is None:
        last = max(today, from_micros(f.start.micros).astimezone(f.zone).date())
        if last > LATEST_QUERY_DATE:  # e.g. 2100-01-01T10:00-14:00 is 2100-01-02 in UTC
            raise FilterError({"from": f"from falls on {last} in {f.tz}; a period ends by "
                                       f"{LATEST_QUERY_DATE} at the latest"})
        f = f.but(end=f._bound_as_written(last.isoformat(), True))
    days = (f.end.micros - f.start.micros) // 86_400_000_000
    if days >= MAX_DAYS:
        raise FilterError({"from": f"the period may be at most {MAX_DAYS} days"})
    return f


def _detail(row, period: HistoryFilter) -> dict:
    execution_url, workflow_url = links()
    # Everything below is kept until the runs change, like the history's counts.
    version = changes.current()
    figure = figures([row], utcnow(), version)[row.workflow_id]
    acks, hooks = attachments([row])
    body = workflow_json(row, figure, execution_url, workflow_url, acks.get(row.workflow_id),
                         hooks[row.workflow_id])
    start, end = period.start.micros, period.end.micros
    history = period.but(workflows=(row.name,), path=absolute_url("history.index"))
    failures = history.but(statuses=("failure",))
    body["period"] = {"from": iso(from_micros(start)), "to": iso(from_micros(end)),
                      "tz": period.tz}
    body["metrics"] = cache.get(version, ("workflow days", row.workflow_id, start, end,
                                          period.zone),
                                lambda: metrics(row.workflow_id, start, end, period.zone))
    groups = cache.get(version, ("workflow errors", row.workflow_id, start, end),
                       lambda: error_groups(row.workflow_id, start, end))
    body["errors"] = [{
        "fingerprint": g["fingerprint"], "type": g["type"], "message": g["message"],
        "count": g["count"], "first_seen": iso_micros(g["first_seen"]),
        "last_seen": iso_micros(g["last_seen"]),
        "last_execution_url": execution_url(execution_id=g["last_execution_id"]),
        "history_url": failures.url_with(),
    } for g in groups]
    body["history_url"] = history.url_with()
    return body


def _not_found(name: str):
    return api_error(404, "not_found", f"There is no workflow named {name!r}.")


# --- API ---------------------------------------------------------------------------------

@bp.get(API)
def api_list():
    """Workflows: late, then failing, then the rest, by name; one keyset page."""
    try:
        query = OverviewQuery.from_args(request.args)
    except WorkflowQueryError as exc:
        return api_error(400, "invalid", str(exc), exc.field)
    rows, next_cursor = overview_page(query)
    found = figures(rows, utcnow())
    acks, hooks = attachments(rows)
    execution_url, workflow_url = links()
    return jsonify({"data": [workflow_json(r, found[r.workflow_id], execution_url, workflow_url,
                                           acks.get(r.workflow_id), hooks[r.workflow_id])
                             for r in rows],
                    "next_cursor": encode_cursor(next_cursor) if next_cursor else None})


@bp.get(f"{API}/<path:name>")
def api_show(name: str):
    """One workflow with its days and error groups over a period."""
    period = _period(request.args)
    row = summary_of(name)
    if row is None:
        return _not_found(name)
    body = _detail(row, period)
    del body["history_url"]
    return jsonify(body)


@bp.patch(f"{API}/<path:name>")
def api_update(name: str):
    """Change a workflow's settings; a name that has not reported yet is created (201)."""
    _check_name(name)
    parsed = parse(SettingsIn, request.get_data(),
                   context=workflow_settings.validation_context())
    _, created = workflow_settings.update(
        name, {field: getattr(parsed, field) for field in parsed.model_fields_set})
    row = summary_of(name)
    execution_url, workflow_url = links()
    figure = figures([row], utcnow())[row.workflow_id]
    acks, hooks = attachments([row])
    response = jsonify(workflow_json(row, figure, execution_url, workflow_url,
                                     acks.get(row.workflow_id), hooks[row.workflow_id]))
    if created:
        response.headers["Location"] = url_for("workflows.api_show", name=name)
    return response, 201 if created else 200


def _check_name(name: str) -> None:
    from models.inputs import control_character
    if not 1 <= len(name) <= 200 or control_character(name):
        raise InputError("name: a workflow name has 1 to 200 characters and no control "
                         "characters", "name")


# --- pages -------------------------------------------------------------------------------

@bp.get("/workflows")
def index():
    """The overview: which workflows need attention."""
    try:
        query = OverviewQuery.from_args(request.args, default_limit=PAGE_LIMIT)
    except WorkflowQueryError as exc:
        return render_page("workflows/index.html", "workflows/_list.html", status=400,
                           **_overview_context(OverviewQuery(limit=PAGE_LIMIT,
                                                             default_limit=PAGE_LIMIT),
                                               {exc.field: str(exc)}, request.args))
    body, status, headers = render_page("workflows/index.html", "workflows/_list.html",
                                        **_overview_context(query, {}, request.args))
    if wants_partial():
        headers["HX-Push-Url"] = _overview_url(query.to_args())
    return body, status, headers


def _overview_url(args) -> str:
    query = urlencode(args)
    return url_for("workflows.index") + ("?" + query if query else "")


def _overview_context(query: OverviewQuery, errors: dict, args) -> dict:
    now = utcnow()
    rows, next_cursor = ([], None) if errors else overview_page(query)
    found = figures(rows, now)
    acks, _ = attachments(rows)
    execution_url, workflow_url = links(external=False)
    items = []
    for row in rows:
        figure = found[row.workflow_id]
        body = workflow_json(row, figure, execution_url, workflow_url, acks.get(row.workflow_id))
        items.append({"row": row, "json": body, "strip": _strip(body["recent_runs"]),
                      "last_ago": ago(from_micros(figure.recent[0][2]), now,
                                      local(from_micros(figure.recent[0][2])))
                      if figure.recent else None,
                      "expected_in": _relative(row.expected_at, now)
                      if row.schedule and row.expected_at else None})
    return {"query": query, "errors": errors, "items": items, "states": STATES,
            "badges": badges_of([row.name for row in rows], now),
            "counts": state_counts(), "form": {"q": args.get("q", ""),
                                               "state": args.getlist("state")},
            "next_url": _overview_url(query.to_args(cursor=next_cursor)) if next_cursor
            else None,
            "first_url": _overview_url(query.to_args(cursor=None)) if query.cursor else None}


def _strip(runs: list[dict]) -> Markup:
    """The last runs as small marks, oldest first, each a link to its run (built here, not
    in the template: a page has 1,000 of them). Nothing in them needs escaping: ids are
    integers, statuses one of four words, URLs our prefix and an id."""
    return Markup("".join(
        f'<a class="mark mark-{r["status"]}" href="{r["url"]}" title="Run {r["id"]}: '
        f'{r["status"]}" aria-label="Run {r["id"]}: {r["status"]}"></a>'
        for r in reversed(runs)))


def _relative(moment: datetime, now: datetime) -> str:
    seconds = (moment - now).total_seconds()
    ahead = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        words = f"{int(seconds)} s"
    elif seconds < 3600:
        words = f"{round(seconds / 60)} min"
    elif seconds < 86400:
        words = f"{round(seconds / 3600)} h"
    else:
        words = f"{round(seconds / 86400)} d"
    return f"in {words}" if ahead else f"{words} ago"


@bp.get("/workflows/<path:name>")
def show(name: str):
    """One workflow: its numbers, days, error groups and settings."""
    row = summary_of(name)
    if row is None:
        abort(404, f"There is no workflow named {name!r}.")
    try:
        period = _period(request.args, viewer_zone().key)
    except FilterError as exc:
        period = _period(MultiDict(), viewer_zone().key)
        return _show_page(row, period, exc.errors, status=400)
    return _show_page(row, period, {})


@bp.post("/workflows/<path:name>")
def save_settings(name: str):
    """The settings form: save, or show what is wrong beside each field."""
    row = summary_of(name)
    if row is None:
        abort(404, f"There is no workflow named {name!r}.")
    values = form_settings(request.form)
    hook_form = HookForm.read(request.form, hook_of(row.workflow_id))
    if hook_form is not None:
        values["rerun"] = hook_form.value
    errors = {**workflow_settings.form_errors(values), **(hook_form.errors if hook_form else {})}
    if errors:
        return _settings_answer(row, values, errors, status=400, hook_form=hook_form)
    workflow_settings.update(name, workflow_settings.validate(values, strict=False))
    if wants_partial():
        return _settings_answer(summary_of(name), None, {}, saved=True)
    flash("Settings saved.")
    return redirect(url_for("workflows.show", name=name), code=303)


def _settings_answer(row, values, errors, status: int = 200, saved: bool = False,
                     hook_form: HookForm | None = None):
    form = settings_form(row, values)
    return render_page("workflows/_settings.html", "workflows/_settings.html", status=status,
                       **_settings_context(row, form, errors, saved, hook_form))


def _settings_context(row, form, errors, saved=False, hook_form: HookForm | None = None) -> dict:
    return {"row": row, "settings_form": form, "settings_errors": errors, "saved": saved,
            "hook_form": hook_form or HookForm.shown(hook_of(row.workflow_id)),
            "next_expected": next_expected(row),
            "preview": schedule_preview(form.get("schedule"), form.get("timezone")),
            "max_grace": MAX_GRACE,
            "max_duration": MAX_DURATION, "max_description": MAX_DESCRIPTION}


@bp.get("/schedule-preview")
def preview():
    """What the settings form shows under the schedule while it is typed."""
    return render_page("workflows/_preview.html", "workflows/_preview.html",
                       preview=schedule_preview(request.args.get("schedule"),
                                        request.args.get("timezone")))


def _show_page(row, period: HistoryFilter, errors: dict, status: int = 200):
    detail = _detail(row, period)
    now = utcnow()
    today = now.astimezone(period.zone).date()
    here = url_for("workflows.show", name=row.name)
    quick = []
    for days in QUICK_DAYS:
        args = [("from", (today - timedelta(days=days - 1)).isoformat()),
                ("to", today.isoformat())]
        if period.tz != period.default_tz:
            args.append(("tz", period.tz))
        quick.append((f"{days}d", here + "?" + urlencode(args)))
    context = {
        "row": row, "detail": detail, "period": period, "errors": errors,
        "period_form": {"from": period.start.text, "to": period.end.text, "tz": period.tz},
        "charts": _charts(detail["metrics"]["days"]), "quick": quick, "statuses": STATUSES,
        "badges": badges_of([row.name], now).get(row.name),
        "mute_choices": [choice for choice, length in MUTE_CHOICES.items() if length],
        **_settings_context(row, settings_form(row, None), {}),
    }
    return render_page("workflows/show.html", "workflows/show.html", status=status, **context)


def _charts(days: list[dict]) -> dict:
    """Bars of runs per day stacked by status, and of p50/p95 durations, as SVG numbers."""
    highest = max((sum(day[s] for s in STATUSES) for day in days), default=0)
    slowest = max((day["duration_p95_ms"] or 0 for day in days), default=0)
    bars = []
    for index, day in enumerate(days):
        total = sum(day[s] for s in STATUSES)
        segments, top = [], 100.0
        for status in STATUSES:
            if day[status] and highest:
                height = 100.0 * day[status] / highest
                top -= height
                segments.append((status, top, height))
        p50, p95 = day["duration_p50_ms"], day["duration_p95_ms"]
        bars.append({
            "x": index, "date": day["date"], "total": total, "segments": segments,
            "title": f"{day['date']}: {total} runs" + "".join(
                f", {day[s]} {s}" for s in STATUSES if day[s]),
            "p50": 100.0 * p50 / slowest if p50 and slowest else 0,
            "p95": 100.0 * p95 / slowest if p95 and slowest else 0,
            "duration_title": (f"{day['date']}: p50 {format_duration(p50)}, p95 {format_duration(p95)}"
                               if p95 is not None else f"{day['date']}: no finished runs"),
            "day": day,
        })
    return {"bars": bars, "count": len(bars), "highest": highest, "slowest": format_duration(slowest)}


