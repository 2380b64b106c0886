"""The scan job: started by the app once per process (and run by the lease holder), never in CLI commands or the reloader's
parent, and fast enough that a failure's webhook arrives within seconds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests

from alert_servers import wait_for_a_whole_pass
from scheduling import should_start
from helpers import ROOT, LiveServer
from models import database


@pytest.fixture
def scheduling(app, monkeypatch):
    app.config["SCHEDULER"] = True
    for name in ("FLASK_RUN_FROM_CLI", "WERKZEUG_RUN_MAIN"):
        monkeypatch.delenv(name, raising=False)
    return app


@pytest.mark.parametrize("environment, debug, expected", [
    ({}, False, True),                                   # gunicorn, or any WSGI server
    ({"FLASK_RUN_FROM_CLI": "true"}, False, False),      # `flask alerts scan` and friends
    ({}, True, False),                                   # the reloader's parent process
    ({"WERKZEUG_RUN_MAIN": "true"}, True, True),         # the reloader's child, which serves
], ids=["server", "cli-command", "reloader-parent", "reloader-child"])
def test_the_scheduler_starts_only_where_requests_are_served(scheduling, monkeypatch,
                                                            environment, debug, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    scheduling.debug = debug
    assert should_start(scheduling) is expected


def test_the_scheduler_stays_off_when_configured_off(scheduling):
    scheduling.config["SCHEDULER"] = False
    assert should_start(scheduling) is False


def test_two_apps_in_one_process_share_one_scheduler(app, database_url):
    database.close()
    script = (
        "import json, sys; sys.path.insert(0, '.')\n"
        "from app import create_app\n"
        "import scheduling\n"
        f"config = {{'DATABASE_URL': {database_url!r}, 'SECRET_KEY': 'x', 'SCHEDULER': True}}\n"
        "create_app(config); create_app(config)\n"
        "[started] = scheduling._started.values()\n"
        "print(json.dumps({'schedulers': len(scheduling._started),"
        " 'jobs': sorted(j.id for j in started.scheduler.get_jobs())}))\n"
        "started.stop(wait=False)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWATCH_", "FLASK_"))}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "schedulers": 1, "jobs": ["alerts", "metrics", "retention", "rollups", "sources"]}


@pytest.mark.long(8)
@pytest.mark.spec("API-AUTO-EXEC-ALERT-001")
def test_the_nth_failure_reported_to_a_running_server_reaches_the_webhook_within_seconds(
        app, database_url, tmp_path, token, receiver):
    database.close()
    server = LiveServer(database_url, tmp_path, env={"RUNWATCH_SCHEDULER": "true",
                                                     "RUNWATCH_ALERT_SCAN_SECONDS": "1",
                                                     "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}).start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        rule = requests.post(f"{server.url}/api/automations/alerts", headers=headers, timeout=10,
                             json={"workflow": "etl", "threshold": 2, "channels": [
                                 {"type": "webhook", "url": receiver.url}]})
        assert rule.status_code == 201, rule.text
        for minute in (1, 2):
            sent = time.monotonic()
            response = requests.post(f"{server.url}/api/automations/executions", timeout=10,
                                     headers=headers, json={
                                         "workflow": "etl", "status": "failure",
                                         "started_at": f"2026-11-01T08:0{minute}:00Z"})
            assert response.status_code == 201
        [arrived] = receiver.wait_for(1, timeout=10)
        assert arrived.at - sent < 5, server.output()
        assert arrived.json()["data"]["failure_count"] == 2
        # A whole pass more, in whichever worker holds the lease: still one notice.
        assert wait_for_a_whole_pass(), server.output()
        assert len(receiver.requests) == 1
    finally:
        server.stop()
