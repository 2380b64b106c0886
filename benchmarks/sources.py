"""Source pull benchmark: runs pulled from Prefect per second, and an idle pull at 10,000.

    python -m benchmarks.sources [--runs 10000] [--tasks 3] [--idle 5] [--postgres URL]

Prefect is stood in for by a small HTTP server on 127.0.0.1 (in a process of its own) that
answers `/flow_runs/filter`, `/task_runs/filter` and `/flows/filter` as Prefect 3.9 does,
with the fields and shapes of answers recorded from a real Prefect server, for `--runs` flow
runs (one in ten failed) with `--tasks` task runs each, their expected starts spread over
the last 12 hours (about one run every 4 s at 10,000). It filters, sorts and pages as
Prefect does for the filters Runwatch sends.

Measured, next to the authenticated no-op `GET /api/ping` of the same run:

- the first pulls, until the cursor has caught up (25 pages of 200 runs each at most per
  pull): runs mapped and stored per second, and the mapping alone (`run_report` over the
  same answers, no HTTP, no database);
- then `--idle` pulls with nothing new (the two minutes of overlap re-read, every run in it
  unchanged): the time of each.
"""
from __future__ import annotations

import bisect
import json
import multiprocessing
import time
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .harness import Bench, arguments, empty_postgres, median, print_table, time_calls

from models import database
from models.executions import Execution
from sources.kinds.prefect import run_report
from sources.models import Source
from sources.pull import PullSettings, pull_source

UTC = timezone.utc
SPREAD = timedelta(hours=12)
FLOWS = ["nightly-etl", "invoice-sync", "crm-export", "backup", "report-mailer"]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _state(kind: str, at: datetime, message: str | None, run_id: str, task: bool) -> dict:
    return {"id": str(uuid.uuid4()), "type": kind, "name": kind.title(), "timestamp": _iso(at),
            "message": message, "data": None,
            "state_details": {"flow_run_id": run_id, "task_run_id": None if not task else "",
                              "child_flow_run_id": None, "scheduled_time": None,
                              "cache_key": None, "cache_expiration": None, "deferred": False,
                              "untrackable_result": True, "pause_timeout": None,
                              "pause_reschedule": False, "pause_key": None,
                              "run_input_keyset": None, "refresh_cache": None,
                              "retriable": None, "transition_id": None,
                              "task_parameters_id": None, "traceparent": None}}


def make_history(runs: int, tasks: int, now: datetime) -> tuple[list, list, list]:
    """Flow runs, task runs and flows in the shape of Prefect 3.9's answers."""
    flows = [{"id": str(uuid.uuid4()), "created": _iso(now - SPREAD), "updated": _iso(now),
              "name": name, "tags": [], "labels": {}} for name in FLOWS]
    flow_runs, task_runs = [], []
    for index in range(runs):
        run_id, flow = str(uuid.uuid4()), flows[index % len(flows)]
        expected = now - SPREAD + SPREAD * (index / runs)
        started, ended = expected + timedelta(seconds=0.05), expected + timedelta(seconds=2)
        failed = index % 10 == 3
        kind = "FAILED" if failed else "COMPLETED"
        message = ("Flow run encountered an exception: ValueError: row 17 has no customer"
                   if failed else None)
        flow_runs.append({
            "id": run_id, "created": _iso(expected), "updated": _iso(ended),
            "name": f"run-{index}", "flow_id": flow["id"], "state_id": str(uuid.uuid4()),
            "deployment_id": None, "deployment_version": None, "work_queue_id": None,
            "work_queue_name": None, "flow_version": "6a0618191e3b1ff45a70d73aa2f4727e",
            "parameters": {"customer": index, "day": expected.date().isoformat()},
            "idempotency_key": None, "context": {},
            "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0, "retries": 0,
                                 "retry_delay": 0, "pause_keys": [], "resuming": False,
                                 "retry_type": None},
            "tags": [], "labels": {"prefect.flow.id": flow["id"]}, "parent_task_run_id": None,
            "state_type": kind, "state_name": kind.title(), "run_count": 1,
            "expected_start_time": _iso(expected), "next_scheduled_start_time": None,
            "start_time": _iso(started), "end_time": _iso(ended), "total_run_time": 1.95,
            "estimated_run_time": 1.95, "estimated_start_time_delta": 0.05,
            "auto_scheduled": False, "infrastructure_document_id": None,
            "infrastructure_pid": None, "created_by": None, "work_pool_id": None,
            "work_pool_name": None,
            "state": _state(kind, ended, message, run_id, False), "job_variables": {}})
        for position in range(tasks):
            task_failed = failed and position == tasks - 1
            task_kind = "FAILED" if task_failed else "COMPLETED"
            begin = started + timedelta(seconds=0.5 * position)
            task_runs.append({
                "id": str(uuid.uuid4()), "created": _iso(begin), "updated": _iso(begin),
                "name": f"step{position}-{index % 1000:03x}", "flow_run_id": run_id,
                "task_key": f"step{position}-3fa6f2ce", "dynamic_key": str(index),
                "cache_key": None, "cache_expiration": None, "task_version": None,
                "empirical_policy": {"max_retries": 0, "retry_delay_seconds": 0.0,
                                     "retries": 0, "retry_delay": 0, "retry_jitter_factor": None},
                "tags": [], "labels": {}, "state_id": str(uuid.uuid4()),
                "task_inputs": {"a": [], "b": []}, "state_type": task_kind,
                "state_name": task_kind.title(), "run_count": 1, "flow_run_run_count": 1,
                "expected_start_time": _iso(begin), "next_scheduled_start_time": None,
                "start_time": _iso(begin), "end_time": _iso(begin + timedelta(seconds=0.4)),
                "total_run_time": 0.4, "estimated_run_time": 0.4,
                "estimated_start_time_delta": 0.0,
                "state": _state(task_kind, begin + timedelta(seconds=0.4),
                                "Task run encountered an exception ValueError: row 17"
                                if task_failed else "", run_id, True)})
    return flow_runs, task_runs, flows


class History:
    """The stand-in's runs, indexed as a database would: by expected start and by end."""

    def __init__(self, runs: list[dict]):
        self.runs = {run["id"]: run for run in runs}
        self.by_start = sorted((run["expected_start_time"], run["id"]) for run in runs)
        self.by_end = sorted((run["end_time"], run["id"]) for run in runs if run["end_time"])

    @staticmethod
    def _between(index: list[tuple], bound: dict | None) -> list[str]:
        if not bound:
            return []
        low = bisect.bisect_left(index, (bound.get("after_") or "",))
        high = (bisect.bisect_right(index, (bound["before_"], "~")) if bound.get("before_")
                else len(index))
        return [run_id for _, run_id in index[low:high]]

    def flow_runs(self, body: dict) -> list[dict]:
        """The answer to `/flow_runs/filter` for the filters Runwatch sends."""
        wanted = body.get("flow_runs") or {}
        if "id" in wanted:
            found = [self.runs[i] for i in wanted["id"]["any_"] if i in self.runs]
        else:
            ids = set(self._between(self.by_start, wanted.get("expected_start_time")))
            ids.update(self._between(self.by_end, wanted.get("end_time")))
            found = sorted((self.runs[i] for i in ids),
                           key=lambda run: (run["expected_start_time"], run["id"]))
        start = body.get("offset", 0)
        return found[start:start + body.get("limit", 200)]


def serve(port_queue, runs: int, tasks: int, now: datetime) -> None:
    """The stand-in Prefect (in a process of its own): serve until killed."""
    flow_runs, task_runs, flows = make_history(runs, tasks, now)
    history = History(flow_runs)
    tasks_by_run: dict[str, list] = {}
    for task in task_runs:
        tasks_by_run.setdefault(task["flow_run_id"], []).append(task)
    flow_by_id = {flow["id"]: flow for flow in flows}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path.endswith("/flow_runs/filter"):
                answer = history.flow_runs(body)
            elif self.path.endswith("/task_runs/filter"):
                ids = body["task_runs"]["flow_run_id"]["any_"]
                found = [task for run_id in ids for task in tasks_by_run.get(run_id, [])]
                start = body.get("offset", 0)
                answer = found[start:start + body.get("limit", 200)]
            else:
                answer = [flow_by_id[i] for i in body["flows"]["id"]["any_"] if i in flow_by_id]
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def main() -> None:
    args = arguments(__doc__, runs=10_000, tasks=3, idle=5).parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    now = datetime.now(UTC)
    ports = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(ports, args.runs, args.tasks, now),
                                     daemon=True)
    server.start()
    try:
        port = ports.get(timeout=300)
        bench = Bench(args.postgres, WEBHOOK_ALLOW_PRIVATE=True)
        noop = median(time_calls(bench.noop, 50))
        created = bench.client.post("/api/automations/sources", headers=bench.headers, json={
            "type": "prefect", "url": f"http://127.0.0.1:{port}/api"}).json["id"]
        settings = PullSettings(allow_private=True)
        database.connect(reuse_if_open=True)
        pulls, started = 0, time.perf_counter()
        while True:  # until a pull reads everything it asks for
            pulls += 1
            outcome = pull_source(created, settings)
            assert outcome.error is None and not outcome.left_out, outcome
            if outcome.complete:
                break
        first = time.perf_counter() - started
        stored = Execution.select().count()
        assert stored == args.runs, (stored, args.runs)
        idle = time_calls(lambda: pull_source(created, settings), args.idle, warmup=1)
        assert Source.get_by_id(created).last_pulled == 0
        flow_runs, task_runs, _ = make_history(min(args.runs, 2000), args.tasks, now)
        tasks_by_run: dict[str, list] = {}
        for task in task_runs:
            tasks_by_run.setdefault(task["flow_run_id"], []).append(task)
        mapping = time_calls(lambda: [run_report(run, "etl", tasks_by_run[run["id"]], 2000)
                                      for run in flow_runs], 3, warmup=1)
        database.close()
    finally:
        server.kill()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{args.runs} flow runs of {args.tasks} task runs each, on {backend}; "
          f"no-op GET /api/ping p50 {noop:.2f} ms\n")
    print_table(["measure", "value"], [
        ["first pulls (until caught up)", f"{pulls} pulls, {first:.1f} s"],
        ["runs pulled, mapped and stored per second", f"{args.runs / first:.0f}"],
        ["runs mapped per second (mapping alone)",
         f"{len(flow_runs) / (median(mapping) / 1000):.0f}"],
        [f"idle pull at {stored} known runs, p50 of {args.idle}", f"{median(idle):.0f} ms"],
        ["idle pull, slowest", f"{max(idle):.0f} ms"],
    ])


if __name__ == "__main__":
    main()
