"""Alerts benchmark: the scan's cost against history size, and failure-to-webhook latency.

    python -m benchmarks.alerts [--runs 1000000] [--workflows 100] [--e2e 5]

The history is bulk-inserted straight into the executions table for speed (the ingestion
path is measured by benchmarks/ingest.py); the 1,000 new runs go through the real write
path, so the alert write hook marks their workflows. Each workflow has a rule of its own.
Scan figures are shown next to one indexed single-row query and an authenticated no-op
request (`GET /api/ping`) timed in the same run; the end-to-end case runs a real server
(gunicorn, scheduler on, RUNWATCH_ALERT_SCAN_SECONDS=1) and a real webhook receiver.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from .harness import ROOT, Bench, median, p, print_table, time_calls

from alerts.config import ALLOW_PRIVATE, config_from
from alerts.models import mark_workflows
from alerts.rules import create_rule
from alerts.scheduler import scan
from alerts.schemas import RuleIn
from models import database
from models.db import to_micros, utcnow, write_transaction
from models.executions import Execution, Workflow
from models.ingest import store_executions
from models.schemas import ExecutionIn

CHUNK = 2000


def fill(runs: int, workflows: int) -> list[int]:
    """Bulk-insert `runs` finished runs over `workflows` workflows, 30 days back from now."""
    now = to_micros(utcnow())
    span = 30 * 86400 * 1_000_000
    rng = random.Random(7)
    with write_transaction():
        Workflow.insert_many([{"name": f"wf-{i:03d}", "created_at": now}
                              for i in range(workflows)]).execute()
    ids = [wid for (wid,) in Workflow.select(Workflow.id).order_by(Workflow.id).tuples()]
    fields = [Execution.workflow, Execution.status, Execution.started_at, Execution.finished_at,
              Execution.duration_ms, Execution.created_at, Execution.updated_at]
    for start in range(0, runs, CHUNK):
        rows = []
        for n in range(start, min(runs, start + CHUNK)):
            started = now - span + span * n // runs
            status = "failure" if rng.random() < 0.1 else "success"
            rows.append((ids[n % workflows], status, started, started + 4000, 4, now, now))
        with write_transaction():
            Execution.insert_many(rows, fields=fields).execute()
    return ids


def new_runs(count: int, workflows: int, minute: int) -> list[ExecutionIn]:
    """`count` finished runs after the history, spread over every workflow."""
    base = utcnow() + timedelta(minutes=minute)
    return [ExecutionIn.model_validate_json(json.dumps({
        "workflow": f"wf-{i % workflows:03d}", "status": "failure" if i % 7 == 0 else "success",
        "started_at": (base + timedelta(milliseconds=i)).isoformat(),
        "finished_at": (base + timedelta(milliseconds=i + 5)).isoformat()}))
        for i in range(count)]


def measure_scans(runs: int, workflows: int) -> dict:
    """Idle scan, scan after 1,000 new runs, and the reference costs, on one history size."""
    bench = Bench()
    database.connect(reuse_if_open=True)
    started = time.perf_counter()
    ids = fill(runs, workflows)
    fill_seconds = time.perf_counter() - started
    for index in range(workflows):
        create_rule(RuleIn.model_validate({"workflow": f"wf-{index:03d}", "threshold": 3,
                                           "channels": [{"type": "webhook",
                                                         "url": "http://127.0.0.1:9/x"}]},
                                          context={ALLOW_PRIVATE: True}))
    settings = config_from(bench.app)
    mark_workflows(ids)
    scan(settings)  # the first look at every workflow
    idle = time_calls(lambda: scan(settings), repeat=300, warmup=10)
    last_id = Execution.select(Execution.id).order_by(Execution.id.desc()).scalar()
    rng = random.Random(3)
    single = time_calls(lambda: Execution.get_by_id(rng.randint(1, last_id)), repeat=300)
    busy = []
    for round_ in range(5):
        store_executions(new_runs(1000, workflows, minute=round_ + 1))
        busy.append(time_calls(lambda: scan(settings), repeat=1, warmup=0)[0])
    database.close()
    noop = time_calls(bench.noop, repeat=300)
    return {"bench": bench, "fill_s": fill_seconds, "idle": idle, "single": single,
            "busy": busy, "noop": noop}


class _Receiver(BaseHTTPRequestHandler):
    arrivals: list[tuple[float, dict]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.arrivals.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def end_to_end(bench: Bench, rounds: int) -> list[float]:
    """Seconds from the POST of the 3rd failure in a row to the webhook's arrival."""
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    port = _free_port()
    env = {**os.environ, "RUNWATCH_DATABASE_URL": bench.app.config["DATABASE_URL"],
           "RUNWATCH_SECRET_KEY": "bench", "RUNWATCH_SCHEDULER": "true",
           "RUNWATCH_ALERT_SCAN_SECONDS": "1", "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}
    log = open(os.path.join(bench.tmp, "server.log"), "w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4",
                               "-b", f"127.0.0.1:{port}", "app:create_app()"], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {bench.token}"
    try:
        _wait(url)
        rule = api.post(f"{url}/api/automations/alerts", timeout=10, json={
            "workflow": "e2e", "threshold": 3, "channels": [{"type": "webhook", "url": hook}]})
        assert rule.status_code == 201, rule.text
        latencies = []
        start = utcnow() + timedelta(days=1)
        for round_ in range(rounds):
            for offset, status in enumerate(("success", "failure", "failure", "failure")):
                sent = time.monotonic()
                response = api.post(f"{url}/api/automations/executions", timeout=10, json={
                    "workflow": "e2e", "status": status, "started_at": (
                        start + timedelta(minutes=round_ * 4 + offset)).isoformat()})
                assert response.status_code == 201, response.text
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                failing = [at for at, body in _Receiver.arrivals
                           if body["type"] == "workflow.failing"]
                if len(failing) > round_:
                    latencies.append(failing[round_] - sent)
                    break
                time.sleep(0.01)
            time.sleep(1.5)  # the next round's success sends a recovery first
        return latencies
    finally:
        server.terminate()
        server.wait(timeout=15)
        receiver.shutdown()
        log.close()


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/login", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise TimeoutError(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000, help="history size to compare with")
    parser.add_argument("--workflows", type=int, default=100)
    parser.add_argument("--e2e", type=int, default=5, help="end-to-end rounds")
    args = parser.parse_args()

    rows = []
    results = {}
    for size in (args.small, args.runs):
        r = measure_scans(size, args.workflows)
        results[size] = r
        base = median(r["noop"])
        rows += [
            [f"{size:,}", "no-op request (GET /api/ping)", base, p(r["noop"], 95), 1.0],
            [f"{size:,}", "one indexed single-row query", median(r["single"]),
             p(r["single"], 95), median(r["single"]) / base],
            [f"{size:,}", "idle scan", median(r["idle"]), p(r["idle"], 95),
             median(r["idle"]) / base],
            [f"{size:,}", f"scan after 1,000 new runs ({args.workflows} workflows)",
             median(r["busy"]), max(r["busy"]), median(r["busy"]) / base],
        ]
    big = results[args.runs]
    print(f"History: {args.runs:,} runs over {args.workflows} workflows, a rule on each "
          f"(bulk fill took {big['fill_s']:.0f} s); SQLite file.\n")
    print_table(["history", "case", "median ms", "p95/max ms", "x no-op"], rows)
    idle_small, idle_big = median(results[args.small]["idle"]), median(big["idle"])
    print(f"\nIdle scan at {args.runs:,} runs / at {args.small:,} runs: "
          f"{idle_big / idle_small:.2f}x (flat = about 1). Target: idle scan <= 5 ms.")
    latencies = end_to_end(big["bench"], args.e2e)
    print()
    print_table(["end to end (RUNWATCH_ALERT_SCAN_SECONDS=1)", "rounds", "median s", "max s"],
                [["POST of the 3rd failure -> webhook arrival", len(latencies),
                  median(latencies) if latencies else float("nan"),
                  max(latencies) if latencies else float("nan")]])
    print("Target: <= 2 s.")


if __name__ == "__main__":
    main()
