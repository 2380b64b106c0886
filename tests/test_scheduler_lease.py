"""One scheduler at a time: a lease in the database decides which process runs the jobs;
another takes over within a bounded time when the holder dies (kill -9)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest

import scheduling
from alert_servers import scans, wait_until
from helpers import ROOT, LiveServer
from models import database
from models.db import connection, utcnow
from scheduling import Lease, SchedulerLease

pytestmark = pytest.mark.long(8)

LEASE_SECONDS = 3  # renewed every second


def test_the_jobs_are_a_list_the_lease_holder_runs():
    assert [job.name for job in scheduling.JOBS] == ["alerts", "retention", "rollups",
                                                     "sources", "metrics"]
    assert all(callable(job.run) for job in scheduling.JOBS)


def test_one_holder_at_a_time_and_a_run_out_lease_is_taken_over(db):
    first, second = Lease("host:1:aa", 60), Lease("host:2:bb", 60)
    assert first.try_hold()
    assert first.try_hold()            # renewing
    assert not second.try_hold()       # held by another
    SchedulerLease.update(expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert second.try_hold()           # run out: taken over
    assert not first.try_hold()        # the old holder has lost it
    second.release()
    assert SchedulerLease.get().holder is None
    assert first.try_hold()            # released: free for the next try


def _scheduler_process(database_url: str, log) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWATCH_", "FLASK_"))}
    env.update(RUNWATCH_DATABASE_URL=database_url, RUNWATCH_SECRET_KEY="x",
               RUNWATCH_ALERT_SCAN_SECONDS="1",
               RUNWATCH_SCHEDULER_LEASE_SECONDS=str(LEASE_SECONDS))
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "scheduler"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _holder() -> str | None:
    with connection():
        row = SchedulerLease.get_or_none(SchedulerLease.id == scheduling.LEASE_ID)
        return row.holder if row else None


def _said(log, text: str) -> bool:
    """Whether a process's output (its log file) holds `text` yet."""
    log.seek(0)
    return text in log.read()


def test_a_restart_on_the_same_machine_takes_over_from_its_dead_predecessor_at_once(db):
    """kill -9 leaves a lease that would block a restarted server until it runs out; a
    holder of this machine whose process is gone is taken over at once instead."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    later = utcnow() + timedelta(hours=1)
    for holder, taken in [(f"{host}:{gone.pid}:dead", True),
                          (f"{host}:{os.getpid()}:alive", False),  # another runner, alive
                          (f"elsewhere.example:{gone.pid}:remote", False)]:
        with connection():
            SchedulerLease.insert(id=1, holder=holder, expires_at=later).on_conflict(
                conflict_target=[SchedulerLease.id],
                update={SchedulerLease.holder: holder, SchedulerLease.expires_at: later},
            ).execute()
        assert Lease(scheduling.holder_id(), 15).try_hold() is taken, holder


def test_a_standby_scheduler_takes_over_when_the_holder_is_killed(app, database_url, tmp_path):
    database.close()
    logs = [open(tmp_path / f"scheduler-{n}.log", "w+") for n in (1, 2)]
    processes = [_scheduler_process(database_url, log) for log in logs]
    try:
        holder = wait_until(_holder, 30)
        assert holder, [p.poll() for p in processes]
        # Each says so once its runner tries for the lease: both take part from then on.
        assert wait_until(lambda: all(_said(log, "Scheduler ") for log in logs), 30), \
            [p.poll() for p in processes]
        pids = {p.pid: p for p in processes}
        victim = pids[int(holder.split(":")[1])]
        [survivor] = [p for p in processes if p is not victim]
        # The standby scans nothing while the holder lives: one scan a second, not two.
        before, started = scans(), time.monotonic()
        assert wait_until(lambda: scans() >= before + 2, 10)  # the holder scans once a second
        time.sleep(max(0.0, 3 - (time.monotonic() - started)))
        assert scans() - before <= (time.monotonic() - started) + 1.5
        assert _holder() == holder

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed_at, beats = time.monotonic(), scans()
        new = wait_until(lambda: (h := _holder()) != holder and h, 3 * LEASE_SECONDS + 5)
        assert new and new.split(":")[1] == str(survivor.pid)
        assert wait_until(lambda: scans() > beats, 5)
        takeover = time.monotonic() - killed_at
        print(f"takeover after kill -9: {takeover:.2f} s (lease {LEASE_SECONDS} s)")
        # Bounded: the rest of the lease, plus one renewal period, plus slack.
        assert takeover < LEASE_SECONDS + LEASE_SECONDS / 3 + 3
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
        for log in logs:
            log.close()


def test_the_standalone_scheduler_stops_cleanly_on_sigterm(app, database_url, tmp_path):
    database.close()
    with open(tmp_path / "scheduler.log", "w+") as log:
        process = _scheduler_process(database_url, log)
        try:
            assert wait_until(_holder, 30)
            assert wait_until(lambda: scans() >= 1, 10)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
        log.seek(0)
        output = log.read()
    assert code == 0, output
    assert "Stopped." in output and "Traceback" not in output
    assert _holder() is None  # released: a standby takes over at its next try


def test_gunicorn_workers_share_one_lease(app, database_url, tmp_path):
    database.close()
    server = LiveServer(database_url, tmp_path, workers=2, env={
        "RUNWATCH_SCHEDULER": "true", "RUNWATCH_ALERT_SCAN_SECONDS": "1",
        "RUNWATCH_SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS)}).start()
    try:
        import requests
        holder = wait_until(_holder, 30)
        assert holder
        seen = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and seen != {"running", "standby"}:
            answer = requests.get(f"{server.url}/healthz", timeout=10)
            assert answer.status_code == 200, answer.text
            seen.add(answer.json()["scheduler"])
        # One worker holds the lease and runs the jobs; the other waits.
        assert seen == {"running", "standby"}, server.output()
        assert _holder() == holder
    finally:
        server.stop()
