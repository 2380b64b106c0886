"""The re-run tables' migrations, by schema version (run by models.migrations.create_schema
with the core's; see `reruns.MIGRATIONS`)."""
from __future__ import annotations

import peewee

from models.migrations import add_columns


def reruns_v8(db: peewee.Database) -> None:
    """Version 8: a run may name the run it re-runs (`rerun_of`, indexed by the index made
    after this); runs there re-run none. Hooks and re-run requests are new tables."""
    add_columns(db, "execution", {"rerun_of": peewee.BigIntegerField(null=True)})


MIGRATIONS = {8: reruns_v8}
