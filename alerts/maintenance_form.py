"""The Alerts page's form for a maintenance window: what a browser posts, read as the
API's body and checked by the same rules (`parse_window`), the error shown beside its field.

A one-off window's start and end come from `datetime-local` fields (no offset): they are
read in the form's time zone, which is also a recurring window's zone.
"""
from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.datastructures import MultiDict

from models.schemas import InputError

from .maintenance import OneOffWindowIn, RecurringWindowIn, parse_window

SHAPES = ("one-off", "recurring")
FIELDS = ("workflow", "shape", "starts_at", "ends_at", "schedule", "timezone",
          "duration_minutes", "reason")


class MaintenanceForm:
    """The values a browser sent (or the blank form) and the error of one field."""

    def __init__(self, values: dict[str, str] | None = None):
        self.values = {name: "" for name in FIELDS} | {"shape": "one-off", "timezone": "UTC"}
        self.values.update(values or {})
        self.errors: dict[str, str] = {}

    @classmethod
    def from_formdata(cls, form: MultiDict) -> "MaintenanceForm":
        return cls({name: form.get(name, "") for name in FIELDS if name in form})

    def validate(self) -> OneOffWindowIn | RecurringWindowIn | None:
        """The window the form describes, or None with `errors` set."""
        try:
            window = parse_window(json.dumps(self._body()).encode())
        except InputError as exc:
            self.errors[exc.field if exc.field in FIELDS else "workflow"] = exc.message
            return None
        return window

    def _body(self) -> dict:
        v = {name: value.strip() for name, value in self.values.items()}
        body: dict = {"workflow": v["workflow"] or None, "reason": v["reason"] or None}
        if v["shape"] == "recurring":
            minutes = v["duration_minutes"]
            return body | {"schedule": v["schedule"], "timezone": v["timezone"] or "UTC",
                           "duration_minutes": int(minutes) if minutes.isdigit() else minutes}
        return body | {"starts_at": self._moment("starts_at", v), "ends_at": self._moment(
            "ends_at", v)}

    @staticmethod
    def _moment(name: str, v: dict) -> str | None:
        """A `datetime-local` value read in the form's zone, as an ISO time with offset."""
        if not v[name]:
            return None
        try:
            zone = ZoneInfo(v["timezone"] or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise InputError(f"timezone: {v['timezone']!r} is not an IANA time zone",
                             "timezone") from None
        try:
            local = datetime.fromisoformat(v[name])
        except ValueError:
            raise InputError(f"{name}: must be a date and time, like 2026-12-07T22:00",
                             name) from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=zone)
        return local.isoformat()
