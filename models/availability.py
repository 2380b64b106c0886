"""Whether the database answers: an error that says it does not (a 503 and a retry) told
apart from a mistake in a query (a 500)."""
from __future__ import annotations

import peewee

from .db import database

# SQLite's messages for a database file it cannot use now (missing folder, no
# permission, locked past the busy timeout, a full or failing disk).
SQLITE_UNAVAILABLE = ("unable to open database file", "database is locked", "database is busy",
                      "readonly database", "disk i/o error", "database or disk is full",
                      "authorization denied", "file is not a database")


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database does not answer (a 503 and a retry), rather than a
    mistake in a query: any connection-level error of a server, and SQLite's file errors."""
    if isinstance(exc, peewee.InterfaceError):
        return True
    if isinstance(database.obj, peewee.SqliteDatabase):
        return (isinstance(exc, peewee.DatabaseError)
                and any(text in str(exc).lower() for text in SQLITE_UNAVAILABLE))
    return isinstance(exc, peewee.OperationalError)
