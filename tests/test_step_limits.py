"""Bounded work per request: at most RUNWATCH_MAX_STEPS_PER_REQUEST steps in one request
and RUNWATCH_MAX_STEPS_PER_RUN for one run in it; beyond, a quick 413 that stores nothing."""
from __future__ import annotations

import json

import pytest

from app import create_app
from models import Execution, Step, StepPayload, Workflow
from models.schemas import BatchIn, InputError, StepBudget, parse

URL = "/api/automations/executions"


def run(steps: int, tag: str = "r") -> dict:
    return {"workflow": "big", "external_id": tag, "status": "success",
            "steps": [{"name": f"s{i}", "output": {"i": i}} for i in range(steps)]}


def stored() -> tuple[int, int, int, int]:
    return (Workflow.select().count(), Execution.select().count(), Step.select().count(),
            StepPayload.select().count())


def test_the_defaults_allow_5000_steps_per_request_and_2000_per_run(app):
    assert app.config["MAX_STEPS_PER_REQUEST"] == 5000
    assert app.config["MAX_STEPS_PER_RUN"] == 2000


def test_a_batch_at_the_limits_is_stored_whole(api, db):
    body = {"executions": [run(2000, "a"), run(2000, "b"), run(1000, "c")]}
    response = api.post(f"{URL}/batch", json=body)
    assert response.status_code == 201, response.text[:300]
    assert stored() == (1, 3, 5000, 5000)


def test_a_batch_with_more_steps_in_all_is_a_413_naming_the_run_that_passed_the_limit(api, db):
    body = {"executions": [run(2000, "a"), run(2000, "b"), run(1001, "c")]}
    response = api.post(f"{URL}/batch", json=body)
    assert response.status_code == 413, response.text[:300]
    error = response.json["error"]
    assert error["code"] == "too_many_steps" and error["field"] == "executions.2.steps"
    assert "5000 steps in all" in error["message"]
    assert stored() == (0, 0, 0, 0)


@pytest.mark.parametrize("route,body,field", [
    ("", run(2001), "steps"),
    ("/batch", {"executions": [run(5, "a"), run(2001, "b")]}, "executions.1.steps"),
    ("/{id}/steps", {"steps": run(2001)["steps"]}, "steps"),
])
def test_a_run_with_more_steps_than_the_per_run_limit_is_a_413_naming_it(api, db, route, body,
                                                                           field):
    run_id = api.post(URL, json=run(1, "existing")).json["id"]
    before = stored()
    response = api.post(URL + route.replace("{id}", str(run_id)), json=body)
    assert response.status_code == 413, response.text[:300]
    assert response.json["error"]["field"] == field
    assert "2000 steps per request" in response.json["error"]["message"]
    assert stored() == before


@pytest.fixture
def small_limits(app_config) -> dict:
    app_config.update(MAX_STEPS_PER_REQUEST=6, MAX_STEPS_PER_RUN=4)
    return app_config


def test_the_limits_are_settings(small_limits, api):
    assert api.post(URL, json=run(4)).status_code == 201
    assert api.post(URL, json=run(5)).status_code == 413
    two = {"executions": [run(4, "a"), run(3, "b")]}
    assert api.post(f"{URL}/batch", json=two).json["error"]["field"] == "executions.1.steps"
    for value in ("many", "0"):
        with pytest.raises(SystemExit, match="RUNWATCH_MAX_STEPS_PER_RUN"):
            create_app({**small_limits, "MAX_STEPS_PER_RUN": value})


def _old_batch() -> bytes:
    """80 runs of 10,000 steps, as compact JSON: the text of one run repeated (what
    json.dumps writes for it, without building 800,000 dicts first)."""
    steps = ",".join([json.dumps({"name": "s"}, separators=(",", ":"))] * 10_000)
    one_run = '{"workflow":"w","status":"success","steps":[%s]}' % steps
    return ('{"executions":[%s]}' % ",".join([one_run] * 80)).encode()


def test_the_old_80_by_10000_batch_is_refused_after_reading_one_step_past_the_limit(api, db):
    body = _old_batch()
    assert body.count(b'{"name":"s"}') == 80 * 10_000
    assert len(body) < 10 * 1024 * 1024  # under the body limit: the steps are what it refuses
    budget = StepBudget()
    with pytest.raises(InputError) as refused:
        parse(BatchIn, body, budget)
    assert refused.value.status == 413
    assert budget.seen == budget.per_request + 1  # no step after the first one too many
    response = api.post(f"{URL}/batch", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["field"] == "executions.0.steps"
    assert stored() == (0, 0, 0, 0)
