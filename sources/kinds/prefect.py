"""Prefect 3: flow runs pulled from its REST API as runs, their task runs as steps (tested
against Prefect 3.9).

What is asked: `POST /flow_runs/filter` for the runs expected to start in the window or
ended in it (sorted by expected start, paged by `offset` and `limit`), and again by id for
the runs still open at the last pull; `POST /task_runs/filter` for the task runs of each
page; `POST /flows/filter` for the flows' names. Prefect's filters know no `updated`: a run
that changes is found while it is open (by id) and once it ends (by `end_time`).

What is mapped: a flow → a workflow (by name); a flow run → a run, `external_id`
`prefect-<flow run id>`, its parameters → input, its state → status (below), the state's
message → error (its exception type, where the message names one); its task runs → steps,
in start order, each with its state.
"""
from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Iterator

from models.inputs import CONTROL, MAX_NAME

from ..remote import PullError, Remote
from .base import Kind, Page, PulledRun, Window

# A state type → a status; a type Prefect adds later counts as open (running once started).
STATUSES = {"COMPLETED": "success", "FAILED": "failure", "CRASHED": "failure",
            "CANCELLED": "failure", "RUNNING": "running", "PAUSED": "running",
            "CANCELLING": "running", "PENDING": "pending", "SCHEDULED": "pending"}
PAGE = 200  # the most Prefect answers at once (PREFECT_SERVER_API_DEFAULT_LIMIT)
EXCEPTION = re.compile(r"encountered an exception:? ([A-Za-z_][\w.]*(?:Error|Exception|"
                       r"Interrupt|Exit|Timeout|Cancelled)):")
MAX_MESSAGE = 100_000


class Prefect(Kind, kind="prefect", label="Prefect"):
    """The URL Prefect's own clients use (`PREFECT_API_URL`): `http://<host>:4200/api` for a
    Prefect server, `https://api.prefect.cloud/api/accounts/<id>/workspaces/<id>` for
    Prefect Cloud. The token: a Prefect Cloud API key, or `user:password` for a server
    started with `PREFECT_SERVER_API_AUTH_STRING`."""

    @staticmethod
    def headers(token: str | None) -> dict[str, str]:
        """An API key as a bearer token; `user:password` as HTTP Basic."""
        if not token:
            return {}
        if ":" in token:
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        return {"Authorization": f"Bearer {token}"}

    def pull(self, remote: Remote, window: Window, *, page_size: int = PAGE,
             max_steps: int = 2000) -> Iterator[Page]:
        """The flow runs changed in the window, then the open ones, a page at a time."""
        page_size = min(page_size, PAGE)
        names: dict[str, str] = {}
        changed = {"operator": "or_",
                   "expected_start_time": {"after_": _iso(window.since),
                                           "before_": _iso(window.until)},
                   "end_time": {"after_": _iso(window.since)}}
        offset = 0
        while True:
            runs = _flow_runs(remote, {"flow_runs": changed, "sort": "EXPECTED_START_TIME_ASC",
                                       "offset": offset, "limit": page_size})
            if runs:
                latest = max(_time(run, "expected_start_time") or window.since for run in runs)
                yield Page(_mapped(remote, runs, names, page_size, max_steps),
                           min(latest, window.until))
            if len(runs) < page_size:
                break
            offset += len(runs)
        for start in range(0, len(window.open_ids), page_size):
            ids = window.open_ids[start:start + page_size]
            runs = _flow_runs(remote, {"flow_runs": {"id": {"any_": ids}}, "limit": page_size})
            yield Page(_mapped(remote, runs, names, page_size, max_steps))


# --- Reading Prefect's answers ------------------------------------------------------------

def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _records(answer, what: str) -> list[dict]:
    """A list of objects, each with a text `id`; else PullError (not Prefect's API)."""
    if not isinstance(answer, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in answer):
        raise PullError(f"the answer to {what} is not a list of Prefect objects: "
                        f"{str(answer)[:200]!r}")
    return answer


def _flow_runs(remote: Remote, body: dict) -> list[dict]:
    runs = _records(remote.post_json("/flow_runs/filter", body), "/flow_runs/filter")
    for run in runs:
        if not isinstance(run.get("flow_id"), str):
            raise PullError(f"flow run {run['id'][:100]!r} has no flow_id")
    return runs


def _time(record: dict, key: str) -> datetime | None:
    """A time of a Prefect object (ISO 8601 with an offset), or None."""
    value = record.get(key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise PullError(f"{key} of {record['id'][:100]!r} is not a time: {str(value)[:50]!r}")
    return moment


def _flow_names(remote: Remote, ids: set[str], names: dict[str, str], page_size: int) -> None:
    """Fill `names` with the names of these flows (those Prefect no longer has keep none)."""
    wanted = sorted(ids - set(names))
    for start in range(0, len(wanted), page_size):
        chunk = wanted[start:start + page_size]
        for flow in _records(remote.post_json("/flows/filter", {
                "flows": {"id": {"any_": chunk}}, "limit": page_size}), "/flows/filter"):
            if isinstance(flow.get("name"), str):
                names[flow["id"]] = flow["name"]


def _task_runs(remote: Remote, run_ids: list[str], page_size: int) -> dict[str, list[dict]]:
    """The task runs of these flow runs, by flow run id."""
    found: dict[str, list[dict]] = {}
    offset = 0
    while True:
        page = _records(remote.post_json("/task_runs/filter", {
            "task_runs": {"flow_run_id": {"any_": run_ids}},
            "sort": "EXPECTED_START_TIME_ASC", "offset": offset, "limit": page_size}),
            "/task_runs/filter")
        for task in page:
            found.setdefault(str(task.get("flow_run_id")), []).append(task)
        if len(page) < page_size:
            return found
        offset += len(page)


# --- Mapping -----------------------------------------------------------------------------

def _mapped(remote: Remote, runs: list[dict], names: dict[str, str], page_size: int,
            max_steps: int) -> list[PulledRun]:
    _flow_names(remote, {run["flow_id"] for run in runs}, names, page_size)
    tasks = _task_runs(remote, [run["id"] for run in runs], page_size)
    pulled = []
    for run in runs:
        report = run_report(run, names.get(run["flow_id"]), tasks.get(run["id"], []),
                            max_steps)
        pulled.append(PulledRun(run["id"], report,
                                report["status"] in ("pending", "running")))
    return pulled


def _name(text, fallback: str) -> str:
    """A Runwatch name: no control characters, at most 200 characters, never empty."""
    text = CONTROL.sub(" ", text).strip()[:MAX_NAME] if isinstance(text, str) else ""
    return text or fallback


def _text(text, limit: int) -> str:
    return str(text).replace("\x00", "")[:limit]


def _state(record: dict) -> tuple[str, str, str | None]:
    """(state type, state name, state message) of a flow or task run."""
    state = record.get("state") if isinstance(record.get("state"), dict) else {}
    kind = record.get("state_type") or state.get("type")
    name = record.get("state_name") or state.get("name") or str(kind or "Unknown").title()
    message = state.get("message")
    return str(kind), str(name), message if isinstance(message, str) and message else None


def _status(kind: str, started: datetime | None) -> str:
    return STATUSES.get(kind) or ("running" if started else "pending")


def _error(name: str, message: str | None) -> dict:
    """A failed state as an error: its message, and the exception's type where the message
    names one (else the state's name: Failed, Crashed, Cancelled)."""
    found = EXCEPTION.search(message or "")
    return {"message": _text(message or name, MAX_MESSAGE),
            "type": _text(found.group(1) if found else name, 200)}


def _times(record: dict, status: str) -> tuple[datetime | None, datetime | None]:
    """(started, finished) of a run or step; a finish only once it has finished."""
    started = _time(record, "start_time")
    if status not in ("success", "failure"):
        return started, None
    state = record.get("state") if isinstance(record.get("state"), dict) else {}
    finished = _time(record, "end_time") or _time({"id": record["id"], **state}, "timestamp")
    if started and finished and finished < started:
        finished = started
    return started, finished


def _step(position: int, task: dict) -> dict:
    kind, name, message = _state(task)
    started = _time(task, "start_time")
    status = _status(kind, started)
    started, finished = _times(task, status)
    key = task.get("task_key") if isinstance(task.get("task_key"), str) else ""
    step = {"position": position, "name": _name(task.get("name"), f"task {position + 1}"),
            "action": _text(key.rpartition("-")[0] or key, 200) or None, "status": status,
            "started_at": started, "finished_at": finished}
    if status == "failure":
        step["error"] = _error(name, message)
    return step


def _start_order(task: dict) -> tuple:
    moment = (_time(task, "start_time") or _time(task, "expected_start_time")
              or _time(task, "created"))
    return (moment is None, moment or datetime.min, task["id"])


def run_report(run: dict, flow: str | None, tasks: list[dict], max_steps: int) -> dict:
    """A flow run as a report of the ingestion API (a dict `ExecutionIn` validates)."""
    kind, name, message = _state(run)
    status = _status(kind, _time(run, "start_time"))
    started, finished = _times(run, status)
    report = {"workflow": _name(flow, f"prefect-flow-{run['flow_id'][:36]}"),
              "external_id": f"prefect-{run['id'][:180]}", "status": status,
              "started_at": (started or _time(run, "expected_start_time")
                             or _time(run, "created")),
              "finished_at": finished,
              "input": run.get("parameters"),
              "steps": [_step(position, task) for position, task in
                        enumerate(sorted(tasks, key=_start_order)[:max_steps])]}
    if status == "failure":
        report["error"] = _error(name, message)
    if report["finished_at"] and report["started_at"] and \
            report["finished_at"] < report["started_at"]:
        report["finished_at"] = report["started_at"]
    return report
