"""Retention: runs older than RUNWATCH_RETENTION_DAYS go with their steps and payloads;
counts, rollups and alert state stay exact."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from alert_servers import make_rule, notices
from alerts.config import config_from
from alerts.models import AlertState
from alerts.scheduler import scan
from app import create_app
from helpers import rollups_as_read
from history.rollups import RunRollup, rebuild_rollups
from history.retention import purge_expired
from models import Execution, database
from models.db import connection, iso, utcnow
from models.executions import ExecutionPayload, Step, StepPayload

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"
HOOK = [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]


def _runs(now, days_ago: float, count: int, prefix: str, status="success", **extra):
    started = now - timedelta(days=days_ago)
    runs = []
    for i in range(count):
        run = {"workflow": f"wf-{i % 3}", "external_id": f"{prefix}-{i}", "status": status,
               "started_at": iso(started + timedelta(seconds=i)), "input": {"n": i},
               "steps": [{"name": "a", "input": {"x": 1}, "logs": "ok"}, {"name": "b"}],
               **extra}
        if status in ("success", "failure"):
            run["finished_at"] = iso(started + timedelta(seconds=i + 1))
        runs.append(run)
    return runs


def _counts(api, **query) -> dict:
    response = api.get(URL, query_string={"limit": 1, **query})
    assert response.status_code == 200, response.text
    return response.json["counts"]


def test_old_runs_go_with_their_steps_and_payloads_and_counts_stay_exact(app, api):
    now = utcnow()
    old = _runs(now, 40, 30, "old", status="failure", error={"message": "boom"})
    new = _runs(now, 5, 20, "new")
    assert api.post(BATCH, json={"executions": old + new}).status_code == 201
    before_all = _counts(api, **{"from": iso(now - timedelta(days=60))})
    assert before_all["failure"] == 30

    with connection():
        purged = purge_expired(now, 30, batch=7)
        assert (purged.runs, purged.steps, purged.step_payloads, purged.run_payloads) \
            == (30, 60, 30, 30)
        assert purged.batches == 5 and purged.done
        assert Execution.select().count() == 20
        assert Step.select().count() == 40
        assert StepPayload.select().count() == 20
        assert ExecutionPayload.select().count() == 20
        assert not Execution.select().where(Execution.external_id.startswith("old")).exists()
        kept = rollups_as_read()
    # Counts answered right after, through the same (cached) history API.
    counts = _counts(api, **{"from": iso(now - timedelta(days=60))})
    assert counts["failure"] == 0 and counts["success"] == 20
    listed = api.get(URL, query_string={"limit": 100,
                                        "from": iso(now - timedelta(days=60))}).json["data"]
    assert len(listed) == 20 and {run["status"] for run in listed} == {"success"}
    with connection():
        rebuild_rollups()
        assert rollups_as_read() == kept
        # Buckets left empty are deleted, not kept at zero.
        assert not RunRollup.select().where(RunRollup.n == 0).exists()
        # A second pass finds nothing.
        assert purge_expired(now, 30).runs == 0


def test_unfinished_runs_stay_while_they_are_reported_on(app, api, db):
    now = utcnow()
    stuck = _runs(now, 40, 2, "stuck", status="running")
    assert api.post(BATCH, json={"executions": stuck}).status_code == 201
    # Reported on today: one is still alive; the other was last heard of 35 days ago.
    Execution.update(updated_at=now - timedelta(days=35)) \
        .where(Execution.external_id == "stuck-1").execute()
    assert purge_expired(now, 30).runs == 1
    assert [e.external_id for e in Execution.select()] == ["stuck-0"]


def test_alert_state_is_unaffected_and_no_notice_is_decided(app, api, db):
    make_rule(2, HOOK, workflow="wf-0")
    now = utcnow()
    old = _runs(now, 40, 6, "old", status="failure", error={"message": "boom"})
    new = _runs(now, 1, 6, "new", status="failure", error={"message": "boom"})
    assert api.post(BATCH, json={"executions": old + new}).status_code == 201
    scan(config_from(app))
    states = [(s.rule_id, s.workflow_id, s.streak, s.alerted, s.episode)
              for s in AlertState.select()]
    before = [(n.kind, n.episode) for n in notices()]
    assert before == [("failing", 1)]
    assert purge_expired(now, 30).runs == 6
    scan(config_from(app))
    assert [(s.rule_id, s.workflow_id, s.streak, s.alerted, s.episode)
            for s in AlertState.select()] == states
    assert [(n.kind, n.episode) for n in notices()] == before


def test_readers_and_writers_go_on_while_a_long_purge_runs(app, api, db):
    now = utcnow()
    old = _runs(now, 40, 900, "old")
    for start in range(0, len(old), 300):
        assert api.post(BATCH, json={"executions": old[start:start + 300]}).status_code == 201
    db.close()
    results: dict = {}

    def purge():
        with connection():
            results["purged"] = purge_expired(now, 30, batch=50)

    thread = threading.Thread(target=purge)
    thread.start()
    waits = []
    for i in range(10):
        started = time.perf_counter()
        response = api.post(URL, json={"workflow": "live", "external_id": f"live-{i}",
                                       "status": "success"})
        assert response.status_code == 201
        assert api.get(URL, query_string={"limit": 5}).status_code == 200
        waits.append(time.perf_counter() - started)
    thread.join(60)
    purged = results["purged"]
    assert purged.runs == 900 and purged.batches == 18
    assert max(waits) < 5
    assert purged.longest_batch_ms < 5000
    database.connect(reuse_if_open=True)
    assert Execution.select().count() == 10


def test_the_command_deletes_once_and_reports(app, api, runner):
    now = utcnow()
    assert api.post(BATCH, json={"executions": _runs(now, 10, 4, "old")}).status_code == 201
    result = runner.invoke(args=["retention"])
    assert result.exit_code != 0 and "RUNWATCH_RETENTION_DAYS is not set" in result.output
    result = runner.invoke(args=["retention", "--days", "7"])
    assert result.exit_code == 0, result.output
    assert "Deleted 4 run(s) older than 7 day(s), 8 step(s)" in result.output


def test_the_scheduled_job_deletes_only_when_retention_is_set(app, api):
    import scheduling

    [job] = [job for job in scheduling.JOBS if job.name == "retention"]
    now = utcnow()
    assert api.post(BATCH, json={"executions": _runs(now, 10, 4, "old")
                                 + _runs(now, 1, 2, "new")}).status_code == 201
    job.run(app)  # unset: every run kept
    assert _counts(api, **{"from": iso(now - timedelta(days=60))})["success"] == 6
    app.config["RETENTION_DAYS"] = 7
    job.run(app)
    assert _counts(api, **{"from": iso(now - timedelta(days=60))})["success"] == 2


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5"])
def test_a_bad_retention_setting_stops_the_start(app_config, value):
    with pytest.raises(SystemExit, match="RUNWATCH_RETENTION_DAYS"):
        create_app({**app_config, "RETENTION_DAYS": value})


def test_unset_retention_keeps_every_run(app_config):
    application = create_app({**app_config, "RETENTION_DAYS": ""})
    assert application.config["RETENTION_DAYS"] is None


def test_old_runs_still_reported_on_do_not_hold_back_the_scheduled_job(app, api):
    """Open runs that must stay, more of them than one run of the job reads, in front of
    expired finished runs: each run of the job (a few batches) deletes finished ones; the
    open ones stay."""
    now = utcnow()
    # Started long ago (a client's clock at 1970), still reported on now.
    stuck = _runs(now, 20_000, 40, "stuck", status="running")
    old = _runs(now, 40, 12, "old", status="failure", error={"message": "boom"})
    new = _runs(now, 1, 3, "new")
    assert api.post(BATCH, json={"executions": stuck + old + new}).status_code == 201

    with connection():
        # The job's shape, scaled down: batches of 5, at most 2 batches per run of the job.
        first = purge_expired(now, 30, batch=5, max_batches=2)
        assert first.runs == 10 and not first.done
        second = purge_expired(now, 30, batch=5, max_batches=2)
        assert second.runs == 2 and second.done
        left: dict[str, int] = {}
        for e in Execution.select():
            prefix = e.external_id.split("-")[0]
            left[prefix] = left.get(prefix, 0) + 1
        assert left == {"stuck": 40, "new": 3}
        kept = rollups_as_read()
        rebuild_rollups()
        assert rollups_as_read() == kept
    listed = api.get(URL, query_string={"limit": 100, "status": "failure",
                                        "from": iso(now - timedelta(days=60))}).json["data"]
    assert listed == []


def test_the_next_runs_to_delete_are_read_through_an_index(app, db):
    """Each status' query of a batch is a range of the (status, started_at, id) index, never
    a scan of the table, on either database."""
    from history import retention
    from models.db import is_sqlite, write_transaction

    with write_transaction():
        if not is_sqlite():  # a small table: ask whether an index serves, in order, not
            db.execute_sql("SET LOCAL enable_seqscan = off")  # what is cheaper on it
            db.execute_sql("SET LOCAL enable_sort = off")
        for status in ("pending", "running", "success", "failure"):
            sql, params = retention._expired(status, 0, (-5, 1), 10, True).sql()
            if is_sqlite():
                plan = " | ".join(row[-1] for row in
                                  db.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                assert plan.startswith("SEARCH") and "execution_status_started_at_id" in plan, plan
            else:
                plan = " | ".join(row[0] for row in db.execute_sql(f"EXPLAIN {sql}", params))
                assert "Seq Scan" not in plan and "execution_status_started_at_id" in plan, plan


def _summaries() -> dict:
    from workflows.models import WorkflowSummary as S
    return {row["workflow"]: row for row in S.select().dicts()}


def test_the_summaries_after_a_purge_are_what_a_recount_of_the_kept_runs_makes(app, api):
    """Only workflows whose summary the deleted runs were part of are worked out again; the
    others must be right as they stand."""
    from workflows.summary import recount
    now = utcnow()
    runs = [  # wf-0: a failure streak from before the cut-off into the kept runs
        *_runs(now, 40, 3, "a-old", status="failure", error={"message": "boom"}),
        *_runs(now, 2, 2, "a-new", status="failure", error={"message": "boom"})]
    for run in runs:
        run["workflow"] = "streak"
    many = _runs(now, 45, 10, "b-old") + _runs(now, 3, 25, "b-new")  # last 20 all kept
    for run in many:
        run["workflow"] = "busy"
    gone = _runs(now, 50, 4, "c-old")  # every run of it goes
    for run in gone:
        run["workflow"] = "gone"
    ended = [  # old failures, a success that ended their streak, then a new streak
        *_runs(now, 42, 2, "d-old", status="failure", error={"message": "boom"}),
        *_runs(now, 5, 1, "d-ok"),
        *_runs(now, 1, 2, "d-new", status="failure", error={"message": "boom"})]
    for run in ended:
        run["workflow"] = "ended"
    posted = runs + many + gone + ended
    assert api.post(BATCH, json={"executions": posted}).status_code == 201
    with connection():
        before = _summaries()
        assert purge_expired(now, 30, batch=4).runs == 19
        after = _summaries()
        ids = sorted(after)
        with database.atomic():
            recount(ids)
        assert _summaries() == after
    streak = api.get("/api/automations/workflows/streak").json
    [was] = [row for row in before.values() if row["name"] == "streak"]
    assert streak["streak"] == 2 and was["streak"] == 5
    busy = api.get("/api/automations/workflows/busy").json
    assert len(busy["recent_runs"]) == 20
    assert api.get("/api/automations/workflows/ended").json["streak"] == 2


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)  # SQLite has one writer at a time: nothing goes beside it
def test_on_postgresql_a_purge_waits_for_no_writer_of_workflows_its_runs_do_not_touch(
        app, api, backend, app_config):
    """A writer holds the summary rows of the workflows it writes, and a shard of the change
    counter, until it commits: a purge of runs those summaries do not count goes on beside
    it (it used to wait for the writer's commit)."""
    import psycopg2
    from history.changes import COUNTER_ID, SHARDS
    from workflows.models import WorkflowSummary
    now = utcnow()
    old = _runs(now, 40, 6, "old") + _runs(now, 40, 3, "old-f", status="failure",
                                              error={"message": "boom"})
    new = _runs(now, 2, 3, "ok") + _runs(now, 1, 60, "new")
    for run in old + new:
        run["workflow"] = "busy"
    assert api.post(BATCH, json={"executions": old + new}).status_code == 201
    writer = psycopg2.connect(app_config["DATABASE_URL"])
    try:
        with writer.cursor() as cur:  # a writer in the middle of its transaction
            cur.execute('SELECT 1 FROM "workflow_summary" WHERE "name" = %s FOR UPDATE',
                        ("busy",))
            cur.execute('UPDATE "history_change" SET "n" = "n" + 1 WHERE "id" < %s',
                        (COUNTER_ID + SHARDS - 1,))  # every shard but the last
        with connection():
            database.execute_sql("SET lock_timeout = '3s'")
            try:
                purged = purge_expired(now, 30)
            finally:
                database.execute_sql("RESET lock_timeout")
            assert purged.runs == 9 and purged.longest_batch_ms < 3000
    finally:
        writer.rollback()
        writer.close()
    with connection():
        assert Execution.select().count() == 63
        assert WorkflowSummary.get(WorkflowSummary.name == "busy").streak == 0


def test_purge_batches_sized_to_a_time_budget_start_small_and_grow_at_most_twofold(app, api):
    now = utcnow()
    assert api.post(BATCH, json={"executions": _runs(now, 40, 400, "old")}).status_code == 201
    with connection():
        roomy = purge_expired(now, 30, budget_ms=60_000)  # every batch well within it
    assert roomy.runs == 400 and roomy.batches == 6  # 10, 20, 40, 80, 160, then the last 90
    assert api.post(BATCH, json={"executions": _runs(now, 40, 100, "again")}).status_code == 201
    with connection():
        tight = purge_expired(now, 30, budget_ms=0.001)  # no batch fits: the fewest runs
    assert tight.runs == 100 and tight.batches == 1 + 90 // 5


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)  # SQLite has one writer at a time: nothing goes beside it
def test_on_postgresql_what_a_batch_will_delete_is_read_first_without_a_lock(
        app, api, backend, app_config):
    """Before each batch takes its write lock, its runs, steps and payloads are read with
    none: a writer holding those runs does not hold that read up."""
    import psycopg2
    from history.retention import _warm, cutoff
    now = utcnow()
    assert api.post(BATCH, json={"executions": _runs(now, 40, 20, "old")}).status_code == 201
    writer = psycopg2.connect(app_config["DATABASE_URL"])
    try:
        with writer.cursor() as cur:  # a re-post of those runs, in the middle of its transaction
            cur.execute('SELECT 1 FROM "execution" FOR UPDATE')
        with connection():
            database.execute_sql("SET lock_timeout = '2s'")
            try:
                _warm(cutoff(now, 30), {}, 50)
            finally:
                database.execute_sql("RESET lock_timeout")
    finally:
        writer.rollback()
        writer.close()
    with connection():
        assert purge_expired(now, 30).runs == 20
