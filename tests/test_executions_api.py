"""The run detail API: payloads come back exactly, steps in order, 401 before 404."""
from __future__ import annotations

import json

import pytest

from helpers import TRICKY, URL, add_steps, detail, report

@pytest.mark.spec("API-AUTO-EXEC-DETAIL-001")
def test_the_trigger_payload_comes_back_exactly_as_reported(api):
    run_id = report(api, {"workflow": "sync", "status": "success", "input": TRICKY})
    body = detail(api, run_id)
    assert body["input"] == TRICKY
    assert list(body["input"]) == list(TRICKY), "key order is kept"
    assert list(body["input"]["zeta_before_alpha"]) == ["z", "a"]
    assert type(body["input"]["floats"][3]) is float and type(body["input"]["big"]) is int


def test_big_numbers_survive_even_beyond_what_floats_can_hold(api):
    text = '{"workflow": "sync", "status": "success", "input": {"n": 123456789012345678901234567890}}'
    run_id = report(api, text)
    raw = api.get(f"{URL}/{run_id}").get_data(as_text=True)
    assert '"n":123456789012345678901234567890' in raw.replace(" ", "")


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-002")
def test_every_steps_input_output_error_and_logs_come_back_exactly(api):
    error = {"message": "HTTP 502 </script>", "type": "HTTPError", "stack": "Traceback…\n  line 1"}
    run_id = report(api, {
        "workflow": "sync", "status": "failure", "input": {"a": 1},
        "output": TRICKY, "error": error,
        "steps": [
            {"name": "fetch", "action": "http.get", "status": "success",
             "input": {"url": "https://example.test"}, "output": TRICKY,
             "logs": "GET 200\n<b>not html</b>\n"},
            {"name": "post", "action": "http.post", "status": "failure", "input": [],
             "output": None, "error": error},
        ]})
    body = detail(api, run_id)
    assert body["output"] == TRICKY and body["error"] == error
    first, second = body["steps"]
    assert (first["input"], first["output"], first["error"], first["logs"]) == \
        ({"url": "https://example.test"}, TRICKY, None, "GET 200\n<b>not html</b>\n")
    assert (second["input"], second["output"], second["error"], second["logs"]) == \
        ([], None, error, None)


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-003")
def test_steps_come_back_ordered_by_position_with_their_timings(api):
    steps = [
        {"position": 2, "name": "third", "started_at": "2026-11-24T10:00:03Z",
         "finished_at": "2026-11-24T10:00:04.250Z"},
        {"position": 0, "name": "first", "started_at": "2026-11-24T10:00:00Z",
         "finished_at": "2026-11-24T10:00:01Z"},
        {"position": 1, "name": "second", "started_at": "2026-11-24T10:00:01.5Z"},
    ]
    run_id = report(api, {"workflow": "sync", "status": "running",
                          "started_at": "2026-11-24T10:00:00Z", "steps": steps})
    body = detail(api, run_id)
    assert [(s["position"], s["name"]) for s in body["steps"]] == \
        [(0, "first"), (1, "second"), (2, "third")]
    third = body["steps"][2]
    assert (third["started_at"], third["finished_at"], third["duration_ms"]) == \
        ("2026-11-24T10:00:03Z", "2026-11-24T10:00:04.250000Z", 1250)
    assert body["steps"][1]["finished_at"] is None and body["steps"][1]["duration_ms"] is None


def test_replaced_and_appended_steps_come_back_once_each_in_position_order(api):
    run_id = report(api, {"workflow": "sync", "status": "running",
                          "steps": [{"name": "a"}, {"name": "b"}]})
    add_steps(api, run_id, [{"position": 5, "name": "f"}, {"position": 3, "name": "d"}])
    add_steps(api, run_id, [{"position": 1, "name": "b again", "output": {"v": 2}}])
    add_steps(api, run_id, [{"name": "appended"}])  # no position: after the last one
    body = detail(api, run_id)
    assert [(s["position"], s["name"]) for s in body["steps"]] == \
        [(0, "a"), (1, "b again"), (3, "d"), (5, "f"), (6, "appended")]
    assert body["steps"][1]["output"] == {"v": 2}
    assert body["step_count"] == 5


@pytest.mark.parametrize("statuses, failed_step", [
    (["success", "success"], None),
    (["success", "failure", "failure"], 1),
    (["failure", "success"], 0),
    ([], None),
])
def test_failed_step_is_the_position_of_the_first_failed_step(api, statuses, failed_step):
    steps = [{"name": f"s{i}", "status": status} for i, status in enumerate(statuses)]
    run_id = report(api, {"workflow": "sync", "status": "failure", "steps": steps})
    assert detail(api, run_id)["failed_step"] == failed_step


def test_failed_step_follows_a_step_replaced_by_a_failure(api):
    run_id = report(api, {"workflow": "sync", "status": "running",
                          "steps": [{"name": "a", "status": "success"},
                                    {"name": "b", "status": "success"}]})
    add_steps(api, run_id, [{"position": 1, "name": "b", "status": "failure",
                             "error": {"message": "boom"}}])
    assert detail(api, run_id)["failed_step"] == 1


def test_the_answer_carries_the_list_fields_and_the_pages_address(api):
    run_id = report(api, {"workflow": "invoice-sync", "external_id": "run-8812",
                          "status": "failure", "started_at": "2026-11-24T10:00:00Z",
                          "finished_at": "2026-11-24T10:00:04.250Z",
                          "error": {"message": "HTTP 502 from billing"}})
    body = detail(api, run_id)
    assert {key: body[key] for key in ("id", "workflow", "external_id", "status", "started_at",
                                       "finished_at", "duration_ms", "step_count",
                                       "error_message")} == {
        "id": run_id, "workflow": "invoice-sync", "external_id": "run-8812",
        "status": "failure", "started_at": "2026-11-24T10:00:00Z",
        "finished_at": "2026-11-24T10:00:04.250000Z", "duration_ms": 4250, "step_count": 0,
        "error_message": "HTTP 502 from billing"}
    assert body["url"].endswith(f"/executions/{run_id}")
    assert body["input"] is None and body["output"] is None and body["steps"] == []


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-004")
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"},
                                     {"Authorization": "Basic ZGV2OnB3"}])
def test_the_detail_api_answers_401_without_credentials_also_for_unknown_ids(
        client, api, headers):
    run_id = report(api, {"workflow": "sync", "status": "success", "input": {"secret": 1}})
    for url in (f"{URL}/{run_id}", f"{URL}/999999"):
        response = client.get(url, headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"secret" not in response.data


def test_an_unknown_id_is_a_404_json_error_once_authenticated(api):
    response = api.get(f"{URL}/424242")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_a_signed_in_browser_session_may_read_the_detail_api(api, logged_in):
    run_id = report(api, {"workflow": "sync", "status": "success", "input": {"a": 1}})
    response = logged_in.get(f"{URL}/{run_id}")
    assert response.status_code == 200 and json.loads(response.data)["input"] == {"a": 1}
