"""Benchmark of the run page and the API detail: one run with 2,000 steps and ~10 MB of payloads.

    python -m benchmarks.details [--repeat 50]

Prints p50/p95 of each request next to the authenticated no-op (`GET /api/ping`) timed in
the same run, and the size of each answer. Targets: page p95 <= 50 ms, page < 500 KB.
"""
from __future__ import annotations

import argparse
import random
from datetime import timedelta

from .harness import Bench, median, p, print_table, rss_mb, time_calls

from models import database
from models.db import utcnow
from models.execution_detail import execution_version
from models.ingest import store_executions
from models.schemas import ExecutionIn

STEPS = 2000
PAYLOAD_BYTES = 10 * 1024 * 1024


def build_run(rng: random.Random) -> ExecutionIn:
    """A failed run of 2,000 steps whose inputs and outputs add up to about 10 MB."""
    per_part = PAYLOAD_BYTES // (STEPS * 2)
    started = utcnow() - timedelta(hours=1)
    steps = []
    clock = started
    for position in range(STEPS):
        begin = clock + timedelta(milliseconds=rng.randint(0, 20))
        clock = begin + timedelta(milliseconds=rng.randint(5, 800))
        steps.append({
            "position": position, "name": f"Step {position}: sync record batch",
            "action": rng.choice(["http.get", "http.post", "sql.select", "python"]),
            "status": "failure" if position == STEPS - 1 else "success",
            "started_at": begin, "finished_at": clock,
            "input": _blob(rng, per_part), "output": _blob(rng, per_part),
            "logs": f"starting step {position}\ndone\n",
        })
    steps[-1]["error"] = {"message": "HTTP 502 from billing", "type": "HTTPError",
                          "stack": "Traceback (most recent call last):\n  ...\nHTTPError: 502"}
    return ExecutionIn.model_validate({
        "workflow": "bench-details", "external_id": "bench-1", "status": "failure",
        "started_at": started, "finished_at": clock + timedelta(milliseconds=5),
        "input": _blob(rng, 200 * 1024), "steps": steps,
        "error": steps[-1]["error"]})


def _blob(rng: random.Random, size: int) -> dict:
    """A JSON object of roughly `size` bytes: records with ids, names and flags."""
    records, total = [], 2
    while total < size:
        record = {"id": rng.randint(1, 10**9), "name": f"record-{rng.randint(1, 10**6)}",
                  "active": rng.random() < .5, "score": round(rng.random() * 100, 3)}
        records.append(record)
        total += 75
    return {"records": records, "token": "tok_" + "x" * 24}


def main() -> None:
    """Build the run, then time the page, one step, the API detail and the no-op."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    bench = Bench()
    database.connect(reuse_if_open=True)
    [(run_id, _)] = store_executions([build_run(random.Random(4))])
    version = execution_version(run_id)
    database.close()
    bench.login()
    cases = [
        ("no-op GET /api/ping", bench.noop),
        ("page GET /executions/<id>", lambda: bench.get(f"/executions/{run_id}")),
        ("step panel (htmx)", lambda: bench.get(f"/executions/{run_id}/steps/1000",
                                                 **{"HX-Request": "true"})),
        ("live poll, unchanged (htmx)", lambda: _poll(bench, run_id, version)),
        ("API GET .../executions/<id>",
         lambda: bench.get(f"/api/automations/executions/{run_id}")),
    ]
    rows, baseline = [], None
    for name, call in cases:
        size = len(call().data)
        samples = time_calls(call, args.repeat if "API" not in name else max(5, args.repeat // 5))
        base = baseline or median(samples)
        baseline = base
        rows.append([name, median(samples), p(samples, 95), median(samples) / base,
                     f"{size / 1024:.1f} KB"])
    print(f"One run: {STEPS} steps, ~{PAYLOAD_BYTES / 1e6:.0f} MB of payloads; "
          f"{args.repeat} timed calls each (API: fewer). RSS {rss_mb():.0f} MB.")
    print_table(["request", "p50 ms", "p95 ms", "x no-op p50", "response"], rows)


def _poll(bench: Bench, run_id: int, version: int):
    """The live refresh when nothing changed: answered 204 without rendering."""
    response = bench.client.get(f"/executions/{run_id}?since={version}",
                                headers={"HX-Request": "true"})
    assert response.status_code == 204, response.status_code
    return response


if __name__ == "__main__":
    main()
