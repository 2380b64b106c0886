"""Two machines behind a load balancer, as docs/deploy.md sets them up: each runs gunicorn and
`flask --app app scheduler` with an instance folder of its own, and both share one
PostgreSQL and one Redis."""
from __future__ import annotations

import time

import pytest
import requests

from alert_servers import make_rule, scans, wait_until
from alerts.models import Notice
from helpers import EMAIL, PASSWORD, URL, AppCommand, LiveServer, csrf_from, make_token
from models import database
from models.db import connection
from scheduling import LEASE_ID, SchedulerLease

LEASE_SECONDS = 3


def sign_in(server: LiveServer, email: str, password: str) -> tuple[requests.Session, int]:
    session = requests.Session()
    page = session.get(f"{server.url}/login", timeout=10)
    answer = session.post(f"{server.url}/login", timeout=10, allow_redirects=False, data={
        "csrf_token": csrf_from(page.text), "email": email, "password": password})
    return session, answer.status_code


def notice_states() -> list[tuple[str, int]]:
    """Each notice's status and attempts, in the order they were decided."""
    with connection():
        return [(n.status, n.attempts) for n in Notice.select().order_by(Notice.id)]


def lease_holder() -> int | None:
    """The process id of the scheduler holding the lease (holder ids are host:pid:random)."""
    with connection():
        row = SchedulerLease.get_or_none(SchedulerLease.id == LEASE_ID)
    return int(row.holder.split(":")[-2]) if row and row.holder else None


@pytest.mark.long(25)
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_machines_share_sessions_the_login_limit_and_one_scheduler_that_survives_a_crash(
        app, database_url, user, receiver, redis_url, tmp_path):
    with connection():
        token = make_token(user)
        make_rule(1, [{"type": "webhook", "url": receiver.url}])  # every failure, at once
    database.close()
    settings = {"RUNWATCH_RATELIMIT_STORAGE_URI": redis_url,
                "RUNWATCH_LOGIN_RATE_LIMIT": "3 per minute",
                "RUNWATCH_SCHEDULER": "false", "RUNWATCH_ALERT_SCAN_SECONDS": "1",
                "RUNWATCH_SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
                "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}
    machines = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            env = {**settings, "RUNWATCH_INSTANCE_PATH": str(tmp_path / name)}
            server = LiveServer(database_url, tmp_path, env=env, workers=1)
            scheduler = AppCommand(["scheduler"], server.env, tmp_path / f"scheduler-{name}.log")
            machines.append((server, scheduler.start()))
        for server, _ in machines:
            server.start()
        (a, _), (b, _) = machines

        # A session made on one machine works on the other (one SECRET_KEY, one database).
        session, status = sign_in(a, EMAIL, PASSWORD)
        assert status == 302
        assert session.get(f"{b.url}/settings", timeout=10, allow_redirects=False).status_code == 200

        # Failed sign-ins are counted in Redis, whichever machine they reach.
        tries = [sign_in(server, "intruder@example.com", "guess")[1] for server in (a, b, a, b)]
        assert tries == [401, 401, 401, 429]

        # One scheduler runs the jobs: the first failure's notice is sent once.
        pids = {scheduler.pid: (server, scheduler) for server, scheduler in machines}
        holder = wait_until(lease_holder, timeout=10)
        assert holder in pids
        headers = {"Authorization": f"Bearer {token}"}
        first = requests.post(f"{a.url}{URL}", json={"workflow": "billing", "status": "failure"},
                              headers=headers, timeout=10)
        assert first.status_code == 201
        assert len(receiver.wait_for(1, timeout=10)) == 1
        # Its answer recorded before the kill: a sender killed between the receiver's answer
        # and its record sends again with the same id (tests/test_crash.py), by design.
        assert wait_until(lambda: notice_states() == [("delivered", 1)], timeout=10)

        # kill -9 of the machine running the jobs: the other takes them over within the lease.
        dead_server, dead_scheduler = pids.pop(holder)
        dead_scheduler.kill()
        dead_server.crash()
        killed_at = time.monotonic()
        (survivor, survivor_scheduler), = pids.values()
        second = requests.post(f"{survivor.url}{URL}", headers=headers, timeout=10,
                               json={"workflow": "invoices", "status": "failure"})
        assert second.status_code == 201
        assert wait_until(lambda: lease_holder() == survivor_scheduler.pid, timeout=10)
        assert time.monotonic() - killed_at <= LEASE_SECONDS * 4 / 3 + 2
        assert len(receiver.wait_for(2, timeout=10)) == 2

        # ...and nothing is lost or sent twice: a whole pass later, still two, one each.
        seen = scans()
        assert wait_until(lambda: scans() >= seen + 2, timeout=10)
        workflows = sorted(r.json()["data"]["workflow"] for r in receiver.requests)
        assert workflows == ["billing", "invoices"]
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2
        assert notice_states() == [("delivered", 1)] * 2
        took = [s.output().count("holds the lease and runs the jobs") for _, s in machines]
        assert sorted(took) == [1, 1]  # the first holder, then the survivor: never both
    finally:
        for server, scheduler in machines:
            scheduler.stop()
            server.stop()
