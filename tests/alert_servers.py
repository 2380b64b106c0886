"""Real servers on 127.0.0.1 for alert tests: an SMTP sink (aiosmtpd) and an HTTP receiver;
and what alert tests share: settings, rules, reported runs, the rule form."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from alerts.config import ALLOW_PRIVATE
from alerts.models import Notice, ScanStatus
from alerts.rules import create_rule
from alerts.scheduler import scan
from alerts.schemas import RuleIn, parse_rule
from helpers import csrf_from, free_port
from models.db import connection
from models.ingest import store_executions
from models.schemas import ExecutionIn


class _Inbox:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self):
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that accepts and keeps every message."""

    def __init__(self):
        self.port = free_port()
        self.inbox = _Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.inbox.messages

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Wait until `count` messages have arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


class Received:
    """One request the HTTP receiver got."""

    def __init__(self, path: str, headers: dict[str, str], body: bytes, at: float):
        self.path, self.headers, self.body, self.at = path, headers, body, at

    def json(self):
        return json.loads(self.body)


class HttpReceiver:
    """An HTTP server on 127.0.0.1 recording every POST as it arrives; `status` (and
    `headers`, `answer`) set its answer, `delay` makes it wait that long before answering,
    `trickle` makes it answer one byte every `trickle` seconds (for at most a minute;
    `trickled` counts them). With an SSL context `tls` it speaks https and records the host
    names clients ask for (SNI)."""

    def __init__(self, tls: ssl.SSLContext | None = None):
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}/hooks/runwatch"
        self.requests: list[Received] = []
        self.server_names: list[str | None] = []
        self.status = 200
        self.headers: dict[str, str] = {}
        self.answer = b"ok"
        self.delay = 0.0
        self.trickle = 0.0
        self.trickled = 0
        self.server: ThreadingHTTPServer | None = None
        self.stopping = threading.Event()

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append(Received(self.path, dict(self.headers.items()), body,
                                                  time.monotonic()))
                try:
                    if receiver.trickle:
                        self._trickle()
                        return
                    if receiver.delay:
                        receiver.stopping.wait(receiver.delay)
                    self.send_response(receiver.status)
                    for name, value in receiver.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(receiver.answer)))
                    self.end_headers()
                    self.wfile.write(receiver.answer)
                except OSError:
                    pass  # the sender gave up and closed the connection

            def _trickle(self):
                answer = b"HTTP/1.1 200 OK\r\nX-Trickle: " + b"." * 10_000
                deadline = time.monotonic() + 60
                for index in range(len(answer)):
                    if receiver.stopping.is_set() or time.monotonic() > deadline:
                        break
                    self.wfile.write(answer[index:index + 1])
                    receiver.trickled += 1
                    receiver.stopping.wait(receiver.trickle)
                self.close_connection = True

            def log_message(self, *args):
                pass

        return Handler

    def start(self) -> "HttpReceiver":
        """Listen (again) on the receiver's port."""
        ThreadingHTTPServer.allow_reuse_address = True
        self.stopping.clear()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        if self.tls is not None:
            self.tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        # Polled often, so that `stop` (which waits for the loop to notice) is quick.
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port: senders get 'connection refused'."""
        self.stopping.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` requests have arrived; return them."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests


class Trickler:
    """A TCP server on 127.0.0.1 that sends `greeting` to each connection one byte every
    `interval` seconds (for at most a minute): a server that never quite answers."""

    def __init__(self, greeting: bytes, interval: float = 0.5):
        self.greeting, self.interval = greeting, interval
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + 60
        with conn:
            for index in range(len(self.greeting)):
                if self.stopping.is_set() or time.monotonic() > deadline:
                    return
                try:
                    conn.sendall(self.greeting[index:index + 1])
                except OSError:
                    return  # the client gave up
                self.stopping.wait(self.interval)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


@pytest.fixture
def smtp_sink():
    """A real SMTP server on 127.0.0.1 keeping what it receives."""
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def receiver():
    """A real HTTP server on 127.0.0.1 recording webhook calls."""
    server = HttpReceiver().start()
    yield server
    server.stop()


def alert_config(app_config: dict, smtp_sink: SmtpSink) -> dict:
    """Test settings: mail to the sink, retries after 1 s, 3 attempts at most, and webhooks
    to private addresses allowed (the receivers listen on 127.0.0.1)."""
    return {**app_config, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_sink.port,
            "DELIVERY_RETRY_SECONDS": 1, "DELIVERY_MAX_ATTEMPTS": 3,
            "MAIL_FROM": "runwatch@example.com", "WEBHOOK_ALLOW_PRIVATE": True}


# --- Reporting runs and making rules, straight through the model functions ----------------

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)
STATUS = {"F": "failure", "S": "success", "P": "pending", "R": "running"}


def report(workflow: str, statuses: str, first_minute: int = 0,
           error: str = "HTTP 502 from billing") -> list[int]:
    """Store runs of `workflow`, one a minute from T0 + `first_minute`: "FFSP" = failure,
    failure, success, pending. Returns their ids."""
    items = []
    for offset, letter in enumerate(statuses):
        started = T0 + timedelta(minutes=first_minute + offset)
        run = {"workflow": workflow, "status": STATUS[letter], "started_at": started.isoformat()}
        if letter in "FS":
            run["finished_at"] = (started + timedelta(seconds=5)).isoformat()
        if letter == "F":
            run["error"] = {"message": f"{error} (minute {first_minute + offset})"}
        items.append(ExecutionIn.model_validate_json(json.dumps(run)))
    return [execution_id for execution_id, _ in store_executions(items)]


def make_rule(threshold: int, channels: list[dict], workflow: str | None = None, **fields):
    """Create a rule through the same validation as the API, as saved where webhooks to
    private addresses are allowed (whether one is sent is decided again when sending)."""
    body = {"workflow": workflow, "threshold": threshold, "channels": channels, **fields}
    return create_rule(parse_rule(RuleIn, json.dumps(body).encode(),
                                  {ALLOW_PRIVATE: True}))


def scan_in_two_threads(settings, now: datetime | None = None) -> list[Exception]:
    """Run two scans at once (at `now`, default the clock's), in two threads with a
    connection each; what they raised."""
    start, errors = threading.Barrier(2), []

    def run():
        try:
            with connection():
                start.wait(timeout=10)
                scan(settings, now)
        except Exception as exc:  # returned to the test, which asserts there is none
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def wait_until(condition, timeout: float, step: float = 0.05):
    """Ask `condition()` (on a connection of its own) every `step` seconds until it gives a
    true value, which is returned; None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with connection():
            value = condition()
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(step)


def scans() -> int:
    """How many alert passes have recorded their scan (the job's beat), in any process."""
    with connection():
        row = ScanStatus.get_or_none(ScanStatus.id == 1)
        return row.scans if row else 0


def wait_for_a_whole_pass(timeout: float = 30) -> bool:
    """Wait until a whole alert pass (scan, then delivery) has run after this moment, in
    whichever process runs them: two more scans recorded, as passes never overlap."""
    seen = scans()
    return bool(wait_until(lambda: scans() >= seen + 2, timeout))


def form_data(page_html: str, **fields) -> dict:
    """The /alerts page's rule form as a browser posts it: defaults, then `fields`."""
    return {"csrf_token": csrf_from(page_html), "workflow": "", "threshold": "3",
            "email_to": "", "webhook_url": "", "webhook_secret": "", "enabled": "on",
            "notify_recovery": "on", **fields}


def notices(kind: str | None = None) -> list[Notice]:
    """The outbox, oldest first, optionally of one kind."""
    query = Notice.select().order_by(Notice.id)
    if kind:
        query = query.where(Notice.kind == kind)
    return list(query)


def payload(notice: Notice) -> dict:
    return json.loads(notice.payload)


def iso(moment: datetime) -> str:
    """A time as the API writes it (UTC, a Z)."""
    return moment.isoformat().replace("+00:00", "Z")


def scan_and_deliver(app, moment: datetime) -> None:
    """One pass of the alerts job on a clock of its own: decide, then deliver."""
    from alerts.config import config_from
    from alerts.delivery import deliver_due

    with connection():
        config = config_from(app)
        scan(config, moment)
        deliver_due(config, moment)


def statuses(kind: str | None = None) -> list[str]:
    """The delivery states of the outbox's notices, oldest first (of one kind)."""
    with connection():
        return [n.status for n in notices(kind)]
