"""Fuzz the API against its OpenAPI document, long: every operation, SQLite and PostgreSQL.

    python -m benchmarks.fuzz                       # 300 examples per operation
    python -m benchmarks.fuzz --examples 1000 --postgres postgresql://u@127.0.0.1/emptydb

Runs the suite's schemathesis test (`tests/test_openapi.py::test_the_api_keeps_to_its_document`)
with many more examples, on SQLite and on PostgreSQL: the given (empty) database, or else a
throwaway cluster the test suite starts from the `initdb`/`pg_ctl` on this machine. Unlike
the suite's short run, a failing example does not stop the run: every example is written
down, and a table says, per database and operation, how many examples ran and how many
failed, followed by one example of each kind of failure. Exits non-zero when any failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict

import pytest

from .harness import ROOT, print_table

TEST = "tests/test_openapi.py::test_the_api_keeps_to_its_document"


def summarise(lines: list[dict]) -> list[list[object]]:
    """Rows of (database, operation, examples, failing examples), in a stable order."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for line in lines:
        count = counts[(line["backend"], line["operation"])]
        count[0] += 1
        count[1] += bool(line["failures"])
    return [[backend, operation, examples, failing]
            for (backend, operation), (examples, failing) in sorted(counts.items())]


def failure_kinds(lines: list[dict]) -> dict[tuple, tuple[int, dict]]:
    """Each kind of failure (database, operation, what failed, the exception) with how
    often it happened and its first example."""
    kinds: dict[tuple, tuple[int, dict]] = {}
    for line in lines:
        if line["failures"]:
            key = (line["backend"], line["operation"], tuple(line["failures"]),
                   line.get("exception", "").split(":")[0])
            seen, first = kinds.get(key, (0, line))
            kinds[key] = (seen + 1, first)
    return kinds


def main() -> None:
    """Run the schemathesis test with many examples and print what it found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300,
                        help="random examples per operation (besides the boundary values)")
    parser.add_argument("--postgres", metavar="URL",
                        help="an empty PostgreSQL database (default: a throwaway cluster)")
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="runwatch-fuzz-") as folder:
        report = os.path.join(folder, "examples.jsonl")
        os.environ["RUNWATCH_FUZZ_EXAMPLES"] = str(args.examples)
        os.environ["RUNWATCH_FUZZ_REPORT"] = report
        if args.postgres:
            os.environ["RUNWATCH_TEST_POSTGRES_URL"] = args.postgres
        marks = ["-m", "not postgres"] if args.sqlite_only else []
        code = pytest.main([str(ROOT / TEST), "-q", "-p", "no:cacheprovider", "-rN",
                            "--show-capture=no", "--tb=short", *marks])
        lines = []
        if os.path.exists(report):
            with open(report, encoding="utf-8") as handle:
                lines = [json.loads(line) for line in handle]
    rows = summarise(lines)
    print(f"\nschemathesis: up to {args.examples} random examples per operation besides "
          "boundary values, wrong types and sequences of operations; every check "
          "(`--checks all`), with tests/schemathesis.toml's settings.")
    print_table(["database", "operation", "examples", "failures"], rows)
    total = sum(row[2] for row in rows)
    failing = sum(row[3] for row in rows)
    print(f"\n{len(rows)} operation runs, {total} examples, {failing} failing examples")
    for (backend, operation, failures, _), (seen, first) in sorted(failure_kinds(lines).items()):
        print(f"\n[{backend}] {operation}: {', '.join(failures)} ({seen} examples)")
        if first.get("exception"):
            print(f"  server: {first['exception']}")
        print(f"  e.g. {first['example']}")
    if not lines:
        print("no example ran: see the pytest output above")
    sys.exit(1 if failing or not lines or code not in (0, 1) else 0)


if __name__ == "__main__":
    main()
