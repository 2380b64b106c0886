"""`GET /healthz`: open to anyone, tells nothing about the data; 200 with the database, the
scheduler and the outbox, 503 when the database does not answer. And while a SQLite file
cannot be used, pages and the API answer 503, never 500."""
from __future__ import annotations

import os
import shutil
from datetime import timedelta

import pytest

import scheduling
from alert_servers import make_rule, report
from alerts.models import Notice, ScanStatus
from models import database
from models.db import connection, utcnow
from scheduling import SchedulerLease


def _lease(holder: str | None, acquired_ago: float = 0, expires_in: float = 10) -> None:
    now = utcnow()
    values = {"holder": holder, "acquired_at": now - timedelta(seconds=acquired_ago),
              "expires_at": now + timedelta(seconds=expires_in)}
    with connection():  # one statement: a runner's thread may try for the lease meanwhile
        (SchedulerLease.insert(id=1, **values)
         .on_conflict(conflict_target=[SchedulerLease.id],
                      update={getattr(SchedulerLease, k): v for k, v in values.items()})
         .execute())


def _beat(ago: float) -> None:
    with connection():
        ScanStatus.delete().execute()
        ScanStatus.create(id=1, last_scan_at=utcnow() - timedelta(seconds=ago), duration_ms=1,
                          examined=0, decided=0)


def test_healthz_needs_no_credentials_and_shows_no_data(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {"status": "ok", "database": "ok", "scheduler": "off", "outbox": 0}
    assert answer.headers["Cache-Control"] == "no-store"


def test_healthz_counts_the_notices_waiting(client, app):
    from alerts.config import config_from
    from alerts.scheduler import scan
    with app.app_context(), connection():
        make_rule(1, [{"type": "webhook", "url": "https://hooks.example.com/x"}], "etl")
        report("etl", "F")
        scan(config_from(app))
        waiting = Notice.select().where(Notice.status == "pending").count()
    assert waiting == 1
    assert client.get("/healthz").json["outbox"] == 1


@pytest.mark.parametrize("lease, beat_ago, expected", [
    (None, None, "off"),                       # never held
    (("other:1:aa", 0), None, "running"),      # just taken, no scan yet
    (("other:1:aa", 600), 5, "running"),       # held, recent beat
    (("other:1:aa", 600), 600, "stalled"),     # held, no scan for 10 minutes
    (("other:1:aa", 600, -300), 600, "stalled"),  # the holder died, nobody took over
], ids=["off", "just-taken", "running", "stalled", "holder-died"])
def test_healthz_tells_the_scheduler_state(client, lease, beat_ago, expected):
    if lease is not None:
        _lease(*lease)
    if beat_ago is not None:
        _beat(beat_ago)
    assert client.get("/healthz").json["scheduler"] == expected


def test_a_process_waiting_for_the_lease_is_on_standby(app, client):
    _lease("other:1:aa", expires_in=600)
    _beat(1)
    app.config["SCHEDULER_LEASE_SECONDS"] = 60
    runner = scheduling.start(app)
    try:
        runner.renew()
        assert not runner.holds()
        assert client.get("/healthz").json["scheduler"] == "standby"
        _lease(runner.holder)
        assert client.get("/healthz").json["scheduler"] == "running"
    finally:
        runner.stop(wait=False)
        scheduling._started.pop(os.getpid(), None)


@pytest.fixture
def sqlite_app(tmp_path):
    """An app on a SQLite file inside a folder of its own, which the test takes away."""
    from app import create_app
    folder = tmp_path / "data"
    folder.mkdir()
    application = create_app({"TESTING": True, "SECRET_KEY": "x", "SCHEDULER": False,
                              "DATABASE_URL": f"sqlite:///{folder / 'runwatch.db'}"})
    yield application, folder
    if not database.is_closed():
        database.close()
    database.obj.close_all()


def test_a_missing_sqlite_file_answers_503_not_500(sqlite_app, tmp_path):
    application, folder = sqlite_app
    client = application.test_client()
    assert client.get("/healthz").status_code == 200
    database.obj.close_all()
    shutil.move(folder, tmp_path / "elsewhere")  # the folder is gone: nothing to open
    try:
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.json == {"status": "error", "database": "unavailable"}
        page = client.get("/executions")
        assert page.status_code == 503
        assert "Traceback" not in page.text and "database does not answer" in page.text
        assert page.headers["Retry-After"].isdigit()
        for method, url in [("get", "/api/automations/executions"),
                            ("post", "/api/automations/executions")]:
            answer = getattr(client, method)(url, headers={"Authorization": "Bearer x"},
                                             json={"workflow": "etl", "status": "success"})
            assert answer.status_code == 503
            assert answer.json["error"]["code"] == "unavailable"
            assert int(answer.headers["Retry-After"]) >= 1
    finally:
        shutil.move(tmp_path / "elsewhere", folder)
    assert client.get("/healthz").status_code == 200  # back by itself


def test_an_unreadable_sqlite_file_answers_503(sqlite_app, tmp_path):
    application, folder = sqlite_app
    client = application.test_client()
    database.obj.close_all()
    shutil.move(folder, tmp_path / "kept")
    folder.mkdir()
    (folder / "runwatch.db").write_bytes(b"not a database " * 512)  # a file SQLite cannot read
    try:
        assert client.get("/healthz").status_code == 503
        assert client.get("/login").status_code == 503
    finally:
        database.obj.close_all()
        shutil.rmtree(folder)
        shutil.move(tmp_path / "kept", folder)
    assert client.get("/healthz").status_code == 200


def test_a_locked_sqlite_file_answers_503(sqlite_app):
    import sqlite3

    from helpers import make_token
    from models.users import create_user
    application, folder = sqlite_app
    client = application.test_client()
    with connection():
        token = make_token(create_user("dev@example.com", "correct horse battery"))
        database.execute_sql("PRAGMA busy_timeout = 300")  # the pooled connection waits less
    headers = {"Authorization": f"Bearer {token}"}
    run = {"workflow": "etl", "status": "success"}
    other = sqlite3.connect(folder / "runwatch.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        answer = client.post("/api/automations/executions", headers=headers, json=run)
        assert answer.status_code == 503, answer.text
        assert answer.json["error"]["code"] == "unavailable"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert client.post("/api/automations/executions", headers=headers,
                       json=run).status_code == 201
