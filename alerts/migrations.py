"""The alert tables' migrations, by schema version (run by models.migrations.create_schema
with the core's; see `alerts.MIGRATIONS`)."""
from __future__ import annotations

import peewee

from models.migrations import add_columns


def alerts_v3(db: peewee.Database) -> None:
    """Version 3: an attempt is written before it is sent, its outcome unknown until the
    answer (`ok` and `latency_ms` may be NULL); the scan remembers the last finished run it
    examined per rule and workflow. Attempts there are kept as they are; states there have
    no position yet, and the next scan of their workflow starts from the streak as it is."""
    from playhouse.migrate import SchemaMigrator, migrate

    add_columns(db, "alert_state", {"seen_started_at": peewee.BigIntegerField(null=True),
                                     "seen_id": peewee.BigIntegerField(null=True)})
    nullable = {column.name: column.null for column in db.get_columns("attempt")}
    migrator = SchemaMigrator.from_database(db)
    migrate(*(migrator.drop_not_null("attempt", name) for name in ("ok", "latency_ms")
              if not nullable.get(name, True)))


MIGRATIONS = {3: alerts_v3}
