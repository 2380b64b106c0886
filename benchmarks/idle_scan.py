"""Idle-scan benchmark: the alerts job's scan when there is nothing to do, with quiet alerts
(mutes, maintenance windows, acknowledged episodes, reminders, held notices) in the tables.

    python -m benchmarks.idle_scan               # --workflows 10000 --repeat 300
    python -m benchmarks.idle_scan --postgres postgresql://u@host/emptydb

Fills a fresh SQLite file (or the given, empty, PostgreSQL database) with bulk inserts, in
two steps (10 % and 100 % of --workflows), each workflow with its summary and one finished
run, every one on a schedule whose next run is an hour away (so none is due): a tenth of
the workflows failing (an alerted streak under every rule, a reminder due in an hour for
the rule that reminds), a tenth of those acknowledged, a tenth of all muted for a day (the
failing ones with their notices held until then), and one maintenance window per hundred
workflows (one-off ones past, present and to come, and recurring ones in several zones).
One rule covers every workflow and reminds every hour; ten more cover one workflow each;
the outbox holds a delivered notice per failing workflow and rule. Nothing is marked for
the scan, so the scan looks at every step and finds nothing.

It then times, in process and on one connection, the alerts job's scan
(`alerts.scheduler.scan`: timeouts, streaks, missed runs and every other step of the job
but delivery) and a delivery pass (`alerts.delivery.deliver_due`), next to the floor: a
trivial query (`SELECT 1`) on the same connection, and a one-row write with its commit
(the scan's heartbeat needs one). The target is an idle scan under 10 ms; the two steps
show whether its cost grows with the number of workflows. `--queries` prints the
statements one idle scan runs.
"""
from __future__ import annotations

import json
import logging
import random
import time
from datetime import datetime

from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.models import (Acknowledgement, AlertChannel, AlertRule, AlertState,
                           MaintenanceWindow, Notice, Reminder)
from alerts.scheduler import scan
from models import database
from models.db import connection, is_sqlite, write_transaction
from models.executions import Execution, Workflow
from models.times import from_micros, iso, to_micros, utcnow
from workflows.models import RANKS, WorkflowSummary

from .harness import Bench, arguments, empty_postgres, p, print_table, time_calls

TARGET_MS = 10.0
CHUNK = 500          # rows per INSERT: within SQLite's limit of bound values
EXTRA_RULES = 10     # rules of one workflow each, beside the one for every workflow
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
CHANNELS = ('{"url":"http://127.0.0.1:9/runwatch","secret":null}',
            '{"url":"https://hooks.slack.com/services/T0/B0/XXXX"}')


def insert(model, rows: list[dict]) -> None:
    """Bulk-insert `rows` into `model`'s table, CHUNK at a time."""
    for start in range(0, len(rows), CHUNK):
        with write_transaction():
            model.insert_many(rows[start:start + CHUNK]).execute()


def fill(first: int, last: int, now: datetime, rng: random.Random) -> None:
    """Workflows `first`..`last` (1-based) with their summaries, one run each, and their
    share of failing, acknowledged, muted and maintained ones; the rules on the first call."""
    now_us = to_micros(now)
    hour = 3600 * 10**6
    if first == 1:
        insert(AlertRule, [{"workflow_name": None, "threshold": 3, "remind_every_minutes": 60,
                            "created_at": now_us, "updated_at": now_us}]
               + [{"workflow_name": f"workflow-{n:05d}", "threshold": 1 + n % 5,
                   "created_at": now_us, "updated_at": now_us}
                  for n in range(1, EXTRA_RULES + 1)])
        rules = [rule_id for (rule_id,) in AlertRule.select(AlertRule.id).tuples()]
        insert(AlertChannel, [{"rule": rule_id, "position": position, "type": kind,
                               "options_json": options}
                              for rule_id in rules
                              for position, (kind, options) in
                              enumerate(zip(("webhook", "slack"), CHANNELS))])
    numbers = range(first, last + 1)
    failing = {n for n in numbers if n % 10 == 3}
    muted = {n for n in numbers if n % 20 in (3, 7)}  # a tenth: half of them failing
    acknowledged = {n for n in failing if n % 100 == 13}  # a tenth of the failing ones
    insert(Workflow, [{"name": f"workflow-{n:05d}", "created_at": now_us - 30 * 24 * hour,
                       "schedule": "0 * * * *", "timezone": "UTC", "grace_seconds": 300,
                       "schedule_set_at": now_us,
                       "muted_until": now_us + 24 * hour if n in muted else None}
                      for n in numbers])
    ids = dict(Workflow.select(Workflow.name, Workflow.id)
               .where(Workflow.name.between(f"workflow-{first:05d}", f"workflow-{last:05d}"))
               .tuples())
    workflow_id = {n: ids[f"workflow-{n:05d}"] for n in numbers}
    started = {n: now_us - rng.randrange(1, 50) * 60 * 10**6 for n in numbers}
    insert(Execution, [{"workflow": workflow_id[n], "external_id": f"run-{n}",
                        "status": "failure" if n in failing else "success",
                        "started_at": started[n], "finished_at": started[n] + 5 * 10**6,
                        "duration_ms": 5000, "step_count": 0,
                        "error_message": "HTTP 502 from billing" if n in failing else None,
                        "error_type": "HTTPError" if n in failing else None,
                        "created_at": started[n], "updated_at": started[n]}
                       for n in numbers])
    runs = dict(Execution.select(Execution.workflow, Execution.id)
                .where(Execution.workflow.in_(list(workflow_id.values()))).tuples())
    insert(WorkflowSummary, [{
        "workflow": workflow_id[n], "name": f"workflow-{n:05d}",
        "state": "failing" if n in failing else "ok",
        "rank": RANKS["failing" if n in failing else "ok"], "streak": 5 if n in failing else 0,
        "finished_started_at": started[n], "finished_id": runs[workflow_id[n]],
        "finished_status": "failure" if n in failing else "success",
        "last_started_at": started[n], "expected_at": now_us + hour,
        "due_at": now_us + hour + 300 * 10**6, "failing_episode": 1 if n in failing else 0}
        for n in numbers])
    rules = list(AlertRule.select(AlertRule.id, AlertRule.workflow_name).tuples())
    covering = [(rule_id, n) for rule_id, name in rules for n in numbers
                if name is None or name == f"workflow-{n:05d}"]
    insert(AlertState, [{
        "rule": rule_id, "workflow": workflow_id[n], "streak": 5 if n in failing else 0,
        "first_failure_at": started[n] if n in failing else None,
        "last_failure_at": started[n] if n in failing else None,
        "last_failure_id": runs[workflow_id[n]] if n in failing else None,
        "alerted": n in failing, "episode": 1 if n in failing else 0, "updated_at": now_us,
        "seen_started_at": started[n], "seen_id": runs[workflow_id[n]]}
        for rule_id, n in covering])
    reminding = rules[0][0]
    insert(Reminder, [{"rule": reminding, "workflow": workflow_id[n], "kind": "failing",
                       "episode": 1, "number": 1, "due_at": now_us + hour}
                      for n in sorted(failing - acknowledged - muted)])
    insert(Acknowledgement, [{"workflow": workflow_id[n], "kind": "failing", "episode": 1,
                              "by": "oncall@example.com", "at": now_us - hour,
                              "note": "looking into it"} for n in sorted(acknowledged)])
    covered = set(covering)
    channels = list(AlertChannel.select(AlertChannel.id, AlertChannel.rule, AlertChannel.type,
                                        AlertChannel.options_json).tuples())
    insert(Notice, [{
        "rule": rule_id, "channel_id": channel_id, "workflow": workflow_id[n], "kind": "failing",
        "episode": 1, "channel_type": kind, "channel_options": options,
        "payload": json.dumps({"type": "workflow.failing", "timestamp": iso(from_micros(started[n])),
                               "data": {"workflow": f"workflow-{n:05d}", "failure_count": 5,
                                        "threshold": 3, "rule_id": rule_id}}),
        "status": "held" if n in muted else "delivered", "attempts": 0 if n in muted else 1,
        "next_attempt_at": now_us + 24 * hour if n in muted else started[n],
        "created_at": started[n], "delivered_at": None if n in muted else started[n]}
        for n in sorted(failing) for channel_id, rule_id, kind, options in channels
        if (rule_id, n) in covered])
    windows = []
    for n in range(first, last + 1, 100):
        name = f"workflow-{n:05d}" if n % 300 != 1 else None  # every third for every workflow
        shape = (n // 100) % 4
        start = now_us + (shape - 1) * 6 * hour - hour  # one past, one under way, one to come
        recurring = shape == 3
        windows.append({  # every row names every column: insert_many takes the first's
            "workflow_name": name, "created_at": now_us,
            "starts_at": None if recurring else start,
            "ends_at": None if recurring else start + 2 * hour,
            "schedule": f"{n % 60} 3 * * {n % 7}" if recurring else None,
            "timezone": ZONES[n % len(ZONES)] if recurring else "UTC",
            "duration_minutes": 90 if recurring else None,
            "reason": "weekly database upkeep" if recurring else "planned migration"})
    insert(MaintenanceWindow, windows)
    if not is_sqlite():
        database.execute_sql("ANALYZE")


def one_row_write() -> None:
    """What the idle scan cannot do without: its heartbeat's write, committed."""
    with write_transaction():
        database.execute_sql("UPDATE scan_status SET scans = scans WHERE id = 1")


def statements(config) -> list[str]:
    """The SQL statements one idle scan runs, as peewee logs them."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(str(record.msg[0] if isinstance(record.msg, tuple) else record.msg))

    log = logging.getLogger("peewee")
    handler, level = Keep(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        scan(config)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return seen


def main() -> None:
    parser = arguments(__doc__, workflows=10_000, repeat=300)
    parser.add_argument("--queries", action="store_true",
                        help="print the statements one idle scan runs")
    args = parser.parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    config = config_from(bench.app)
    rng, now = random.Random(20), utcnow()
    rows, filled = [], 0
    with connection():
        for size in sorted({max(1, args.workflows // 10), args.workflows}):
            started = time.perf_counter()
            fill(filled + 1, size, now, rng)
            filled = size
            print(f"filled {size:,} workflows in {time.perf_counter() - started:.1f} s",
                  flush=True)
            first = scan(config)  # warms the caches; finds nothing, as every later one
            assert first.examined == 0 and first.decided == 0, first

            def idle_scan():
                result = scan(config)
                assert result.examined == 0 and result.decided == 0, result

            floor = time_calls(lambda: database.execute_sql("SELECT 1").fetchall(),
                               args.repeat)
            cases = [("one-row write and its commit", one_row_write),
                     ("idle scan (the alerts job but delivery)", idle_scan),
                     ("delivery pass, nothing due", lambda: deliver_due(config))]
            rows.append([f"{size:,}", "floor: SELECT 1", p(floor, 50), p(floor, 95), 1.0])
            for label, call in cases:
                samples = time_calls(call, args.repeat)
                rows.append([f"{size:,}", label, p(samples, 50), p(samples, 95),
                             p(samples, 50) / p(floor, 50)])
        queries = statements(config) if args.queries else []
        idle = rows[-2][2]  # the last step's idle scan
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{backend}; per {args.workflows:,} workflows: a tenth failing, a tenth muted, "
          f"{args.workflows // 100:,} maintenance windows, {args.workflows // 100:,} "
          f"acknowledged episodes; {args.repeat} timed calls per case on one connection; "
          "times in ms; x = p50 / the floor's p50 of the same step.")
    print_table(["workflows", "case", "p50", "p95", "x floor"], rows)
    verdict = "under" if idle < TARGET_MS else "OVER"
    print(f"\nidle scan at {args.workflows:,} workflows: median {idle:.2f} ms, {verdict} the "
          f"{TARGET_MS:g} ms target")
    if queries:
        print(f"\nthe {len(queries)} statements of one idle scan:")
        for sql in queries:
            print(" ", sql)


if __name__ == "__main__":
    main()
