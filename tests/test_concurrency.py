"""Many clients reporting at once to a real server process."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers import LiveServer
from models import Execution

pytestmark = pytest.mark.long(10)

THREADS = 4
# Each number is posted by every thread at once: a hundred races per test.
POSTS_PER_THREAD = 100


def _post_many(url: str, token: str, thread: int, external_ids: bool) -> list[int]:
    statuses = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {token}"
        for number in range(POSTS_PER_THREAD):
            body = {"workflow": f"flow-{number % 5}", "status": "success",
                    "input": {"thread": thread, "n": number},
                    "steps": [{"name": "only step", "status": "success"}]}
            if external_ids:
                body["external_id"] = f"run-{number}"
            response = session.post(f"{url}/api/automations/executions", json=body, timeout=30)
            statuses.append(response.status_code)
    return statuses


def test_four_clients_posting_100_runs_each_store_exactly_400(live_server, live_token, db):
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda t: _post_many(live_server.url, live_token, t, False),
                                range(THREADS)))
    statuses = [s for thread in results for s in thread]
    assert len(statuses) == THREADS * POSTS_PER_THREAD
    assert set(statuses) == {201}, live_server.output()[-2000:]
    assert Execution.select().count() == THREADS * POSTS_PER_THREAD


def test_clients_racing_on_the_same_external_ids_create_each_run_once(live_server, live_token,
                                                                       db):
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda t: _post_many(live_server.url, live_token, t, True),
                                range(THREADS)))
    statuses = [s for thread in results for s in thread]
    assert all(s in (200, 201) for s in statuses), live_server.output()[-2000:]
    assert statuses.count(201) == Execution.select().count()
    # 250 external ids over 5 workflows: each (workflow, external id) pair once.
    assert Execution.select().count() == POSTS_PER_THREAD


def test_four_workers_starting_on_an_empty_database_all_come_up(database_url, tmp_path):

    server = LiveServer(database_url, tmp_path, workers=4, threads=1).start()
    try:
        for _ in range(12):
            # A deadline, not a measure: four workers boot at once on a busy machine.
            response = requests.get(f"{server.url}/login", allow_redirects=False, timeout=60)
            assert response.status_code == 302  # no account yet: on to the set-up page
            assert response.headers["Location"].endswith("/setup")
        assert server.process.poll() is None, server.output()[-2000:]
        assert "Traceback" not in server.output()
    finally:
        server.stop()


def test_concurrent_patches_of_the_same_runs_keep_the_counts_exact(live_server, live_token, db):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {live_token}"
    base = f"{live_server.url}/api/automations/executions"
    # Long ago, so the counts come from the rollups rather than from counting runs.
    run = session.post(base, json={"workflow": "w", "status": "running",
                                   "started_at": "2026-01-01T10:00:00Z"}, timeout=10).json()["id"]

    def flip(thread: int) -> set[int]:
        statuses = set()
        with requests.Session() as own:
            own.headers["Authorization"] = f"Bearer {live_token}"
            for number in range(60):
                status = ("success", "failure", "running")[(thread + number) % 3]
                response = own.patch(f"{base}/{run}", json={"status": status}, timeout=30)
                statuses.add(response.status_code)
        return statuses

    with ThreadPoolExecutor(THREADS) as pool:
        codes = set().union(*pool.map(flip, range(THREADS)))
    assert codes == {200}, live_server.output()[-2000:]
    counts = session.get(base, timeout=10).json()["counts"]
    direct = {status: Execution.select().where(Execution.status == status).count()
              for status in ("pending", "running", "success", "failure")}
    assert counts == direct
    assert sum(counts.values()) == 1
