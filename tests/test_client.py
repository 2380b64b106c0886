"""The reporting client (`client/`): the `runwatch` command run for real in a subprocess,
and the Python API, against a live Runwatch and against servers that misbehave."""
from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

import runwatch_client
from helpers import client_env, console_script, free_port

EXECUTIONS = "/api/automations/executions"
PYTHON = sys.executable
TAIL = 32 * 1024


@pytest.fixture
def backend() -> str:
    """The client does not care about the database: SQLite alone."""
    return "sqlite"


@pytest.fixture(scope="module")
def runwatch_script() -> str:
    return console_script("runwatch", "pip install -e ./client")


def runwatch(script: str, *args: str, env: dict, timeout: float = 60):
    """Run `runwatch ARGS…` to its end: (the completed process, seconds it took)."""
    began = time.monotonic()
    done = subprocess.run([script, *args], env=env, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return done, time.monotonic() - began


def api_get(server, token: str, path: str, **params) -> dict:
    response = requests.get(server.url + path, params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


def stored_run(server, token: str, workflow: str) -> dict:
    """The one stored run of `workflow`, whole."""
    rows = api_get(server, token, EXECUTIONS, workflow=workflow)["data"]
    assert len(rows) == 1, rows
    return api_get(server, token, f"{EXECUTIONS}/{rows[0]['id']}")


def warnings_in(stderr: bytes) -> list[str]:
    return [line for line in stderr.decode().splitlines() if line.startswith("runwatch: warning")]


# --- The runwatch command against a live Runwatch ------------------------------------------

def test_a_succeeding_command_is_stored_as_a_success_with_its_output(
        runwatch_script, live_server, live_token):
    done, _ = runwatch(runwatch_script, "exec", "--workflow", "hello", "--external-id",
                       "cron-42", "--", "sh", "-c", "echo hello; echo note >&2",
                       env=client_env(live_server.url, live_token))

    assert done.returncode == 0
    assert done.stdout == b"hello\n" and done.stderr == b"note\n"
    run = stored_run(live_server, live_token, "hello")
    assert run["status"] == "success" and run["external_id"] == "cron-42"
    assert run["output"] == {"exit_code": 0, "stdout_tail": "hello\n", "stderr_tail": "note\n"}
    assert run["error"] is None and run["finished_at"] is not None
    assert run["input"]["command"] == ["sh", "-c", "echo hello; echo note >&2"]


def test_a_rerun_names_its_origin_from_the_command_and_the_python_api(
        runwatch_script, live_server, live_token):
    env = client_env(live_server.url, live_token)
    runwatch(runwatch_script, "exec", "--workflow", "first", "--", "true", env=env)
    origin = stored_run(live_server, live_token, "first")["id"]
    done, _ = runwatch(runwatch_script, "exec", "--workflow", "again", "--rerun-of",
                       str(origin), "--", "true", env=env)
    assert done.returncode == 0 and warnings_in(done.stderr) == []
    assert stored_run(live_server, live_token, "again")["rerun_of"] == origin
    with runwatch_client.run("again-in-python", rerun_of=origin, url=live_server.url,
                             token=live_token):
        pass
    assert stored_run(live_server, live_token, "again-in-python")["rerun_of"] == origin
    # An origin Runwatch does not have: the run is reported without it, with a warning.
    done, _ = runwatch(runwatch_script, "exec", "--workflow", "stale", "--rerun-of",
                       "999999", "--", "true", env=env)
    assert done.returncode == 0
    assert ["rerun_of" in line for line in warnings_in(done.stderr)] == [True]
    assert stored_run(live_server, live_token, "stale")["rerun_of"] is None


def test_a_failing_command_is_stored_as_a_failure_with_its_last_stderr_line(
        runwatch_script, live_server, live_token):
    done, _ = runwatch(runwatch_script, "exec", "--", "sh", "-c", "echo boom >&2; exit 3",
                       env=client_env(live_server.url, live_token))

    assert done.returncode == 3
    assert done.stderr == b"boom\n"  # passed through, and no warning
    run = stored_run(live_server, live_token, "sh")  # the workflow is the command's name
    assert run["status"] == "failure"
    assert run["output"]["exit_code"] == 3
    assert run["error"]["type"] == "ExitCode" and run["error"]["message"] == "boom"
    assert run["error_message"] == "boom"


def test_a_command_that_cannot_be_found_exits_127_and_is_stored_as_a_failure(
        runwatch_script, live_server, live_token):
    done, _ = runwatch(runwatch_script, "exec", "--workflow", "typo", "--",
                       "no-such-command-here", env=client_env(live_server.url, live_token))

    assert done.returncode == 127
    assert b"no-such-command-here" in done.stderr
    run = stored_run(live_server, live_token, "typo")
    assert run["status"] == "failure" and run["output"]["exit_code"] == 127
    assert "no-such-command-here" in run["error"]["message"]


WAIT_FOR_SIGNAL = """
import os, signal, sys, time
def caught(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
signal.signal(signal.SIGTERM, caught)
signal.signal(signal.SIGINT, caught)
print("ready", flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_sent_to_runwatch_reaches_the_command_and_is_stored(
        runwatch_script, live_server, live_token, signum):
    process = subprocess.Popen(
        [runwatch_script, "exec", "--workflow", "waits", "--", PYTHON, "-c", WAIT_FOR_SIGNAL],
        env=client_env(live_server.url, live_token), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"ready\n"
        # While the command runs, the run is there as running.
        deadline = time.monotonic() + 10
        while not api_get(live_server, live_token, EXECUTIONS, workflow="waits")["data"]:
            assert time.monotonic() < deadline, "the run was not reported as running"
            time.sleep(0.05)
        run = stored_run(live_server, live_token, "waits")
        assert run["status"] == "running" and run["finished_at"] is None

        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        process.kill() if process.poll() is None else None

    assert stdout == f"got {signum.name}\n".encode()  # the command got the signal
    assert process.returncode == 128 + signum
    run = stored_run(live_server, live_token, "waits")
    assert run["status"] == "failure"
    assert (run["error"]["type"], run["error"]["message"]) == ("Signal", signum.name)
    assert run["output"]["exit_code"] == 128 + signum


MEGABYTE_OF_LINES = """
import sys
for stream in (sys.stdout, sys.stderr):
    stream.write("".join(f"{i:07d} " + "x" * 55 + "\\n" for i in range(16384)))
"""


def test_a_megabyte_of_output_passes_through_whole_and_its_last_32_kb_are_stored(
        runwatch_script, live_server, live_token):
    expected = "".join(f"{i:07d} " + "x" * 55 + "\n" for i in range(16384)).encode()
    assert len(expected) == 1024 * 1024

    done, _ = runwatch(runwatch_script, "exec", "--workflow", "chatty", "--", PYTHON, "-c",
                       MEGABYTE_OF_LINES, env=client_env(live_server.url, live_token))

    assert done.returncode == 0
    assert done.stdout == expected and done.stderr == expected
    output = stored_run(live_server, live_token, "chatty")["output"]
    assert output["stdout_tail"] == output["stderr_tail"] == expected[-TAIL:].decode()
    assert len(output["stdout_tail"]) == TAIL


# --- The runwatch command when Runwatch cannot be reached ----------------------------------

class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers a byte."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                self.accepted.append(self.sock.accept()[0])
            except socket.timeout:
                continue

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("kind", ["closed port", "server that never answers"])
def test_an_unreachable_runwatch_warns_once_and_the_command_runs_with_its_exit_code(
        runwatch_script, request, kind):
    url = (f"http://127.0.0.1:{free_port()}" if kind == "closed port"
           else request.getfixturevalue("silent_server").url)

    # Waiting at most 1 s for Runwatch (8 s unless RUNWATCH_TIMEOUT says).
    done, seconds = runwatch(runwatch_script, "exec", "--url", url, "--token", "t", "--",
                             "sh", "-c", "echo ran; exit 5",
                             env={**client_env(), "RUNWATCH_TIMEOUT": "1"})

    assert done.returncode == 5
    assert done.stdout == b"ran\n"
    assert len(warnings_in(done.stderr)) == 1, done.stderr
    assert seconds <= 1 + 3, f"runwatch added {seconds:.1f} s"
    if kind != "closed port":
        assert request.getfixturevalue("silent_server").accepted, "it was never tried"


def test_a_timeout_setting_that_is_not_a_number_of_seconds_is_named_and_8_s_hold(
        runwatch_script, scripted):
    server = scripted([])

    done, _ = runwatch(runwatch_script, "exec", "--workflow", "timed", "--", "sh", "-c",
                       "exit 3", env={**client_env(server.url, "t"), "RUNWATCH_TIMEOUT": "0"})

    assert done.returncode == 3
    assert warnings_in(done.stderr) == [
        "runwatch: warning: RUNWATCH_TIMEOUT must be a number of seconds above 0, not '0'; "
        "waiting up to 8 s"]
    assert [method for method, _, _ in server.requests] == ["POST", "PATCH"]  # reported


@pytest.mark.parametrize("missing", ["RUNWATCH_URL", "RUNWATCH_TOKEN"])
def test_runwatch_exec_without_a_setting_names_it_first_and_still_runs_the_command(
        runwatch_script, scripted, missing):
    server = scripted([])
    given = {"RUNWATCH_URL": ["--url", server.url], "RUNWATCH_TOKEN": ["--token", "t"]}
    given.pop(missing)

    done, seconds = runwatch(runwatch_script, "exec", *sum(given.values(), []), "--",
                             "sh", "-c", "echo ran >&2; exit 4", env=client_env())

    assert done.returncode == 4  # the job's own exit code, as when Runwatch is down
    warning, ran = done.stderr.decode().splitlines()
    assert warning == (f"runwatch: warning: {missing} is not set (nor --{missing[9:].lower()}, "
                       f"nor {missing[9:].lower()}=): this run is not reported; the command "
                       "runs all the same")
    assert ran == "ran"  # the warning comes before the command's output
    assert server.requests == [] and seconds < 5


class ScriptedServer:
    """An HTTP server on 127.0.0.1 that answers each request with the next status of a
    script (then `then`; a redirect to `location` + the path when given), and records each
    connection, what it was sent and the Authorization header."""

    def __init__(self, statuses: list[int], then: int = 200, location: str | None = None):
        self.statuses = list(statuses)
        self.requests: list[tuple[str, str, dict | None]] = []
        self.authorizations: list[str | None] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def handle(self) -> None:
                server.connections += 1
                super().handle()

            def _answer(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                server.authorizations.append(self.headers.get("Authorization"))
                status = server.statuses.pop(0) if server.statuses else then
                answer = {"id": 7, "url": "http://runwatch.test/executions/7", "user": "x"} \
                    if status < 400 else {"error": {"code": "x", "message": f"status {status}"}}
                data = json.dumps(answer).encode()
                self.send_response(status)
                if location:
                    self.send_header("Location", location + self.path)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # Polled often, so that `close` (which waits for the loop to notice) is quick.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def scripted():
    servers = []

    def start(statuses: list[int], **options) -> ScriptedServer:
        servers.append(ScriptedServer(statuses, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_5xx_answers_are_tried_again_and_the_run_is_ended_with_a_patch(runwatch_script, scripted):
    server = scripted([503, 502, 201, 200])

    done, _ = runwatch(runwatch_script, "exec", "--workflow", "flaky", "--", "true",
                       env=client_env(server.url, "t"))

    assert done.returncode == 0 and done.stderr == b""
    assert [(method, path) for method, path, _ in server.requests] == [
        ("POST", EXECUTIONS)] * 3 + [("PATCH", f"{EXECUTIONS}/7")]
    assert server.requests[0][2]["status"] == "running"
    assert server.requests[3][2]["status"] == "success"


def test_a_run_gone_when_it_ends_is_posted_again_whole_under_its_external_id(
        runwatch_script, scripted):
    server = scripted([201, 404, 201])  # deleted (retention) while the command ran

    done, _ = runwatch(runwatch_script, "exec", "--workflow", "long", "--", "echo", "hi",
                       env=client_env(server.url, "t"))

    assert done.returncode == 0 and done.stderr == b""
    (_, _, start), (method, _, _), (_, _, again) = server.requests
    assert method == "PATCH"
    assert again["external_id"] == start["external_id"]
    assert again["started_at"] == start["started_at"]
    assert again["status"] == "success" and again["output"]["stdout_tail"] == "hi\n"


def test_a_4xx_answer_is_never_tried_again_and_the_end_is_posted_under_the_same_external_id(
        runwatch_script, scripted):
    server = scripted([401, 401])

    done, seconds = runwatch(runwatch_script, "exec", "--workflow", "locked", "--", "false",
                             env=client_env(server.url, "wrong"))

    assert done.returncode == 1
    assert len(warnings_in(done.stderr)) == 1 and "401" in done.stderr.decode()
    (_, _, start), (_, _, end) = server.requests  # one each: no retry
    assert start["status"] == "running" and end["status"] == "failure"
    assert start["external_id"] == end["external_id"]
    assert end["error"] == {"type": "ExitCode", "message": "exit code 1"}
    assert seconds < 5


@pytest.fixture
def elsewhere(scripted):
    """A second host, and a Runwatch address that redirects every request to it (302)."""
    target = scripted([])
    return scripted([], then=302, location=target.url), target


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_runwatch_ping_follows_no_redirect_and_names_where_it_led(
        runwatch_script, scripted, status):
    target = scripted([])
    redirector = scripted([], then=status, location=target.url)

    done, _ = runwatch(runwatch_script, "ping", env=client_env(redirector.url, "secret"))

    assert done.returncode == 1
    assert redirector.requests == [("GET", "/api/ping", None)]
    assert redirector.authorizations == ["Bearer secret"]
    assert target.connections == 0 and target.requests == []  # the token went nowhere else
    message = done.stderr.decode()
    assert f"redirect to {target.url}/api/ping" in message and str(status) in message
    assert done.stdout == b""


def test_runwatch_exec_follows_no_redirect_warns_once_and_passes_the_exit_code_through(
        runwatch_script, elsewhere):
    redirector, target = elsewhere

    done, seconds = runwatch(runwatch_script, "exec", "--", "sh", "-c", "echo ran; exit 4",
                             env=client_env(redirector.url, "secret"))

    assert done.returncode == 4 and done.stdout == b"ran\n"
    assert target.connections == 0 and target.requests == []
    (warning,) = warnings_in(done.stderr)
    assert f"redirect to {target.url}{EXECUTIONS}" in warning
    # Never tried again: the start, then the end posted whole (no id came back to PATCH).
    assert [(method, path) for method, path, _ in redirector.requests] == [
        ("POST", EXECUTIONS), ("POST", EXECUTIONS)]
    assert seconds < 5


def test_the_python_api_follows_no_redirect_and_warns_naming_where_it_led(elsewhere):
    redirector, target = elsewhere

    with pytest.warns(runwatch_client.RunwatchWarning) as caught:
        with runwatch_client.run("moved", url=redirector.url, token="secret") as run:
            with run.step("work") as step:
                step.output = {"done": True}

    assert target.connections == 0 and target.requests == []
    assert redirector.requests and set(redirector.authorizations) == {"Bearer secret"}
    (warning,) = [str(w.message) for w in caught]
    assert f"redirect to {target.url}{EXECUTIONS}" in warning


# --- The Python API --------------------------------------------------------------------------

def backup(url: str, token: str) -> None:
    with runwatch_client.run("nightly-backup", input={"db": "main"}, url=url,
                             token=token) as run:
        with run.step("dump", action="pg_dump") as step:
            step.output = {"bytes": 1234}
        with run.step("upload", action="s3.put"):
            with run.step("compress") as inner:
                inner.log("compressing")
                raise ValueError("disk full")


def test_the_python_api_stores_nested_steps_in_order_and_an_exception_with_its_traceback(
        live_server, live_token):
    with pytest.raises(ValueError, match="disk full"):  # re-raised as it was
        backup(live_server.url, live_token)

    run = stored_run(live_server, live_token, "nightly-backup")
    assert run["status"] == "failure" and run["input"] == {"db": "main"}
    assert [(s["position"], s["name"], s["action"], s["status"]) for s in run["steps"]] == [
        (0, "dump", "pg_dump", "success"), (1, "upload", "s3.put", "failure"),
        (2, "compress", None, "failure")]
    assert run["steps"][0]["output"] == {"bytes": 1234}
    assert run["steps"][2]["logs"] == "compressing"
    assert run["failed_step"] == 1
    for error in (run["error"], run["steps"][2]["error"]):
        assert error["type"] == "ValueError" and error["message"] == "disk full"
        assert error["stack"].startswith("Traceback (most recent call last):")
        assert 'raise ValueError("disk full")' in error["stack"]
        assert error["stack"].rstrip().endswith("ValueError: disk full")
    assert "in backup" in run["error"]["stack"]


def test_the_workflow_decorator_reports_each_call_of_a_function_or_coroutine(
        live_server, live_token):
    @runwatch_client.workflow("doubler", url=live_server.url, token=live_token)
    def double(x: int) -> int:
        with runwatch_client.step("multiply", action="math") as step:
            step.output = {"result": x * 2}
        return x * 2

    @runwatch_client.workflow("waiter", url=live_server.url, token=live_token)
    async def wait_and_fail() -> None:
        with runwatch_client.step("sleep"):
            await asyncio.sleep(0.01)
        raise TimeoutError("gave up")

    assert double(21) == 42
    # In a thread of its own: the browser tests' driver may run an event loop in this one.
    raised: list[BaseException] = []

    def in_a_new_loop() -> None:
        try:
            asyncio.run(wait_and_fail())
        except BaseException as exc:  # noqa: B036 (handed back to the test)
            raised.append(exc)

    worker = threading.Thread(target=in_a_new_loop)
    worker.start()
    worker.join(timeout=30)
    assert [type(exc) for exc in raised] == [TimeoutError]

    run = stored_run(live_server, live_token, "doubler")
    assert run["status"] == "success"
    assert [(s["name"], s["output"]) for s in run["steps"]] == [("multiply", {"result": 42})]
    run = stored_run(live_server, live_token, "waiter")
    assert run["status"] == "failure" and run["error"]["type"] == "TimeoutError"
    assert [(s["name"], s["status"]) for s in run["steps"]] == [("sleep", "success")]
    assert run["steps"][0]["finished_at"] < run["finished_at"]


def test_the_python_api_warns_when_runwatch_is_unreachable_and_never_raises_its_own_error(
        monkeypatch):
    monkeypatch.setenv("RUNWATCH_TIMEOUT", "1")  # the Python API heeds it too
    began = time.monotonic()
    with pytest.warns(runwatch_client.RunwatchWarning, match="cannot reach"):
        with pytest.raises(KeyError, match="the user's own"):
            with runwatch_client.run("offline", url=f"http://127.0.0.1:{free_port()}",
                                     token="t") as run:
                with run.step("work") as step:
                    step.output = {"done": True}
                raise KeyError("the user's own")
    assert time.monotonic() - began < 10


def test_the_error_message_is_the_last_stderr_line_without_its_colour_codes():
    from runwatch_client.process import last_line
    assert last_line("saving\n\x1b[1;31merror:\x1b[0m disk \x1b]0;title\x07full\n\n") == \
        "error: disk full"
    assert last_line("\x1b[0m\n  \n") is None
