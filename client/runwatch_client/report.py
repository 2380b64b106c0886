"""One run's reports: `running` when it starts (in the background), its outcome when it ends."""
from __future__ import annotations

import math
import re
import threading
import time
import uuid
from datetime import date, datetime, timezone
from typing import Any, Callable, Optional

from .transport import Reply, Transport, Unreachable

PATH = "/api/automations/executions"
STEP_CHUNK = 1000  # steps per request, well under Runwatch's default limits
MAX_NAME = 200
MAX_MESSAGE = 100_000
# What Runwatch refuses in a name: control characters (C0, DEL, C1) and line separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def now() -> str:
    """The current time in ISO 8601, UTC, to the microsecond."""
    return utc(time.time())


def utc(seconds: float) -> str:
    """A POSIX time in ISO 8601, UTC, to the microsecond."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_external_id() -> str:
    """A fresh external_id, so a re-sent report updates the same run."""
    return f"rw-{uuid.uuid4().hex}"


def name(text: Any, fallback: str) -> str:
    """A name Runwatch accepts: control characters become spaces, at most 200 characters."""
    if text is None:
        return fallback
    cleaned = CONTROL.sub(" ", str(text)).strip()[:MAX_NAME]
    return cleaned or fallback


def text(value: Any, limit: Optional[int] = None) -> str:
    """Text Runwatch accepts (no NUL), cut to `limit` characters."""
    cleaned = str(value).replace("\x00", "\\0")
    return cleaned if limit is None else cleaned[:limit]


def error(kind: Optional[str], message: str, stack: Optional[str] = None) -> dict:
    """An error object: the type when there is one, the message (never empty), the stack."""
    found = {"message": text(message, MAX_MESSAGE) or kind or "error"}
    if kind:
        found["type"] = text(kind, MAX_NAME)
    if stack:
        found["stack"] = text(stack)
    return found


def jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as JSON Runwatch stores: finite numbers, string keys, anything else as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > 50:
        return str(value)
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: jsonable(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


class RunReport:
    """Reports one run to Runwatch, and never raises.

    `start()` posts the run as `running` in a background thread, so the work is not kept
    waiting (it gives up after half the transport's `wait`); `finish()` waits for that
    report (the transport's `wait` in all, the start report included), then changes the
    run with a PATCH, or posts it whole under the same external_id when the start never got
    through, when steps go with it, or when the run is gone. Problems go to `on_problem`,
    once per run (`problem` keeps it).
    """

    def __init__(self, transport: Transport, workflow: str, external_id: Optional[str] = None,
                 input: Any = None, on_problem: Optional[Callable[[str], None]] = None,
                 rerun_of: Optional[int] = None):
        self.transport = transport
        self.workflow = name(workflow, "unnamed")
        self.external_id = name(external_id, "") or new_external_id()
        self.input = jsonable(input)
        self.rerun_of = rerun_of  # the id of the run this one runs again
        self.started_at: Optional[str] = None
        self.stored: Optional[dict] = None  # Runwatch's answer: id, url, status, …
        self.problem: Optional[str] = None
        self.reported = False  # whether the report of the run's end got through
        self._on_problem = on_problem
        self._lock = threading.Lock()
        self._starting: Optional[threading.Thread] = None

    @property
    def id(self) -> Optional[int]:
        """The run's id in Runwatch, once a report got through."""
        return self.stored.get("id") if isinstance(self.stored, dict) else None

    @property
    def url(self) -> Optional[str]:
        """The run's page in Runwatch, once a report got through."""
        return self.stored.get("url") if isinstance(self.stored, dict) else None

    def _body(self, **fields: Any) -> dict:
        body = {"workflow": self.workflow, "external_id": self.external_id,
                "started_at": self.started_at}
        if self.input is not None:
            body["input"] = self.input
        if self.rerun_of is not None:
            body["rerun_of"] = self.rerun_of
        body.update({k: v for k, v in fields.items() if v is not None})
        return body

    def start(self, started_at: Optional[str] = None) -> None:
        """Report the run as running, in the background."""
        self.started_at = started_at or now()
        body = self._body(status="running")
        deadline = time.monotonic() + self.transport.wait / 2  # it runs alongside the work

        def post() -> None:
            reply = self._post_run(body, deadline)
            if reply is not None:
                self.stored = reply.body

        self._starting = threading.Thread(target=post, name="runwatch-start", daemon=True)
        self._starting.start()

    def finish(self, status: str, output: Any = None, error: Optional[dict] = None,
               steps: Optional[list] = None, finished_at: Optional[str] = None) -> None:
        """Report how the run ended, waiting at most the transport's `wait` in all."""
        finished_at = finished_at or now()
        self.started_at = self.started_at or finished_at
        deadline = time.monotonic() + self.transport.wait
        if self._starting is not None:
            self._starting.join(max(0.0, deadline - time.monotonic()))
        started = self.id if self._starting is not None and not self._starting.is_alive() \
            else None
        output = jsonable(output)
        if started is not None and not steps:
            patch = {"status": status, "finished_at": finished_at, "output": output,
                     "error": error}
            reply = self._send("PATCH", f"{PATH}/{started}",
                               {k: v for k, v in patch.items() if v is not None}, deadline,
                               tolerate=(404,))
            if reply is None or reply.ok:
                if reply is not None:
                    self.stored, self.reported = reply.body, True
                return
        steps = steps or []
        body = self._body(status=status, finished_at=finished_at, output=output, error=error,
                          steps=steps[:STEP_CHUNK])
        reply = self._post_run(body, deadline)
        if reply is None:
            return
        self.stored = reply.body
        for first in range(STEP_CHUNK, len(steps), STEP_CHUNK):
            if self._send("POST", f"{PATH}/{self.id}/steps",
                          {"steps": steps[first:first + STEP_CHUNK]}, deadline) is None:
                return
        self.reported = True

    def _post_run(self, body: dict, deadline: float) -> Optional[Reply]:
        """POST the run whole. A `rerun_of` Runwatch refuses (a run it does not have) is
        a problem noted, and the run is reported without it rather than not at all."""
        reply = self._send("POST", PATH, body, deadline, tolerate=(400,))
        if reply is None or reply.ok:
            return reply
        error = reply.body.get("error") if isinstance(reply.body, dict) else None
        if "rerun_of" in body and isinstance(error, dict) and error.get("field") == "rerun_of":
            self._note(f"{self.transport.url} refused rerun_of: {reply.describe()}; the run "
                       "is reported without it")
            self.rerun_of = None
            return self._send("POST", PATH, {k: v for k, v in body.items() if k != "rerun_of"},
                              deadline)
        self._note(f"{self.transport.url} refused it: {reply.describe()}")
        return None

    def _send(self, method: str, path: str, body: dict, deadline: float,
              tolerate: "tuple[int, ...]" = ()) -> Optional[Reply]:
        """A reply that is 2xx (or tolerated), else None after noting the problem."""
        try:
            reply = self.transport.send(method, path, body, deadline)
        except Unreachable as exc:
            self._note(str(exc))
            return None
        except Exception as exc:  # never an exception in the reporting program
            self._note(f"{type(exc).__name__}: {exc}")
            return None
        if reply.ok or reply.status in tolerate:
            return reply
        self._note(f"{self.transport.url} refused it: {reply.describe()}")
        return None

    def _note(self, problem: str) -> None:
        with self._lock:
            if self.problem is not None:
                return
            self.problem = problem
        if self._on_problem is not None:
            try:
                self._on_problem(problem)
            except Exception:
                pass
