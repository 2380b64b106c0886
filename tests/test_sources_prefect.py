"""The Prefect source against a real Prefect 3 server (one per test process, from the venv
`.ci/prefect-venv` builds), whose flows Prefect's own SDK runs: a succeeding flow, a failing
one with tasks, and flows still running at the first pull that end before the next."""
from __future__ import annotations

import pytest

from models.db import connection
from models.executions import Execution, Workflow
from prefect_server import PrefectServer
from sources.models import Source, SourceRun
from sources.pull import job, pull_source, settings_from
from sources.service import pull_soon

# One server for the module, on one worker; the group goes out early (its server and flows
# take some 15 s to start), its tests in the order written (the last stops the server).
pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.long(10)]

API = "/api/automations/sources"
WAITERS = ("waiter-sqlite", "waiter-postgresql")  # one still running for each database
FINAL = ("COMPLETED", "FAILED")


@pytest.fixture(scope="module")
def prefect(tmp_path_factory):
    """The server, its finished flows with every task run recorded, and the waiters running
    (their first task done)."""
    server = PrefectServer(tmp_path_factory.mktemp("prefect"))
    try:
        server.start(*WAITERS).wait_for_flows()
        server.wait_for(lambda: _recorded(server, {"nightly-etl": (1, 2), "invoice-sync": (1, 2),
                                                   "waiter": (2, 1)}),
                        "Prefect to record the flows' task runs")
        yield server
    finally:
        server.stop()


def _recorded(server: PrefectServer, expected: dict[str, tuple[int, int]]) -> bool:
    """Whether each flow has its runs, each run its task runs, every task run finished."""
    for flow, (runs, tasks) in expected.items():
        found = server.flow_runs(flow)
        if len(found) != runs:
            return False
        recorded = server.task_runs([run["id"] for run in found])
        if any(sum(1 for task in recorded if task["flow_run_id"] == run["id"]) < tasks
               for run in found) or any(task["state_type"] not in FINAL for task in recorded):
            return False
    return True


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WEBHOOK_ALLOW_PRIVATE": True}  # the server is on 127.0.0.1


def add_source(api, prefect: PrefectServer, **fields) -> int:
    answer = api.post(API, json={"type": "prefect", "url": prefect.url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json["id"]


def pull(app, source_id: int):
    with connection():
        return pull_source(source_id, settings_from(app))


def run_of(api, flow_run: dict) -> dict:
    """The run stored for a Prefect flow run (there is exactly one)."""
    with connection():
        [run_id] = [id_ for (id_,) in Execution.select(Execution.id).where(
            Execution.external_id == f"prefect-{flow_run['id']}").tuples()]
    return api.get(f"/api/automations/executions/{run_id}").json


def stored_runs() -> list[tuple]:
    with connection():
        return list(Execution.select(Workflow.name, Execution.external_id, Execution.status,
                                     Execution.updated_at).join(Workflow).order_by(Execution.id)
                    .tuples())


def test_a_pull_maps_flow_runs_and_task_runs_and_pulling_again_writes_nothing(app, api,
                                                                              prefect):
    source = add_source(api, prefect)
    outcome = pull(app, source)
    assert (outcome.error, outcome.left_out, outcome.stored, outcome.new) == (None, [], 4, 4)

    [failed] = prefect.flow_runs("invoice-sync")
    run = run_of(api, failed)
    assert (run["workflow"], run["status"], run["input"]) == ("invoice-sync", "failure",
                                                              {"customer": 7})
    assert run["error"]["type"] == "ValueError"
    assert "card declined for customer 7" in run["error"]["message"]
    assert [(s["position"], s["action"], s["status"]) for s in run["steps"]] == [
        (0, "add", "success"), (1, "charge", "failure")]
    assert run["steps"][1]["error"]["type"] == "ValueError"
    assert run["steps"][0]["name"].startswith("add-") and run["failed_step"] == 1
    [succeeded] = prefect.flow_runs("nightly-etl")
    run = run_of(api, succeeded)
    assert (run["status"], run["input"], run["step_count"], run["error"]) == (
        "success", {"rows": 3}, 2, None)
    assert run["finished_at"] and run["duration_ms"] is not None

    # The rest of Runwatch sees them like any report: the workflow's state, its counts.
    workflow = api.get("/api/automations/workflows/invoice-sync").json
    assert (workflow["state"], workflow["streak"]) == ("failing", 1)
    assert api.get("/api/automations/executions?workflow=nightly-etl").json["data"][0][
        "status"] == "success"
    shown = api.get(f"{API}/{source}").json
    assert (shown["last_pulled"], shown["runs"], shown["last_error"]) == (4, 4, None)
    assert shown["last_pull_at"] and shown["cursor"]

    # Again, over the same window and over one that overlaps it by an hour, and from a
    # second source on the same server: nothing is written twice, nothing is copied.
    before = stored_runs()
    assert pull(app, source).stored == 0
    with connection():
        (Source.update(cursor=Source.created_at - 3_600_000_000)
         .where(Source.id == source).execute())
    assert pull(app, source).stored == 0
    assert stored_runs() == before
    assert pull(app, add_source(api, prefect)).error is None
    assert [row[:3] for row in stored_runs()] == [row[:3] for row in before]


def test_a_flow_run_that_ends_between_two_pulls_is_updated_in_place(app, api, prefect,
                                                                   backend):
    waiter = f"waiter-{backend}"  # each database's test releases a waiter of its own
    [flow_run] = [run for run in prefect.flow_runs("waiter")
                  if run["parameters"]["release"].endswith(waiter)]
    source = add_source(api, prefect)
    assert pull(app, source).error is None
    running = run_of(api, flow_run)
    assert (running["status"], running["finished_at"], running["step_count"]) == (
        "running", None, 1)

    prefect.release(waiter)
    prefect.wait_for(lambda: _ended(prefect, flow_run["id"]), "the waiter to end")
    outcome = pull(app, source)
    assert outcome.error is None and outcome.stored >= 1
    ended = run_of(api, flow_run)
    assert ended["id"] == running["id"]
    assert (ended["status"], ended["step_count"]) == ("success", 2)
    assert ended["finished_at"] and [s["status"] for s in ended["steps"]] == ["success"] * 2
    with connection():
        assert not SourceRun.get(SourceRun.remote_id == flow_run["id"]).open


def _ended(prefect: PrefectServer, flow_run_id: str) -> bool:
    [run] = prefect.post("/flow_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}})
    tasks = prefect.task_runs([flow_run_id])
    return (run["state_type"] == "COMPLETED" and len(tasks) == 2
            and all(task["state_type"] in FINAL for task in tasks))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_job_pulls_due_sources_and_leaves_paused_ones_alone(app, api, prefect, logged_in):
    paused = add_source(api, prefect, enabled=False)
    active = add_source(api, prefect)
    with connection():
        assert job(app) == [active]
        assert job(app) == []  # not due again before its interval
    assert api.get(f"{API}/{paused}").json["last_pull_at"] is None
    assert api.get(f"{API}/{active}").json["runs"] >= 4

    page = logged_in.get("/settings/sources").text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    resumed = logged_in.post(f"/settings/sources/{paused}/resume", data={"csrf_token": token})
    assert resumed.status_code == 303
    with connection():
        assert job(app) == [paused]
    assert api.get(f"{API}/{paused}").json["last_error"] is None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_prefect_that_stops_is_a_recorded_error_and_the_job_goes_on(app, api, prefect,
                                                                      logged_in):
    """Last in this module: it stops the server."""
    source = add_source(api, prefect, interval_seconds=600)
    with connection():
        assert job(app) == [source]
    pulled = api.get(f"{API}/{source}").json
    assert pulled["last_error"] is None and pulled["runs"] >= 4

    prefect.stop()
    with connection():
        pull_soon(source)
        assert job(app) == [source]  # no exception: the error is the source's
    failed = api.get(f"{API}/{source}").json
    assert "POST /flow_runs/filter" in failed["last_error"]
    assert "refused" in failed["last_error"].lower()
    assert (failed["cursor"], failed["runs"], failed["last_pulled"]) == (
        pulled["cursor"], pulled["runs"], 0)
    assert failed["next_pull_at"] > failed["last_pull_at"]  # tried again an interval on
    assert len(stored_runs()) == pulled["runs"]
    assert failed["last_error"] in logged_in.get("/settings/sources").text
