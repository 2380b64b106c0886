"""Times as Runwatch keeps them: aware UTC datetimes in Python, integer microseconds in the
database, ISO 8601 with a trailing Z in the API."""
from __future__ import annotations

from datetime import datetime, timezone

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The stored microseconds a datetime can stand for (years 1 to 9999); beyond them a
# stored value (written by hand, not through the API) reads as the first or last moment.
FIRST_MICROS = -62_135_596_800_000_000
LAST_MICROS = 253_402_300_799_999_999


def from_micros(value: int) -> datetime:
    """Turn stored microseconds back into an aware UTC datetime."""
    seconds, micros = divmod(min(max(int(value), FIRST_MICROS), LAST_MICROS), 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def to_micros(value: datetime) -> int:
    """Turn an aware (or naive UTC) datetime into stored microseconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a trailing Z, as the API speaks it."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)
