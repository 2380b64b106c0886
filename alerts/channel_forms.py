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
