"""Load benchmark: writers and readers against gunicorn, with alert rules live.

    python -m benchmarks.load [--postgres URL] [--seconds 60] [--scan 2]

gunicorn (2 workers, 4 threads each, the scheduler on, a scan every `--scan` seconds)
serves 127.0.0.1. For `--seconds`, 8 writer threads post single runs and batches of 50
(each run with its own external_id) and 8 reader threads ask for history pages (filters,
then the next pages by cursor) and run details. Beside them, rules with a webhook to a
receiver on 127.0.0.1 watch "flapping" workflows that report failure, failure, failure,
success within a few milliseconds, again every 1.5 scan intervals, and "control" workflows
that fail three times and stay failing. The table gives requests/s and p50/p95/p99 per
kind and the 5xx answers; then the runs sent against those stored (by external_id), and
the notices expected against those received: one failing and one recovered per flap
episode, one failing per control, none twice (by `webhook-id`).

`--postgres URL` runs on an empty PostgreSQL database (its tables are dropped first)
instead of a temporary SQLite file.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from models import Execution, Workflow
from models.db import connection, iso, utcnow

from .harness import ROOT, Bench, empty_postgres, p, print_table

WRITERS = 8
READERS = 8
BATCH = 50
FLAPPING = 4
CONTROLS = 2
WRITER_WORKFLOWS = 10
RUNS = "/api/automations/executions"


class Receiver(BaseHTTPRequestHandler):
    """The webhook receiver: keeps (webhook-id, body) of every POST."""

    arrivals: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.lock:
            self.arrivals.append((self.headers.get("webhook-id", ""), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


class Stats:
    """Latencies and failures per request kind, shared by the threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = collections.defaultdict(list)
        self.server_errors: dict[str, int] = collections.Counter()
        self.other_errors: dict[str, int] = collections.Counter()
        self.sent: set[tuple[str, str]] = set()
        self.ids: list[int] = []

    def call(self, kind: str, session: requests.Session, method: str, url: str, **kwargs):
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=30, **kwargs)
        except requests.RequestException:
            with self.lock:
                self.other_errors[kind] += 1
            return None
        elapsed = (time.perf_counter() - started) * 1000
        with self.lock:
            self.times[kind].append(elapsed)
            if response.status_code >= 500:
                self.server_errors[kind] += 1
            elif response.status_code >= 400:
                self.other_errors[kind] += 1
        return response if response.status_code < 400 else None


def _run(workflow: str, external_id: str, status: str, started) -> dict:
    run = {"workflow": workflow, "external_id": external_id, "status": status,
           "started_at": iso(started), "input": {"order": external_id, "note": "x" * 100},
           "steps": [{"name": name, "status": "success", "output": {"ok": True}}
                     for name in ("fetch", "transform", "upload")]}
    if status in ("success", "failure"):
        run["finished_at"] = iso(started + timedelta(seconds=2))
    if status == "failure":
        run["error"] = {"message": f"HTTP 502 ({external_id})"}
    return run


def writer(number: int, base: str, headers: dict, stats: Stats, stop: threading.Event):
    session = requests.Session()
    session.headers.update(headers)
    count = itertools.count()
    for n in itertools.count():
        if stop.is_set():
            return
        size = 1 if n % 2 == 0 else BATCH
        runs = []
        for k in range(size):
            i = next(count)
            status = ("failure", "success", "success", "running")[i % 4]
            runs.append(_run(f"load-{i % WRITER_WORKFLOWS}", f"w{number}-{i}", status,
                             utcnow() - timedelta(minutes=5)))
        if size == 1:
            response = stats.call("write single", session, "POST", base + RUNS, json=runs[0])
        else:
            response = stats.call(f"write batch x{BATCH}", session, "POST", base + RUNS + "/batch",
                                  json={"executions": runs})
        if response is not None:
            body = response.json()
            ids = [body["id"]] if size == 1 else [item["id"] for item in body["data"]]
            with stats.lock:
                stats.sent.update((run["workflow"], run["external_id"]) for run in runs)
                stats.ids.extend(ids)


def reader(number: int, base: str, headers: dict, stats: Stats, stop: threading.Event):
    session = requests.Session()
    session.headers.update(headers)
    since = iso(utcnow() - timedelta(days=1))
    queries = [{"status": "failure", "limit": 50}, {"workflow": f"load-{number}", "limit": 50},
               {"from": since, "sort": "-duration", "limit": 100}, {"limit": 50}]
    for n in itertools.count(number):
        if stop.is_set():
            return
        if n % 3 == 2 and stats.ids:
            with stats.lock:
                run_id = stats.ids[(n * 7919) % len(stats.ids)]
            stats.call("read run details", session, "GET", f"{base}{RUNS}/{run_id}")
            continue
        response = stats.call("read history", session, "GET", base + RUNS,
                              params=queries[n % len(queries)])
        for _ in range(2):  # the next pages, by cursor
            cursor = response.json().get("next_cursor") if response is not None else None
            if not cursor:
                break
            response = stats.call("read next page", session, "GET", base + RUNS,
                                  params={**queries[n % len(queries)], "cursor": cursor})


def flapper(base: str, headers: dict, scan_seconds: float, stats: Stats,
            stop: threading.Event, episodes: collections.Counter):
    """F, F, F, S within milliseconds on each flapping workflow, every 1.5 scan intervals;
    the controls fail three times once and stay failing."""
    session = requests.Session()
    session.headers.update(headers)
    clock = utcnow() + timedelta(seconds=1)
    for c in range(CONTROLS):
        for k in range(3):
            clock += timedelta(milliseconds=1)
            stats.call("write flapping", session, "POST", base + RUNS,
                       json=_run(f"control-{c}", f"c{c}-{k}", "failure", clock))
    round_ = 0
    while not stop.wait(0 if round_ == 0 else scan_seconds * 1.5):
        for f in range(FLAPPING):
            ok = True
            for k, status in enumerate(("failure", "failure", "failure", "success")):
                clock += timedelta(milliseconds=1)
                ok &= stats.call("write flapping", session, "POST", base + RUNS, json=_run(
                    f"flap-{f}", f"f{f}-{round_}-{k}", status, clock)) is not None
            if ok:
                episodes[f"flap-{f}"] += 1
        round_ += 1


def stored_runs(sent: set[tuple[str, str]]) -> tuple[int, int]:
    """How many of the sent (workflow, external_id) pairs are stored, and how many stored
    rows repeat a pair."""
    names = sorted({workflow for workflow, _ in sent})
    with connection():
        rows = (Execution.select(Workflow.name, Execution.external_id)
                .join(Workflow).where(Workflow.name.in_(names)).tuples())
        pairs = collections.Counter(rows)
    found = sum(1 for pair in sent if pair in pairs)
    duplicated = sum(n - 1 for n in pairs.values() if n > 1)
    return found, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, metavar="URL")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--scan", type=int, default=2, help="RUNWATCH_ALERT_SCAN_SECONDS")
    args = parser.parse_args()

    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    url = bench.app.config["DATABASE_URL"]
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RUNWATCH_DATABASE_URL": url, "RUNWATCH_SECRET_KEY": "bench",
           "RUNWATCH_SCHEDULER": "true", "RUNWATCH_ALERT_SCAN_SECONDS": str(args.scan),
           "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true", "RUNWATCH_BASE_URL": base}
    log = open(os.path.join(bench.tmp, "server.log"), "w+")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4",
                               "-b", f"127.0.0.1:{port}", "--timeout", "60",
                               "app:create_app()"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    stats, stop, episodes = Stats(), threading.Event(), collections.Counter()
    try:
        _wait(base)
        admin = requests.Session()
        admin.headers.update(bench.headers)
        for name in [*(f"flap-{f}" for f in range(FLAPPING)),
                     *(f"control-{c}" for c in range(CONTROLS))]:
            response = admin.post(f"{base}/api/automations/alerts", timeout=10, json={
                "workflow": name, "threshold": 3,
                "channels": [{"type": "webhook", "url": hook}]})
            assert response.status_code == 201, response.text
        threads = [threading.Thread(target=writer, args=(n, base, bench.headers, stats, stop))
                   for n in range(WRITERS)]
        threads += [threading.Thread(target=reader, args=(n, base, bench.headers, stats, stop))
                    for n in range(READERS)]
        threads.append(threading.Thread(target=flapper, args=(base, bench.headers, args.scan,
                                                              stats, stop, episodes)))
        elapsed = run_for(threads, args.seconds, stop)
        expected = {("failing", name): n for name, n in episodes.items()}
        expected.update({("recovered", name): n for name, n in episodes.items()})
        expected.update({("failing", f"control-{c}"): 1 for c in range(CONTROLS)})
        _settle(sum(expected.values()), args.scan)
    finally:
        server.terminate()
        server.wait(timeout=30)
        receiver.shutdown()

    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{engine}; gunicorn -w 2 --threads 4 on 127.0.0.1; {WRITERS} writers, {READERS} "
          f"readers, {elapsed:.0f} s; scan every {args.scan} s; {FLAPPING} flapping and "
          f"{CONTROLS} control workflows with a webhook rule (threshold 3)\n")
    rows = []
    for kind in sorted(stats.times):
        times = stats.times[kind]
        rows.append([kind, len(times), len(times) / elapsed, p(times, 50), p(times, 95),
                     p(times, 99), stats.server_errors[kind], stats.other_errors[kind]])
    print_table(["kind", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx",
                 "other errors"], rows)
    found, duplicated = stored_runs(stats.sent)
    print(f"\nRuns sent (answered 2xx): {len(stats.sent)}; stored: {found}; lost: "
          f"{len(stats.sent) - found}; duplicated: {duplicated}")
    received = collections.Counter()
    per_id = collections.Counter(webhook_id for webhook_id, _ in Receiver.arrivals)
    for _, body in Receiver.arrivals:
        kind = body.get("type", "").rsplit(".", 1)[-1]
        received[(kind, body.get("data", {}).get("workflow"))] += 1
    notice_rows = []
    for key in sorted(set(expected) | set(received), key=lambda k: (k[1] or "", k[0])):
        notice_rows.append([key[1], key[0], expected.get(key, 0), received.get(key, 0)])
    print()
    print_table(["workflow", "notice", "expected", "received"], notice_rows)
    missing = sum(max(0, n - received.get(k, 0)) for k, n in expected.items())
    extra = sum(max(0, n - expected.get(k, 0)) for k, n in received.items())
    twice = sum(n - 1 for n in per_id.values() if n > 1)
    print(f"\nNotices expected: {sum(expected.values())}; received: {len(Receiver.arrivals)}; "
          f"missing: {missing}; unexpected: {extra}; same webhook-id twice: {twice}; "
          f"5xx: {sum(stats.server_errors.values())}")


def run_for(threads: list[threading.Thread], seconds: float, stop: threading.Event) -> float:
    """Start the threads, let them work for `seconds`, stop them; the seconds they ran."""
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    return time.perf_counter() - started


def _settle(expected: int, scan_seconds: int) -> None:
    """Wait for the last notices: until as many arrived as expected, or nothing new came
    for three scan intervals (at most a minute)."""
    deadline = time.monotonic() + 60
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(Receiver.arrivals)
        if count >= expected:
            time.sleep(scan_seconds * 2)  # anything more would be a duplicate: let it come
            return
        if count != last:
            last, quiet_since = count, time.monotonic()
        elif time.monotonic() - quiet_since > 3 * scan_seconds + 2:
            return
        time.sleep(0.2)


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/login", timeout=5)
            return
        except requests.RequestException:  # not listening yet, or still starting
            time.sleep(0.1)
    raise TimeoutError(url)


if __name__ == "__main__":
    main()
