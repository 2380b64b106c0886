"""Starting the app on a database that is in use: the schema check reads, it never waits."""
from __future__ import annotations

import sqlite3
import threading

from app import create_app


def _hold_a_write(database_url: str):
    """Another process's open transaction that has written runs, and how to end it."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        param = "?"
    else:
        import psycopg2
        conn = psycopg2.connect(database_url)
        param = "%s"
    cursor = conn.cursor()
    cursor.execute(f"INSERT INTO workflow (name, created_at) VALUES ({param}, 0)", ("busy",))
    cursor.execute("SELECT id FROM workflow WHERE name = 'busy'")
    workflow_id = cursor.fetchone()[0]
    cursor.execute("INSERT INTO execution (workflow_id, status, started_at, step_count,"
                   f" created_at, updated_at) VALUES ({param}, 'running', 0, 0, 0, 0)",
                   (workflow_id,))
    return conn


def test_a_process_starting_beside_a_busy_writer_does_not_wait_for_it(app, app_config,
                                                                       database_url):
    writer = _hold_a_write(database_url)
    started: list = []
    thread = threading.Thread(target=lambda: started.append(create_app(app_config)),
                              daemon=True)
    try:
        thread.start()
        thread.join(timeout=5)
        assert started, "the second app waited for another process's transaction"
    finally:
        writer.rollback()
        writer.close()
        thread.join(timeout=15)
