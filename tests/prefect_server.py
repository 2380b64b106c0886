"""A real Prefect 3 server for the tests of the Prefect source, from the venv that
`.ci/prefect-venv` builds (.venv-prefect/; Runwatch never depends on Prefect), and the flows
its own SDK runs against it (tests/prefect_flows.py)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from helpers import ROOT, free_port, missing

VENV = ROOT / ".venv-prefect"
PYTHON = VENV / "bin" / "python"
TEMPLATE = VENV / "template.db"  # a migrated database: a server starts from a copy
FLOWS = ROOT / "tests" / "prefect_flows.py"
START_SECONDS = 120  # the most a server may take to answer (it imports for seconds)
# Prefect's background services but the one that records task runs (from the SDK's
# events) take processor time and change nothing a test reads.
IDLE_SERVICES = ("CANCELLATION_CLEANUP", "DB_VACUUM", "EVENT_PERSISTER", "EVENT_LOGGER",
                 "FOREMAN", "LATE_RUNS", "SCHEDULER", "PAUSE_EXPIRATIONS", "REPOSSESSOR",
                 "CLEANUP_RECONCILER", "TRIGGERS")


def prefect_python() -> Path:
    """The Prefect venv's Python; skipped (failed under CI) without it."""
    if not PYTHON.is_file() or not (VENV / "bin" / "prefect").is_file():
        missing("Prefect is not installed in .venv-prefect: run .ci/prefect-venv")
    return PYTHON


class PrefectServer:
    """`prefect server start` on 127.0.0.1 and a free port, with a home and a SQLite
    database of its own in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        database = folder / "prefect.db"
        if TEMPLATE.is_file():
            shutil.copyfile(TEMPLATE, database)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
                    "PREFECT_HOME": str(folder / "home"), "PREFECT_API_URL": self.url,
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                    "PREFECT_SERVER_UI_ENABLED": "false",
                    "PREFECT_API_EVENTS_STREAM_OUT_ENABLED": "false",
                    "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{database}",
                    **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"
                       for name in IDLE_SERVICES}}
        self.process: subprocess.Popen | None = None
        self.flows: subprocess.Popen | None = None
        self.logs: list = []

    def start(self, *waiters: str) -> "PrefectServer":
        """Start the server and, beside it, the test flows (`run_flows`); wait (at most
        START_SECONDS) until the server answers."""
        python = prefect_python()
        log = self._log("server.log")
        self.process = subprocess.Popen(
            [str(python), "-m", "prefect", "server", "start", "--host", "127.0.0.1",
             "--port", str(self.port)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.run_flows(*waiters)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the Prefect server stopped: "
                                   + (self.folder / "server.log").read_text()[-2000:])
            try:
                if self.post("/health", None, method="GET") is True:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"the Prefect server did not answer within {START_SECONDS} s")

    def run_flows(self, *waiters: str) -> None:
        """Run the test flows (tests/prefect_flows.py) with Prefect's SDK, which starts by
        waiting for the server to answer."""
        log = self._log("flows.log")
        self.flows = subprocess.Popen([str(prefect_python()), str(FLOWS), str(self.folder),
                                       *waiters], env=self.env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for_flows(self) -> None:
        """Until the succeeding and the failing flow have ended (the waiters run on)."""
        self.wait_for(lambda: (self.folder / "ready").exists() or self.flows.poll() is not None,
                      "the flows to run")
        assert (self.folder / "ready").exists(), (self.folder / "flows.log").read_text()[-3000:]

    def _log(self, name: str):
        log = open(self.folder / name, "w")
        self.logs.append(log)
        return log

    def release(self, waiter: str) -> None:
        """Let the waiter flow of this name finish."""
        (self.folder / waiter).write_text("go")

    def post(self, path: str, body, method: str = "POST"):
        """Ask the server's API directly (what the test expects Prefect to hold)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def flow_runs(self, flow: str) -> list[dict]:
        """The flow runs of the flow of this name, as Prefect holds them."""
        return self.post("/flow_runs/filter", {"flows": {"name": {"any_": [flow]}}})

    def task_runs(self, flow_run_ids: list[str]) -> list[dict]:
        return self.post("/task_runs/filter",
                         {"task_runs": {"flow_run_id": {"any_": flow_run_ids}}})

    def wait_for(self, condition, what: str, timeout: float = 90.0) -> None:
        """Poll `condition` until it holds (briefly, with a deadline)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {what}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server and the flows (their whole process groups)."""
        for process in (self.flows, self.process):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)
        while self.logs:
            self.logs.pop().close()
