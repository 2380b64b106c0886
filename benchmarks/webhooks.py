"""Webhook delivery benchmark: how long a slow receiver can hold a send and other notices.

    python -m benchmarks.webhooks [--timeout 10] [--trickle 30] [--hang 30]

Two real receivers on 127.0.0.1 (the app runs with RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true):

- a *trickling* one that reads the request and then answers one byte a second for
  `--trickle` seconds (then the rest of a 200 answer at once): how long one delivery pass
  to it takes, with the webhook timeout set to `--timeout` seconds;
- a *hanging* one that reads the request and says nothing for `--hang` seconds, next to a
  fast one: how long after the start of a delivery pass the fast receiver gets its notice,
  when the hanging receiver's notice is older (delivered first in line), and the same
  behind the trickling one.

Each delivery pass is the real `deliver_due` on a fresh SQLite file, with rules made and
notices decided by the real scan.
"""
from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .harness import Bench, print_table

from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.models import Attempt, Notice
from alerts.rules import create_rule
from alerts.scheduler import scan
from alerts.schemas import RuleIn
from models import database
from models.ingest import store_executions
from models.schemas import ExecutionIn

# The trickling receiver sends PREFIX and then dots, a byte a second, then SUFFIX.
PREFIX = b"HTTP/1.1 200 OK\r\nX-Trickle: "
SUFFIX = b"\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class SlowReceiver:
    """A raw TCP receiver on 127.0.0.1: reads one request, then trickles or hangs."""

    def __init__(self, trickle: float = 0.0, hang: float = 0.0):
        self.trickle, self.hang = trickle, hang
        self.stopping = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests += 1
                end = time.monotonic() + (self.trickle or self.hang)
                sent = 0
                while time.monotonic() < end and not self.stopping.is_set():
                    if self.trickle:
                        conn.sendall(PREFIX[sent:sent + 1] if sent < len(PREFIX) else b".")
                        sent += 1
                    self.stopping.wait(1.0)
                conn.sendall(PREFIX[sent:] + SUFFIX)
            except OSError:
                pass  # the sender gave up and closed the connection

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


class FastReceiver:
    """An HTTP receiver on 127.0.0.1 that answers 200 at once and notes when."""

    def __init__(self):
        arrivals = self.arrivals = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrivals.append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _rule(workflow: str, url: str) -> None:
    body = {"workflow": workflow, "threshold": 1, "channels": [{"type": "webhook", "url": url}]}
    # The key is alerts.config.ALLOW_PRIVATE, written out so that older releases run this too.
    create_rule(RuleIn.model_validate(body, context={"webhook_allow_private": True}))


def _fail(workflow: str, config) -> None:
    store_executions([ExecutionIn.model_validate_json(json.dumps({
        "workflow": workflow, "status": "failure", "started_at": "2026-11-01T08:00:00Z",
        "finished_at": "2026-11-01T08:00:05Z"}))])
    scan(config)


def one_pass(timeout: float, slow: SlowReceiver, fast: FastReceiver | None) -> dict:
    """One delivery pass on a fresh database: the slow receiver's notice is first in line."""
    bench = Bench(WEBHOOK_ALLOW_PRIVATE=True)
    config = replace(config_from(bench.app), webhook_timeout=timeout)
    database.connect(reuse_if_open=True)
    try:
        _rule("slow", slow.url)
        _fail("slow", config)
        if fast is not None:
            _rule("fast", fast.url)
            _fail("fast", config)
            fast.arrivals.clear()
        started = time.monotonic()
        deliver_due(config)
        took = time.monotonic() - started
        slow_notice = Notice.select().where(Notice.channel_options.contains(slow.url)).get()
        [attempt] = Attempt.select().where(Attempt.notice == slow_notice.id)
        return {"pass_s": took, "slow_s": attempt.latency_ms / 1000,
                "slow_error": attempt.error or attempt.response,
                "fast_s": (fast.arrivals[0] - started) if fast and fast.arrivals else None}
    finally:
        database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="the webhook timeout in seconds (default 10, as in the app)")
    parser.add_argument("--trickle", type=float, default=30.0,
                        help="seconds the trickling receiver trickles its answer")
    parser.add_argument("--hang", type=float, default=30.0,
                        help="seconds the hanging receiver says nothing")
    args = parser.parse_args()

    rows = []
    trickler = SlowReceiver(trickle=args.trickle)
    hanger = SlowReceiver(hang=args.hang)
    fast = FastReceiver()
    try:
        alone = one_pass(args.timeout, trickler, None)
        rows.append([f"trickling receiver ({args.trickle:.0f} s, 1 byte/s)", "-",
                     alone["slow_s"], "-", alone["slow_error"]])
        for name, slow in ((f"hanging receiver ({args.hang:.0f} s)", hanger),
                           (f"trickling receiver ({args.trickle:.0f} s, 1 byte/s)", trickler)):
            both = one_pass(args.timeout, slow, fast)
            rows.append([name + " + a fast one", both["fast_s"], both["slow_s"], both["pass_s"],
                         both["slow_error"]])
    finally:
        for server in (trickler, hanger, fast):
            server.stop()
    print(f"Webhook timeout: {args.timeout:g} s; SQLite file; receivers on 127.0.0.1.\n")
    print_table(["delivery pass to", "fast notice arrived after s", "slow send held s",
                 "whole pass s", "slow attempt recorded as"], rows)


if __name__ == "__main__":
    main()
