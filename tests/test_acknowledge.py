"""Acknowledging a workflow's current failing or late episode: the API, what every workflow
of the API shows, how it ends with its episode, and the pages' form route (SQLite and
PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from alert_servers import report
from alerts.config import config_from
from alerts.scheduler import scan
from helpers import csrf_from
from models.db import connection
from models.ingest import patch_execution
from models.schemas import ExecutionPatch
from models.users import create_token
from workflows.models import WorkflowSummary

WORKFLOWS = "/api/automations/workflows"


def acknowledge(api, name: str, **body):
    return api.post(f"{WORKFLOWS}/{name}/acknowledge", **({"json": body} if body else {}))


def shown(api, name: str):
    """The workflow's `acknowledged`, in its own answer and in the list."""
    one = api.get(f"{WORKFLOWS}/{name}").json["acknowledged"]
    listed = next(w for w in api.get(WORKFLOWS).json["data"] if w["name"] == name)
    assert listed["acknowledged"] == one
    return one


def failing_episode(name: str) -> int:
    with connection():
        return WorkflowSummary.get(WorkflowSummary.name == name).failing_episode


def test_a_failing_workflow_is_acknowledged_until_a_success_ends_its_streak(app, api):
    with connection():
        report("billing", "SFF")
    answer = acknowledge(api, "billing", note="billing API is down, OPS-1234")
    assert answer.status_code == 201
    body = answer.json
    assert {k: body[k] for k in ("workflow", "kind", "by", "note")} == {
        "workflow": "billing", "kind": "failing", "by": "dev@example.com",
        "note": "billing API is down, OPS-1234"}
    assert shown(api, "billing") == {"by": "dev@example.com", "at": body["at"],
                                     "note": "billing API is down, OPS-1234"}
    with connection():
        report("billing", "F", first_minute=3)  # the same streak goes on
    assert shown(api, "billing")["note"] == "billing API is down, OPS-1234"
    with connection():
        report("billing", "S", first_minute=4)
    assert shown(api, "billing") is None
    with connection():
        report("billing", "F", first_minute=5)  # a new streak: a new episode
    assert api.get(f"{WORKFLOWS}/billing").json["state"] == "failing"
    assert shown(api, "billing") is None


def test_a_new_acknowledgement_replaces_the_last_and_needs_no_body(app, api):
    with connection():
        report("billing", "FF")
    acknowledge(api, "billing", note="looking")
    again = acknowledge(api, "billing")
    assert again.status_code == 201
    assert again.json["note"] is None
    assert shown(api, "billing")["note"] is None


def test_a_late_workflow_is_acknowledged_as_late_until_a_run_starts(app, api):
    assert api.patch(f"{WORKFLOWS}/nightly", json={"schedule": "0 3 * * *",
                                                   "grace_seconds": 0}).status_code == 201
    expected = datetime.fromisoformat(
        api.get(f"{WORKFLOWS}/nightly").json["next_expected_at"].replace("Z", "+00:00"))
    late = expected + timedelta(seconds=30)
    with connection():
        scan(config_from(app), late)
    answer = acknowledge(api, "nightly")
    assert (answer.status_code, answer.json["kind"]) == (201, "late")
    assert shown(api, "nightly")["by"] == "dev@example.com"
    api.post("/api/automations/executions", json={
        "workflow": "nightly", "status": "running",
        "started_at": (late + timedelta(minutes=1)).isoformat()})
    with connection():
        scan(config_from(app), late + timedelta(minutes=2))
    assert api.get(f"{WORKFLOWS}/nightly").json["state"] != "late"
    assert shown(api, "nightly") is None


@pytest.mark.parametrize("statuses", ["", "S", "FS", "P"])
def test_a_workflow_neither_late_nor_failing_has_nothing_to_acknowledge(app, api, statuses):
    if statuses:
        with connection():
            report("billing", statuses)
    else:
        api.patch(f"{WORKFLOWS}/billing", json={"description": "not reported yet"})
    answer = acknowledge(api, "billing", note="x")
    assert answer.status_code == 409
    assert answer.json["error"]["code"] == "conflict"
    assert "nothing to acknowledge" in answer.json["error"]["message"]
    assert shown(api, "billing") is None


def test_an_unknown_workflow_is_a_404_after_authentication(app, api, client):
    assert client.post(f"{WORKFLOWS}/nobody/acknowledge").status_code == 401
    answer = acknowledge(api, "nobody")
    assert answer.status_code == 404
    assert answer.json["error"]["code"] == "not_found"


@pytest.mark.parametrize("body, field", [
    ({"note": "x" * 2001}, "note"),
    ({"note": "a\x00b"}, "note"),
    ({"note": 5}, "note"),
    ({"note": "ok", "by": "someone else"}, "by"),
])
def test_a_bad_acknowledgement_is_refused_naming_the_field(app, api, body, field):
    with connection():
        report("billing", "F")
    answer = api.post(f"{WORKFLOWS}/billing/acknowledge", json=body)
    assert answer.status_code == 400
    assert answer.json["error"]["field"] == field
    assert shown(api, "billing") is None


def test_a_note_of_2000_characters_is_taken(app, api):
    with connection():
        report("billing", "F")
    assert acknowledge(api, "billing", note="n" * 2000).status_code == 201


def test_a_read_token_may_not_acknowledge(app, api, user):
    with connection():
        report("billing", "F")
        reader = create_token(user, "reader", ("read",))[1]
    answer = api.client.post(f"{WORKFLOWS}/billing/acknowledge",
                             headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 403
    assert shown(api, "billing") is None


def test_failing_episodes_are_counted_when_a_streak_begins_also_when_runs_are_recounted(app):
    with connection():
        report("billing", "FF")
        assert failing_episode("billing") == 1
        report("billing", "SF", first_minute=2)
        assert failing_episode("billing") == 2
        # A success reported at minute 9, then a failure behind it: no streak, no episode.
        [success] = report("billing", "S", first_minute=9)
        report("billing", "F", first_minute=8)
        assert failing_episode("billing") == 2
        # The success becomes a failure: the recount finds a streak begun, a new episode.
        patch_execution(success, ExecutionPatch.model_validate({"status": "failure"}))
        assert failing_episode("billing") == 3


# --- The pages' form route -----------------------------------------------------------------

def post_form(client, name: str, **fields):
    page = client.get(f"/workflows/{name}")
    return client.post(f"/workflows/{name}/acknowledge",
                       data={"csrf_token": csrf_from(page.text), **fields})


def test_the_form_route_acknowledges_as_the_signed_in_account_and_goes_back(app, logged_in,
                                                                           api):
    with connection():
        report("billing", "FF")
    answer = post_form(logged_in, "billing", note="on it")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/workflows/billing"
    assert shown(api, "billing")["note"] == "on it"
    assert "acknowledged" in logged_in.get("/workflows/billing").text
    assert post_form(logged_in, "billing", next="/alerts").headers["Location"] == "/alerts"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x",
                                    "/\\evil.example", "javascript:alert(1)"])
def test_the_form_route_never_redirects_off_the_site(app, logged_in, target):
    with connection():
        report("billing", "F")
    answer = post_form(logged_in, "billing", next=target)
    assert answer.headers["Location"] == "/workflows/billing"


def test_the_form_route_needs_the_csrf_token_and_a_session(app, logged_in, api):
    with connection():
        report("billing", "F")
    assert logged_in.post("/workflows/billing/acknowledge").status_code == 400
    guest = app.test_client()
    assert guest.post("/workflows/billing/acknowledge").status_code in (302, 400, 401)
    assert shown(api, "billing") is None


def test_the_form_route_says_when_there_is_nothing_to_acknowledge(app, logged_in):
    with connection():
        report("billing", "S")
    answer = post_form(logged_in, "billing")
    assert answer.status_code == 303
    page = logged_in.get(answer.headers["Location"]).text
    assert "nothing to acknowledge" in page
    assert post_form(logged_in, "nobody").status_code == 404
