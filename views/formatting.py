"""How times, durations and sizes read on the pages: every Jinja filter, registered in one place.

Times are stored in UTC and shown in the zone of the account that reads them (Settings);
the history's `tz` shows its own rows in the zone it names instead."""
from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from time import gmtime, strftime
from zoneinfo import ZoneInfo

from flask import Flask, g, has_request_context
from flask_login import current_user
from markupsafe import Markup

from models.inputs import zone_names
from models.payloads import mask_text

UTC = ZoneInfo("UTC")
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


def viewer_zone() -> ZoneInfo:
    """The zone the signed-in account reads times in (Settings); UTC signed out."""
    if not has_request_context():
        return UTC
    if "viewer_zone" not in g:
        g.viewer_zone = ZoneInfo(getattr(current_user, "time_zone", None) or "UTC")
    return g.viewer_zone


def local(value: datetime, zone: ZoneInfo | None = None) -> datetime:
    """A stored (UTC) time in `zone`, the viewer's by default. Times a day from the ends of
    the calendar (years 1 and 9999, which older releases stored) stay in UTC."""
    try:
        return value.astimezone(zone or viewer_zone())
    except OverflowError:
        return value.astimezone(UTC)


def format_time(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """A time for people, in the viewer's zone, to the second: 2026-11-24 11:00:04 CET."""
    return local(value, zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "–"


def precise_time(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """A time in the viewer's zone to the millisecond: 2026-11-24 11:00:04.250 CET."""
    if value is None:
        return "–"
    moment = local(value, zone)
    return (moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
            + moment.strftime(" %Z"))


def format_minute(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """A time in the viewer's zone to the minute: 2026-11-24 11:00 CET."""
    return local(value, zone).strftime("%Y-%m-%d %H:%M %Z") if value else "–"


def format_date(value: datetime | None, zone: ZoneInfo | None = None) -> str:
    """The viewer's date of a time: 2026-11-24."""
    return local(value, zone).strftime("%Y-%m-%d") if value else "–"


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


def iso_clock(text: str | None, zone: ZoneInfo | None = None) -> str:
    """An API time (ISO 8601) for people, in the viewer's zone, to the minute."""
    if not text:
        return "–"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return format_minute(moment if moment.tzinfo else moment.replace(tzinfo=UTC), zone)


def iso_micros(micros: int | None) -> str | None:
    """`iso(from_micros(micros))`, without building a datetime (a page has 100 of them)."""
    if micros is None:
        return None
    seconds, fraction = divmod(micros, 1_000_000)
    moment = gmtime(seconds)
    text = strftime("%Y-%m-%dT%H:%M:%S", moment)
    if moment.tm_year < 1000:  # which the C library's %Y may write with fewer digits
        text = f"{moment.tm_year:04d}{text[text.index('-'):]}"
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


@lru_cache(maxsize=1)
def zone_options() -> Markup:
    """The `<option>`s of every time zone name, for a zone field's `<datalist>`: some 600,
    rendered once rather than on every page that has such a field."""
    return Markup("").join(Markup('<option value="{}">').format(zone)
                           for zone in sorted(zone_names()))


FILTERS = {"duration": format_duration, "iso_clock": iso_clock, "seconds": format_seconds,
           "time": format_time, "precise_time": precise_time, "minute": format_minute,
           "date": format_date, "shorten": shorten, "masked": masked}


def register(app: Flask) -> None:
    """Make every filter available to the templates."""
    for name, function in FILTERS.items():
        app.add_template_filter(function, name)
    app.add_template_global(viewer_zone)
    app.add_template_global(zone_options)
