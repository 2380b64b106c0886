"""A PostgreSQL server stopped under a running gunicorn and started again: while it is away,
pages and the API answer 503 (the API with code `unavailable` and Retry-After) quickly, never
500 or a traceback; /healthz says so; once it is back the app recovers by itself within
seconds and the scheduler scans again, with no restart. Every route answers so, signed in or
not, on PostgreSQL and on a SQLite file taken away.

The server here is a throwaway cluster of this test's own, so stopping it disturbs no other
test."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from conftest import _as_postgres_user, _pg_bin
from helpers import EMAIL, PASSWORD, LiveServer, csrf_from, free_port, missing, routes

pytestmark = pytest.mark.long(8)


class Cluster:
    """A PostgreSQL cluster in a temporary folder, started and stopped on demand."""

    def __init__(self):
        self.initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.base = Path(tempfile.mkdtemp(prefix="runwatch-outage-"))
        self.data = self.base / "data"
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        os.chmod(self.base, 0o755)
        self.port = free_port()
        subprocess.run(_as_postgres_user([self.initdb, "-D", str(self.data), "-U", "runwatch",
                                          "--auth=trust", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        self.url = f"postgresql://runwatch@127.0.0.1:{self.port}/runwatch_outage"

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        subprocess.run(_as_postgres_user([self.pg_ctl, "-D", str(self.data), "-o", options,
                                          "-l", str(self.base / "log"), "-w", "-t", "60",
                                          "start"]),
                       check=True, capture_output=True, timeout=90)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(_as_postgres_user([self.pg_ctl, "-D", str(self.data), "-m", mode,
                                          "-w", "stop"]), capture_output=True, timeout=60)

    def query(self, sql: str, dbname: str = "runwatch_outage"):
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="runwatch",
                                dbname=dbname, connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster():
    instance = Cluster()
    instance.start()
    instance.query("CREATE DATABASE runwatch_outage", dbname="postgres")
    yield instance
    instance.remove()


def _last_scan(cluster: Cluster) -> datetime | None:
    rows = cluster.query("SELECT last_scan_at FROM scan_status WHERE id = 1")
    if not rows:
        return None
    return datetime.fromtimestamp(rows[0][0] / 1_000_000, timezone.utc)


@pytest.mark.postgres
def test_a_stopped_database_gets_503_and_the_app_recovers_by_itself(cluster, tmp_path):
    from app import create_app
    from helpers import make_token
    from models import database
    from models.users import create_user
    from models.db import connection

    create_app({"DATABASE_URL": cluster.url, "SECRET_KEY": "x", "SCHEDULER": False})
    with connection():
        token = make_token(create_user("dev@example.com", "correct horse battery"))
    database.close()
    database.obj.close_all()

    server = LiveServer(cluster.url, tmp_path, env={
        "RUNWATCH_SCHEDULER": "true", "RUNWATCH_ALERT_SCAN_SECONDS": "1",
        "RUNWATCH_SCHEDULER_LEASE_SECONDS": "3"}).start()
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    run = {"workflow": "etl", "status": "success"}
    try:
        assert requests.get(f"{server.url}/healthz", timeout=10).json()["database"] == "ok"
        assert api.post(f"{server.url}/api/automations/executions", json=run,
                        timeout=10).status_code == 201

        cluster.stop()
        answers, slowest = [], 0.0
        outage_end = time.monotonic() + 3  # as long as the scheduler's lease
        while time.monotonic() < outage_end:
            for method, url in [("get", "/healthz"), ("get", "/login"), ("get", "/executions"),
                                ("get", "/api/automations/executions"),
                                ("post", "/api/automations/executions")]:
                started = time.monotonic()
                try:
                    answer = getattr(api, method)(f"{server.url}{url}", json=run, timeout=20,
                                                  allow_redirects=False)
                except requests.ConnectionError:
                    raise AssertionError(server.output()) from None
                slowest = max(slowest, time.monotonic() - started)
                answers.append((url, method, answer))
        print(f"outage: {len(answers)} requests, statuses "
              f"{sorted({a.status_code for _, _, a in answers})}, slowest {slowest:.2f} s")
        assert {a.status_code for _, _, a in answers} == {503}
        assert slowest < 6
        for url, method, answer in answers:
            assert "Traceback" not in answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            if url == "/healthz":
                assert answer.json() == {"status": "error", "database": "unavailable"}
            elif url.startswith("/api/"):
                assert answer.json()["error"]["code"] == "unavailable"
            else:
                assert "database does not answer" in answer.text

        cluster.start()
        back = time.monotonic()
        restarted_at = datetime.now(timezone.utc)
        recovered = None
        while time.monotonic() - back < 30:
            if requests.get(f"{server.url}/healthz", timeout=10).status_code == 200:
                recovered = time.monotonic() - back
                break
            time.sleep(0.1)
        assert recovered is not None, server.output()
        # Every worker and every pooled connection is back, not just one.
        for _ in range(20):
            assert api.post(f"{server.url}/api/automations/executions", json=run,
                            timeout=10).status_code == 201
            assert api.get(f"{server.url}/api/automations/executions",
                           timeout=10).status_code == 200
        scanned = None
        while time.monotonic() - back < 30:
            beat = _last_scan(cluster)
            if beat and beat > restarted_at:
                scanned = time.monotonic() - back
                break
            time.sleep(0.2)
        print(f"recovered {recovered:.2f} s after the restart; scan beat after {scanned} s")
        assert recovered < 10
        assert scanned is not None and scanned < 15, server.output()
        assert requests.get(f"{server.url}/healthz", timeout=10).json()["scheduler"] in (
            "running", "standby")
        assert "Traceback" not in server.output()
    finally:
        server.stop()


# --- Every route, signed in or not ----------------------------------------------------------

def _get_routes(app):
    """Every GET route but static files and /healthz (see test_health.py)."""
    return [path for rule, path in routes(app, integer=1, text="etl")
            if "GET" in rule.methods and rule.endpoint not in ("static", "health.healthz")]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def outage(request, tmp_path):
    """(app, take the database away): an app on a database of this test's own."""
    from app import create_app
    from models import database
    if request.param == "postgresql":
        cluster = request.getfixturevalue("cluster")
        application = create_app({"TESTING": True, "SECRET_KEY": "x", "SCHEDULER": False,
                                  "DATABASE_URL": cluster.url})
        away = cluster.stop
    else:
        folder = tmp_path / "data"
        folder.mkdir()
        application = create_app({"TESTING": True, "SECRET_KEY": "x", "SCHEDULER": False,
                                  "DATABASE_URL": f"sqlite:///{folder / 'runwatch.db'}"})

        def away():
            database.obj.close_all()
            folder.rename(tmp_path / "elsewhere")  # nothing left to open
    application.config["PROPAGATE_EXCEPTIONS"] = False  # a 500 is an answer to assert on
    yield application, away
    if not database.is_closed():
        database.close()
    database.obj.close_all()


def test_every_route_answers_503_while_the_database_is_away_signed_in_or_not(outage):
    from models import database
    from models.db import connection
    from models.users import create_user
    application, away = outage
    with connection():
        create_user(EMAIL, PASSWORD)
    signed_in, anonymous = application.test_client(), application.test_client()
    page = signed_in.get("/login")
    assert signed_in.post("/login", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                          "password": PASSWORD}).status_code == 302
    assert signed_in.get("/executions").status_code == 200
    database.close()
    away()
    paths = _get_routes(application)
    assert "/executions" in paths and "/api/automations/executions" in paths
    answers = [(who, path, client.get(path)) for path in paths
               for who, client in (("signed in", signed_in), ("anonymous", anonymous))]
    wrong = [(who, path, answer.status_code) for who, path, answer in answers
             if answer.status_code != 503]
    assert not wrong, wrong
    for who, path, answer in answers:
        assert int(answer.headers["Retry-After"]) >= 1, (who, path)
        if path.startswith("/api/") or path == "/metrics":  # the machine routes
            assert answer.json["error"]["code"] == "unavailable", (who, path)
        else:
            assert answer.mimetype == "text/html", (who, path)
            assert "database does not answer" in answer.text, (who, path)
