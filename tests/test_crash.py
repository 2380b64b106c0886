"""kill -9 of a real server process: batches stay whole, a decided notice is delivered once,
and a send cut off mid-way is repeated soon after the restart, recognisably the same.

`RUNWATCH_CRASH_ROUNDS` (default 1) repeats each crash that many times.
"""
from __future__ import annotations

import os
import random
import threading
import time

import pytest
import requests

from alert_servers import (HttpReceiver, make_rule, notices, report, wait_for_a_whole_pass,
                           wait_until)
from alerts.models import Attempt
from helpers import LiveServer, make_token
from models import Execution
from models.db import connection

pytestmark = pytest.mark.long(10)

ROUNDS = int(os.environ.get("RUNWATCH_CRASH_ROUNDS", "1"))
ALERT_003 = pytest.mark.spec("API-AUTO-EXEC-ALERT-003")
BATCH = 1000
LEASE_SECONDS = 2  # a notice's lease: how long a send cut off by kill -9 holds it


@pytest.fixture
def start(app, database_url, tmp_path):
    """Start a server (one worker) running the alert jobs every second on the test database,
    with a short delivery lease."""
    servers: list[LiveServer] = []

    def started() -> LiveServer:
        server = LiveServer(database_url, tmp_path, workers=1, threads=4, env={
            "RUNWATCH_SCHEDULER": "true", "RUNWATCH_ALERT_SCAN_SECONDS": "1",
            "RUNWATCH_DELIVERY_RETRY_SECONDS": "1", "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true",
            "RUNWATCH_DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS)})
        servers.append(server.start())
        return server

    yield started
    for server in servers:
        server.stop()


@pytest.fixture
def holding_receiver():
    server = HttpReceiver().start()
    yield server
    server.stop()


def test_kill_9_in_the_middle_of_a_batch_leaves_all_or_none_of_it(start, db, user):
    token = make_token(user, "crash")
    for round_ in range(ROUNDS):
        server = start()
        body = {"executions": [
            {"workflow": f"batch-{round_}", "status": "success", "external_id": f"r{round_}-{i}",
             "input": {"i": i, "text": "x" * 200},
             "steps": [{"name": "one", "status": "success"}, {"name": "two", "status": "success"}]}
            for i in range(BATCH)]}
        answers: list = []

        def post():
            try:
                answers.append(requests.post(f"{server.url}/api/automations/executions/batch",
                                             json=body, timeout=60,
                                             headers={"Authorization": f"Bearer {token}"}))
            except requests.RequestException as exc:
                answers.append(exc)

        sender = threading.Thread(target=post)
        sender.start()
        time.sleep(random.uniform(0.05, 0.4))
        server.crash()
        sender.join(timeout=60)
        with connection():
            stored = Execution.select().where(
                Execution.external_id.startswith(f"r{round_}-")).count()
        assert stored in (0, BATCH), (round_, stored)
        if isinstance(answers[0], requests.Response) and answers[0].status_code == 201:
            assert stored == BATCH  # answered: kept


@ALERT_003
def test_killed_between_deciding_and_delivering_the_restarted_app_delivers_once(
        start, db, holding_receiver):
    receiver = holding_receiver
    receiver.stop()  # refused: the notice is decided, and waits
    make_rule(2, [{"type": "webhook", "url": receiver.url}])
    for round_ in range(ROUNDS):
        server = start()
        report(f"decided-{round_}", "FF")
        assert wait_until(lambda: [n for n in notices() if n.attempts >= 1
                                   and n.status == "pending"], timeout=15), \
            server.output()[-2000:]
        server.crash()
        receiver.requests.clear()
        receiver.start()
        restarted = start()
        assert wait_until(lambda: all(n.status == "delivered" for n in notices()),
                          timeout=15), restarted.output()[-2000:]
        assert wait_for_a_whole_pass(), restarted.output()[-2000:]  # which sends nothing more
        assert len(receiver.requests) == 1
        restarted.crash()
        receiver.stop()


@ALERT_003
def test_killed_mid_send_the_restarted_app_sends_again_soon_with_the_same_id_and_body(
        start, db, user, holding_receiver):
    receiver = holding_receiver
    token = make_token(user, "log")
    make_rule(2, [{"type": "webhook", "url": receiver.url}])
    for round_ in range(ROUNDS):
        receiver.requests.clear()
        receiver.delay = 60  # holds its answer
        server = start()
        report(f"mid-send-{round_}", "FF")
        [first] = receiver.wait_for(1, timeout=15)
        server.crash()
        crashed = time.monotonic()
        receiver.delay = 0
        restarted = start()
        arrived = receiver.wait_for(2, timeout=30)
        assert len(arrived) == 2, restarted.output()[-2000:]
        second = arrived[1]
        resent_after = second.at - crashed  # the restart, the rest of the lease, a pass
        assert resent_after < 15, resent_after
        assert second.headers["webhook-id"] == first.headers["webhook-id"]
        assert second.body == first.body
        assert wait_for_a_whole_pass(), restarted.output()[-2000:]  # which sends nothing more
        assert len(receiver.requests) == 2
        [notice] = [n for n in notices() if f"mid-send-{round_}" in n.payload]
        attempts = list(Attempt.select().where(Attempt.notice == notice.id).order_by(Attempt.id))
        assert [a.outcome for a in attempts] == ["interrupted", "ok"]
        assert (notice.status, notice.attempts) == ("delivered", 2)
        log = requests.get(f"{restarted.url}/api/automations/alerts/notices/{notice.id}",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10).json()
        assert [a["outcome"] for a in log["attempts"]] == ["interrupted", "ok"]
        assert log["attempts"][0]["error"] == "interrupted: outcome unknown"
        print(f"round {round_}: re-sent {resent_after:.1f} s after kill -9, same webhook-id "
              f"{first.headers['webhook-id']}, 2 attempts logged for 2 requests")
        restarted.crash()

