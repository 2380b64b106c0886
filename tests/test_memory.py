"""The memory a worker gives the embedded SQLite database stays bounded, whatever the size
of the file: a bounded pool of connections, each with a small page cache and no memory map.
(`python -m benchmarks.memory` measures the workers' resident size as the file grows.)"""
from __future__ import annotations

import threading

import pytest

from models import database

# A worker starts at about 65 MB; its SQLite caches may add this much, so it stays under
# 150 MB.
CACHE_BUDGET_BYTES = 64 * 1000 * 1024


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _cache_bytes(connection) -> int:
    pages = connection.execute("PRAGMA cache_size").fetchone()[0]
    if pages < 0:  # negative: a size in KiB
        return -pages * 1024
    return pages * connection.execute("PRAGMA page_size").fetchone()[0]


def test_every_pooled_connection_together_caches_at_most_the_budget(app):
    database.connect(reuse_if_open=True)
    try:
        raw = database.connection()
        per_connection = _cache_bytes(raw)
        assert raw.execute("PRAGMA mmap_size").fetchone()[0] == 0
    finally:
        database.close()
    assert database.obj._max_connections * per_connection <= CACHE_BUDGET_BYTES


def test_threads_beyond_the_pool_wait_for_a_connection_instead_of_opening_more(app):
    bound = database.obj._max_connections
    full = threading.Event()  # set when `bound` threads hold a connection at once
    seen, errors, lock = [], [], threading.Lock()

    def work():
        try:
            database.connect()
            try:
                database.execute_sql("SELECT COUNT(*) FROM execution").fetchone()
                with lock:
                    seen.append(len(database.obj._in_use))
                    if len(seen) == bound:
                        full.set()
                full.wait(20)
            finally:
                database.close()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(bound + 8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == [] and len(seen) == bound + 8
    assert max(seen) == bound  # all in use at once, and no more
    assert len(database.obj._connections) + len(database.obj._in_use) <= bound
