"""Notification transports: the registry `CHANNELS` is the only place a kind is listed.

Each kind brings everything about itself: the schema of its options, how it sends, how
people see it (`target`, `noun`, `masked`, a macro file for its part of the rule form and
its summary), and its part of the rule form (`Form`).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path
from typing import Annotated, Literal

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo,
                      field_validator)
from standardwebhooks import Webhook

from models.inputs import CONTROL, CONTROL_CLASS, control_character
from models.payloads import mask, mask_url

from .channel_forms import (AppriseForm, DiscordForm, EmailForm, PagerDutyForm, SlackForm,
                            TeamsForm, WebhookForm)
from .config import ALLOW_PRIVATE, AlertConfig
from .outbound import Deadline, TransportError, checked_url, post
from .services import apprise, discord, pagerduty, slack, teams
from .services.facts import Facts, headline

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "alerts"
_mail_templates = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html"]), trim_blocks=True,
                              lstrip_blocks=True)
ADDRESS = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\".]+$")
# What the API document says of an address and a webhook URL: the address as ADDRESS
# reads it after stripping, without control characters; a URL narrower than `_http_url`
# takes (ASCII host, port 1-65535, no spaces), so that what the document allows is taken.
ADDRESS_PATTERN = (f'^\\s*[^@\\s<>,;"{CONTROL_CLASS}]+@[^@\\s<>,;"{CONTROL_CLASS}]+'
                   f'\\.[^@\\s<>,;".{CONTROL_CLASS}]+\\s*$')
_PORT = "[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]"
# `whsec_` and base64 of 16 to 64 bytes (`_valid_secret`), or nothing (a new secret is made).
_B64 = "[A-Za-z0-9+/]"
_TAIL1, _TAIL2 = f"{_B64}{{2}}==", f"{_B64}{{3}}="
SECRET_PATTERN = (f"^\\s*(?:whsec_(?:{_B64}{{20}}(?:{_TAIL1}|{_TAIL2})"
                  f"|{_B64}{{24}}(?:{_B64}{{4}}){{0,14}}(?:{_TAIL1}|{_TAIL2})?"
                  f"|{_B64}{{84}}(?:{_TAIL1})?))?\\s*$")
URL_PATTERN = f"^https?://[A-Za-z0-9.-]*[A-Za-z0-9][A-Za-z0-9.-]*(?::(?:{_PORT}))?(?:[/?#][!-~]*)?$"
SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class Outgoing:
    """One notice about to be sent: its id, kind, webhook body and channel options, and its
    episode (PagerDuty keys an incident by it)."""

    notice_id: int
    kind: str
    payload: dict
    options: dict
    episode: int | None = None


def _address(value: str) -> str:
    value = value.strip()
    if len(value) > 254 or not ADDRESS.match(value) or control_character(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _http_url(value: str, info: ValidationInfo) -> str:
    """An http(s) URL; unless the configuration allows private addresses (validation
    context `ALLOW_PRIVATE`), not one whose host is `localhost` or a private address."""
    return checked_url(value, bool((info.context or {}).get(ALLOW_PRIVATE)))


def new_secret() -> str:
    """A fresh Standard Webhooks signing secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def checked_secret(value: str) -> str:
    """A Standard Webhooks signing secret as typed (stripped): `whsec_` and base64 of 16 to
    64 bytes. ValueError saying what is wrong."""
    value = value.strip()
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {SECRET_PREFIX} followed by base64") from None
    if not 16 <= len(key) <= 64:
        raise ValueError("must encode 16 to 64 bytes")
    return value


class _ChannelOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class EmailOptions(_ChannelOptions):
    type: Literal["email"]
    to: Annotated[list[Annotated[str, Field(json_schema_extra={
        "pattern": ADDRESS_PATTERN, "maxLength": 254}), AfterValidator(_address)]],
                  Field(min_length=1, max_length=20)]


class WebhookOptions(_ChannelOptions):
    type: Literal["webhook"]
    url: Annotated[str, Field(max_length=2000, description=(
        "http(s); a host that is localhost or a private address only with "
        "RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true"), json_schema_extra={"pattern": URL_PATTERN}),
                   AfterValidator(_http_url)]
    secret: Annotated[str | None, Field(validate_default=True, json_schema_extra={
        "pattern": SECRET_PATTERN})] = None

    @field_validator("secret")
    @classmethod
    def _valid_secret(cls, value: str | None) -> str:
        if not value or not value.strip():
            return new_secret()  # the user left it empty: sign anyway, with a new secret
        return checked_secret(value)


def subject_of(outgoing: Outgoing) -> str:
    """The e-mail subject: workflow name and failure count.

    Names are refused with control characters, but an older release stored them; in a
    header a line break would end the subject, so each is shown as a space.
    """
    data = outgoing.payload["data"]
    workflow = CONTROL.sub(" ", data["workflow"])
    if outgoing.kind == "failing" and data.get("already_recovered"):
        return (f"[Runwatch] {workflow} failed {data['failure_count']} times in a row "
                "(reported late: already recovered)")
    if outgoing.kind == "failing":
        return (f"[Runwatch] {workflow} is failing: "
                f"{data['failure_count']} failures in a row")
    if outgoing.kind == "recovered":
        return (f"[Runwatch] {workflow} recovered after "
                f"{data['failure_count']} failures in a row")
    if outgoing.kind == "missed":
        return (f"[Runwatch] {workflow} missed a run: expected at {data.get('expected_at')}, "
                f"none started within {data.get('grace_seconds')} s")
    if outgoing.kind == "resumed":
        return f"[Runwatch] {workflow} runs again after a missed run"
    if outgoing.kind == "reminder":
        return f"[Runwatch] {headline(Facts.of(outgoing.kind, outgoing.payload))}"
    return f"[Runwatch] Test notice for {workflow} (rule #{data['rule_id']})"


class Channel:
    """What every kind in the registry declares: how people name it, its options, its form.

    Declared as class keywords, e.g. `class EmailChannel(Channel, kind="email", …)`; its
    form fields and summary are the macros of `templates/alerts/channels/<kind>.html`.
    """

    label: str
    noun: str
    template: str
    Options: type[BaseModel]
    Form: type

    def __init_subclass__(cls, *, kind: str, label: str, noun: str, options: type[BaseModel],
                          form: type, **rest):
        super().__init_subclass__(**rest)
        cls.label, cls.noun, cls.Options, cls.Form = label, noun, options, form
        cls.template = f"alerts/channels/{kind}.html"

    @staticmethod
    def masked(options: dict) -> dict:
        """The options as shown on pages and to tokens without `admin`: secrets masked by
        name, and a `url` by its scheme and host alone (the path and query of a Slack,
        Discord or Teams webhook URL are what lets anyone post to it)."""
        return {key: mask_url(value) if key == "url" and isinstance(value, str) else value
                for key, value in mask(options).items()}


class EmailChannel(Channel, kind="email", label="E-mail", noun="e-mail address",
                   options=EmailOptions, form=EmailForm):
    """A multipart (text + HTML) e-mail over SMTP to a list of addresses."""

    @staticmethod
    def target(options: dict) -> str:
        """Where it goes, for people."""
        return ", ".join(options["to"])

    @staticmethod
    def message(outgoing: Outgoing, config: AlertConfig) -> EmailMessage:
        """The e-mail for a notice."""
        context = {"kind": outgoing.kind, "data": outgoing.payload["data"],
                   "alerts_url": config.alerts_url}
        message = EmailMessage(policy=SMTP)
        message["Subject"] = subject_of(outgoing)
        message["From"] = config.mail_from
        message["To"] = ", ".join(outgoing.options["to"])
        message["Date"] = format_datetime(datetime.now().astimezone())
        message["Message-ID"] = f"<notice-{outgoing.notice_id}@runwatch>"
        message.set_content(_mail_templates.get_template("email.txt").render(context))
        message.add_alternative(_mail_templates.get_template("email.html").render(context),
                                subtype="html")
        return message

    @classmethod
    def send(cls, outgoing: Outgoing, config: AlertConfig) -> str:
        """Send over SMTP within `config.smtp_timeout` in all; returns the server's answer."""
        if not config.smtp_host:
            raise TransportError("RUNWATCH_SMTP_HOST is not set: there is no mail server",
                                 permanent=True)
        message = cls.message(outgoing, config)
        deadline = Deadline(config.smtp_timeout)
        smtp = _DeadlineSMTP(deadline)
        try:
            with deadline:
                try:
                    smtp.connect(config.smtp_host, config.smtp_port)
                    if config.smtp_starttls:
                        smtp.starttls(context=ssl.create_default_context())
                    if config.smtp_username:
                        smtp.login(config.smtp_username, config.smtp_password or "")
                    smtp.ehlo_or_helo_if_needed()
                    code, answer = smtp.mail(config.mail_from)
                    if code != 250:
                        raise smtplib.SMTPSenderRefused(code, answer, config.mail_from)
                    refused = {}
                    for address in outgoing.options["to"]:
                        rcpt_code, rcpt_answer = smtp.rcpt(address)
                        if rcpt_code not in (250, 251):
                            refused[address] = (rcpt_code, rcpt_answer)
                    if len(refused) == len(outgoing.options["to"]):
                        smtp.rset()
                        raise smtplib.SMTPRecipientsRefused(refused)
                    code, answer = smtp.data(message.as_bytes())
                    if code != 250:
                        raise smtplib.SMTPDataError(code, answer)
                except (smtplib.SMTPException, OSError) as exc:
                    raise _smtp_failure(exc, deadline) from None
                try:
                    smtp.quit()  # the message is accepted: how the goodbye goes does not matter
                except (smtplib.SMTPException, OSError):
                    pass
        finally:
            smtp.close()
        accepted = len(outgoing.options["to"]) - len(refused)
        return f"{code} {answer.decode(errors='replace')}; accepted for {accepted} recipient(s)"


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib's client, its connection cut at the deadline (its timeout is per operation)."""

    def __init__(self, deadline: Deadline):
        self.deadline = deadline
        super().__init__(timeout=deadline.seconds)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, self.deadline.left())
        self.deadline.watch(sock)
        return sock


def _smtp_failure(exc: Exception, deadline: Deadline) -> TransportError:
    if deadline.expired or isinstance(exc, TimeoutError):
        return TransportError(f"the mail server did not finish within {deadline.seconds:g} s")
    if isinstance(exc, smtplib.SMTPResponseException):
        answer = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
        return TransportError(f"the mail server refused: {answer}", answer)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return TransportError(f"every recipient was refused: {exc.recipients}")
    return TransportError(f"{type(exc).__name__}: {exc}")


class WebhookChannel(Channel, kind="webhook", label="Webhook", noun="webhook",
                     options=WebhookOptions, form=WebhookForm):
    """A JSON POST signed per the Standard Webhooks spec."""

    @staticmethod
    def target(options: dict) -> str:
        """Where it goes, for people."""
        return options["url"]

    @staticmethod
    def request(outgoing: Outgoing, now: datetime) -> tuple[bytes, dict[str, str]]:
        """The signed body and headers for a notice; the id stays the same across retries."""
        body = json.dumps(outgoing.payload, ensure_ascii=False, separators=(",", ":"))
        message_id = f"msg_runwatch_{outgoing.notice_id}"
        headers = {"Content-Type": "application/json", "User-Agent": "Runwatch-Webhooks/1",
                   "webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp()))}
        secret = outgoing.options.get("secret")
        if secret:
            headers["webhook-signature"] = Webhook(secret).sign(message_id, now, body)
        return body.encode(), headers

    @classmethod
    def send(cls, outgoing: Outgoing, config: AlertConfig) -> str:
        """POST the notice (`outbound.post`, which refuses private addresses and ends the
        attempt at `config.webhook_timeout`); any answer but 2xx is a failure."""
        body, headers = cls.request(outgoing, datetime.now().astimezone())
        answer = post(outgoing.options["url"], body, headers,
                      allow_private=config.webhook_allow_private, timeout=config.webhook_timeout)
        if not 200 <= answer.status < 300:
            raise TransportError(f"the receiver answered {answer.summary}", answer.summary)
        return answer.summary


class ServiceChannel:
    """A service of `alerts/services/` as a kind: its module builds the message, sends it and
    reads the answer; its options model masks its secrets."""

    service = None  # the module of alerts/services/

    @classmethod
    def masked(cls, options: dict) -> dict:
        """The options as pages and `read` tokens see them."""
        return cls.Options.masked(options)

    @staticmethod
    def target(options: dict) -> str:
        """Where it goes, for people (from masked options: a URL by its scheme and host)."""
        if "url" in options:
            return options["url"]
        return f"routing key {options['routing_key']}, severity {options.get('severity', 'error')}"

    @classmethod
    def send(cls, outgoing: Outgoing, config: AlertConfig) -> str:
        """Send the notice's facts in the service's shape; its answer read by `answers`."""
        facts = Facts.of(outgoing.kind, outgoing.payload, episode=outgoing.episode)
        return cls.service.send(facts, outgoing.options, config)


class SlackChannel(ServiceChannel, Channel, kind="slack", label="Slack", noun="Slack webhook",
                   options=slack.SlackOptions, form=SlackForm):
    service = slack


class TeamsChannel(ServiceChannel, Channel, kind="teams", label="Microsoft Teams",
                   noun="Teams webhook", options=teams.TeamsOptions, form=TeamsForm):
    service = teams


class DiscordChannel(ServiceChannel, Channel, kind="discord", label="Discord",
                     noun="Discord webhook", options=discord.DiscordOptions, form=DiscordForm):
    service = discord


class PagerDutyChannel(ServiceChannel, Channel, kind="pagerduty", label="PagerDuty",
                       noun="PagerDuty key", options=pagerduty.PagerDutyOptions,
                       form=PagerDutyForm):
    service = pagerduty


class AppriseChannel(ServiceChannel, Channel, kind="apprise", label="Apprise",
                     noun="Apprise URL", options=apprise.AppriseOptions, form=AppriseForm):
    service = apprise


CHANNELS: dict[str, type[Channel]] = {
    "email": EmailChannel, "webhook": WebhookChannel, "slack": SlackChannel,
    "teams": TeamsChannel, "discord": DiscordChannel, "pagerduty": PagerDutyChannel,
    "apprise": AppriseChannel}
