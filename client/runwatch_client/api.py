"""The Python API: a run and its steps as context managers, and a decorator."""
from __future__ import annotations

import functools
import inspect
import sys
import threading
import traceback
import warnings
from contextvars import ContextVar
from typing import Any, Callable, List, Optional

from .report import RunReport, error, jsonable, name, now
from .transport import Transport

_current: ContextVar[Optional["Run"]] = ContextVar("runwatch_current_run", default=None)


class RunwatchWarning(UserWarning):
    """Runwatch could not be told about a run (unreachable, or it refused the report)."""


def describe(exc: BaseException) -> dict:
    """An error object for an exception: its type, message and traceback."""
    kind = type(exc)
    qualified = kind.__qualname__ if kind.__module__ == "builtins" \
        else f"{kind.__module__}.{kind.__qualname__}"
    stack = "".join(traceback.format_exception(kind, exc, exc.__traceback__))
    return error(qualified, str(exc) or kind.__name__, stack)


def as_error(value: Any) -> Optional[dict]:
    """An error object from what was set as `error`: an exception, a dict or a message."""
    if value is None:
        return None
    if isinstance(value, BaseException):
        return describe(value)
    if isinstance(value, dict):
        stack = value.get("stack")
        return error(value.get("type"), str(value.get("message") or value),
                     None if stack is None else str(stack))
    return error(None, str(value))


def _failed(exc: Optional[BaseException]) -> bool:
    """Whether leaving a block with `exc` means it failed (SystemExit(0) does not)."""
    if exc is None:
        return False
    if isinstance(exc, SystemExit):
        return exc.code not in (None, 0)
    return not isinstance(exc, GeneratorExit)


class Step:
    """One step of a run: a context manager; set `output` (and `logs`) inside it."""

    def __init__(self, run: Optional["Run"], step_name: str, action: Optional[str] = None,
                 input: Any = None):
        self.run = run
        self.name = name(step_name, "step")
        self.action = action
        self.input = input
        self.output: Any = None
        self.logs: Optional[str] = None
        self.error: Optional[dict] = None
        self.position: Optional[int] = None
        self.started_at: Optional[str] = None
        self.finished_at: Optional[str] = None

    def log(self, line: str) -> None:
        """Add a line to the step's logs."""
        self.logs = f"{self.logs}\n{line}" if self.logs else str(line)

    def __enter__(self) -> "Step":
        self.started_at = now()
        if self.run is not None:
            self.run._add(self)
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        self.finished_at = now()
        if _failed(exc) and self.error is None:
            self.error = describe(exc)
        return False

    def as_json(self) -> dict:
        """The step as Runwatch's ingestion API takes it."""
        step = {"position": self.position, "name": self.name,
                "status": "failure" if self.error else
                ("success" if self.finished_at else "running"),
                "started_at": self.started_at, "finished_at": self.finished_at,
                "input": jsonable(self.input), "output": jsonable(self.output)}
        if self.action is not None:
            step["action"] = name(self.action, "")[:200] or None
        if self.error:
            step["error"] = as_error(self.error)
        if self.logs:
            step["logs"] = str(self.logs).replace("\x00", "\\0")
        return {k: v for k, v in step.items() if v is not None}


class Run:
    """One run of a workflow, reported to Runwatch: a context manager.

    Entering it reports the run as `running` (in the background); leaving it reports
    `success`, or `failure` with the exception's type, message and traceback (the exception
    goes on), with every step in the order they started. Runwatch being unreachable gives
    a RunwatchWarning, never an exception.
    """

    def __init__(self, workflow: str, input: Any = None, *, external_id: Optional[str] = None,
                 url: Optional[str] = None, token: Optional[str] = None,
                 rerun_of: Optional[int] = None):
        self.workflow = workflow
        self.input = input
        self.output: Any = None
        self.error: Optional[dict] = None
        self.steps: List[Step] = []
        self._lock = threading.Lock()
        self._report = RunReport(Transport(url, token), workflow, external_id, input,
                                 rerun_of=rerun_of)
        self._context_token = None

    @property
    def external_id(self) -> str:
        return self._report.external_id

    @property
    def id(self) -> Optional[int]:
        """The run's id in Runwatch, once a report got through."""
        return self._report.id

    @property
    def url(self) -> Optional[str]:
        """The run's page in Runwatch, once a report got through."""
        return self._report.url

    def step(self, step_name: str, action: Optional[str] = None, input: Any = None) -> Step:
        """A step of this run, to use with `with`; steps may be nested."""
        return Step(self, step_name, action, input)

    def _add(self, step: Step) -> None:
        with self._lock:
            step.position = len(self.steps)
            self.steps.append(step)

    def __enter__(self) -> "Run":
        if self._report.transport.wait_problem:
            _warn(self._report.transport.wait_problem)
        self._report.start()
        self._context_token = _current.set(self)
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if self._context_token is not None:
            _current.reset(self._context_token)
            self._context_token = None
        failed = _failed(exc)
        if failed and self.error is None:
            self.error = describe(exc)
        status = "failure" if failed or self.error else "success"
        try:
            self._report.finish(status, self.output, as_error(self.error),
                                [step.as_json() for step in self.steps])
        except Exception as trouble:  # the user's code never sees ours
            self._report.problem = self._report.problem or f"{type(trouble).__name__}: {trouble}"
        # A start report that failed matters no more once the run's end got through.
        if not self._report.reported:
            _warn(f"run {self.workflow!r} ({self.external_id}) was not reported to Runwatch: "
                  f"{self._report.problem or 'no answer in time'}")
        return False


def _warn(message: str) -> None:
    """A RunwatchWarning; when warnings are turned into errors, a line on stderr instead."""
    try:
        warnings.warn(message, RunwatchWarning, stacklevel=3)
    except Exception:
        try:
            sys.stderr.write(f"{message}\n")
        except Exception:
            pass


def run(workflow: str, input: Any = None, *, external_id: Optional[str] = None,
        url: Optional[str] = None, token: Optional[str] = None,
        rerun_of: Optional[int] = None) -> Run:
    """A run of `workflow` to use with `with`: `with runwatch_client.run("backup") as run:`.
    `rerun_of`: the id of the run this one runs again (a re-run request names it)."""
    return Run(workflow, input, external_id=external_id, url=url, token=token,
               rerun_of=rerun_of)


def current() -> Optional[Run]:
    """The run being reported in this thread or task, if any."""
    return _current.get()


def step(step_name: str, action: Optional[str] = None, input: Any = None) -> Step:
    """A step of the current run (for code inside a @workflow function); outside any run,
    a step that is reported nowhere."""
    return Step(current(), step_name, action, input)


def workflow(workflow_name: Any = None, *, url: Optional[str] = None,
             token: Optional[str] = None) -> Callable:
    """Report each call of the decorated function as a run of `workflow_name` (default: the
    function's name): `@runwatch_client.workflow("nightly-backup")`."""

    def decorate(function: Callable) -> Callable:
        label = workflow_name if isinstance(workflow_name, str) else function.__qualname__

        if inspect.iscoroutinefunction(function):
            @functools.wraps(function)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with Run(label, url=url, token=token):
                    return await function(*args, **kwargs)

            return run_async

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with Run(label, url=url, token=token):
                return function(*args, **kwargs)

        return wrapper

    if callable(workflow_name):  # used bare: @runwatch_client.workflow
        return decorate(workflow_name)
    return decorate
