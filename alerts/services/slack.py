"""Slack: an incoming webhook's message in Block Kit.

A header saying what happened, the facts as fields, the last error, and a button to the
run; `text` is what notifications and screen readers show.
https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit
"""
from __future__ import annotations

from typing import Literal

from ..config import AlertConfig
from .answers import post_json
from .facts import Facts, cut, fields, headline, link_text
from .options import ServiceOptions, ServiceUrl

HEADER_CHARS = 150  # Block Kit's limit for a header's text
BUTTON_STYLE = {"failing": "danger", "missed": "danger", "reminder": "danger",
                "recovered": "primary", "resumed": "primary"}


class SlackOptions(ServiceOptions):
    """`{"type": "slack", "url": "<incoming webhook URL>"}`."""

    type: Literal["slack"]
    url: ServiceUrl


def escape(text: str) -> str:
    """Text for a `mrkdwn` field: Slack reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(facts: Facts) -> dict:
    """The Block Kit message for a notice."""
    title = headline(facts)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": cut(title, HEADER_CHARS)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"}
                                       for label, value in fields(facts)]},
    ]
    if facts.error:
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"*Last error*\n```{escape(facts.error)}```"}})
    if facts.link:
        button = {"type": "button", "text": {"type": "plain_text", "text": link_text(facts)},
                  "url": facts.link, "action_id": "open-run"}
        if facts.kind in BUTTON_STYLE:
            button["style"] = BUTTON_STYLE[facts.kind]
        blocks.append({"type": "actions", "elements": [button]})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"Runwatch · rule #{facts.rule_id} · {facts.timestamp}"}]})
    return {"text": title, "blocks": blocks}


def send(facts: Facts, options: dict, config: AlertConfig) -> str:
    """Post the message to the channel's webhook; the delivery log's line."""
    return post_json("Slack", options["url"], message(facts), config)
