"""Step batches: time, write-lock hold and worker memory for a batch at the step limits,
and for a batch far beyond them (80 runs x 10,000 steps, which is refused).

    python -m benchmarks.steps [--repeat 20] [--postgres URL]

In process (Flask's test client), each request is split into reading the body (validation),
the write transaction (on SQLite: the time the write lock is held) and the rest. Over
HTTP, the same requests go to gunicorn (1 worker, 1 thread) and the worker's resident
memory is read from /proc after every request, once the worker is idle again. Every figure sits next to the authenticated
no-op `GET /api/ping` timed in the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import requests

import models.ingest
from models.schemas import BatchIn, InputError, StepBudget, parse

from .harness import ROOT, Bench, median, print_table, time_calls

BATCH = "/api/automations/executions/batch"
OLD_SHAPE = (80, 10_000)  # runs x steps of the batch that once took 8.9 s


def step(position: int, payload_bytes: int) -> dict:
    """One step as an automation reports it, with `payload_bytes` of output."""
    return {"position": position, "name": f"Sync record batch {position}",
            "action": "http.post", "status": "success",
            "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:01Z",
            "input": {"batch": position}, "output": {"body": "x" * payload_bytes},
            "logs": f"posted batch {position}\n"}


def batch_body(steps_per_run: list[int], payload_bytes: int, tag: str) -> bytes:
    """A batch of runs with these many steps each."""
    return json.dumps({"executions": [
        {"workflow": "bench-steps", "external_id": f"{tag}-{run}", "status": "success",
         "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:05:00Z",
         "steps": [step(i, payload_bytes) for i in range(steps)]}
        for run, steps in enumerate(steps_per_run)]}).encode()


def tiny_batch(runs: int, steps: int) -> bytes:
    """The batch beyond the limits: the most steps that fit in 10 MB, `{"name":"s"}` each."""
    return json.dumps({"executions": [
        {"workflow": "bench-steps", "status": "success",
         "steps": [{"name": "s"} for _ in range(steps)]} for _ in range(runs)]},
        separators=(",", ":")).encode()


class LockClock:
    """Times every write transaction of the ingestion path (on SQLite, the write lock)."""

    def __init__(self):
        self.held: list[float] = []
        self._original = models.ingest.write_transaction

    @contextlib.contextmanager
    def _timed(self):
        started = time.perf_counter()
        try:
            with self._original():
                yield
        finally:
            self.held.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> "LockClock":
        models.ingest.write_transaction = self._timed
        return self

    def __exit__(self, *exc) -> None:
        models.ingest.write_transaction = self._original


def in_process(bench: Bench, bodies: dict[str, bytes], repeat: int) -> list[list]:
    """Per body: p50 of the whole request, of reading it and of the write lock; status."""
    rows = []
    limits = StepBudget(bench.app.config["MAX_STEPS_PER_REQUEST"],
                        bench.app.config["MAX_STEPS_PER_RUN"])
    for label, body in bodies.items():
        totals, locks, reads, statuses = [], [], [], set()
        for index in range(repeat):
            body_now = body.replace(b'"external_id": "', f'"external_id": "{index}-'.encode())
            with LockClock() as clock:
                started = time.perf_counter()
                response = bench.client.post(BATCH, data=body_now, headers=bench.headers,
                                             content_type="application/json")
                totals.append((time.perf_counter() - started) * 1000)
            statuses.add(response.status_code)
            locks.append(sum(clock.held))
            started = time.perf_counter()
            try:
                parse(BatchIn, body_now, StepBudget(limits.per_request, limits.per_run))
            except InputError:  # the refused body: reading it is the whole request
                pass
            reads.append((time.perf_counter() - started) * 1000)
        rows.append([label, f"{len(body) / 1e6:.1f} MB", "/".join(map(str, sorted(statuses))),
                     median(totals), median(reads), median(locks)])
    return rows


class Worker:
    """gunicorn with one worker and one thread on the benchmark's database."""

    def __init__(self, url: str, secret: str, token: str):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        env = {**os.environ, "RUNWATCH_DATABASE_URL": url, "RUNWATCH_SECRET_KEY": secret,
               "RUNWATCH_SCHEDULER": "false"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "1", "--timeout", "120",
             "-b", f"127.0.0.1:{self.port}", "app:create_app()"], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        for _ in range(300):
            try:
                self.session.get(f"{self.base}/api/ping", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

    def worker_pid(self) -> int:
        children = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True,
                                  text=True).stdout.split()
        return int(children[0])

    def rss_mb(self) -> float:
        """The worker's resident memory once it is idle (it trims after sending an answer)."""
        time.sleep(0.2)
        with open(f"/proc/{self.worker_pid()}/status") as handle:
            found = re.search(r"VmRSS:\s+(\d+) kB", handle.read())
        return int(found.group(1)) / 1024

    def post(self, body: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        response = self.session.post(f"{self.base}{BATCH}", data=body, timeout=120,
                                     headers={"Content-Type": "application/json"})
        return response.status_code, (time.perf_counter() - started) * 1000

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def over_http(worker: Worker, bodies: dict[str, bytes], repeat: int) -> list[list]:
    """Per body, in turn: statuses, median time and the worker's RSS before, after the
    first request, after half of them and after the last one."""
    rows = []
    for label, body in bodies.items():
        rss = [worker.rss_mb()]
        times, statuses = [], set()
        for index in range(repeat):
            status, elapsed = worker.post(
                body.replace(b'"external_id": "', f'"external_id": "http{index}-'.encode()))
            statuses.add(status)
            times.append(elapsed)
            rss.append(worker.rss_mb())
        rows.append([label, "/".join(map(str, sorted(statuses))), median(times), rss[0],
                     rss[1], rss[len(rss) // 2], rss[-1]])
    return rows


def main() -> None:
    """Build the bodies, time them in process, then over HTTP with the worker's RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database to use instead of SQLite")
    args = parser.parse_args()
    bench = Bench(args.postgres)
    per_request = bench.app.config["MAX_STEPS_PER_REQUEST"]
    per_run = bench.app.config["MAX_STEPS_PER_RUN"]
    runs = [per_run] * (per_request // per_run) + ([per_request % per_run]
                                                   if per_request % per_run else [])
    # Payloads too as large as a body may be: the most work one request can ask for.
    payload = max(0, (bench.app.config["MAX_PAYLOAD_BYTES"] * 9 // 10) // per_request - 200)
    shape = " + ".join(f"{n:,}" for n in runs)
    bodies = {
        f"at the limits: runs of {shape} steps, {payload:,} B output each":
            batch_body(runs, payload, "max"),
        f"beyond: {OLD_SHAPE[0]} runs x {OLD_SHAPE[1]:,} steps": tiny_batch(*OLD_SHAPE),
    }
    noop = median(time_calls(bench.noop, 200))
    print(f"Limits: {per_request:,} steps per request, {per_run:,} per run; "
          f"no-op GET /api/ping p50 {noop:.2f} ms; {args.repeat} requests per case.")
    print("\nIn process (p50, ms; the write lock is the write transaction's time):")
    print_table(["batch", "body", "status", "request", "reading the body", "write lock"],
                in_process(bench, bodies, args.repeat))
    worker = Worker(bench.app.config["DATABASE_URL"], bench.app.secret_key, bench.token)
    try:
        for _ in range(3):
            worker.post(batch_body([5], 10, "warm"))
        print("\nOver HTTP, gunicorn 1 worker x 1 thread (p50 ms; worker RSS in MB):")
        print_table(["batch", "status", "request", "RSS before", "after 1st", "after half",
                     "after last"],
                    over_http(worker, bodies, args.repeat))
    finally:
        worker.stop()


if __name__ == "__main__":
    main()
