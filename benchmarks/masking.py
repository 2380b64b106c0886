"""Masking benchmark: a run whose 9.5 MB `input` is one adversarial string, as people see it.

    python -m benchmarks.masking [--repeat 5] [--size 9500000]

The input is `"a:" * (size / 2)` (every character pair looks like the start of a
`key: value`), and a second run holds `"password=" * …` of the same size (every pair is a
secret). Each is read through a `read` token's run API (masked whole), the run page (cut at
64 KB) and the payload page (`…/payloads/input`, masked whole). Every request is printed
next to the authenticated no-op (`GET /api/ping`) timed in the same run.

A second table masks adversarial texts of 1 MB and of 2 MB: the ratio of the two times is
about 2 when the masker is linear (a quadratic one would show 4).
"""
from __future__ import annotations

import argparse
import json

from .harness import Bench, median, p, print_table, time_calls

from models.payloads import mask_text

from models import database
from models.db import utcnow
from models.ingest import store_executions
from models.schemas import ExecutionIn
from models.users import create_token


def store_run(name: str, text: str) -> int:
    """One finished run whose input is `text`; returns its id."""
    run = {"workflow": name, "status": "failure", "started_at": utcnow().isoformat(),
           "finished_at": utcnow().isoformat(), "input": text,
           "error": {"message": "failed"}}
    [(run_id, _)] = store_executions([ExecutionIn.model_validate_json(json.dumps(run))])
    return run_id


def main() -> None:
    """Store both runs, then time each way of reading them against the no-op."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=9_500_000)
    args = parser.parse_args()
    bench = Bench()
    database.connect(reuse_if_open=True)
    runs = {"a:": store_run("colons", "a:" * (args.size // 2)),
            "password=": store_run("passwords", "password=" * (args.size // 9))}
    read = {"Authorization": f"Bearer {create_token(bench.user, 'reader', ['read'])[1]}"}
    database.close()
    bench.login()

    def session(url: str):
        response = bench.client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response

    def with_read_token(url: str):
        response = bench.client.get(url, headers=read)
        assert response.status_code == 200, (url, response.status_code)
        return response

    cases = [("no-op GET /api/ping", bench.noop)]
    for pattern, run_id in runs.items():
        cases += [
            (f"{pattern}  read token GET /api/…/executions/<id>",
             lambda r=run_id: with_read_token(f"/api/automations/executions/{r}")),
            (f"{pattern}  page GET /executions/<id>",
             lambda r=run_id: session(f"/executions/{r}")),
            (f"{pattern}  payload page GET /executions/<id>/payloads/input",
             lambda r=run_id: session(f"/executions/{r}/payloads/input")),
        ]
    rows, baseline = [], None
    for name, call in cases:
        size = len(call().data)
        samples = time_calls(call, args.repeat if baseline else 50, warmup=1)
        baseline = baseline or median(samples)
        rows.append([name, median(samples), p(samples, 95), median(samples) / baseline,
                     f"{size / 1024:.1f} KB"])
    print(f"Inputs of {args.size / 1e6:.1f} MB; {args.repeat} timed calls each "
          "(the no-op: 50).")
    print_table(["request", "p50 ms", "p95 ms", "x no-op p50", "response"], rows)
    print()
    print_scaling()


ADVERSARIAL = ["a:", "a=", "password=", "password:", " ", "token ", "key:", "-u a:",
               "--password ", "x://a:", '"password": "', "password=a ", "pin pin: "]


def print_scaling(size: int = 1_000_000) -> None:
    """Masking time of each adversarial text at `size` and twice that, and their ratio."""
    rows = []
    for unit in ADVERSARIAL:
        small, large = (unit * (n // len(unit)) for n in (size, 2 * size))
        one = min(time_calls(lambda: mask_text(small), 3, warmup=1))  # the least disturbed
        two = min(time_calls(lambda: mask_text(large), 3, warmup=1))
        rows.append([repr(unit), one, two, two / one])
    print(f"mask_text on {size / 1e6:g} MB and {2 * size / 1e6:g} MB of each repeated unit "
          "(best of 3)")
    print_table(["unit", "1x ms", "2x ms", "2x / 1x"], rows)


if __name__ == "__main__":
    main()
