"""Flows that Prefect's own SDK runs for tests/test_sources_prefect.py, with the Prefect
venv's Python and PREFECT_API_URL pointing at the test's server (not a test module:
Runwatch never imports Prefect).

    python prefect_flows.py FOLDER NAME...

Waits (at most two minutes) for the server to answer: started beside it, the imports of
both overlap. Then runs `nightly-etl` (two tasks, succeeds) and `invoice-sync` (a task, then one that raises),
writes FOLDER/ready, then runs one `waiter` flow per NAME at once, each of which runs a task,
waits (at most two minutes) until the file FOLDER/NAME exists, and runs another.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

from prefect import flow, task


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def charge(customer: int) -> None:
    raise ValueError(f"card declined for customer {customer}")


@flow(name="nightly-etl")
def nightly_etl(rows: int = 2) -> int:
    return add(rows, 1) + add(rows, 2)


@flow(name="invoice-sync")
def invoice_sync(customer: int = 42) -> None:
    add(customer, 1)
    charge(customer)


@flow(name="waiter")
def waiter(release: str) -> int:
    add(1, 1)
    deadline = time.monotonic() + 120
    while not Path(release).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return add(2, 2)


def wait_for_the_server(seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(os.environ["PREFECT_API_URL"] + "/health", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main(folder: Path, names: list[str]) -> None:
    wait_for_the_server()
    nightly_etl(rows=3)
    try:
        invoice_sync(customer=7)
    except ValueError:
        pass  # the failure is the point
    (folder / "ready").write_text("ok")
    threads = [threading.Thread(target=waiter, args=(str(folder / name),)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
