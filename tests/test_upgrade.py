"""A database made and used by the previous release opens whole under this one.

The previous release's code comes from this repository's history; it builds a database
(an account and a token, runs with steps and payloads, an alert rule, decided notices with
their attempts), and then this release opens it and carries on.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app import create_app
from helpers import EMAIL, PASSWORD, ROOT, csrf_from, missing
from models import database

# The last release that people run: the code a kept database was made by.
PREVIOUS_RELEASE = "721c6862c9f92d8b0add57a98cfc1a037de12596"

# Run by the previous release's code, with its own packages first on the path.
BUILD = """
import json, sys
from app import create_app
from models.db import connection
from models.users import create_token, create_user
from models.ingest import store_executions
from models.schemas import ExecutionIn
from alerts.delivery import deliver_due
from alerts.rules import create_rule
from alerts.scan import scan
from alerts.schemas import RuleIn
from alerts.settings import settings_from

url, email, password = sys.argv[1:4]
app = create_app({"DATABASE_URL": url, "SECRET_KEY": "previous", "SCHEDULER": False,
                  "BASE_URL": "http://runwatch.test", "DELIVERY_MAX_ATTEMPTS": 1})
runs = [{"workflow": "billing", "status": "failure", "external_id": f"b{i}",
         "started_at": f"2026-11-20T10:0{i}:00Z", "finished_at": f"2026-11-20T10:0{i}:05Z",
         "input": {"invoice": i, "password": "hunter2"},
         "error": {"message": f"HTTP 502 (try {i})", "type": "HTTPError"},
         "steps": [{"name": "fetch", "status": "success", "output": {"rows": i}},
                   {"name": "post", "status": "failure", "error": {"message": "HTTP 502"}}]}
        for i in range(3)]
runs += [{"workflow": "etl", "status": "success", "started_at": f"2026-11-21T0{i}:00:00Z",
          "finished_at": f"2026-11-21T0{i}:01:00Z"} for i in range(2)]
with app.app_context(), connection():
    user = create_user(email, password)
    token = create_token(user, "kept")[1]
    ids = [i for i, _ in store_executions([ExecutionIn.model_validate_json(json.dumps(r)) for r in runs])]
    rule = create_rule(RuleIn.model_validate_json(json.dumps({
        "workflow": "billing", "threshold": 2,
        "channels": [{"type": "webhook", "url": "http://127.0.0.1:9/closed"},
                     {"type": "email", "to": ["ops@example.com"]}]})))
    settings = settings_from(app)
    scan(settings)
    deliver_due(settings)
print(json.dumps({"token": token, "ids": ids, "rule": rule.id}))
"""


@pytest.fixture
def previous_release(tmp_path):
    """The previous release's code, unpacked from this repository's history."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        missing("the previous release is not in this checkout's git history "
                f"({archive.stderr.decode(errors='replace').strip()})")
    target = tmp_path / "previous"
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True,
                   timeout=60)
    return target


@pytest.fixture
def kept(previous_release, database_url):
    """A database built and used by the previous release: what it printed about it."""
    built = subprocess.run([sys.executable, "-c", BUILD, database_url, EMAIL, PASSWORD],
                           cwd=previous_release, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return json.loads(built.stdout.strip().splitlines()[-1])


@pytest.fixture
def upgraded(kept, database_url, tmp_path):
    """This release's app on the kept database."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "previous",
                      "SCHEDULER": False, "BASE_URL": "http://runwatch.test"})
    yield app
    if not database.is_closed():
        database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


def test_a_database_of_the_previous_release_opens_whole(kept, upgraded):
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    assert client.get("/api/ping", headers=headers).json["user"] == EMAIL

    history = client.get("/api/automations/executions", headers=headers).json
    assert sorted(r["id"] for r in history["data"]) == sorted(kept["ids"])
    assert history["counts"] == {"pending": 0, "running": 0, "success": 2, "failure": 3}
    failures = client.get("/api/automations/executions?workflow=billing&status=failure"
                          "&from=2026-11-20&to=2026-11-20", headers=headers).json
    assert len(failures["data"]) == 3 and failures["counts"]["failure"] == 3

    first = client.get(f"/api/automations/executions/{kept['ids'][0]}", headers=headers).json
    assert first["input"] == {"invoice": 0, "password": "hunter2"}
    assert [s["name"] for s in first["steps"]] == ["fetch", "post"]
    assert first["failed_step"] == 1 and first["error"]["type"] == "HTTPError"

    [rule] = client.get("/api/automations/alerts", headers=headers).json["data"]
    assert rule["id"] == kept["rule"] and rule["threshold"] == 2
    assert [c["type"] for c in rule["channels"]] == ["webhook", "email"]
    assert rule["channels"][1]["to"] == ["ops@example.com"]
    assert rule["states"][0]["status"] == "failing"

    log = client.get("/api/automations/alerts/notices", headers=headers).json["data"]
    assert sorted(n["channel"]["type"] for n in log) == ["email", "webhook"]
    assert all(n["status"] == "failed" and len(n["attempts"]) == 1 for n in log)


def test_the_previous_releases_account_signs_in_and_sees_its_pages(kept, upgraded):
    client = upgraded.test_client()
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                            "password": PASSWORD})
    assert response.status_code == 302
    for url in ("/executions", f"/executions/{kept['ids'][0]}", "/alerts", "/settings"):
        assert client.get(url).status_code == 200, url
    assert "kept" in client.get("/settings").text


def test_work_goes_on_after_the_upgrade(kept, upgraded):
    from alerts.config import config_from
    from alerts.scan import scan

    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    response = client.post("/api/automations/executions", headers=headers, json={
        "workflow": "billing", "status": "success", "started_at": "2026-11-22T10:00:00Z",
        "finished_at": "2026-11-22T10:00:01Z"})
    assert response.status_code == 201
    counts = client.get("/api/automations/executions", headers=headers).json["counts"]
    assert counts["success"] == 3 and counts["failure"] == 3
    with upgraded.app_context():
        database.connect(reuse_if_open=True)
        scan(config_from(upgraded))
        database.close()
    log = client.get("/api/automations/alerts/notices?type=recovered", headers=headers).json
    assert len(log["data"]) == 2  # the streak the previous release alerted has recovered
