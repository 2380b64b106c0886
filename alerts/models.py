"""The tables of failure alerts, and the write hook that tells the scan where to look."""
from __future__ import annotations

import peewee

from models.base import BaseModel, UTCMicros
from models.bulk import upsert_rows
from models.times import to_micros, utcnow
from models.executions import FINISHED_STATUSES, Workflow, load_json
from models.ingest import Change

# Notice kinds and delivery states, as the API and the log speak them: a streak failing and
# recovering, a scheduled run missed and runs resumed after it, a reminder of an episode
# still going on, and a test. A notice decided while its workflow is quiet (muted, or in a
# maintenance window) is `held` until the quiet ends, then sent (`pending`) when its episode
# is still going on, else `dropped`.
KINDS = ("failing", "recovered", "missed", "resumed", "reminder", "test")
NOTICE_STATES = ("held", "pending", "sending", "delivered", "failed", "dropped")


class AlertRule(BaseModel):
    """N failures in a row of one workflow (or of any, when `workflow_name` is NULL)."""

    workflow_name = peewee.CharField(max_length=200, null=True)
    threshold = peewee.IntegerField()
    enabled = peewee.BooleanField(default=True)
    notify_recovery = peewee.BooleanField(default=True)
    # While an alerted failing or late episode goes on unacknowledged: a reminder every
    # this many minutes (1–10080); NULL: none.
    remind_every_minutes = peewee.IntegerField(null=True)
    created_at = UTCMicros()
    updated_at = UTCMicros()


class AlertChannel(BaseModel):
    """Where a rule's notices go: one email list or one webhook; its options are JSON."""

    # No index of its own: the unique (rule, position) index serves its lookups.
    rule = peewee.ForeignKeyField(AlertRule, backref="channels", on_delete="CASCADE",
                                  index=False)
    position = peewee.IntegerField()
    type = peewee.CharField(max_length=20)
    options_json = peewee.TextField(column_name="config")

    @property
    def options(self) -> dict:
        """The channel's options (addresses, URL, secret) as a dict."""
        return load_json(self.options_json)

    class Meta:
        indexes = ((("rule", "position"), True),)


class AlertState(BaseModel):
    """What the scan last saw of one workflow under one rule.

    `episode` counts the failing notices ever decided for this pair; it is part of the
    notice's unique key, so two scanners deciding the same streak collide in the database.
    """

    # No index of its own: the unique (rule, workflow) index serves its lookups.
    rule = peewee.ForeignKeyField(AlertRule, backref="states", on_delete="CASCADE",
                                  index=False)
    workflow = peewee.ForeignKeyField(Workflow, on_delete="CASCADE")
    streak = peewee.IntegerField(default=0)
    first_failure_at = UTCMicros(null=True)
    last_failure_at = UTCMicros(null=True)
    last_failure_id = peewee.BigIntegerField(null=True)
    last_error = peewee.TextField(null=True)
    alerted = peewee.BooleanField(default=False)
    episode = peewee.IntegerField(default=0)
    updated_at = UTCMicros()
    # The last finished run the scan examined, as (started_at, id): the next scan reads the
    # finished runs after it in order. NULL: not examined yet (a new rule, an older release).
    seen_started_at = UTCMicros(null=True)
    seen_id = peewee.BigIntegerField(null=True)

    class Meta:
        indexes = ((("rule", "workflow"), True),)


class AlertDirty(BaseModel):
    """A workflow whose finished runs changed since the scan last looked at it.

    A negative key marks one run instead (`-run id`): a run that finished, or changed while
    finished, behind its workflow's last finished run. The scan looks at the streak it
    belongs to, which may have ended already (see `alerts.streaks.closed_streak`).
    """

    workflow_id = peewee.BigIntegerField(primary_key=True)
    seq = peewee.BigIntegerField(default=1)  # bumped on every change; the scan deletes what it saw
    marked_at = UTCMicros()


class Notice(BaseModel):
    """One message for one channel: the outbox row and its delivery state."""

    # No index of its own: the unique index below begins with the rule.
    rule = peewee.ForeignKeyField(AlertRule, null=True, on_delete="SET NULL", index=False)
    channel_id = peewee.BigIntegerField()
    workflow = peewee.ForeignKeyField(Workflow, null=True, on_delete="CASCADE")
    kind = peewee.CharField(max_length=10)
    episode = peewee.IntegerField(null=True)
    number = peewee.IntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])  # a reminder's
    channel_type = peewee.CharField(max_length=20)
    channel_options = peewee.TextField(column_name="channel_config")  # a snapshot: deleting the rule strands no notice
    payload = peewee.TextField()  # the webhook body, fixed when decided so retries are identical
    status = peewee.CharField(max_length=10, default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCMicros()
    lease_until = UTCMicros(null=True)
    last_error = peewee.TextField(null=True)
    created_at = UTCMicros()
    delivered_at = UTCMicros(null=True)

    class Meta:
        indexes = (
            # One failing and one recovered notice per channel, streak and rule (one missed
            # and one resumed per late episode, one reminder of each number): a database
            # guarantee, whichever process decides it.
            (("rule", "channel_id", "workflow", "episode", "kind", "number"), True),
            (("status", "next_attempt_at"), False),
        )


INTERRUPTED = "interrupted: outcome unknown"


class Attempt(BaseModel):
    """One try at delivering a notice, written before it is sent.

    `ok` is NULL until the answer is known; an attempt whose process died before it learnt
    the answer keeps NULL and is marked `INTERRUPTED` when the notice is taken again.
    """

    notice = peewee.ForeignKeyField(Notice, backref="attempt_rows", on_delete="CASCADE")
    attempted_at = UTCMicros()
    ok = peewee.BooleanField(null=True)
    response = peewee.TextField(null=True)
    latency_ms = peewee.IntegerField(null=True)
    error = peewee.TextField(null=True)

    @property
    def outcome(self) -> str:
        """"ok", "failed", "sending" (no answer yet) or "interrupted" (none will come)."""
        if self.ok is None:
            return "interrupted" if self.error == INTERRUPTED else "sending"
        return "ok" if self.ok else "failed"


class ScanStatus(BaseModel):
    """The heartbeat of the scan: one row, rewritten by every scan."""

    id = peewee.IntegerField(primary_key=True)
    last_scan_at = UTCMicros()
    duration_ms = peewee.FloatField()
    examined = peewee.IntegerField()
    decided = peewee.IntegerField()
    scans = peewee.BigIntegerField(default=1)


class Reminder(BaseModel):
    """The next reminder of an alerted episode under a rule that reminds: one row per rule
    and workflow while the episode goes on; the scan finds the due ones by `due_at`.

    `kind` is the episode's: "failing" (`episode` as AlertState's) or "missed" (`episode` as
    the summary's `late_episode`); `number` is the last reminder sent (0: none yet).
    """

    rule = peewee.ForeignKeyField(AlertRule, on_delete="CASCADE", index=False)  # see Meta
    workflow = peewee.ForeignKeyField(Workflow, on_delete="CASCADE")
    kind = peewee.CharField(max_length=10)
    episode = peewee.IntegerField()
    number = peewee.IntegerField(default=0)
    due_at = UTCMicros()

    class Meta:
        indexes = ((("rule", "workflow"), True), (("due_at",), False))


class Acknowledgement(BaseModel):
    """Someone has seen a workflow's current failing or late episode: its reminders stop.

    It holds while the episode does: `kind` "failing" with `episode` the summary's
    `failing_episode`, or "late" with the summary's `late_episode`.
    """

    workflow = peewee.ForeignKeyField(Workflow, primary_key=True, on_delete="CASCADE")
    kind = peewee.CharField(max_length=10)
    episode = peewee.IntegerField()
    user_id = peewee.BigIntegerField(null=True)
    by = peewee.CharField(max_length=254)  # the account's e-mail address when it acknowledged
    at = UTCMicros()
    note = peewee.TextField(null=True)


class MaintenanceWindow(BaseModel):
    """A planned quiet: one-off (`starts_at`–`ends_at`) or recurring (`schedule`, a 5-field
    cron expression read in `timezone`, each time lasting `duration_minutes`), for one
    workflow (`workflow_name`) or every workflow (NULL)."""

    workflow_name = peewee.CharField(max_length=200, null=True)
    starts_at = UTCMicros(null=True)
    ends_at = UTCMicros(null=True)
    schedule = peewee.CharField(max_length=200, null=True)
    timezone = peewee.CharField(max_length=64, default="UTC")
    duration_minutes = peewee.IntegerField(null=True)
    reason = peewee.TextField(null=True)
    created_at = UTCMicros()

    class Meta:
        indexes = ((("workflow_name",), False), (("ends_at",), False))


MODELS = [AlertRule, AlertChannel, AlertState, AlertDirty, Notice, Attempt, ScanStatus,
          Reminder, Acknowledgement, MaintenanceWindow]


def by_parent(parent_ids: list[int], query, parent_field: str) -> dict[int, list]:
    """The rows of `query` grouped by their parent's id, every parent present (one query)."""
    found: dict[int, list] = {pid: [] for pid in parent_ids}
    if parent_ids:
        for row in query:
            found[getattr(row, parent_field)].append(row)
    return found


def channels_of(rule_ids: list[int]) -> dict[int, list[AlertChannel]]:
    """The channels of several rules, in order, in one query."""
    return by_parent(rule_ids, AlertChannel.select().where(AlertChannel.rule.in_(rule_ids))
                     .order_by(AlertChannel.rule, AlertChannel.position), "rule_id")


def mark_workflows(workflow_ids: set[int] | list[int]) -> None:
    """Ask the next scan to look at these workflows again."""
    if not workflow_ids:
        return
    now = to_micros(utcnow())
    table = AlertDirty._meta.table_name
    upsert_rows(table, ("workflow_id", "seq", "marked_at"), ("workflow_id",),
                [(wid, 1, now) for wid in sorted(workflow_ids)], bump=("seq",))


def mark_runs(run_ids: set[int] | list[int]) -> None:
    """Ask the next scan to look at the streaks these runs belong to (they changed out of
    order: behind their workflow's last finished run)."""
    mark_workflows({-run_id for run_id in run_ids})


def mark_finished_changes(changes: list[Change]) -> None:
    """Write hook: a run that is or was finished may change a streak."""
    mark_workflows({after.workflow_id for before, after in changes
                    if after.status in FINISHED_STATUSES
                    or (before is not None and before.status in FINISHED_STATUSES)})

