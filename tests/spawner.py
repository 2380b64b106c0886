"""A fork server for the tests' gunicorn processes (and `flask --app app scheduler`).

Starting a server the ordinary way costs a new Python, gunicorn's imports, and then in each
worker the import of the whole app: about a second of processor time per process, several
on a busy machine, paid by every test with a live server. The spawner is one small process
per test process (started on first use, gone when the test process ends) that has imported
gunicorn and every module of the app once. Each server is a child forked from it: it
becomes the gunicorn arbiter with the server's arguments, environment, folder and log, and
gunicorn forks its workers from there with the app already in memory. Each worker still
builds its app (`create_app()`) from the environment it is given, so settings behave as in
a new process; nothing in the app reads the environment when it is imported.

The test process talks to the spawner over a pipe, one JSON line each way:
  {"start": argv, "env": {...}, "cwd": ..., "log": path}  ->  {"pid": n}
  {"exited": pid}                                         ->  {"returncode": n}
The test process waits for a server through a pidfd (a process it did not fork); once the
pidfd says the server has ended, it asks the spawner, its parent, to reap it and tell the
exit status. The spawner also reaps whatever has ended at each request, so no zombie is left
for longer than until the next server's start.

`RUNWATCH_TEST_FORK_SERVER=false` starts every server as a new process instead (see
`LiveServer`).
"""
from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("models", "views", "alerts", "history", "workflows", "otel")


# --- In the test process ----------------------------------------------------------------

class Spawner:
    """The test process's end of the pipe to a spawner process."""

    def __init__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNWATCH_", "FLASK_"))}
        # Run from the checkout's root, as `python -m gunicorn` ran, so `app` is this one.
        self.process = subprocess.Popen([sys.executable, __file__], cwd=ROOT, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
        self.lock = threading.Lock()
        atexit.register(self.close)
        ready = self._receive()
        if "error" in ready:
            raise RuntimeError(f"the spawner did not start: {ready['error']}")

    def _receive(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the spawner ended (exit status {self.process.wait()})")
        return json.loads(line)

    def ask(self, request: dict) -> dict:
        with self.lock:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            answer = self._receive()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self) -> None:
        if not self.process.stdin.closed:
            self.process.stdin.close()  # end of input: the spawner ends
            self.process.wait(timeout=10)
            self.process.stdout.close()


_spawner: Spawner | None = None


def spawner() -> Spawner:
    """This test process's spawner, started on first use."""
    global _spawner
    if _spawner is None or _spawner.process.poll() is not None:
        _spawner = Spawner()
    return _spawner


class ForkedProcess:
    """A server forked by the spawner, with the parts of `subprocess.Popen` that the tests
    use: pid, returncode, poll(), wait(), send_signal(), terminate(), kill()."""

    def __init__(self, args: list[str], env: dict, cwd: Path, log: Path):
        self.args = args
        self.returncode: int | None = None
        self.pid = spawner().ask({"start": args, "env": env, "cwd": str(cwd),
                                  "log": str(log)})["pid"]
        self._pidfd = os.pidfd_open(self.pid)

    def poll(self) -> int | None:
        return self.wait(timeout=0, raising=False)

    def wait(self, timeout: float | None = None, raising: bool = True) -> int | None:
        if self.returncode is None:
            waiting = select.poll()
            waiting.register(self._pidfd, select.POLLIN)  # readable once the server ended
            if not waiting.poll(None if timeout is None else timeout * 1000):
                if raising:
                    raise subprocess.TimeoutExpired(self.args, timeout)
                return None
            self.returncode = spawner().ask({"exited": self.pid})["returncode"]
            os.close(self._pidfd)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # through the pidfd: never a reused pid
            signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


# --- In the spawner process ---------------------------------------------------------------

def _preload() -> None:
    """Import gunicorn (the arbiter and its threaded worker) and every module of the app, so
    that no server forked from here imports them again."""
    import importlib
    import pkgutil

    import gunicorn.app.wsgiapp  # noqa: F401
    import gunicorn.arbiter  # noqa: F401
    import gunicorn.workers.gthread  # noqa: F401
    import gunicorn.workers.sync  # noqa: F401
    import flask.cli  # noqa: F401

    for name in ("app", "cli", "scheduling", *APP_PACKAGES):
        module = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{name}."):
            importlib.import_module(info.name)


def _become_server(request: dict) -> None:
    """In the forked child: a session of its own (so that a kill of the process group takes
    the workers too), the log as stdout and stderr, the server's environment and folder;
    then gunicorn's main, and out with os._exit, so that nothing this process inherited
    (buffers, atexit handlers) is cleaned up a second time."""
    code = 1
    try:
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(null)
        os.close(log)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        time.tzset()  # TZ as a new process would read it
        argv = request["start"]
        if argv[1:3] == ["-m", "gunicorn"]:
            from gunicorn.app.wsgiapp import run
        elif argv[1:3] == ["-m", "flask"]:  # a command of the app: `flask --app app scheduler`
            from flask.cli import main as run
        else:
            raise ValueError(f"the spawner starts `python -m gunicorn|flask …` only, not {argv}")
        sys.argv = [argv[2], *argv[3:]]
        run()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve() -> None:
    """Answer requests from the test process until its end of the pipe closes."""
    def send(answer: dict) -> None:
        # Straight to the pipe, never through sys.stdout: a buffer of it would be copied into
        # every child.
        os.write(1, json.dumps(answer).encode() + b"\n")

    sys.path.insert(0, str(ROOT))
    try:
        _preload()
        if threading.active_count() != 1:  # a thread would be lost in every fork
            raise RuntimeError(f"threads after the imports: {threading.enumerate()}")
    except BaseException as error:
        send({"error": f"{type(error).__name__}: {error}"})
        raise SystemExit(1)
    send({"ready": True})
    statuses: dict[int, int] = {}
    pending = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            try:
                send(_answer(json.loads(line), statuses))
            except Exception as error:  # told to the test process, which raises it
                send({"error": f"{type(error).__name__}: {error}"})


def _answer(request: dict, statuses: dict[int, int]) -> dict:
    """Fork a server (its pid), or reap one that has ended (its exit status, as Popen's
    returncode: negative for a signal)."""
    _reap(statuses)
    if "start" in request:
        pid = os.fork()
        if pid == 0:
            _become_server(request)
        return {"pid": pid}
    if "exited" in request:
        pid = request["exited"]
        if pid not in statuses:
            statuses[pid] = os.waitpid(pid, 0)[1]
        return {"returncode": os.waitstatus_to_exitcode(statuses.pop(pid))}
    raise ValueError(f"unknown request {request}")


def _reap(statuses: dict[int, int]) -> None:
    """Collect the exit status of every child that has ended (until asked for)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


if __name__ == "__main__":
    del sys.path[0]  # this folder (tests/): `app` and the rest come from ROOT
    _serve()
