"""A worker's start while the database may not answer yet: the schema built once it does,
derived data built unless it does not (then at the next start)."""
from __future__ import annotations

import logging
import time

import peewee

from .availability import is_unavailable
from .db import database, is_sqlite
from .migrations import create_schema

def create_schema_when_reachable(models: list[type[peewee.Model]], migrations=(),
                                 wait_seconds: float = 60) -> None:
    """`create_schema`, waiting up to `wait_seconds` for a database that does not answer yet
    (a worker starting during an outage), then giving up with the database's error. A SQLite
    file that cannot be opened at start is a setting to fix: no wait."""
    if is_sqlite():
        wait_seconds = 0
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return create_schema(models, migrations)
        except (peewee.DatabaseError, peewee.InterfaceError) as exc:
            if not is_unavailable(exc) or time.monotonic() >= deadline:
                raise
            logging.getLogger(__name__).warning(
                "the database does not answer yet; trying again: %s",
                str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            if not database.is_closed():
                database.close()
            time.sleep(1)


def unless_unavailable(work: callable, what: str) -> None:
    """Run start-up `work` (building derived data), or, while the database does not answer,
    log that it waits for the next start: a worker booting during an outage still boots,
    and answers 503 until the database is back."""
    try:
        work()
    except (peewee.DatabaseError, peewee.InterfaceError) as exc:
        if not is_unavailable(exc):
            raise
        logging.getLogger(__name__).warning(
            "the database does not answer; %s waits for the next start: %s", what,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        if not database.is_closed():
            database.close()
