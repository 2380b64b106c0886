"""PagerDuty: Events API v2.

A failing or missed notice triggers an incident and a recovered or resumed one resolves it,
by the same `dedup_key`: one per episode (rule, workflow, failing streak or late episode),
so a recovery resolves the incident its episode opened and nothing else. A reminder sends
nothing: PagerDuty's escalation policy repeats the page of an open incident itself, and a
second trigger would open a new incident if someone had resolved the first. A test notice
triggers an incident of severity `info` with a key of its own, to be resolved by hand.
The endpoint is RUNWATCH_PAGERDUTY_EVENTS_URL (`AlertConfig.pagerduty_events_url`).
https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from ..config import AlertConfig
from ..outbound import TransportError
from .answers import post_json
from .facts import Facts, cut, fields, headline, link_text
from .options import SECRET, ServiceOptions

ACTION = {"failing": "trigger", "missed": "trigger", "test": "trigger",
          "recovered": "resolve", "resumed": "resolve", "reminder": None}
SUMMARY_CHARS = 1024  # the Events API's limit for a summary
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
KEY_CHARS = 255  # the Events API's limit for a dedup_key


class PagerDutyOptions(ServiceOptions):
    """`{"type": "pagerduty", "routing_key": "<integration key>", "severity": …}`."""

    type: Literal["pagerduty"]
    routing_key: Annotated[str, Field(
        pattern=ROUTING_KEY.pattern, json_schema_extra={
            **SECRET, "description": "the 32-character integration key of an Events API "
                                     "v2 integration"})]
    severity: Literal["critical", "error", "warning", "info"] = "error"


def dedup_key(facts: Facts) -> str:
    """The key of the incident an episode opens: the same for its trigger and resolve."""
    if facts.kind == "test":
        return f"runwatch/test/rule-{facts.rule_id}/{facts.timestamp}"
    if facts.episode is None:
        raise ValueError("a PagerDuty event needs the notice's episode")
    family = "late" if facts.kind in ("missed", "resumed") else "failing"
    return cut(f"runwatch/rule-{facts.rule_id}/{family}-{facts.episode}/{facts.workflow}",
               KEY_CHARS)


def event(facts: Facts, options: dict) -> dict | None:
    """The event for a notice; None for a reminder, which sends nothing."""
    action = ACTION[facts.kind]
    if action is None:
        return None
    key = {"routing_key": options["routing_key"], "event_action": action,
           "dedup_key": dedup_key(facts)}
    if action == "resolve":
        return key
    details = dict(fields(facts))
    if facts.error:
        details["Last error"] = facts.error
    body = {**key, "payload": {
        "summary": cut(headline(facts), SUMMARY_CHARS), "source": facts.name,
        "severity": "info" if facts.kind == "test" else options.get("severity", "error"),
        "timestamp": facts.timestamp, "component": facts.name, "class": facts.kind,
        "custom_details": details}, "client": "Runwatch"}
    if facts.link:
        body["links"] = [{"href": facts.link, "text": link_text(facts)}]
    return body


def send(facts: Facts, options: dict, config: AlertConfig) -> str:
    """Send the event to RUNWATCH_PAGERDUTY_EVENTS_URL; the delivery log's line."""
    try:
        body = event(facts, options)
    except ValueError as exc:
        raise TransportError(str(exc), permanent=True) from None
    if body is None:
        return "not sent: PagerDuty repeats the page of an open incident itself"
    return post_json("PagerDuty", config.pagerduty_events_url, body, config)
