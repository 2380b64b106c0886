"""Re-runs: a workflow's hook (the PATCH and the settings form, its secrets masked), the
request a run's page or API sends to it (to a real receiver on 127.0.0.1), what is recorded
of the answer, and runs reported as re-runs of others (`rerun_of`)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from helpers import EMAIL, URL, Tree, csrf_from, parse, report
from models.db import connection
from models.users import create_token, User

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # base64 of 24 bytes
TOKEN = "ghp_s3cr3tTok3nValue"
MASK = "••••••"


@pytest.fixture
def app_config(app_config):
    """Requests to the receiver on 127.0.0.1 allowed; a short deadline for a whole request."""
    return {**app_config, "WEBHOOK_ALLOW_PRIVATE": True, "RERUN_TIMEOUT_SECONDS": 0.5}


def set_hook(api, workflow: str, **hook):
    answer = api.patch(f"/api/automations/workflows/{workflow}", json={"rerun": hook})
    assert answer.status_code in (200, 201), answer.text
    return answer.json["rerun"]


def rerun(api, run_id: int):
    return api.post(f"{URL}/{run_id}/rerun")


def token_of(scope: str) -> dict:
    with connection():
        secret = create_token(User.get(User.email == EMAIL), scope, (scope,))[1]
    return {"Authorization": f"Bearer {secret}"}


def test_the_default_body_is_signed_and_carries_the_run_and_who_asked(api, receiver):
    run = report(api, {"workflow": "invoice-sync", "external_id": "run-8812",
                       "status": "failure", "input": {"customer": 42}})
    set_hook(api, "invoice-sync", url=receiver.url, secret=SECRET,
             headers={"X-Api-Key": TOKEN, "User-Agent": "mine"})
    answer = rerun(api, run)
    assert answer.status_code == 201, answer.text
    assert answer.json["ok"] is True and answer.json["status"] == 200
    assert answer.json["answer"] == "ok" and answer.json["requested_by"] == EMAIL
    [sent] = receiver.requests
    body = Webhook(SECRET).verify(sent.body, sent.headers)
    assert body["type"] == "execution.rerun"
    assert body["data"] == {"workflow": "invoice-sync", "execution_id": run,
                            "external_id": "run-8812", "input": {"customer": 42},
                            "requested_by": EMAIL}
    assert sent.headers["X-Api-Key"] == TOKEN and sent.headers["User-Agent"] == "mine"
    assert sent.headers["webhook-id"] == f"msg_runwatch_rerun_{answer.json['id']}"


def test_a_body_template_gets_the_runs_values_and_goes_unsigned_without_a_secret(api, receiver):
    run = report(api, {"workflow": "etl", "status": "failure", "input": [1, {"a": None}]})
    set_hook(api, "etl", url=receiver.url, body={
        "ref": "main", "inputs": {"payload": "$input", "id": "$execution_id",
                                  "external": "$external_id", "name": "$workflow",
                                  "kept": ["$workflow", "$other", "a $input", 7]}})
    assert rerun(api, run).json["ok"] is True
    [sent] = receiver.requests
    assert sent.json() == {"ref": "main", "inputs": {
        "payload": [1, {"a": None}], "id": run, "external": None, "name": "etl",
        "kept": ["etl", "$other", "a $input", 7]}}
    assert sent.headers["Content-Type"] == "application/json"
    assert "webhook-signature" not in sent.headers


def test_a_receiver_that_fails_times_out_or_is_closed_is_recorded_not_raised(api, receiver):
    run = report(api, {"workflow": "etl", "status": "failure"})
    set_hook(api, "etl", url=receiver.url)
    receiver.status, receiver.answer = 500, b"boom: " + b"x" * 5000
    failed = rerun(api, run).json
    assert (failed["ok"], failed["status"], failed["error"]) == (False, 500, None)
    assert failed["answer"].startswith("boom: ") and len(failed["answer"]) <= 2048
    receiver.status, receiver.delay = 200, 30  # answers long after the deadline
    late = rerun(api, run).json
    assert late["ok"] is False and late["status"] is None and "0.5 s" in late["error"]
    receiver.stop()
    closed = rerun(api, run).json
    assert closed["ok"] is False and "refused" in closed["error"].lower()
    shown = api.get(f"{URL}/{run}").json["reruns"]
    assert [r["id"] for r in shown] == [closed["id"], late["id"], failed["id"]]
    assert shown[2] == failed


def test_hooks_and_targets_are_masked_for_read_tokens_and_on_pages(app, api, logged_in,
                                                                   receiver):
    run = report(api, {"workflow": "deploy", "status": "failure"})
    whole = set_hook(api, "deploy", url=receiver.url + "?token=abc", secret=SECRET,
                     headers={"Authorization": f"Bearer {TOKEN}"}, body={"password": "pw"})
    assert whole["url"].endswith("?token=abc") and whole["secret"] == SECRET
    read = token_of("read")
    shown = logged_in.application.test_client().get(
        "/api/automations/workflows/deploy", headers=read).json["rerun"]
    assert shown == {"url": f"http://127.0.0.1:{receiver.port}/{MASK}",
                     "headers": {"Authorization": MASK}, "body": {"password": MASK},
                     "secret": MASK}
    receiver.answer = f'{{"echo": "Authorization: Bearer {TOKEN}"}}'.encode()
    assert rerun(api, run).json["target"] == shown["url"]
    [seen] = logged_in.application.test_client().get(f"{URL}/{run}", headers=read).json["reruns"]
    assert TOKEN not in seen["answer"] and "Authorization" in seen["answer"]
    pages = logged_in.get(f"/executions/{run}").text + logged_in.get("/workflows/deploy").text
    assert TOKEN not in pages and "abc" not in pages and SECRET not in pages
    assert shown["url"] in pages


def test_the_settings_form_keeps_masked_values_and_says_what_is_wrong(api, logged_in,
                                                                      receiver):
    report(api, {"workflow": "deploy", "status": "success"})
    set_hook(api, "deploy", url=receiver.url, secret=SECRET, headers={"X-Key": TOKEN})
    page = logged_in.get("/workflows/deploy").text
    form = {field.attrs["name"]: field.attrs.get("value", field.text) for field in
            parse_fields(page, ("rerun_url", "rerun_headers", "rerun_body", "rerun_secret"))}
    assert form == {"rerun_url": f"http://127.0.0.1:{receiver.port}/{MASK}",
                    "rerun_headers": f"X-Key: {MASK}", "rerun_body": "", "rerun_secret": MASK}
    post = {"csrf_token": csrf_from(page), "timezone": "UTC", "grace_seconds": "300", **form}
    bad = logged_in.post("/workflows/deploy", data={**post, "rerun_body": "{nope",
                                                    "rerun_headers": "no colon"})
    assert bad.status_code == 400
    errors = {e.attrs["id"]: e.text for e in parse(bad).find("small", class_="field-error")}
    assert set(errors) == {"rerun.body-error", "rerun.headers-error"}
    masked = logged_in.post("/workflows/deploy", data={**post, "rerun_headers": f"X-New: {MASK}"})
    assert masked.status_code == 400 and "rerun.headers-error" in masked.text
    saved = logged_in.post("/workflows/deploy", data={**post, "rerun_body": '{"a": "$input"}'})
    assert saved.status_code == 303
    kept = api.get("/api/automations/workflows/deploy").json["rerun"]
    assert kept == {"url": receiver.url, "headers": {"X-Key": TOKEN}, "body": {"a": "$input"},
                    "secret": SECRET}
    assert logged_in.post("/workflows/deploy", data={**post, "rerun_url": ""}).status_code == 303
    assert api.get("/api/automations/workflows/deploy").json["rerun"] is None


def parse_fields(page: str, names: tuple[str, ...]) -> list:
    tree = Tree(page).root
    return [field for name in names
            for field in tree.find("input", name=name) + tree.find("textarea", name=name)]


def test_bad_hooks_are_refused_naming_the_field_and_change_nothing(app, api):
    report(api, {"workflow": "etl", "status": "success"})
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    for hook, field in (({"url": "http://127.0.0.1:9/x"}, "rerun.url"),
                        ({"url": "http://localhost/x"}, "rerun.url"),
                        ({"url": "ftp://example.com/x"}, "rerun.url"),
                        ({"url": "https://example.com", "headers": {"Host": "x"}},
                         "rerun.headers"),
                        ({"url": "https://example.com", "headers": {"X-A": "a\r\nB: c"}},
                         "rerun.headers"),
                        ({"url": "https://example.com", "secret": "nope"}, "rerun.secret"),
                        ({"url": f"https://example.com/{MASK}"}, "rerun.url"),
                        ({"headers": {}}, "rerun.url")):
        answer = api.patch("/api/automations/workflows/etl", json={"rerun": hook})
        assert answer.status_code == 400, (hook, answer.text)
        assert answer.json["error"]["field"] == field, (hook, answer.json)
    assert api.get("/api/automations/workflows/etl").json["rerun"] is None


def test_a_private_address_saved_earlier_is_refused_when_sending(app, api, receiver):
    run = report(api, {"workflow": "etl", "status": "failure"})
    set_hook(api, "etl", url=receiver.url)
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    refused = rerun(api, run).json
    assert refused["ok"] is False and "private" in refused["error"]
    assert receiver.requests == []


def test_who_may_ask_and_what_a_run_without_a_hook_answers(app, api, receiver):
    run = report(api, {"workflow": "nightly", "status": "failure"})
    missing = rerun(api, run)
    assert missing.status_code == 409
    assert "/workflows/nightly#rerun" in missing.json["error"]["message"]
    assert "PATCH /api/automations/workflows/<name>" in missing.json["error"]["message"]
    assert rerun(api, run + 1000).status_code == 404
    set_hook(api, "nightly", url=receiver.url)
    client = app.test_client()
    for scope in ("read", "ingest"):
        assert client.post(f"{URL}/{run}/rerun", headers=token_of(scope)).status_code == 403
    assert client.post(f"{URL}/{run}/rerun").status_code == 401
    assert receiver.requests == [] and api.get(f"{URL}/{run}").json["reruns"] == []


def test_the_run_page_asks_first_then_sends_with_its_csrf_token(api, logged_in, receiver):
    run = report(api, {"workflow": "nightly", "status": "failure", "input": {"day": 7}})
    page = parse(logged_in.get(f"/executions/{run}"))
    assert "set a re-run hook" in page.by_id("reruns").text
    set_hook(api, "nightly", url=receiver.url)
    html = logged_in.get(f"/executions/{run}").text
    [details] = Tree(html).root.find("details", class_="rerun-confirm")
    assert "Re-run with this input" in details.find("summary")[0].text
    [form] = details.find("form")
    assert form.attrs["action"] == f"/executions/{run}/rerun"
    assert logged_in.post(form.attrs["action"]).status_code == 400  # no CSRF token
    assert receiver.requests == []
    sent = logged_in.post(form.attrs["action"], data={"csrf_token": csrf_from(html)})
    assert sent.status_code == 303 and sent.headers["Location"].endswith("#reruns")
    assert receiver.wait_for(1)[0].json()["data"]["input"] == {"day": 7}
    after = logged_in.get(f"/executions/{run}")
    [row] = parse(after).find("tr", class_="rerun")
    assert "HTTP 200" in row.text and EMAIL in row.text
    assert "the receiver answered HTTP 200" in after.text


def test_a_run_reported_as_a_rerun_links_to_its_origin_and_back(api, logged_in):
    origin = report(api, {"workflow": "etl", "status": "failure"})
    again = api.post(URL, json={"workflow": "etl", "status": "success", "rerun_of": origin})
    assert again.status_code == 201 and again.json["rerun_of"] == origin
    assert api.get(f"{URL}/{again.json['id']}").json["rerun_of"] == origin
    linked = api.get(f"{URL}/{origin}").json["rerun_runs"]
    assert [(r["id"], r["status"]) for r in linked] == [(again.json["id"], "success")]
    assert linked[0]["url"].endswith(f"/executions/{again.json['id']}")
    new_page = parse(logged_in.get(f"/executions/{again.json['id']}")).by_id("reruns")
    assert [a.attrs["href"] for a in new_page.find("a")][0] == f"/executions/{origin}"
    old_page = parse(logged_in.get(f"/executions/{origin}")).by_id("reruns")
    assert f"/executions/{again.json['id']}" in [a.attrs["href"] for a in old_page.find("a")]


def test_a_bad_rerun_of_is_refused_naming_the_field_and_stores_nothing(api):
    report(api, {"workflow": "etl", "status": "success"})
    for value in (0, -1, 2**63, 2**64, "1", 1.5, True, 999):
        one = api.post(URL, json={"workflow": "etl", "status": "success", "rerun_of": value})
        assert one.status_code == 400, (value, one.json)
        assert one.json["error"]["field"] == "rerun_of", (value, one.json)
        batch = api.post(f"{URL}/batch", json={"executions": [
            {"workflow": "etl", "status": "success"},
            {"workflow": "etl", "status": "success", "rerun_of": value}]})
        assert batch.status_code == 400, (value, batch.json)
        assert batch.json["error"]["field"] == "executions.1.rerun_of", (value, batch.json)
    assert len(api.get(URL).json["data"]) == 1


def test_a_rerun_link_is_kept_by_a_repost_and_never_points_at_itself(api):
    origin = report(api, {"workflow": "etl", "status": "failure"})
    body = {"workflow": "etl", "external_id": "e1", "status": "running", "rerun_of": origin}
    run = report(api, body)
    assert report(api, {"workflow": "etl", "external_id": "e1", "status": "success"}) == run
    assert api.get(f"{URL}/{run}").json["rerun_of"] == origin
    itself = api.post(URL, json={**body, "rerun_of": run})
    assert itself.status_code == 400 and itself.json["error"]["field"] == "rerun_of"
    assert api.get(f"{URL}/{run}").json["rerun_of"] == origin


def test_deleting_an_origin_leaves_its_reruns_without_the_link(app, api, receiver):
    from history.retention import purge_expired

    origin = report(api, {"workflow": "etl", "status": "failure",
                          "started_at": "2020-01-01T00:00:00Z"})
    set_hook(api, "etl", url=receiver.url)
    assert rerun(api, origin).status_code == 201
    again = report(api, {"workflow": "etl", "status": "success", "rerun_of": origin})
    with app.app_context(), connection():
        assert purge_expired(datetime.now(timezone.utc), 30).runs == 1
        from reruns.models import Rerun
        assert Rerun.select().count() == 0
    assert api.get(f"{URL}/{again}").json["rerun_of"] is None
    assert json.loads(api.get(f"{URL}/{again}").text)["rerun_runs"] == []
