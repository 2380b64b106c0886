"""Ingestion benchmark: executions/second for single POSTs and for batches, on SQLite.

    python -m benchmarks.ingest [--singles 1000] [--batches 10] [--batch-size 1000]

Each run has 5 steps and about 1 KB of payload. Every figure is printed next to an
authenticated no-op request (`GET /api/ping`) timed in the same run.
"""
from __future__ import annotations

import argparse
import json
import time

from .harness import Bench, p, print_table, rss_mb, time_calls

STEP_NAMES = ["Fetch", "Validate", "Transform", "Upload", "Notify"]


def make_run(number: int) -> dict:
    """One run of ~1 KB of payload with 5 steps."""
    return {
        "workflow": f"workflow-{number % 20}",
        "external_id": f"bench-{number}",
        "status": "failure" if number % 10 == 0 else "success",
        "started_at": "2026-11-24T10:00:00Z",
        "finished_at": "2026-11-24T10:00:04.250Z",
        "input": {"customer": number, "note": "x" * 200, "tags": ["a", "b", "c"]},
        "steps": [{"position": i, "name": name, "action": "http.post", "status": "success",
                   "started_at": "2026-11-24T10:00:00Z",
                   "finished_at": "2026-11-24T10:00:01Z",
                   "input": {"i": i}, "output": {"ok": True, "body": "y" * 100}}
                  for i, name in enumerate(STEP_NAMES)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    bench = Bench()
    size = len(json.dumps(make_run(0)))
    noop = time_calls(bench.noop, 500)
    noop_per_s = 1000 / (sum(noop) / len(noop))

    counter = iter(range(10**9))

    def single():
        response = bench.client.post("/api/automations/executions",
                                     json=make_run(next(counter)), headers=bench.headers)
        assert response.status_code == 201, response.text

    singles = time_calls(single, args.singles)
    singles_per_s = 1000 / (sum(singles) / len(singles))

    bodies = [{"executions": [make_run(next(counter)) for _ in range(args.batch_size)]}
              for _ in range(args.batches + 1)]
    batch_times = []
    for index, body in enumerate(bodies):
        start = time.perf_counter()
        response = bench.client.post("/api/automations/executions/batch", json=body,
                                     headers=bench.headers)
        elapsed = (time.perf_counter() - start) * 1000
        assert response.status_code == 201, response.text
        if index:  # the first batch warms up
            batch_times.append(elapsed)
    batch_per_s = args.batch_size * 1000 / (sum(batch_times) / len(batch_times))

    print(f"SQLite, in process; each run {size} bytes of JSON with 5 steps; RSS {rss_mb():.0f} MB")
    print_table(
        ["case", "requests", "p50 ms", "p95 ms", "executions/s", "vs no-op req/s"],
        [["no-op GET /api/ping", len(noop), p(noop, 50), p(noop, 95), "-", 1.0],
         ["single POST", len(singles), p(singles, 50), p(singles, 95), singles_per_s,
          singles_per_s / noop_per_s],
         [f"batch POST x{args.batch_size}", len(batch_times), p(batch_times, 50),
          p(batch_times, 95), batch_per_s, batch_per_s / noop_per_s]])


if __name__ == "__main__":
    main()
