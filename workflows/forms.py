"""A workflow's settings form: what the form's fields mean as settings, what it shows, and
the schedule's preview and next expected run in the workflow's own zone."""
from __future__ import annotations

from datetime import datetime, timedelta

from models.times import from_micros, iso, utcnow
from workflows import schedule as schedules


def muted_until(value, now: datetime) -> str | None:
    """A workflow's mute as the API shows it: its end while it lasts, else null."""
    if value is None:
        return None
    until = value if isinstance(value, datetime) else from_micros(value)
    return iso(until) if until > now else None


# The form's quick choices of a mute (`mute=1h`): how long from now; "off" unmutes.
MUTE_CHOICES = {"1h": timedelta(hours=1), "8h": timedelta(hours=8), "24h": timedelta(hours=24),
                "off": None}


def form_settings(form) -> dict:
    values: dict = {}
    for key in ("schedule", "timezone", "grace_seconds", "max_duration_seconds",
                "description", "muted_until"):
        raw = form.get(key)
        if raw is None:
            continue
        raw = raw.strip() if key != "description" else raw
        if (key in ("schedule", "max_duration_seconds", "description", "muted_until")
                and raw.strip() == ""):
            values[key] = None
        elif key == "timezone" and raw == "":
            values[key] = "UTC"
        else:
            values[key] = raw
    if form.get("mute") is not None:
        if form["mute"] not in MUTE_CHOICES:
            values["muted_until"] = form["mute"]  # refused, beside the field, as any bad time
        else:
            length = MUTE_CHOICES[form["mute"]]
            values["muted_until"] = None if length is None else iso(utcnow() + length)
    return values


def settings_form(row, values: dict | None) -> dict:
    settings = row
    if values is None:
        values = {"schedule": settings.schedule, "timezone": settings.timezone,
                  "grace_seconds": settings.grace_seconds,
                  "max_duration_seconds": settings.max_duration_seconds,
                  "description": settings.description,
                  "muted_until": muted_until(settings.muted_until, utcnow())}
    return {key: "" if value is None else value for key, value in values.items()}


def schedule_preview(expression: str | None, zone_name: str | None) -> dict:
    """A schedule in words and its next three expected times, or what is wrong with it."""
    if not expression:
        return {"empty": True}
    zone_name = zone_name or "UTC"
    try:
        expression = schedules.check(expression)
        where = schedules.zone(zone_name)
    except schedules.ScheduleError as exc:
        return {"error": str(exc)}
    times = schedules.upcoming(expression, zone_name, utcnow())
    return {"description": schedules.describe(expression),
            "times": [zone_time(t, where) for t in times], "zone": zone_name}


def zone_time(moment: datetime, where) -> str:
    """An expected time as the schedule reads it: in the workflow's zone, to the minute."""
    return moment.astimezone(where).strftime("%Y-%m-%d %H:%M %Z")


def next_expected(row) -> dict | None:
    """The workflow's next expected run, in its own zone (as the preview shows times)."""
    if not row.schedule or row.expected_at is None:
        return None
    try:
        where = schedules.zone(row.timezone or "UTC")
    except schedules.ScheduleError:  # a zone this machine no longer knows
        where = schedules.zone("UTC")
    return {"iso": iso(row.expected_at), "text": zone_time(row.expected_at, where)}
