"""Realistic sample data: workflows with multi-step runs, errors and a failing streak."""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from .times import utcnow
from .ingest import store_executions
from .schemas import ExecutionIn

# name -> (steps as (name, action), typical seconds per step, failure rate)
WORKFLOWS = {
    "invoice-sync": ([("Fetch invoices", "http.get"), ("Transform", "python"),
                      ("Post to billing", "http.post"), ("Mark synced", "sql.update")], 2.0, .08),
    "nightly-backup": ([("Dump database", "shell"), ("Compress", "shell"),
                        ("Upload to S3", "s3.put"), ("Prune old backups", "s3.delete")], 40.0, .03),
    "crm-contacts-import": ([("Download CSV", "http.get"), ("Validate rows", "python"),
                             ("Upsert contacts", "crm.upsert")], 5.0, .12),
    "slack-digest": ([("Query metrics", "sql.select"), ("Render digest", "template"),
                      ("Send to Slack", "slack.post")], 1.0, .04),
    "stripe-webhook-handler": ([("Verify signature", "python"), ("Load customer", "sql.select"),
                                ("Update subscription", "sql.update")], .3, .05),
    "ci-deploy-production": ([("Checkout", "git"), ("Build image", "docker.build"),
                              ("Run tests", "pytest"), ("Push image", "docker.push"),
                              ("Roll out", "kubectl.apply")], 60.0, .10),
    "report-generator": ([("Collect data", "sql.select"), ("Build PDF", "python"),
                          ("E-mail report", "smtp.send")], 8.0, .06),
    "search-index-refresh": ([("Read changes", "sql.select"), ("Index documents", "http.post")],
                             15.0, .07),
    "payment-retry": ([("Find failed payments", "sql.select"), ("Retry charge", "stripe.charge"),
                       ("Notify customer", "smtp.send")], 2.5, .15),
}
FAILING_WORKFLOW = "payment-retry"
FAILING_STREAK = 5

ERRORS = [
    ("HTTPError", "HTTP 502 from billing-api.internal: Bad Gateway"),
    ("TimeoutError", "Timed out after 30 s waiting for upstream"),
    ("KeyError", "'customer_id'"),
    ("IntegrityError", "duplicate key value violates unique constraint \"contacts_email_key\""),
    ("ConnectionError", "Connection refused: redis://cache:6379"),
    ("ValueError", "Row 214: invalid date '2026-02-30'"),
]


def _stack(kind: str, message: str, step: str) -> str:
    return ("Traceback (most recent call last):\n"
            '  File "/srv/automations/runner.py", line 88, in run_step\n'
            "    result = handler(context)\n"
            f'  File "/srv/automations/steps/{step.lower().replace(" ", "_")}.py", line 41, in handler\n'
            "    response.raise_for_status()\n"
            f"{kind}: {message}")


def _run(rng: random.Random, name: str, started: datetime, status: str, number: int) -> dict:
    steps_spec, seconds, _ = WORKFLOWS[name]
    trigger = {"trigger": rng.choice(["cron", "webhook", "manual"]), "run_number": number,
               "customer": {"id": rng.randint(1, 5000), "region": rng.choice(["eu", "us", "ap"])},
               "options": {"dry_run": False, "batch_size": rng.choice([50, 100, 500])},
               "api_key": "sk_live_" + "".join(rng.choices("abcdef0123456789", k=24))}
    fail_at = rng.randrange(len(steps_spec)) if status == "failure" else None
    stop_at = rng.randrange(len(steps_spec)) if status in ("running", "pending") else None
    clock = started
    steps, error = [], None
    for position, (step_name, action) in enumerate(steps_spec):
        if status == "pending" or (stop_at is not None and position > stop_at):
            break
        took = timedelta(seconds=max(.01, rng.gauss(seconds, seconds / 3)))
        gap = timedelta(milliseconds=rng.randint(5, 300))
        step = {"position": position, "name": step_name, "action": action,
                "started_at": clock + gap, "input": {"attempt": 1, "items": rng.randint(0, 300)}}
        clock = clock + gap + took
        if position == fail_at:
            kind, message = rng.choice(ERRORS)
            error = {"message": message, "type": kind, "stack": _stack(kind, message, step_name)}
            step.update(status="failure", finished_at=clock, error=error,
                        logs=f"starting {action}\nretrying once\n{kind}: {message}\n")
            steps.append(step)
            break
        if position == stop_at:
            step.update(status="running", logs=f"starting {action}\n")
            steps.append(step)
            break
        step.update(status="success", finished_at=clock,
                    output={"ok": True, "count": rng.randint(0, 500),
                            "ids": [rng.randint(1000, 9999) for _ in range(3)]},
                    logs=f"starting {action}\ndone\n")
        steps.append(step)
    run = {"workflow": name, "external_id": f"{name}-{number}", "status": status,
           "started_at": started, "input": trigger, "steps": steps}
    if status in ("success", "failure"):
        run["finished_at"] = clock + timedelta(milliseconds=rng.randint(1, 50))
        run["output"] = {"processed": rng.randint(0, 1000)} if status == "success" else None
    if error:
        run["error"] = error
    return run


def fill_demo(runs: int = 2000, days: int = 30, seed: int | None = None) -> dict:
    """Store `runs` sample runs over the last `days` days; the failing workflow ends in a streak."""
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    names = list(WORKFLOWS)
    span = days * 86400
    batch: list[ExecutionIn] = []
    total = 0
    counters = {name: 0 for name in names}

    def flush():
        nonlocal batch, total
        if batch:
            store_executions(batch)
            total += len(batch)
            batch = []

    streak = min(FAILING_STREAK, runs)
    # The run before the streak succeeded, so the streak is exactly FAILING_STREAK long.
    in_flight = [(120, "running"), (30, "pending")][:max(0, runs - streak)]
    recovered = 1 if runs > streak + len(in_flight) else 0
    for _ in range(runs - streak - len(in_flight) - recovered):
        name = rng.choice(names)
        started = now - timedelta(seconds=rng.randint(3600, span))
        roll = rng.random()
        rate = WORKFLOWS[name][2]
        status = "failure" if roll < rate else "success"
        counters[name] += 1
        batch.append(ExecutionIn.model_validate(_run(rng, name, started, status, counters[name])))
        if len(batch) == 500:
            flush()
    # A few runs in flight right now, and one workflow failing several times in a row.
    for offset, status in in_flight:
        name = rng.choice(names[:-1])
        counters[name] += 1
        batch.append(ExecutionIn.model_validate(
            _run(rng, name, now - timedelta(seconds=offset), status, counters[name])))
    if recovered:
        counters[FAILING_WORKFLOW] += 1
        batch.append(ExecutionIn.model_validate(_run(
            rng, FAILING_WORKFLOW, now - timedelta(minutes=10 * (streak + 1)), "success",
            counters[FAILING_WORKFLOW])))
    for index in range(streak):
        counters[FAILING_WORKFLOW] += 1
        started = now - timedelta(minutes=10 * (streak - index))
        batch.append(ExecutionIn.model_validate(
            _run(rng, FAILING_WORKFLOW, started, "failure", counters[FAILING_WORKFLOW])))
    flush()
    return {"runs": total, "workflows": len(names), "failing": FAILING_WORKFLOW, "streak": streak}
