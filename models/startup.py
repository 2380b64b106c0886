"""A worker's start while the database may not answer yet: the schema built once it does,
derived data built unless it does not (then at the next start).

The features' work at start (derived data: the change counter, rollups, summaries) is
registered on the app with `at_start`, in the order the features are wired, so that an app
kept while its database is replaced by a fresh one (the test suite does this) can do it all
again with `restart`.
"""
from __future__ import annotations

import logging
import time

import peewee

from flask import Flask

from . import hooks
from .availability import is_unavailable
from .db import database, init_database, is_sqlite
from .migrations import create_schema

START_KEY = "runwatch.start"

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


def at_start(app: Flask, work: callable, what: str) -> None:
    """Do `work`, part of `app`'s start on its database, now (`unless_unavailable`), and
    keep it for `restart`."""
    app.extensions.setdefault(START_KEY, []).append((work, what))
    unless_unavailable(work, what)


def restart(app: Flask) -> None:
    """Start `app` again on the database its settings name, whose schema is current: point
    the database handle and the hooks used outside a request at it, and redo the work of
    its start. For an app built once and given a fresh database for each test."""
    init_database(app.config["DATABASE_URL"])
    hooks.bind(app)
    for work, what in app.extensions.get(START_KEY, ()):
        unless_unavailable(work, what)
