"""Microsoft Teams: an Adaptive Card in a message attachment.

The shape a Teams workflow webhook ("When a Teams webhook request is received") takes: a
`message` whose first attachment is the card. The card holds the headline, the facts as a
FactSet, the last error, and a button to the run.
https://learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook
"""
from __future__ import annotations

from typing import Literal

from ..config import AlertConfig
from .answers import post_json
from .facts import Facts, fields, headline, link_text
from .options import ServiceOptions, ServiceUrl

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"  # the newest version Teams renders everywhere, mobile included
COLOR = {"failing": "Attention", "missed": "Warning", "reminder": "Warning",
         "recovered": "Good", "resumed": "Good", "test": "Accent"}


class TeamsOptions(ServiceOptions):
    """`{"type": "teams", "url": "<Teams workflow webhook URL>"}`."""

    type: Literal["teams"]
    url: ServiceUrl


def card(facts: Facts) -> dict:
    """The Adaptive Card for a notice."""
    body: list[dict] = [
        {"type": "TextBlock", "text": headline(facts), "weight": "Bolder", "size": "Medium",
         "wrap": True, "color": COLOR[facts.kind]},
        {"type": "FactSet", "facts": [{"title": label, "value": value}
                                      for label, value in fields(facts)]},
    ]
    if facts.error:
        body += [{"type": "TextBlock", "text": "Last error", "weight": "Bolder",
                  "spacing": "Medium"},
                 {"type": "TextBlock", "text": facts.error, "wrap": True,
                  "fontType": "Monospace"}]
    content = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
               "type": "AdaptiveCard", "version": CARD_VERSION, "body": body,
               "msteams": {"width": "Full"}}
    if facts.link:
        content["actions"] = [{"type": "Action.OpenUrl", "title": link_text(facts),
                               "url": facts.link}]
    return content


def message(facts: Facts) -> dict:
    """The message a Teams workflow webhook takes: the card as its one attachment."""
    return {"type": "message", "attachments": [
        {"contentType": CARD_TYPE, "contentUrl": None, "content": card(facts)}]}


def send(facts: Facts, options: dict, config: AlertConfig) -> str:
    """Post the message to the channel's workflow webhook; the delivery log's line."""
    return post_json("Teams", options["url"], message(facts), config)
