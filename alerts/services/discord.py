"""Discord: a webhook message with one embed, coloured by kind.

The embed's title says what happened and links to the run; the facts are its fields and
the last error its description. Mentions are turned off: a workflow name or an error that
says @everyone pings no one.
https://discord.com/developers/docs/resources/webhook#execute-webhook
"""
from __future__ import annotations

from typing import Literal

from ..config import AlertConfig
from .answers import post_json
from .facts import Facts, cut, fields, headline
from .options import ServiceOptions, ServiceUrl

COLOR = {"failing": 0xD32F2F, "missed": 0xEF6C00, "reminder": 0xF9A825,
         "recovered": 0x2E7D32, "resumed": 0x2E7D32, "test": 0x1976D2}
TITLE_CHARS, VALUE_CHARS = 256, 1024  # Discord's limits for an embed's title, a field's value


class DiscordOptions(ServiceOptions):
    """`{"type": "discord", "url": "<webhook URL>"}`."""

    type: Literal["discord"]
    url: ServiceUrl


def message(facts: Facts) -> dict:
    """The webhook message for a notice."""
    embed = {"title": cut(headline(facts), TITLE_CHARS), "color": COLOR[facts.kind],
             "fields": [{"name": label, "value": cut(value, VALUE_CHARS), "inline": True}
                        for label, value in fields(facts)],
             "timestamp": facts.timestamp,
             "footer": {"text": f"Runwatch · rule #{facts.rule_id}"}}
    if facts.link:
        embed["url"] = facts.link
    if facts.error:
        embed["description"] = f"**Last error**\n```\n{facts.error}\n```"
    return {"username": "Runwatch", "embeds": [embed], "allowed_mentions": {"parse": []}}


def send(facts: Facts, options: dict, config: AlertConfig) -> str:
    """Post the message to the channel's webhook; the delivery log's line."""
    return post_json("Discord", options["url"], message(facts), config)
