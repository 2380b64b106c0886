"""What the alerts page shows: its rules, states, maintenance windows and health, and one
page of the delivery log with what its filter form needs."""
from __future__ import annotations

from flask import current_app

from alerts.badges import badges_of
from alerts.config import config_from
from alerts.forms import RuleForm
from alerts.maintenance_form import MaintenanceForm
from alerts.models import NOTICE_STATES, Notice
from alerts.notices import NoticeFilter, attempts_by_notice
from alerts.rules import channels_of, list_rules, states_of
from alerts.maintenance import list_windows, window_json
from alerts.watchdog import health
from models.executions import Workflow
from models.times import utcnow
from workflows.stats import late_workflows

LOG_PAGE = 25
STATE_ROWS = 50  # workflows listed under a rule on the page; the API lists them all


def notices_with_attempts(notices: list[Notice]) -> list[tuple[Notice, list]]:
    attempts = attempts_by_notice([n.id for n in notices])
    return [(n, attempts[n.id]) for n in notices]



def log_context(log_filter: NoticeFilter | None = None, standalone: bool = False) -> dict:
    """One page of the delivery log and what its filter form and links need; `standalone`:
    the log is the page (its heading is the page's)."""
    log_filter = log_filter or NoticeFilter(limit=LOG_PAGE)
    notices, next_id = log_filter.page()
    return {"log": notices_with_attempts(notices), "log_filter": log_filter,
            "log_page_size": LOG_PAGE, "next_id": next_id, "standalone": standalone,
            "log_rules": [(rule.id, rule.workflow_name) for rule in list_rules()],
            "log_states": NOTICE_STATES,
            "workflows": [name for (name,) in Workflow.select(Workflow.name)
                          .order_by(Workflow.name).limit(500).tuples()]}


def page_context(form: RuleForm | None = None,
                  maintenance_form: MaintenanceForm | None = None) -> dict:
    rules = list_rules()
    ids = [r.id for r in rules]
    states, now, late = states_of(ids), utcnow(), late_workflows()
    shown = [name for rule_id in ids for _, name in states[rule_id][:STATE_ROWS]]
    return {"rules": rules, "channels": channels_of(ids), "states": states,
            "state_rows": STATE_ROWS, "badges": badges_of(shown + [w.name for w in late], now),
            "windows": [window_json(window, now) for window in list_windows()],
            "maintenance_form": maintenance_form or MaintenanceForm(),
            "form": form or RuleForm(), "health": health(current_app.config["ALERT_SCAN_SECONDS"]),
            **log_context(),
            "config": config_from(current_app), "late": late}
