"""The rule form of the alerts page: form fields to a rule, and errors back to form fields."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import ValidationError

from .models import AlertChannel, AlertRule
from .schemas import RuleIn, field_of

SEPARATORS = re.compile(r"[\s,;]+")
NEW_WEBHOOK_ROWS = 1


@dataclass
class RuleForm:
    """What the form shows: the values typed, one row per webhook, and errors by field name."""

    workflow: str = ""
    threshold: str = "3"
    email_to: str = ""
    webhooks: list[tuple[str, str]] = field(default_factory=lambda: [("", "")])
    enabled: bool = True
    notify_recovery: bool = True
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rule(cls, rule: AlertRule, channels: list[AlertChannel]) -> "RuleForm":
        """The form of an existing rule, with a blank webhook row to add one."""
        emails = [a for ch in channels if ch.type == "email" for a in ch.options["to"]]
        hooks = [(ch.options["url"], ch.options.get("secret") or "")
                 for ch in channels if ch.type == "webhook"]
        return cls(workflow=rule.workflow_name or "", threshold=str(rule.threshold),
                   email_to="\n".join(emails), webhooks=hooks + [("", "")] * NEW_WEBHOOK_ROWS,
                   enabled=rule.enabled, notify_recovery=rule.notify_recovery)

    @classmethod
    def from_formdata(cls, form) -> "RuleForm":
        """The form as submitted (a werkzeug MultiDict)."""
        urls, secrets = form.getlist("webhook_url"), form.getlist("webhook_secret")
        secrets += [""] * (len(urls) - len(secrets))
        rows = [(u.strip(), s.strip()) for u, s in zip(urls, secrets)] or [("", "")]
        return cls(workflow=form.get("workflow", "").strip(),
                   threshold=form.get("threshold", "").strip(),
                   email_to=form.get("email_to", "").strip(), webhooks=rows,
                   enabled=form.get("enabled") == "on",
                   notify_recovery=form.get("notify_recovery") == "on")

    def field_names(self) -> list[str]:
        """Every field that can carry an error, so each one can be cleared or set."""
        names = ["workflow", "threshold", "email_to", "channels"]
        for index in range(len(self.webhooks)):
            names += [f"webhook_url_{index}", f"webhook_secret_{index}"]
        return names

    def validate(self, *, touched_only: bool = False) -> RuleIn | None:
        """The rule, or None with `errors` filled; `touched_only` skips what is still empty."""
        data: dict = {"workflow": self.workflow or None, "enabled": self.enabled,
                      "notify_recovery": self.notify_recovery, "channels": []}
        sources: list[str] = []
        addresses = [a for a in SEPARATORS.split(self.email_to) if a]
        if addresses:
            data["channels"].append({"type": "email", "to": addresses})
            sources.append("email_to")
        for index, (url, secret) in enumerate(self.webhooks):
            if url or secret:
                data["channels"].append({"type": "webhook", "url": url, "secret": secret or None})
                sources.append(f"webhook_{index}")
        self.errors = {}
        try:
            data["threshold"] = int(self.threshold)
        except ValueError:
            if self.threshold or not touched_only:
                self.errors["threshold"] = "Enter a whole number from 1 to 1000."
            data["threshold"] = 1
        try:
            rule = RuleIn.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self._add_error(error, sources, touched_only)
            return None
        return None if self.errors else rule

    def _add_error(self, error: dict, sources: list[str], touched_only: bool) -> None:
        path = (field_of(error["loc"]) or "channels").split(".")
        message = error["msg"].removeprefix("Value error, ")
        if path[0] == "channels" and len(path) == 1:
            if touched_only:
                return
            name, message = "channels", "Add at least one e-mail address or webhook"
        elif path[0] == "channels":
            source = sources[int(path[1])]
            part = "secret" if len(path) > 2 and path[2] == "secret" else "url"
            name = source if source == "email_to" else \
                f"webhook_{part}_{source.removeprefix('webhook_')}"
        elif path[0] == "threshold":
            name, message = "threshold", "Enter a whole number from 1 to 1000"
        else:
            name = path[0]
        self.errors.setdefault(name, _sentence(message))


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."
