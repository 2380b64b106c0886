"""Reporting runs: single posts, batches, patches, steps, and every kind of bad input."""
from __future__ import annotations

import json

import pytest

from models import Execution, ExecutionPayload, Step, StepPayload, Workflow

URL = "/api/automations/executions"

RUN = {
    "workflow": "invoice-sync", "external_id": "run-8812", "status": "failure",
    "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:04.250Z",
    "input": {"customer": 42},
    "error": {"message": "HTTP 502 from billing", "type": "HTTPError", "stack": "Traceback …"},
    "steps": [
        {"position": 0, "name": "Fetch invoices", "action": "http.get", "status": "success",
         "started_at": "2026-11-24T10:00:00.100Z", "finished_at": "2026-11-24T10:00:01Z",
         "input": {}, "output": {"count": 3}},
        {"position": 1, "name": "Post to billing", "action": "http.post", "status": "failure",
         "started_at": "2026-11-24T10:00:01Z", "finished_at": "2026-11-24T10:00:04Z",
         "input": {}, "error": {"message": "HTTP 502"}},
    ],
}


def table_counts() -> dict[str, int]:
    return {model.__name__: model.select().count()
            for model in (Workflow, Execution, ExecutionPayload, Step, StepPayload)}


def test_a_run_with_steps_is_stored_and_answered_with_its_id_and_url(api, db):
    response = api.post(URL, json=RUN)
    assert response.status_code == 201
    body = response.json
    assert body["url"].endswith(f"/executions/{body['id']}")
    assert body["workflow"] == "invoice-sync"
    assert body["duration_ms"] == 4250
    assert body["step_count"] == 2 and body["failed_step"] == 1
    assert body["error_message"] == "HTTP 502 from billing"
    assert table_counts() == {"Workflow": 1, "Execution": 1, "ExecutionPayload": 1,
                              "Step": 2, "StepPayload": 2}
    payload = ExecutionPayload.get()
    assert json.loads(payload.input) == {"customer": 42}
    assert json.loads(payload.error)["stack"] == "Traceback …"


def test_only_workflow_and_status_are_required(api, db):
    response = api.post(URL, json={"workflow": "hello", "status": "running"})
    assert response.status_code == 201
    assert response.json["started_at"] is not None
    assert response.json["finished_at"] is None and response.json["duration_ms"] is None


def test_times_without_an_offset_are_utc_and_offsets_are_honoured(api):
    naive = api.post(URL, json={"workflow": "w", "status": "success",
                                "started_at": "2026-11-24T10:00:00"}).json
    offset = api.post(URL, json={"workflow": "w", "status": "success",
                                 "started_at": "2026-11-24T12:00:00+02:00"}).json
    assert naive["started_at"] == offset["started_at"] == "2026-11-24T10:00:00Z"


def test_reposting_the_same_external_id_updates_instead_of_duplicating(api, db):
    first = api.post(URL, json={**RUN, "status": "running", "finished_at": None, "steps": []})
    assert first.status_code == 201
    again = api.post(URL, json=RUN)
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert again.json["status"] == "failure" and again.json["step_count"] == 2
    assert Execution.select().count() == 1
    # The same external id in another workflow is another run.
    other = api.post(URL, json={**RUN, "workflow": "other"})
    assert other.status_code == 201 and other.json["id"] != first.json["id"]


def test_a_repost_keeps_the_original_start_when_it_sends_none(api):
    first = api.post(URL, json={"workflow": "w", "external_id": "a", "status": "running",
                                "started_at": "2026-01-01T00:00:00Z"}).json
    again = api.post(URL, json={"workflow": "w", "external_id": "a", "status": "success",
                                "finished_at": "2026-01-01T00:00:02Z"}).json
    assert again["started_at"] == first["started_at"]
    assert again["duration_ms"] == 2000


def test_a_finished_run_reported_running_again_later_has_no_end_until_it_finishes(api):
    """A job run once more under the same external id: it starts after the first end."""
    first = api.post(URL, json={"workflow": "w", "external_id": "a", "status": "success",
                                "started_at": "2026-01-01T00:00:00Z",
                                "finished_at": "2026-01-01T00:00:01Z"}).json
    again = api.post(URL, json={"workflow": "w", "external_id": "a", "status": "running",
                                "started_at": "2026-01-01T00:00:05Z"})
    assert again.status_code == 200, again.text
    assert again.json["id"] == first["id"]
    assert again.json["finished_at"] is None and again.json["duration_ms"] is None
    done = api.patch(f"{URL}/{first['id']}", json={"status": "success",
                                                    "finished_at": "2026-01-01T00:00:07Z"})
    assert done.status_code == 200 and done.json["duration_ms"] == 2000


def test_a_batch_is_stored_whole(api, db):
    runs = [{**RUN, "external_id": f"run-{i}"} for i in range(50)]
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 201
    assert len(response.json["data"]) == 50
    assert all(item["created"] for item in response.json["data"])
    assert table_counts()["Execution"] == 50 and table_counts()["Step"] == 100


def test_a_batch_may_repeat_one_external_id_and_the_last_report_wins(api, db):
    runs = [{"workflow": "w", "external_id": "same", "status": "running"},
            {"workflow": "w", "external_id": "same", "status": "success"}]
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 201
    ids = {item["id"] for item in response.json["data"]}
    assert len(ids) == 1
    assert Execution.get().status == "success"


def test_a_batch_with_one_bad_item_stores_nothing(api, db):
    runs = [{**RUN, "external_id": f"run-{i}"} for i in range(5)]
    runs[3] = {**runs[3], "status": "exploded"}
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 400
    assert response.json["error"]["field"] == "executions.3.status"
    assert "3" in response.json["error"]["message"]
    assert table_counts() == dict.fromkeys(table_counts(), 0)


def test_a_batch_whose_item_fails_in_the_database_stores_nothing(api, db):
    api.post(URL, json={"workflow": "w", "external_id": "x", "status": "running",
                        "started_at": "2026-01-02T00:00:00Z"})
    before = table_counts()
    runs = [{"workflow": "new", "status": "success"},
            # valid alone, but finishes before the stored run started:
            {"workflow": "w", "external_id": "x", "status": "success",
             "finished_at": "2026-01-01T00:00:00Z"}]
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 409
    assert response.json["error"] == {
        "code": "conflict", "field": "finished_at",
        "message": "finished_at: finished_at is before the run's started_at"}
    assert table_counts() == before


BAD_BODIES = [
    ("not JSON", b"{not json", None, "invalid_json"),
    ("a JSON array", b"[]", None, "invalid_json"),
    ("an empty body", b"", None, "invalid_json"),
    ("missing workflow", {"status": "success"}, "workflow", "invalid"),
    ("missing status", {"workflow": "w"}, "status", "invalid"),
    ("empty workflow", {"workflow": "", "status": "success"}, "workflow", "invalid"),
    ("workflow too long", {"workflow": "w" * 201, "status": "success"}, "workflow", "invalid"),
    ("unknown status", {"workflow": "w", "status": "exploded"}, "status", "invalid"),
    ("bad timestamp", {"workflow": "w", "status": "success", "started_at": "yesterday"},
     "started_at", "invalid"),
    ("timestamp as a number", {"workflow": "w", "status": "success", "started_at": 1700000000},
     "started_at", "invalid"),
    ("finished before started", {"workflow": "w", "status": "success",
                                 "started_at": "2026-01-02T00:00:00Z",
                                 "finished_at": "2026-01-01T00:00:00Z"}, "finished_at", "invalid"),
    ("workflow as a number", {"workflow": 5, "status": "success"}, "workflow", "invalid"),
    ("steps not a list", {"workflow": "w", "status": "success", "steps": {}}, "steps", "invalid"),
    ("step without name", {"workflow": "w", "status": "success", "steps": [{}]},
     "steps.0.name", "invalid"),
    ("step position as text", {"workflow": "w", "status": "success",
                               "steps": [{"name": "a", "position": "1"}]},
     "steps.0.position", "invalid"),
    ("negative step position", {"workflow": "w", "status": "success",
                                "steps": [{"name": "a", "position": -1}]},
     "steps.0.position", "invalid"),
    ("step finished before started", {"workflow": "w", "status": "success", "steps": [
        {"name": "a", "started_at": "2026-01-02T00:00:00Z",
         "finished_at": "2026-01-01T00:00:00Z"}]}, "steps.0.finished_at", "invalid"),
    ("error without message", {"workflow": "w", "status": "failure", "error": {"type": "X"}},
     "error.message", "invalid"),
    ("error as text", {"workflow": "w", "status": "failure", "error": "boom"}, "error",
     "invalid"),
    ("unknown field", {"workflow": "w", "status": "success", "colour": "red"}, "colour",
     "invalid"),
]


@pytest.mark.parametrize("body, field, code", [b[1:] for b in BAD_BODIES],
                         ids=[b[0] for b in BAD_BODIES])
def test_bad_input_gets_a_clear_400_and_stores_nothing(api, db, body, field, code):
    before = table_counts()
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = api.post(URL, **kwargs)
    assert response.status_code == 400, response.text
    error = response.json["error"]
    assert error["code"] == code
    assert error.get("field") == field
    assert error["message"]
    assert table_counts() == before


def test_a_batch_of_1001_runs_is_refused(api, db):
    response = api.post(f"{URL}/batch",
                        json={"executions": [{"workflow": "w", "status": "success"}] * 1001})
    assert response.status_code == 400
    assert response.json["error"]["field"] == "executions"
    assert "1000" in response.json["error"]["message"]
    assert Execution.select().count() == 0


def test_an_empty_batch_is_refused(api):
    response = api.post(f"{URL}/batch", json={"executions": []})
    assert response.status_code == 400
    assert response.json["error"]["field"] == "executions"


def test_an_oversize_body_gets_413_and_stores_nothing(api, app, db):
    limit = app.config["MAX_PAYLOAD_BYTES"]
    padding = "x" * limit
    response = api.post(URL, data=json.dumps({"workflow": "w", "status": "success",
                                              "input": padding}),
                        content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_entity_too_large"
    assert Execution.select().count() == 0


def test_patch_finishes_a_run(api):
    created = api.post(URL, json={"workflow": "w", "status": "running",
                                  "started_at": "2026-11-24T10:00:00Z"}).json
    response = api.patch(f"{URL}/{created['id']}", json={
        "status": "failure", "finished_at": "2026-11-24T10:00:03Z",
        "error": {"message": "boom", "type": "RuntimeError"}, "output": {"partial": True}})
    assert response.status_code == 200
    assert response.json["status"] == "failure"
    assert response.json["duration_ms"] == 3000
    assert response.json["error_message"] == "boom"


@pytest.mark.parametrize("body, field, status", [
    ({"status": "nope"}, "status", 400),
    ({"status": None}, "status", 400),
    # a good body that does not fit the run as stored: a conflict with its state
    ({"finished_at": "2026-11-24T09:00:00Z"}, "finished_at", 409),
    ({"workflow": "renamed"}, "workflow", 400),
    ({"finished_at": "soon"}, "finished_at", 400),
])
def test_a_bad_patch_changes_nothing(api, db, body, field, status):
    created = api.post(URL, json={"workflow": "w", "status": "running",
                                  "started_at": "2026-11-24T10:00:00Z"}).json
    response = api.patch(f"{URL}/{created['id']}", json=body)
    assert response.status_code == status
    assert response.json["error"]["field"] == field
    row = Execution.get_by_id(created["id"])
    assert (row.status, row.finished_at) == ("running", None)


def test_patch_and_steps_of_an_unknown_run_are_404(api):
    assert api.patch(f"{URL}/424242", json={"status": "success"}).status_code == 404
    response = api.post(f"{URL}/424242/steps", json={"steps": [{"name": "a"}]})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_steps_are_appended_or_replaced_by_position(api, db):
    created = api.post(URL, json={"workflow": "w", "status": "running",
                                  "steps": [{"name": "one"}, {"name": "two"}]}).json
    url = f"{URL}/{created['id']}/steps"
    appended = api.post(url, json={"steps": [{"name": "three"}]})
    assert appended.status_code == 200 and appended.json["step_count"] == 3
    replaced = api.post(url, json={"steps": [{"position": 1, "name": "two, again",
                                              "status": "failure",
                                              "error": {"message": "bad"}}]})
    assert replaced.json["step_count"] == 3 and replaced.json["failed_step"] == 1
    names = [s.name for s in Step.select().order_by(Step.position)]
    assert names == ["one", "two, again", "three"]
    assert [s.position for s in Step.select().order_by(Step.position)] == [0, 1, 2]


def test_steps_reported_out_of_order_are_kept_by_position(api, db):
    api.post(URL, json={"workflow": "w", "status": "success", "steps": [
        {"position": 2, "name": "c"}, {"position": 0, "name": "a"}, {"position": 1, "name": "b"}]})
    assert [s.name for s in Step.select().order_by(Step.position)] == ["a", "b", "c"]


def test_a_step_without_status_takes_one_from_what_it_reports(api, db):
    api.post(URL, json={"workflow": "w", "status": "running", "steps": [
        {"name": "done", "finished_at": "2026-01-01T00:00:00Z"},
        {"name": "broken", "error": {"message": "x"}},
        {"name": "busy"}]})
    assert [s.status for s in Step.select().order_by(Step.position)] == [
        "success", "failure", "running"]


def test_workflow_names_keep_unicode_spaces_and_markup(api, db):
    name = "Ünïcode flow <script>alert(1)</script> 100% _x_ \"quoted\""
    response = api.post(URL, json={"workflow": name, "status": "success"})
    assert response.status_code == 201
    assert response.json["workflow"] == name
    assert Workflow.get().name == name


def test_payloads_come_back_exactly_as_sent(api, db):
    """What is stored is valid JSON that reads back as the value sent: text that only looks
    like NaN or Infinity, line separators, markup, escapes, numbers of every kind."""
    tricky = {"note": "NaN and -Infinity are words here", "sep": "a\u2028b\u2029c",
              "markup": "<b>&amp;</b>", "escapes": "tab\t quote\" slash\\ nul-free \x01",
              "big": 2**63 - 1, "negative": -2**63, "small": 1e-7, "large": 1.5e300,
              "nested": [[], {}, [{"deep": [None, True, False]}]], "unicode": "Ünïcode 💡"}
    response = api.post(URL, json={"workflow": "payloads", "status": "success",
                                   "input": tricky, "output": [tricky],
                                   "steps": [{"name": "s", "input": tricky, "output": "NaN"}]})
    assert response.status_code == 201
    payload, step = ExecutionPayload.get(), StepPayload.get()
    assert json.loads(payload.input) == tricky and json.loads(payload.output) == [tricky]
    assert json.loads(step.input) == tricky and json.loads(step.output) == "NaN"
    shown = api.get(f"{URL}/{response.json['id']}").json
    assert shown["input"] == tricky and shown["steps"][0]["output"] == "NaN"


# --- A report that is no failure clears the stored error --------------------------------

def _error_shown(logged_in, run_id: int) -> bool:
    from helpers import parse
    page = parse(logged_in.get(f"/executions/{run_id}"))
    return bool(page.find("section", class_="error-panel") + page.find(class_="error-message"))


@pytest.mark.parametrize("how", ["patch", "re-post"])
def test_a_success_report_without_an_error_clears_the_stored_one(api, logged_in, how):
    run_id = api.post(URL, json={**RUN, "steps": []}).json["id"]
    assert _error_shown(logged_in, run_id)
    if how == "patch":
        sent = api.patch(f"{URL}/{run_id}", json={"status": "success"})
    else:
        sent = api.post(URL, json={"workflow": RUN["workflow"], "external_id": RUN["external_id"],
                                   "status": "success"})
    assert sent.status_code == 200, sent.text
    stored = api.get(f"{URL}/{run_id}").json
    assert stored["status"] == "success" and stored["error"] is None
    [row] = api.get(f"{URL}?workflow=invoice-sync").json["data"]
    assert row["error_message"] is None
    assert api.get(f"{URL}?q=billing").json["data"] == []  # nor is it found by its old text
    assert not _error_shown(logged_in, run_id)
    errors = api.get("/api/automations/workflows/invoice-sync?from=2026-11-24&to=2026-11-24")
    assert errors.json["errors"] == []


def test_reports_that_keep_the_error_keep_it(api):
    run_id = api.post(URL, json=RUN).json["id"]
    assert api.patch(f"{URL}/{run_id}", json={"output": {"rows": 1}}).status_code == 200
    assert api.patch(f"{URL}/{run_id}", json={"status": "failure"}).status_code == 200
    assert api.get(f"{URL}/{run_id}").json["error"]["message"] == "HTTP 502 from billing"
    retried = api.patch(f"{URL}/{run_id}", json={"status": "running",
                                                 "error": {"message": "retrying after 502"}})
    assert retried.status_code == 200
    assert api.get(f"{URL}/{run_id}").json["error"]["message"] == "retrying after 502"
    assert api.patch(f"{URL}/{run_id}", json={"status": "pending"}).status_code == 200
    assert api.get(f"{URL}/{run_id}").json["error"] is None
