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


def alerts_v7(db: peewee.Database) -> None:
    """Version 7: rules may remind (`remind_every_minutes`, none for the rules there); a
    notice has a number (a reminder's; 0 for the notices there), part of its unique key,
    whose index is made anew after this. Reminders, acknowledgements and maintenance windows
    are new tables."""
    add_columns(db, "alert_rule", {"remind_every_minutes": peewee.IntegerField(null=True)})
    add_columns(db, "notice", {
        "number": peewee.IntegerField(constraints=[peewee.SQL("DEFAULT 0")])})
    db.execute_sql('DROP INDEX IF EXISTS "notice_rule_id_channel_id_workflow_id_episode_kind"')


# Indexes on a rule alone, beside the unique indexes that begin with the rule and serve
# the same look-ups (and the cascade when a rule is deleted): version 9 drops them.
REDUNDANT_V9 = ("alert_channel_rule_id", "alert_state_rule_id", "notice_rule_id",
                "reminder_rule_id")


def alerts_v9(db: peewee.Database) -> None:
    """Version 9: the indexes on a rule alone go (`REDUNDANT_V9`); every write to the
    alert tables kept them for nothing."""
    for name in REDUNDANT_V9:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')


MIGRATIONS = {3: alerts_v3, 7: alerts_v7, 9: alerts_v9}
