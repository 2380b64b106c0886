"""Sources without an engine: the API (its rules, the token masked, paging), the Sources
page (its forms, CSRF, escaping), pulls from a server that answers garbage or errors (a
real HTTP receiver on 127.0.0.1), and how Prefect's answers map to runs."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from helpers import EMAIL, csrf_from, parse
from models.db import connection
from models.executions import Execution
from models.users import User, create_token
from sources.kinds.prefect import Prefect, run_report
from sources.pull import job, pull_source, settings_from

API = "/api/automations/sources"
MASK = "••••••"
TOKEN = "pnu_s3cr3tPrefectKey"
# Checked before the database is asked, or by the same queries on both: SQLite alone (the
# adding, changing and deleting of a source run on both).
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WEBHOOK_ALLOW_PRIVATE": True}  # the receiver is on 127.0.0.1


def add(api, url: str = "http://127.0.0.1:4200/api", **fields) -> dict:
    answer = api.post(API, json={"type": "prefect", "url": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json


def token_of(scope: str) -> dict:
    with connection():
        secret = create_token(User.get(User.email == EMAIL), scope, (scope,))[1]
    return {"Authorization": f"Bearer {secret}"}


# --- The API --------------------------------------------------------------------------------

def test_a_source_is_added_shown_changed_paused_and_deleted(api):
    added = add(api, token=TOKEN)
    assert added["token"] == TOKEN and added["interval_seconds"] == 60
    assert added["enabled"] is True and added["next_pull_at"] == added["created_at"]
    assert (added["last_pull_at"], added["last_pulled"], added["runs"]) == (None, None, 0)
    assert added["cursor"] < added["created_at"]  # the first pull brings the day before
    shown = api.get(f"{API}/{added['id']}")
    assert shown.json == added
    changed = api.patch(f"{API}/{added['id']}", json={"interval_seconds": 300, "enabled": False})
    assert changed.status_code == 200
    assert (changed.json["interval_seconds"], changed.json["enabled"],
            changed.json["next_pull_at"], changed.json["token"]) == (300, False, None, TOKEN)
    resumed = api.patch(f"{API}/{added['id']}", json={"enabled": True, "token": None}).json
    assert resumed["next_pull_at"] >= changed.json["updated_at"] and resumed["token"] is None
    assert api.delete(f"{API}/{added['id']}").status_code == 204
    for call in (api.get, api.delete):
        gone = call(f"{API}/{added['id']}")
        assert gone.status_code == 404 and gone.json["error"]["code"] == "not_found"
    assert api.patch(f"{API}/{added['id']}", json={"enabled": False}).status_code == 404


@SQLITE
def test_the_list_pages_by_id_to_the_end(api):
    ids = [add(api)["id"] for _ in range(5)]
    seen, cursor = [], ""
    for _ in range(10):  # a loop guard: three pages are enough
        page = api.get(f"{API}?limit=2&cursor={cursor}").json
        seen += [source["id"] for source in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    bad = api.get(f"{API}?limit=0")
    assert bad.status_code == 400 and bad.json["error"]["field"] == "limit"


@SQLITE
@pytest.mark.parametrize("body, field", [
    ({"url": "http://127.0.0.1:4200/api"}, "type"),
    ({"type": "airflow", "url": "http://127.0.0.1:4200/api"}, "type"),
    ({"type": "prefect"}, "url"),
    ({"type": "prefect", "url": "ftp://127.0.0.1/api"}, "url"),
    ({"type": "prefect", "url": "http://admin:pw@127.0.0.1/api"}, "url"),
    ({"type": "prefect", "url": "http://127.0.0.1/a\x00b"}, "url"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "token": "a\x00b"}, "token"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "token": 42}, "token"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "interval_seconds": 9}, "interval_seconds"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "interval_seconds": 2**64},
     "interval_seconds"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "interval_seconds": "60"},
     "interval_seconds"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "enabled": "yes"}, "enabled"),
    ({"type": "prefect", "url": "http://127.0.0.1/api", "since": "2026-01-01"}, "since"),
])
def test_bad_sources_are_refused_naming_the_field_and_store_nothing(api, body, field):
    answer = api.post(API, json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json["error"]["field"] == field
    assert api.get(API).json["data"] == []


@SQLITE
def test_bad_changes_are_refused_and_change_nothing(api):
    source = add(api, token=TOKEN)
    for body, field in (({"type": "prefect"}, "type"), ({"url": None}, "url"),
                        ({"enabled": None}, "enabled"), ({"token": f"x{MASK}"}, "token"),
                        ({"interval_seconds": 86_401}, "interval_seconds")):
        answer = api.patch(f"{API}/{source['id']}", json=body)
        assert answer.status_code == 400 and answer.json["error"]["field"] == field, body
    assert api.patch(f"{API}/{source['id']}", data="[]",
                     content_type="application/json").status_code == 400
    assert api.get(f"{API}/{source['id']}").json == source
    assert api.get(f"{API}/{2**64}").status_code == 404


@SQLITE
def test_a_private_address_is_refused_unless_allowed(app, api):
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    for url in ("http://127.0.0.1:4200/api", "http://localhost:4200/api",
                "http://10.0.0.8/api"):
        answer = api.post(API, json={"type": "prefect", "url": url})
        assert answer.status_code == 400 and answer.json["error"]["field"] == "url"
        assert "RUNWATCH_WEBHOOK_ALLOW_PRIVATE" in answer.json["error"]["message"]


@SQLITE
def test_the_token_is_masked_for_read_tokens_and_only_admin_changes_sources(app, api):
    source = add(api, token=TOKEN)
    client = app.test_client()
    read = token_of("read")
    assert client.get(f"{API}/{source['id']}", headers=read).json["token"] == MASK
    assert client.get(API, headers=read).json["data"][0]["token"] == MASK
    for method, path in (("post", API), ("patch", f"{API}/{source['id']}"),
                         ("delete", f"{API}/{source['id']}")):
        assert getattr(client, method)(path, headers=read, json={}).status_code == 403
    assert client.get(API, headers=token_of("ingest")).status_code == 403
    assert client.get(API).status_code == 401


@SQLITE
# --- Pulls that fail -------------------------------------------------------------------------

@pytest.mark.parametrize("status, answer, error", [
    (200, b"<html>maintenance</html>", "the answer is not JSON"),
    (200, b'{"detail": "no"}', "is not a list of Prefect objects"),
    (200, b'[{"id": "a"}]', "has no flow_id"),
    (200, b'[{"id": "a", "flow_id": "f", "expected_start_time": "soon"}]', "is not a time"),
    (401, b'{"detail": "Unauthorized"}', "answered HTTP 401"),
])
def test_a_server_that_answers_garbage_is_a_recorded_error_and_nothing_is_stored(
        app, api, receiver, status, answer, error):
    source = add(api, url=receiver.url, token=TOKEN)
    receiver.status, receiver.answer = status, answer
    with connection():
        assert job(app) == [source["id"]]  # never raises: the error is the source's
        assert Execution.select().count() == 0
    shown = api.get(f"{API}/{source['id']}").json
    assert error in shown["last_error"] and shown["last_pulled"] == 0
    assert shown["cursor"] == source["cursor"] and shown["last_pull_at"]  # kept: tried again
    sent = receiver.requests[0]
    assert sent.path == "/hooks/runwatch/flow_runs/filter"
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


@SQLITE
def test_a_server_that_is_down_or_slow_is_retried_an_interval_later(app, api, receiver):
    app.config["SOURCE_TIMEOUT_SECONDS"] = 1
    source = add(api, url=receiver.url, token="admin:pw")
    receiver.delay = 30
    with connection():
        assert job(app) == [source["id"]]
        assert job(app) == []  # the retry waits for the interval
        now = datetime.now(timezone.utc)
        assert job(app, now + timedelta(seconds=61)) == [source["id"]]
    assert "within 1 s" in api.get(f"{API}/{source['id']}").json["last_error"]
    assert receiver.requests[0].headers["Authorization"] == "Basic YWRtaW46cHc="
    receiver.stop()
    with connection():
        assert pull_source(source["id"], settings_from(app)).error.endswith(
            "Connection refused")


@SQLITE
def test_a_paused_source_is_not_pulled(app, api, receiver):
    add(api, url=receiver.url, enabled=False)
    with connection():
        assert job(app, datetime.now(timezone.utc) + timedelta(days=1)) == []
    assert receiver.requests == []


@SQLITE
# --- The page --------------------------------------------------------------------------------

def test_the_page_adds_a_source_and_says_what_is_wrong_beside_the_field(logged_in):
    page = logged_in.get("/settings/sources")
    assert page.status_code == 200 and "No sources yet" in page.text
    form = {"csrf_token": csrf_from(page.text), "type": "prefect", "token": TOKEN,
            "url": "http://127.0.0.1:4200/<b>api</b>", "interval_seconds": "5"}
    bad = logged_in.post("/settings/sources", data=form)
    assert bad.status_code == 400
    errors = {e.attrs["id"]: e.text for e in parse(bad).find("small", class_="field-error")}
    assert list(errors) == ["source-interval_seconds-error"]
    assert TOKEN not in bad.text and "&lt;b&gt;api&lt;/b&gt;" in bad.text
    added = logged_in.post("/settings/sources", data={**form, "interval_seconds": "30"})
    assert added.status_code == 303
    listed = logged_in.get("/settings/sources").text
    assert "&lt;b&gt;api&lt;/b&gt;" in listed and "<b>api" not in listed
    assert TOKEN not in listed and "30 s" in listed
    assert logged_in.post("/settings/sources", data={k: v for k, v in form.items()
                                                     if k != "csrf_token"}).status_code == 400


@SQLITE
def test_the_page_pauses_resumes_pulls_now_and_deletes(app, api, logged_in):
    source = add(api)["id"]
    token = csrf_from(logged_in.get("/settings/sources").text)
    for action, check in (("pause", lambda s: not s["enabled"]),
                          ("resume", lambda s: s["enabled"]),
                          ("pull", lambda s: s["next_pull_at"] is not None)):
        done = logged_in.post(f"/settings/sources/{source}/{action}",
                              data={"csrf_token": token})
        assert done.status_code == 303 and done.location.endswith(f"#source-{source}")
        assert check(api.get(f"{API}/{source}").json), action
    assert logged_in.post(f"/settings/sources/{source}/delete").status_code == 400  # no CSRF
    assert logged_in.post(f"/settings/sources/{source}/delete",
                          data={"csrf_token": token}).status_code == 303
    assert api.get(f"{API}/{source}").status_code == 404
    assert "is deleted" in logged_in.get("/settings/sources").text


@SQLITE
def test_the_page_needs_a_session(client, user):
    answer = client.get("/settings/sources")
    assert answer.status_code == 302 and "/login" in answer.location


# --- How Prefect's answers map ---------------------------------------------------------------

def _flow_run(kind: str, **fields) -> dict:
    return {"id": "1b9", "flow_id": "f1", "parameters": {"day": "2026-12-01"},
            "state_type": kind, "state_name": kind.title(),
            "expected_start_time": "2026-12-07T10:00:00Z", "start_time": "2026-12-07T10:00:01Z",
            "end_time": "2026-12-07T10:00:05Z",
            "state": {"type": kind, "name": kind.title(), "message": None,
                      "timestamp": "2026-12-07T10:00:05Z"}, **fields}


@pytest.mark.parametrize("state, status, finished", [
    ("COMPLETED", "success", True), ("FAILED", "failure", True), ("CRASHED", "failure", True),
    ("CANCELLED", "failure", True), ("RUNNING", "running", False), ("PAUSED", "running", False),
    ("CANCELLING", "running", False), ("PENDING", "pending", False),
    ("SCHEDULED", "pending", False), ("SOMETHING_NEW", "running", False),
])
def test_each_state_type_is_a_status(state, status, finished):
    report = run_report(_flow_run(state), "etl", [], 2000)
    assert report["status"] == status
    assert (report["finished_at"] is not None) is finished
    assert ("error" in report) is (status == "failure")


def test_a_run_maps_its_error_names_and_steps_in_start_order():
    run = _flow_run("CRASHED", state={"type": "CRASHED", "name": "Crashed",
                                      "message": "Flow run encountered an exception: "
                                                 "KeyError: 'x'\x00"})
    tasks = [{"id": "t2", "name": "load-2", "task_key": "load-9f8e", "state_type": "FAILED",
              "start_time": "2026-12-07T10:00:03Z", "end_time": "2026-12-07T10:00:02Z",
              "state": {"message": "Task run encountered an exception ValueError: bad"}},
             {"id": "t1", "name": "extract\n1", "task_key": "extract-a1b2",
              "state_type": "COMPLETED", "start_time": "2026-12-07T10:00:01Z",
              "end_time": "2026-12-07T10:00:02Z"},
             {"id": "t3", "name": "", "state_type": "PENDING",
              "expected_start_time": "2026-12-07T10:00:09Z"}]
    report = run_report(run, "x" * 300, tasks, 2000)
    assert report["workflow"] == "x" * 200 and report["external_id"] == "prefect-1b9"
    assert report["error"] == {"message": "Flow run encountered an exception: KeyError: 'x'",
                               "type": "KeyError"}
    assert report["input"] == {"day": "2026-12-01"}
    assert [(s["position"], s["name"], s["action"], s["status"]) for s in report["steps"]] == [
        (0, "extract 1", "extract", "success"), (1, "load-2", "load", "failure"),
        (2, "task 3", None, "pending")]
    assert report["steps"][1]["error"]["type"] == "ValueError"
    assert report["steps"][1]["finished_at"] == report["steps"][1]["started_at"]
    assert len(run_report(run, None, tasks, 2)["steps"]) == 2
    assert run_report(run, None, [], 1)["workflow"] == "prefect-flow-f1"


def test_a_token_with_a_colon_is_sent_as_basic_and_any_other_as_bearer():
    assert Prefect.headers(None) == {}
    assert Prefect.headers("pnu_x") == {"Authorization": "Bearer pnu_x"}
    assert Prefect.headers("a:b") == {"Authorization": "Basic YTpi"}


@SQLITE
def test_a_run_runwatch_cannot_take_is_left_out_and_named_the_others_are_stored(app, api,
                                                                               receiver):
    """The receiver answers every request with the same two flow runs (the flows and task
    runs asked for then are those objects too: no names, no steps)."""
    far = _flow_run("SCHEDULED", id="far-ahead", start_time=None,
                    expected_start_time="2099-01-01T00:00:00Z")
    receiver.answer = json.dumps([_flow_run("COMPLETED"), far]).encode()
    source = add(api, url=receiver.url)
    with connection():
        outcome = pull_source(source["id"], settings_from(app))
        assert (outcome.stored, outcome.new, outcome.error) == (1, 1, None)
        [(external_id, status)] = Execution.select(Execution.external_id,
                                                   Execution.status).tuples()
    assert (external_id, status) == ("prefect-1b9", "success")
    shown = api.get(f"{API}/{source['id']}").json
    assert shown["last_error"].startswith("1 run(s) left out: far-ahead: started_at: must be")
    assert shown["runs"] == 1
