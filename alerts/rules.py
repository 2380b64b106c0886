"""Alert rules: create, change, delete, and show them with the state of their workflows."""
from __future__ import annotations

from pydantic import BaseModel

from models.db import write_transaction
from models.times import iso, utcnow
from models.executions import Workflow, dump_json
from models.payloads import MASK, mask_text
from models.schemas import InputError

from .channels import CHANNELS, Channel
from .delivery import deliver_now
from .models import (AlertChannel, AlertRule, AlertState, Notice, channels_of,
                     mark_workflows)
from .notices import notice_body, queue_notices
from .reminders import remind_ongoing
from .schemas import RuleIn, RulePatch
from .config import AlertConfig
from workflows.models import WorkflowSummary

MASKED_VALUE = (f"holds {MASK}, the mask of a hidden value; send the whole value (answers "
                "to admin tokens and the rule's edit page show it)")


def masked_values(options: dict) -> list[str]:
    """The options that hold the mask: copied from a masked answer, they would replace a
    URL or secret with `••••••` for good."""
    return [key for key, value in options.items() if isinstance(value, str) and MASK in value]


def _refuse_masked(channels: list[BaseModel] | None) -> None:
    for index, channel in enumerate(channels or []):
        masked = masked_values(channel.model_dump())
        if masked:
            field = f"channels.{index}.{masked[0]}"
            raise InputError(f"{field}: {MASKED_VALUE}", field)


def _write_channels(rule_id: int, channels: list[BaseModel]) -> None:
    AlertChannel.delete().where(AlertChannel.rule == rule_id).execute()
    AlertChannel.insert_many([{"rule": rule_id, "position": i, "type": ch.type,
                               "options_json": dump_json(ch.model_dump())}
                              for i, ch in enumerate(channels)]).execute()


def _mark_covered(rule: AlertRule) -> None:
    """Have the next scan look at the rule's workflows, so a streak already there counts."""
    query = Workflow.select(Workflow.id)
    if rule.workflow_name is not None:
        query = query.where(Workflow.name == rule.workflow_name)
    mark_workflows([wid for (wid,) in query.tuples()])


def create_rule(data: RuleIn) -> AlertRule:
    """Store a new rule with its channels."""
    _refuse_masked(data.channels)
    now = utcnow()
    with write_transaction():
        rule = AlertRule.create(workflow_name=data.workflow, threshold=data.threshold,
                                enabled=data.enabled, notify_recovery=data.notify_recovery,
                                remind_every_minutes=data.remind_every_minutes,
                                created_at=now, updated_at=now)
        _write_channels(rule.id, data.channels)
        _mark_covered(rule)
    return rule


def update_rule(rule_id: int, patch: RulePatch) -> AlertRule | None:
    """Change the fields sent; None when there is no such rule."""
    sent = patch.model_fields_set
    _refuse_masked(patch.channels)
    with write_transaction():
        rule = AlertRule.get_or_none(AlertRule.id == rule_id)
        if rule is None:
            return None
        enabled_again = "enabled" in sent and patch.enabled and not rule.enabled
        reminds_anew = ("remind_every_minutes" in sent and patch.remind_every_minutes
                        and patch.remind_every_minutes != rule.remind_every_minutes)
        for field, column in (("workflow", "workflow_name"), ("threshold", "threshold"),
                              ("enabled", "enabled"), ("notify_recovery", "notify_recovery"),
                              ("remind_every_minutes", "remind_every_minutes")):
            if field in sent:
                setattr(rule, column, getattr(patch, field))
        rule.updated_at = utcnow()
        rule.save()
        if "channels" in sent:
            _write_channels(rule.id, patch.channels)
        if enabled_again:
            # The rule sees the present, as a new rule does: the scan reads each streak as
            # it is now (not the runs that came and went while it was off) and tells of a
            # late episode it has not told of (alerts.scan._examine).
            (AlertState.update(seen_started_at=None, seen_id=None)
             .where(AlertState.rule == rule.id).execute())
        if reminds_anew:  # episodes it told of and that go on are reminded of from now
            remind_ongoing(rule, rule.updated_at)
        _mark_covered(rule)
    return rule


def delete_rule(rule_id: int) -> bool:
    """Delete a rule, its channels and states; its notices stay in the log."""
    with write_transaction():
        return AlertRule.delete().where(AlertRule.id == rule_id).execute() == 1


def _covered(rules: list[AlertRule]) -> list[WorkflowSummary]:
    """The summaries of the workflows some of `rules` cover (one query)."""
    S = WorkflowSummary
    query = S.select(S.workflow, S.name, S.state, S.streak)
    if all(rule.workflow_name is not None for rule in rules):
        query = query.where(S.name.in_(sorted({rule.workflow_name for rule in rules})))
    return list(query)


def states_of(rule_ids: list[int]) -> dict[int, list[tuple[AlertState, str]]]:
    """Each rule's covered workflows with their state (and name), late and failing first.

    A state's `status` is the workflow's as it is now, read from its summary: `late`, else
    `failing` (alerted, or a streak at the threshold that the next scan will tell of), else
    `ok`; a workflow the scan has not looked at under the rule yet (the rule is new) gets a
    state made of its summary, so the row tells the truth from the moment the rule exists.
    """
    found: dict[int, list[tuple[AlertState, str]]] = {rid: [] for rid in rule_ids}
    rules = list(AlertRule.select().where(AlertRule.id.in_(rule_ids))) if rule_ids else []
    if not rules:
        return found
    stored = {(state.rule_id, state.workflow_id): state for state in
              AlertState.select().where(AlertState.rule.in_(rule_ids))}
    by_name: dict[str | None, list[AlertRule]] = {}
    for rule in rules:
        by_name.setdefault(rule.workflow_name, []).append(rule)
    for summary in _covered(rules):
        for rule in by_name.get(summary.name, []) + by_name.get(None, []):
            state = stored.get((rule.id, summary.workflow_id))
            if state is None:
                state = AlertState(rule=rule.id, workflow=summary.workflow_id,
                                   streak=summary.streak, alerted=False)
            failing = state.alerted or summary.streak >= rule.threshold
            state.status = ("late" if summary.state == "late"
                            else "failing" if failing else "ok")
            found[rule.id].append((state, summary.name))
    order = {"late": 0, "failing": 1, "ok": 2}
    for rows in found.values():
        rows.sort(key=lambda row: (order[row[0].status], -row[0].streak, row[1]))
    return found


def list_rules() -> list[AlertRule]:
    """Every rule, oldest first."""
    return list(AlertRule.select().order_by(AlertRule.id))


def channel_json(channel: AlertChannel, reveal_secrets: bool = True) -> dict:
    """A channel as the API answers it: secrets included for those who may see them
    (users need them to verify signatures), masked for the others and on the rules page
    (the signing secret, and a webhook URL but for its scheme and host)."""
    if reveal_secrets:
        return channel.options
    return CHANNELS.get(channel.type, Channel).masked(channel.options)


def state_json(state: AlertState, name: str, rule: AlertRule,
               config: AlertConfig, reveal_secrets: bool = True) -> dict:
    """One workflow's state under a rule; its last error masked unless `reveal_secrets`."""
    last_error = state.last_error
    if last_error and not reveal_secrets:
        last_error = mask_text(last_error)
    return {"workflow": name, "status": state.status,
            "failure_count": state.streak, "threshold": rule.threshold,
            "failing_since": iso(state.first_failure_at) if state.streak else None,
            "last_failure_at": iso(state.last_failure_at), "last_error": last_error,
            "last_failed_execution_url": (config.execution_url(state.last_failure_id)
                                          if state.last_failure_id else None),
            "checked_at": iso(state.updated_at)}


def rule_json(rule: AlertRule, channels: list[AlertChannel],
              states: list[tuple[AlertState, str]], config: AlertConfig,
              reveal_secrets: bool = True) -> dict:
    """A rule as the API answers it; webhook secrets masked unless `reveal_secrets`."""
    return {"id": rule.id, "workflow": rule.workflow_name, "threshold": rule.threshold,
            "channels": [channel_json(ch, reveal_secrets) for ch in channels],
            "enabled": rule.enabled,
            "notify_recovery": rule.notify_recovery,
            "remind_every_minutes": rule.remind_every_minutes, "created_at": iso(rule.created_at),
            "updated_at": iso(rule.updated_at),
            "states": [state_json(s, name, rule, config, reveal_secrets) for s, name in states]}


def send_test(rule: AlertRule, config: AlertConfig) -> list[int]:
    """Queue a test notice for every channel of the rule and send them now; returns their ids."""
    now = utcnow()
    channels = channels_of([rule.id])[rule.id]
    body = notice_body("test", now, workflow=rule.workflow_name or "example-workflow",
                       failure_count=rule.threshold, threshold=rule.threshold,
                       first_failure_at=now, last_failure_at=now,
                       last_error="This is a test notice from Runwatch; nothing failed.",
                       execution_url=config.alerts_url, rule_id=rule.id)
    with write_transaction():
        queue_notices(channels, "test", body, now)
        ids = [nid for (nid,) in Notice.select(Notice.id)
               .where(Notice.rule == rule.id, Notice.kind == "test",
                      Notice.created_at == now).order_by(Notice.id).tuples()]
    deliver_now(ids, config)
    return ids


def rules_with_channels() -> list[tuple[AlertRule, list[AlertChannel]]]:
    """Every enabled rule with its channels."""
    rules = list(AlertRule.select().where(AlertRule.enabled))
    channels = channels_of([rule.id for rule in rules])
    return [(rule, channels[rule.id]) for rule in rules]
