"""How times, durations and sizes read on the pages: every Jinja filter, registered in one place."""
from __future__ import annotations

from datetime import datetime
from time import gmtime, strftime

from flask import Flask

from models.payloads import mask_text

SHORT_VALUE_CHARS = 300  # longest value shown in a comparison cell


def format_duration(ms: int | None) -> str:
    """A duration for people: 850 ms, 4.2 s, 3 min 05 s, 2 h 01 min."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_seconds(value: float | None) -> str:
    """A span of seconds for people: 4 s, 3 min, 2 h 5 min, 3 d."""
    if value is None:
        return "–"
    value = int(value)
    if value < 120:
        return f"{value} s"
    if value < 7200:
        return f"{value // 60} min"
    if value < 172800:
        return f"{value // 3600} h {value % 3600 // 60} min"
    return f"{value // 86400} d"


def format_utc(value: datetime | None) -> str:
    """A time for people, in UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def utc_clock(value: datetime | None) -> str:
    """A UTC time to the millisecond: 2026-11-24 10:00:04.250."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}"


def shorten(text: str | None, limit: int = SHORT_VALUE_CHARS) -> str | None:
    """At most `limit` characters, the last one an ellipsis when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


def size_label(size: int) -> str:
    """A byte count for people: 812 bytes, 64 KB, 9.5 MB."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def masked(text: str | None) -> str:
    """Free text (an error message, a URL) with its credentials masked; None shows as ''."""
    return mask_text(text) if text else ""


def iso_clock(text: str | None) -> str:
    """An API time (ISO 8601, UTC) for people, to the minute: 2026-11-24 10:00 UTC."""
    if not text:
        return "–"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return text


def iso_micros(micros: int | None) -> str | None:
    """`iso(from_micros(micros))`, without building a datetime (a page has 100 of them)."""
    if micros is None:
        return None
    seconds, fraction = divmod(micros, 1_000_000)
    text = strftime("%Y-%m-%dT%H:%M:%S", gmtime(seconds))
    return f"{text}.{fraction:06d}Z" if fraction else text + "Z"


def ago(moment: datetime, now: datetime, local: datetime) -> str:
    """How long ago `moment` was, for people ("3 min ago"); older than a month, its local date."""
    seconds = (now - moment).total_seconds()
    if seconds < 45:
        return "just now" if seconds > -60 else local.strftime("%Y-%m-%d %H:%M")
    if seconds < 3600:
        return f"{round(seconds / 60)} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    if seconds < 30 * 86400:
        return f"{round(seconds / 86400)} d ago"
    return local.strftime("%Y-%m-%d")


FILTERS = {"duration": format_duration, "iso_clock": iso_clock, "seconds": format_seconds, "utc": format_utc,
           "utc_clock": utc_clock, "shorten": shorten, "masked": masked}


def register(app: Flask) -> None:
    """Make every filter available to the templates."""
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)
