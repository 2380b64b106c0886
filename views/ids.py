"""Ids in URLs: every `<int:…>` of every route reads ASCII digits up to the database's
largest integer, so a longer number is a 404 rather than an error deep in a driver."""
from __future__ import annotations

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from models.inputs import MAX_ID


class DatabaseInteger(IntegerConverter):
    """`int` as the routes use it: 0-9 only (not other scripts' digits), at most MAX_ID."""

    regex = r"[0-9]+"

    def to_python(self, value: str) -> int:
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
            raise NotFound(f"There is nothing numbered {value[:40]}: numbers in addresses "
                           f"go up to {MAX_ID}.")
        return super().to_python(value)
