"""Failure alerts: the `/alerts` page and the `/api/automations/alerts` API; acknowledging
a workflow's episode (its API route and the pages' button)."""
from __future__ import annotations

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template,
                   request, url_for)
from flask_login import current_user
from pydantic import ValidationError

from alerts.channels import CHANNELS
from alerts.config import config_from, validation_context
from alerts.delivery import deliver_now, redeliver
from alerts.forms import RuleForm
from alerts.maintenance_form import MaintenanceForm
from alerts.models import AlertRule, Notice
from alerts import notices
from alerts.notices import NoticeFilter, attempts_by_notice, notice_json, target_of
from alerts.rules import (channel_json, channels_of, create_rule, delete_rule, list_rules,
                          rule_json, send_test, states_of, update_rule)
from alerts.acknowledge import NothingToAcknowledge, acknowledge
from alerts.maintenance import (MAX_WINDOWS, WindowAnswer, WindowIn, WindowList, create_window,
                                delete_window, list_windows, parse_window, window_json)
from alerts.schemas import (MAX_NOTE, AcknowledgeAnswer, AcknowledgeIn, NoticeAnswer,
                            NoticeList, RuleAnswer, RuleIn, RuleList, RulePatch, SentNotices,
                            parse_rule)
from alerts.watchdog import health
from models.executions import load_json
from models.schemas import InputError, parse
from models.times import iso, utcnow

from views.common import api_error, render_fragment, render_page, safe_next, wants_partial
from views.extensions import sees_secrets
from views.operations import Operation

from .pages import LOG_PAGE, log_context, notices_with_attempts, page_context

bp = Blueprint("alerts", __name__)
# What the API document says of each endpoint of the alerts API.
OPERATIONS = {
    "alerts.api_list": Operation({200: RuleList}),
    "alerts.api_create": Operation({201: RuleAnswer}, RuleIn),
    "alerts.api_show": Operation({200: RuleAnswer}),
    "alerts.api_update": Operation({200: RuleAnswer}, RulePatch),
    "alerts.api_delete": Operation({204: None}),
    "alerts.api_test": Operation({200: SentNotices}),
    "alerts.api_notices": Operation({200: NoticeList}, query=notices.PARAMETERS),
    "alerts.api_notice": Operation({200: NoticeAnswer}),
    "alerts.api_redeliver": Operation({200: NoticeAnswer},
                                      errors={409: "The notice is not a failed one."}),
    "alerts.api_acknowledge": Operation(
        {201: AcknowledgeAnswer}, AcknowledgeIn, body_required=False,
        errors={409: "The workflow is neither late nor failing: nothing to acknowledge."}),
    "alerts.api_windows": Operation({200: WindowList}),
    "alerts.api_create_window": Operation(
        {201: WindowAnswer}, WindowIn,
        errors={409: f"There are {MAX_WINDOWS} maintenance windows already."}),
    "alerts.api_delete_window": Operation({204: None}),
}
API = "/api/automations/alerts"


def _not_found(what: str, ident: int):
    return api_error(404, "not_found", f"There is no {what} {ident}.")


def _rule_answer(rule: AlertRule, status: int = 200):
    body = rule_json(rule, channels_of([rule.id])[rule.id], states_of([rule.id])[rule.id],
                     config_from(current_app), sees_secrets())
    return jsonify(body), status


def _rule_context() -> dict:
    """What validating a rule needs of the configuration (may webhooks go to private hosts)."""
    return validation_context(config_from(current_app))


@bp.context_processor
def _notice_helpers() -> dict:
    return {"notice_target": target_of, "channel_kinds": CHANNELS,
            "masked_options": lambda channel: channel_json(channel, reveal_secrets=False),
            "notice_workflow": lambda notice: load_json(notice.payload)["data"]["workflow"]}


# --- API ---------------------------------------------------------------------------------

@bp.get(API)
def api_list():
    """Every rule with its channels and the state of its workflows."""
    rules = list_rules()
    ids = [r.id for r in rules]
    channels, states = channels_of(ids), states_of(ids)
    config, reveal = config_from(current_app), sees_secrets()
    return jsonify({"data": [rule_json(r, channels[r.id], states[r.id], config, reveal)
                             for r in rules]})


@bp.post(API)
def api_create():
    """Create a rule."""
    rule = create_rule(parse_rule(RuleIn, request.get_data(), _rule_context()))
    response, status = _rule_answer(rule, 201)
    response.headers["Location"] = url_for("alerts.api_show", rule_id=rule.id)
    return response, status


@bp.get(f"{API}/<int:rule_id>")
def api_show(rule_id: int):
    """One rule."""
    rule = AlertRule.get_or_none(AlertRule.id == rule_id)
    return _rule_answer(rule) if rule else _not_found("alert rule", rule_id)


@bp.patch(f"{API}/<int:rule_id>")
def api_update(rule_id: int):
    """Change a rule; `channels`, when sent, replaces the list."""
    rule = update_rule(rule_id, parse_rule(RulePatch, request.get_data(), _rule_context()))
    return _rule_answer(rule) if rule else _not_found("alert rule", rule_id)


@bp.delete(f"{API}/<int:rule_id>")
def api_delete(rule_id: int):
    """Delete a rule; its notices stay in the delivery log."""
    return ("", 204) if delete_rule(rule_id) else _not_found("alert rule", rule_id)


@bp.post(f"{API}/<int:rule_id>/test")
def api_test(rule_id: int):
    """Send a test notice through every channel of a rule, now, and answer the outcome."""
    rule = AlertRule.get_or_none(AlertRule.id == rule_id)
    if rule is None:
        return _not_found("alert rule", rule_id)
    ids = send_test(rule, config_from(current_app))
    notices = list(Notice.select().where(Notice.id.in_(ids)).order_by(Notice.id))
    return jsonify({"data": [notice_json(n, a) for n, a in notices_with_attempts(notices)]})


@bp.get(f"{API}/notices")
def api_notices():
    """The delivery log, newest first: `rule`, `workflow`, `status`, `type`, `limit`, `cursor`."""
    notices, next_id = NoticeFilter.from_args(request.args).page()
    return jsonify({"data": [notice_json(n, a) for n, a in notices_with_attempts(notices)],
                    "next_cursor": str(next_id) if next_id else None})


@bp.get(f"{API}/notices/<int:notice_id>")
def api_notice(notice_id: int):
    """One notice with its attempts."""
    notice = Notice.get_or_none(Notice.id == notice_id)
    if notice is None:
        return _not_found("notice", notice_id)
    return jsonify(notice_json(notice, attempts_by_notice([notice.id])[notice.id]))


@bp.post(f"{API}/notices/<int:notice_id>/redeliver")
def api_redeliver(notice_id: int):
    """Send a failed notice again (a fresh set of attempts, the first one now)."""
    notice = Notice.get_or_none(Notice.id == notice_id)
    if notice is None:
        return _not_found("notice", notice_id)
    if not redeliver(notice_id):
        return api_error(409, "conflict", f"Notice {notice_id} is {notice.status}; only a "
                         "failed notice can be redelivered.")
    deliver_now([notice_id], config_from(current_app))
    return api_notice(notice_id)


MAINTENANCE = "/api/automations/maintenance"


@bp.get(MAINTENANCE)
def api_windows():
    """Every maintenance window, by id, with whether it is active and its next stretch."""
    now = utcnow()
    return jsonify({"data": [window_json(w, now) for w in list_windows()]})


@bp.post(MAINTENANCE)
def api_create_window():
    """Create a maintenance window (one-off or recurring)."""
    created = create_window(parse_window(request.get_data()))
    response = jsonify(window_json(created, utcnow()))
    response.headers["Location"] = url_for("alerts.api_windows")
    return response, 201


@bp.delete(f"{MAINTENANCE}/<int:window_id>")
def api_delete_window(window_id: int):
    """Delete a maintenance window; notices it held are looked at by the next scan."""
    return ("", 204) if delete_window(window_id) else _not_found("maintenance window",
                                                                  window_id)


# --- The page ----------------------------------------------------------------------------

@bp.get("/alerts")
def index():
    """Rules, the state of their workflows, the watchdog and the delivery log."""
    return render_template("alerts/index.html", **page_context())


@bp.get("/alerts/health")
def health_panel():
    """The watchdog panel (polled by the page)."""
    return render_page("alerts/section.html", "alerts/_health.html",
                       section_template="alerts/_health.html", section_title="Alert scan",
                       standalone=not wants_partial(),
                       health=health(current_app.config["ALERT_SCAN_SECONDS"]))


@bp.get("/alerts/log")
def log():
    """The delivery log, newest first: the API's `rule`, `workflow`, `status`, `type`,
    `limit`, `cursor`."""
    try:
        log_filter = NoticeFilter.from_args(request.args, default_limit=LOG_PAGE)
    except InputError as exc:
        abort(400, exc.message)
    return render_page("alerts/section.html", "alerts/_log.html",
                       section_template="alerts/_log.html", section_title="Delivery log",
                       **log_context(log_filter, standalone=not wants_partial()))


@bp.post("/alerts/rules/check")
def check_rule():
    """Validate the rule form as it is typed: the errors, swapped in beside each field."""
    form = RuleForm.from_formdata(request.form)
    form.validate(touched_only=True, context=_rule_context())
    return render_fragment("alerts/_check.html", form=form)


@bp.post("/alerts/rules")
def create():
    """Create a rule from the form."""
    form = RuleForm.from_formdata(request.form)
    data = form.validate(context=_rule_context())
    if data is None:
        return render_template("alerts/index.html", **page_context(form)), 400
    rule = create_rule(data)
    flash(f"Rule #{rule.id} is saved; the next scan looks at its workflows.")
    return redirect(url_for("alerts.index", _anchor=f"rule-{rule.id}"), 303)


def _rule_or_404(rule_id: int) -> AlertRule:
    rule = AlertRule.get_or_none(AlertRule.id == rule_id)
    if rule is None:
        abort(404, f"There is no alert rule {rule_id}.")
    return rule


@bp.get("/alerts/rules/<int:rule_id>/edit")
def edit(rule_id: int):
    """The form of one rule."""
    rule = _rule_or_404(rule_id)
    form = RuleForm.from_rule(rule, channels_of([rule.id])[rule.id])
    return render_template("alerts/edit.html", rule=rule, form=form)


@bp.post("/alerts/rules/<int:rule_id>")
def update(rule_id: int):
    """Save the form of one rule."""
    rule = _rule_or_404(rule_id)
    form = RuleForm.from_formdata(request.form)
    data = form.validate(context=_rule_context())
    if data is None:
        return render_template("alerts/edit.html", rule=rule, form=form), 400
    update_rule(rule_id, RulePatch(**data.model_dump(exclude={"channels"}),
                                   channels=data.channels))
    flash(f"Rule #{rule_id} is saved.")
    return redirect(url_for("alerts.index", _anchor=f"rule-{rule_id}"), 303)


@bp.post("/alerts/rules/<int:rule_id>/delete")
def delete(rule_id: int):
    """Delete a rule."""
    _rule_or_404(rule_id)
    delete_rule(rule_id)
    flash(f"Rule #{rule_id} is deleted; its notices stay in the delivery log.")
    return redirect(url_for("alerts.index"), 303)


@bp.post("/alerts/rules/<int:rule_id>/test")
def test(rule_id: int):
    """Send a test notice through every channel of the rule and show how each went."""
    rule = _rule_or_404(rule_id)
    ids = send_test(rule, config_from(current_app))
    notices = list(Notice.select().where(Notice.id.in_(ids)).order_by(Notice.id))
    if wants_partial():
        return render_fragment("alerts/_test_result.html", rule=rule,
                               results=notices_with_attempts(notices),
                               headers={"HX-Trigger": "notices-changed"})
    for notice in notices:
        flash(f"Test notice #{notice.id} ({notice.channel_type}): {notice.status}"
              + (f" — {notice.last_error}" if notice.last_error else ""))
    return redirect(url_for("alerts.index", _anchor="log"), 303)


@bp.post("/alerts/notices/<int:notice_id>/redeliver")
def redeliver_notice(notice_id: int):
    """Send a failed notice again now."""
    notice = Notice.get_or_none(Notice.id == notice_id)
    if notice is None:
        abort(404, f"There is no notice {notice_id}.")
    if redeliver(notice_id):
        deliver_now([notice_id], config_from(current_app))
        message = f"Notice #{notice_id} was sent again."
    else:
        message = f"Notice #{notice_id} is {notice.status}; only a failed one is redelivered."
    if wants_partial():
        return render_fragment("alerts/_log.html", message=message, **log_context())
    flash(message)
    return redirect(url_for("alerts.index", _anchor="log"), 303)


# --- Acknowledging a workflow's episode (the workflows' API and pages) --------------------

@bp.post("/api/automations/workflows/<path:name>/acknowledge")
def api_acknowledge(name: str):
    """Acknowledge the workflow's current failing or late episode: its reminders stop."""
    data = parse(AcknowledgeIn, request.get_data() or b"{}")
    try:
        ack = acknowledge(name, current_user, data.note)
    except NothingToAcknowledge as exc:
        return api_error(409, "conflict", str(exc))
    if ack is None:
        return api_error(404, "not_found", f"There is no workflow named {name!r}.")
    return jsonify({"workflow": name, "kind": ack.kind, "by": ack.by, "at": iso(ack.at),
                    "note": ack.note}), 201


@bp.post("/workflows/<path:name>/acknowledge")
def acknowledge_form(name: str):
    """The acknowledge button of the pages: back to `next` (a page of this site) or the
    workflow's page."""
    note = request.form.get("note", "").strip() or None
    try:
        data = AcknowledgeIn.model_validate({"note": note})
        ack = acknowledge(name, current_user, data.note)
    except ValidationError:
        abort(400, f"A note has at most {MAX_NOTE} characters and no NUL character.")
    except NothingToAcknowledge as exc:
        flash(str(exc))
    else:
        if ack is None:
            abort(404, f"There is no workflow named {name!r}.")
        flash(f"{name}: the {ack.kind} episode is acknowledged; its reminders stop.")
    return redirect(safe_next(request.form.get("next"), url_for("workflows.show", name=name)),
                    303)


@bp.post("/alerts/maintenance")
def create_maintenance():
    """Create a maintenance window from the form (the API's rules, errors beside fields)."""
    form = MaintenanceForm.from_formdata(request.form)
    window = form.validate()
    if window is None:
        return render_template("alerts/index.html", **page_context(maintenance_form=form)), 400
    try:
        created = create_window(window)
    except InputError as exc:  # the most windows Runwatch keeps
        form.errors["workflow"] = exc.message
        return render_template("alerts/index.html", **page_context(maintenance_form=form)), 400
    scope = created.workflow or "every workflow"
    flash(f"Maintenance window #{created.id} for {scope} is saved.")
    return redirect(url_for("alerts.index", _anchor=f"window-{created.id}"), 303)


@bp.post("/alerts/maintenance/<int:window_id>/delete")
def delete_maintenance(window_id: int):
    """Delete a maintenance window; notices it held are looked at by the next scan."""
    if not delete_window(window_id):
        abort(404, f"There is no maintenance window {window_id}.")
    flash(f"Maintenance window #{window_id} is deleted.")
    return redirect(url_for("alerts.index", _anchor="maintenance"), 303)
