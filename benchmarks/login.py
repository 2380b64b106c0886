"""Login benchmark: how far password guessing gets, and whether timing tells accounts apart.

    python -m benchmarks.login [--attempts 60] [--samples 15]

Guessing: one client sends `--attempts` wrong passwords for a known account as fast as it
can, with the default login limit; it counts the attempts answered 401 (tried) and 429
(refused). Timing: the median time of a wrong password for a known account, an unknown
address and a well-formed address of no account, each from its own client address (so the
limit does not interfere), next to the authenticated no-op `GET /api/ping`.
"""
from __future__ import annotations

import argparse
import re
import time

from .harness import Bench, median, print_table, time_calls

EMAIL, PASSWORD = "bench@example.com", "bench-password"


def _csrf(client) -> str:
    page = client.get("/login", environ_base={"REMOTE_ADDR": "10.9.9.9"})
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)


def guessing(attempts: int) -> list[list[object]]:
    """Wrong passwords in a row from one client: how many were tried, how long it took."""
    bench = Bench()
    client = bench.app.test_client()
    token = _csrf(client)
    statuses, start = [], time.perf_counter()
    for number in range(attempts):
        response = client.post("/login", data={"csrf_token": token, "email": EMAIL,
                                               "password": f"guess-{number}"})
        statuses.append(response.status_code)
    seconds = time.perf_counter() - start
    refused = [i + 1 for i, status in enumerate(statuses) if status == 429]
    return [[attempts, seconds, statuses.count(401), len(refused),
             refused[0] if refused else "-", response.headers.get("Retry-After", "-")]]


def timing(samples: int) -> list[list[object]]:
    """Median milliseconds of a failed sign-in for a known and for unknown addresses."""
    bench = Bench(LOGIN_RATE_LIMIT="1000000 per minute")
    client = bench.app.test_client()
    token = _csrf(client)
    counter = iter(range(10**9))

    def attempt(email: str):
        def call():
            address = f"10.0.{next(counter) % 250}.{next(counter) % 250}"
            response = client.post("/login", environ_base={"REMOTE_ADDR": address},
                                   data={"csrf_token": token, "email": email,
                                         "password": "wrong password"})
            assert response.status_code == 401, response.status_code
        return call

    noop = median(time_calls(bench.noop, samples))
    rows = []
    for label, email in (("known address, wrong password", EMAIL),
                         ("unknown address", "nobody@example.com"),
                         ("not an address", "not-an-address")):
        ms = median(time_calls(attempt(email), samples))
        rows.append([label, ms, ms / noop])
    known = rows[0][1]
    for row in rows:
        row.append(row[1] / known)
    rows.append(["no-op GET /api/ping", noop, 1.0, noop / known])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=60)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    print("Guessing one account's password from one client:")
    print_table(["attempts", "seconds", "tried (401)", "refused (429)", "first 429",
                 "Retry-After"], guessing(args.attempts))
    print()
    print("A failed sign-in, median of", args.samples)
    print_table(["case", "ms", "x no-op", "x known"], timing(args.samples))


if __name__ == "__main__":
    main()
