"""Apprise: the long tail (Telegram, ntfy, Pushover, Matrix, Mattermost, Google Chat,
Opsgenie, …), each through the Apprise library and its URL in one field.

The message is a title (the headline) and a plain-text body of the facts, the last error
and the link, typed by kind (failure, warning, success, info) for services that colour or
prioritise by it. Where an Apprise URL names a host (json://, ntfy://, mmost://, matrix://
…), that host passes the private-address rule of §10 on save and before every send; where
the host part is a token (tgram://, pover://), the service's own host is fixed.
https://github.com/caronc/apprise/wiki
"""
from __future__ import annotations

import logging
from typing import Annotated, Literal
from urllib.parse import urlsplit

import apprise
from pydantic import AfterValidator, Field, ValidationInfo

from models.inputs import control_character
from models.payloads import MASK, mask_url

from ..config import ALLOW_PRIVATE, AlertConfig
from ..outbound import (PRIVATE_URL, REFUSED_PRIVATE, Deadline, TransportError, host_name, is_private_host,
                        public_addresses)
from .facts import Facts, fields, headline, link_text
from .options import SECRET, ServiceOptions

NOTIFY_TYPE = {"failing": apprise.NotifyType.FAILURE, "missed": apprise.NotifyType.WARNING,
               "reminder": apprise.NotifyType.WARNING, "recovered": apprise.NotifyType.SUCCESS,
               "resumed": apprise.NotifyType.SUCCESS, "test": apprise.NotifyType.INFO}
WIKI = "https://github.com/caronc/apprise/wiki"
URL_SHAPE = r"^\s*[A-Za-z][A-Za-z0-9+.-]*://\S+\s*$"  # what the API document says of one


def service_of(url: str):
    """The Apprise plugin a URL names, or None when Apprise knows no such service."""
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def named_host(plugin) -> str | None:
    """The host a user named in the URL (as DNS takes it), or None when the URL's host
    part is not a host but a token of a service whose address is fixed."""
    if "host" not in plugin.template_tokens or not plugin.host:
        return None
    return host_name(plugin.host.strip("[]"))


def _apprise_url(value: str, info: ValidationInfo) -> str:
    if control_character(value):
        raise ValueError("must not contain control characters")
    try:
        plugin = service_of(value)
        host = named_host(plugin) if plugin is not None else None
    except ValueError:
        raise ValueError("names a host that is not valid") from None
    if plugin is None:
        raise ValueError(f"is not the URL of a service Apprise knows (see {WIKI})")
    if host and not (info.context or {}).get(ALLOW_PRIVATE) and is_private_host(host):
        raise ValueError(PRIVATE_URL)
    return value


class AppriseOptions(ServiceOptions):
    """`{"type": "apprise", "url": "<Apprise URL>"}`."""

    type: Literal["apprise"]
    url: Annotated[str, Field(min_length=1, max_length=2000, json_schema_extra={
        **SECRET, "description": f"an Apprise URL ({WIKI})", "pattern": URL_SHAPE}),
        AfterValidator(_apprise_url)]

    @classmethod
    def mask(cls, key: str, value: str) -> str:
        """An Apprise URL by its scheme, and its host when the user named one: elsewhere
        the host part is the service's token (a Telegram bot's, say)."""
        plugin = service_of(value)
        try:
            host = named_host(plugin) if plugin is not None else None
        except ValueError:
            host = None
        if host:
            return mask_url(value)
        return f"{urlsplit(value).scheme}://{MASK}"


def text(facts: Facts) -> str:
    """The body: the facts one a line, the last error, the link."""
    lines = [f"{label}: {value}" for label, value in fields(facts)]
    if facts.error:
        lines += ["", "Last error:", facts.error]
    if facts.link:
        lines += ["", f"{link_text(facts)}: {facts.link}"]
    return "\n".join(lines)


def send(facts: Facts, options: dict, config: AlertConfig) -> str:
    """Notify through Apprise; the delivery log's line. Apprise does not tell a refusal that
    will last from one that will not, so a failed attempt is retried up to the limit."""
    plugin = service_of(options["url"])
    if plugin is None:
        raise TransportError(f"the URL is not that of a service Apprise knows (see {WIKI})",
                             permanent=True)
    try:
        host = named_host(plugin)
    except ValueError:
        raise TransportError("the URL's host name is not valid", permanent=True) from None
    if host and not config.webhook_allow_private:
        if is_private_host(host):
            raise TransportError(REFUSED_PRIVATE, permanent=True)
        with Deadline(config.webhook_timeout) as deadline:  # Apprise connects on its own
            try:
                public_addresses(host, plugin.port or (443 if plugin.secure else 80), deadline)
            except TimeoutError:
                raise TransportError(f"the host name lookup did not finish within "
                                     f"{deadline.seconds:g} s") from None
    notifier = apprise.Apprise()
    notifier.add(plugin)
    with apprise.LogCapture(level=logging.WARNING) as log:
        sent = notifier.notify(title=headline(facts), body=text(facts),
                               notify_type=NOTIFY_TYPE[facts.kind],
                               body_format=apprise.NotifyFormat.TEXT)
        said = log.getvalue().strip().splitlines()
    if not sent:
        raise TransportError(f"{plugin.service_name} did not take the message"
                             + (f": {said[-1]}" if said else ""))
    return f"sent through Apprise to {plugin.service_name}"
