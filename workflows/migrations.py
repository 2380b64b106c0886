"""The workflow tables' migrations, by schema version (run by models.migrations.create_schema
with the core's; see `workflows.MIGRATIONS`)."""
from __future__ import annotations

import peewee

from models.migrations import add_columns

from .errors import rebuild_error_counts


def error_counts_v6(db: peewee.Database) -> None:
    """Version 6: error groups are counted per hour and UTC day as runs are written (the
    table is new) and a group's runs are found by an index of failures (made after this);
    the failures there are counted once here."""
    rebuild_error_counts(db)


def failing_episodes_v7(db: peewee.Database) -> None:
    """Version 7: a summary counts its workflow's failing episodes (an acknowledgement's
    key); the summaries there start from 0."""
    add_columns(db, "workflow_summary", {
        "failing_episode": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 0")])})


MIGRATIONS = {6: error_counts_v6, 7: failing_episodes_v7}
