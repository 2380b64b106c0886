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


def test_a_sqlite_library_too_old_for_the_sql_stops_the_start_naming_both_versions(tmp_path):
    """RETURNING needs SQLite 3.35: an older library stops the start with a message, not a
    syntax error at the first report. (The library is the one this Python was built with,
    so the start is run with the version it reports lowered.)"""
    import os
    import subprocess
    import sys

    from helpers import ROOT
    from models.db import SQLITE_NEEDED, check_sqlite_version

    check_sqlite_version(SQLITE_NEEDED[0])  # the oldest that will do
    check_sqlite_version(sqlite3.sqlite_version_info)  # the one in use here
    start = ("import sqlite3; sqlite3.sqlite_version_info = (3, 31, 1)\n"
             "from app import create_app\n"
             f"create_app({{'DATABASE_URL': 'sqlite:///{tmp_path / 'old.db'}', "
             "'SCHEDULER': False, 'SECRET_KEY': 'x'})")
    done = subprocess.run([sys.executable, "-c", start], cwd=ROOT, capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"})
    assert done.returncode == 1
    assert "SQLite 3.35.0 or newer" in done.stderr and "SQLite 3.31.1" in done.stderr
    assert not (tmp_path / "old.db").exists()


def test_a_column_left_out_by_a_forgotten_migration_stops_the_start_naming_it(app, app_config,
                                                                             database_url):
    """A table without a column its model reads (a model changed without a migration, the
    version row current) stops the start with the table and column named, instead of a 500
    at the first page that reads it."""
    import pytest

    from helpers import close_database

    close_database()
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    else:
        import psycopg2
        conn = psycopg2.connect(database_url)
        conn.autocommit = True
    conn.cursor().execute('ALTER TABLE "workflow" DROP COLUMN "description"')
    conn.close()
    with pytest.raises(SystemExit) as stopped:
        create_app(app_config)
    assert 'the table "workflow" has no column "description"' in str(stopped.value)
    assert "migration" in str(stopped.value)
