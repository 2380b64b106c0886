"""The rule form of the alerts page: form fields to a rule, and errors back to form fields.

The channel registry drives it: each kind in `CHANNELS` brings its own part of the form.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pydantic import ValidationError

from models.inputs import whole_number

from .channels import CHANNELS
from .models import AlertChannel, AlertRule
from .rules import MASKED_VALUE, masked_values
from .schemas import MAX_REMIND_MINUTES, RuleIn, field_of

REMIND_ERROR = f"Enter a whole number of minutes from 1 to {MAX_REMIND_MINUTES}, or leave it empty."


def _blank_parts() -> dict:
    return {kind: channel.Form() for kind, channel in CHANNELS.items()}


@dataclass
class RuleForm:
    """What the form shows: the values typed, each channel kind's part, errors by field name."""

    workflow: str = ""
    threshold: str = "3"
    channels: dict = field(default_factory=_blank_parts)  # kind -> its part of the form
    enabled: bool = True
    notify_recovery: bool = True
    remind_every_minutes: str = ""  # empty: never
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_rule(cls, rule: AlertRule, channels: list[AlertChannel]) -> "RuleForm":
        """The form of an existing rule, with a blank row where a kind can take another."""
        parts = {kind: channel.Form.from_options([ch.options for ch in channels
                                                   if ch.type == kind])
                 for kind, channel in CHANNELS.items()}
        return cls(workflow=rule.workflow_name or "", threshold=str(rule.threshold),
                   channels=parts, enabled=rule.enabled, notify_recovery=rule.notify_recovery,
                   remind_every_minutes=str(rule.remind_every_minutes or ""))

    @classmethod
    def from_formdata(cls, form) -> "RuleForm":
        """The form as submitted (a werkzeug MultiDict)."""
        return cls(workflow=form.get("workflow", "").strip(),
                   threshold=form.get("threshold", "").strip(),
                   channels={kind: channel.Form.from_formdata(form)
                             for kind, channel in CHANNELS.items()},
                   enabled=form.get("enabled") == "on",
                   notify_recovery=form.get("notify_recovery") == "on",
                   remind_every_minutes=form.get("remind_every_minutes", "").strip())

    def field_names(self) -> list[str]:
        """Every field that can carry an error, so each one can be cleared or set."""
        names = ["workflow", "threshold", "remind_every_minutes", "channels"]
        for part in self.channels.values():
            names += part.field_names()
        return names

    def validate(self, *, touched_only: bool = False,
                 context: dict | None = None) -> RuleIn | None:
        """The rule, or None with `errors` filled; `touched_only` skips what is still empty.
        `context` is the validation context of the configuration (see `parse_rule`)."""
        typed = [pair for part in self.channels.values() for pair in part.channels()]
        data: dict = {"workflow": self.workflow or None, "enabled": self.enabled,
                      "notify_recovery": self.notify_recovery,
                      "channels": [options for options, _ in typed]}
        self.errors = {}
        threshold = whole_number(self.threshold, 0, 10**9)  # ASCII digits; the schema checks 1-1000
        if threshold is None:
            if self.threshold or not touched_only:
                self.errors["threshold"] = "Enter a whole number from 1 to 1000."
            threshold = 1
        data["threshold"] = threshold
        if self.remind_every_minutes:
            minutes = whole_number(self.remind_every_minutes, 1, MAX_REMIND_MINUTES)
            if minutes is None:
                self.errors["remind_every_minutes"] = REMIND_ERROR
            data["remind_every_minutes"] = minutes
        for options, namer in typed:  # pasted from a masked page or answer
            for key in masked_values(options):
                self.errors.setdefault(namer(key), _sentence(MASKED_VALUE))
        try:
            rule = RuleIn.model_validate(data, context=context)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                self._add_error(error, [namer for _, namer in typed], touched_only)
            return None
        return None if self.errors else rule

    def _add_error(self, error: dict, namers: list[Callable[[str | None], str]],
                   touched_only: bool) -> None:
        path = (field_of(error["loc"]) or "channels").split(".")
        message = error["msg"].removeprefix("Value error, ")
        if path[0] == "channels" and len(path) == 1:
            if touched_only:
                return
            nouns = " or ".join(channel.noun for channel in CHANNELS.values())
            name, message = "channels", f"Add at least one {nouns}"
        elif path[0] == "channels":
            name = namers[int(path[1])](path[2] if len(path) > 2 else None)
        elif path[0] == "threshold":
            name, message = "threshold", "Enter a whole number from 1 to 1000"
        else:
            name = path[0]
        self.errors.setdefault(name, _sentence(message))


def _sentence(message: str) -> str:
    message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."
