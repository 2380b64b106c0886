"""The rule form's part of each channel kind (the registry in channels.py names it).

A part turns its form fields into channel options and back, and names the field that
carries each error: `channels()` yields (options, error field for an options key).
"""
from __future__ import annotations

import re
from typing import Callable

ADDRESS_SEPARATORS = re.compile(r"[\s,;]+")


class EmailForm:
    """One box of addresses (separated by commas, spaces or lines): one e-mail channel."""

    def __init__(self, to: str = ""):
        self.to = to

    @classmethod
    def from_options(cls, options: list[dict]) -> "EmailForm":
        """The part for a rule's e-mail channels."""
        return cls("\n".join(address for o in options for address in o["to"]))

    @classmethod
    def from_formdata(cls, form) -> "EmailForm":
        """The part as submitted (a werkzeug MultiDict)."""
        return cls(form.get("email_to", "").strip())

    def channels(self) -> list[tuple[dict, Callable[[str | None], str]]]:
        """The channel typed in, if any, with the field its errors belong to."""
        addresses = [a for a in ADDRESS_SEPARATORS.split(self.to) if a]
        if not addresses:
            return []
        return [({"type": "email", "to": addresses}, lambda key: "email_to")]

    def field_names(self) -> list[str]:
        """Every field of this part that can carry an error."""
        return ["email_to"]


class WebhookForm:
    """One row of URL and signing secret per webhook, and a blank row to add one."""

    def __init__(self, rows: list[tuple[str, str]] | None = None):
        self.rows = rows or [("", "")]

    @classmethod
    def from_options(cls, options: list[dict]) -> "WebhookForm":
        """The part for a rule's webhooks."""
        return cls([(o["url"], o.get("secret") or "") for o in options] + [("", "")])

    @classmethod
    def from_formdata(cls, form) -> "WebhookForm":
        """The part as submitted (a werkzeug MultiDict)."""
        urls, secrets_ = form.getlist("webhook_url"), form.getlist("webhook_secret")
        secrets_ += [""] * (len(urls) - len(secrets_))
        return cls([(u.strip(), s.strip()) for u, s in zip(urls, secrets_)])

    def channels(self) -> list[tuple[dict, Callable[[str | None], str]]]:
        """A channel per filled-in row, with the field its errors belong to."""
        return [({"type": "webhook", "url": url, "secret": secret or None},
                 lambda key, i=index: f"webhook_{'secret' if key == 'secret' else 'url'}_{i}")
                for index, (url, secret) in enumerate(self.rows) if url or secret]

    def field_names(self) -> list[str]:
        """Every field of this part that can carry an error."""
        return [f"webhook_{part}_{i}" for i in range(len(self.rows)) for part in ("url", "secret")]


class ServiceForm:
    """One row per channel of a service (`alerts/services/`), its inputs named
    `<kind>_<field>`, and a blank row to add one. A row counts once its first field is
    filled in; the others may keep their defaults."""

    kind: str
    fields: tuple[str, ...]
    labels: dict[str, str]
    placeholders: dict[str, str] = {}
    choices: dict[str, tuple[str, ...]] = {}
    defaults: dict[str, str] = {}

    def __init__(self, rows: list[dict[str, str]] | None = None):
        self.rows = rows or [self.blank()]

    @classmethod
    def blank(cls) -> dict[str, str]:
        """A row with nothing typed in."""
        return {name: cls.defaults.get(name, "") for name in cls.fields}

    @classmethod
    def from_options(cls, options: list[dict]) -> "ServiceForm":
        """The part for a rule's channels of this service."""
        return cls([{name: str(o.get(name) or cls.defaults.get(name, "")) for name in cls.fields}
                    for o in options] + [cls.blank()])

    @classmethod
    def from_formdata(cls, form) -> "ServiceForm":
        """The part as submitted (a werkzeug MultiDict)."""
        columns = {name: form.getlist(f"{cls.kind}_{name}") for name in cls.fields}
        count = len(columns[cls.fields[0]])
        return cls([{name: (column[index] if index < len(column)
                            else cls.defaults.get(name, "")).strip()
                     for name, column in columns.items()} for index in range(count)])

    def channels(self) -> list[tuple[dict, Callable[[str | None], str]]]:
        """A channel per filled-in row, with the field its errors belong to."""
        def namer(index: int) -> Callable[[str | None], str]:
            return lambda key: f"{self.kind}_{key if key in self.fields else self.fields[0]}_{index}"
        return [({"type": self.kind, **{name: value for name, value in row.items() if value}},
                 namer(index))
                for index, row in enumerate(self.rows) if row[self.fields[0]]]

    def field_names(self) -> list[str]:
        """Every field of this part that can carry an error."""
        return [f"{self.kind}_{name}_{i}" for i in range(len(self.rows)) for name in self.fields]

    def filled(self) -> bool:
        """Whether any row holds a channel (the part is shown open)."""
        return any(row[self.fields[0]] for row in self.rows)


def _url_form(kind: str, label: str, placeholder: str) -> type[ServiceForm]:
    return type(f"{kind.title()}Form", (ServiceForm,), {
        "kind": kind, "fields": ("url",), "labels": {"url": label},
        "placeholders": {"url": placeholder}, "__doc__": f"A {label} per row."})


SlackForm = _url_form("slack", "Slack incoming webhook URL",
                      "https://hooks.slack.com/services/T…/B…/…")
TeamsForm = _url_form("teams", "Teams workflow webhook URL",
                      "https://….logic.azure.com/workflows/…")
DiscordForm = _url_form("discord", "Discord webhook URL",
                        "https://discord.com/api/webhooks/…/…")
AppriseForm = _url_form("apprise", "Apprise URL", "tgram://bottoken/ChatID, ntfy://topic, …")


class PagerDutyForm(ServiceForm):
    """A routing key and a severity per row."""

    kind = "pagerduty"
    fields = ("routing_key", "severity")
    labels = {"routing_key": "PagerDuty integration key (Events API v2)",
              "severity": "Severity"}
    placeholders = {"routing_key": "32 letters and digits"}
    choices = {"severity": ("critical", "error", "warning", "info")}
    defaults = {"severity": "error"}
