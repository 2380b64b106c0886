"""The history's paging cursors: where a page stopped, as an opaque token signed with the
app's secret and bound to the sort order it was made for."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, URLSafeSerializer

from .parsing import is_int

CURSOR_SALT = "runwatch.history.cursor"


@dataclass(frozen=True)
class Cursor:
    """Where the previous page stopped: the sort value and id of its last row."""

    phase: int  # duration sorts: 0 while walking finished runs, 1 for those without one
    value: int | None
    id: int


def decode_cursor(text: str | None, sort: str, secret: str,
                  errors: dict[str, str]) -> Cursor | None:
    """The cursor a `cursor` parameter holds; None, with the reason in `errors`, when this
    server did not sign it or it belongs to another sort order."""
    if text is None:
        return None
    try:
        payload = _serializer(secret).loads(text)
    except (BadData, ValueError, TypeError):
        errors["cursor"] = "cursor is not one this server gave out; start from the first page"
        return None
    if (not isinstance(payload, list) or len(payload) != 4 or payload[0] != sort
            or payload[1] not in (0, 1) or not is_int(payload[3])
            or not (payload[2] is None or is_int(payload[2]))):
        errors["cursor"] = "cursor belongs to another sort order; start from the first page"
        return None
    return Cursor(payload[1], payload[2], payload[3])


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=CURSOR_SALT)


def encode_cursor(cursor: Cursor, sort: str, secret: str) -> str:
    """An opaque, signed token for `cursor` (bound to `sort`)."""
    return _serializer(secret).dumps([sort, cursor.phase, cursor.value, cursor.id])
