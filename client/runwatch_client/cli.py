"""The `runwatch` command: `runwatch exec -- CMD [ARG…]` reports a command's run to Runwatch."""
from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from typing import List, Optional

from . import __version__
from .process import Finished, SignalForwarder, last_line, run_command
from .report import RunReport, error, now
from .transport import CALL_TIMEOUT, Transport, Unreachable

DESCRIPTION = """\
Report runs to Runwatch. The address and token come from --url/--token or the environment
variables RUNWATCH_URL and RUNWATCH_TOKEN (a token with the ingest scope)."""

EXEC_HELP = """\
Run CMD, reporting it to Runwatch as running when it starts, then as success or failure with
its exit code and the last 32 KB of its stdout and stderr (which still reach the terminal as
they come). Exits with the command's exit code (128+N when signal N ended it). When Runwatch
cannot be reached, a warning goes to stderr and the command runs all the same."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="runwatch", description=DESCRIPTION)
    top.add_argument("--version", action="version", version=f"runwatch-client {__version__}")
    commands = top.add_subparsers(dest="action", metavar="COMMAND")
    commands.required = True

    run = commands.add_parser("exec", help="run a command and report it",
                              description=EXEC_HELP,
                              usage="runwatch exec [--workflow NAME] [--external-id ID] "
                                    "[--rerun-of ID] [--url URL] [--token TOKEN] "
                                    "-- CMD [ARG ...]")
    run.add_argument("--workflow", metavar="NAME",
                     help="the workflow's name (default: the command's file name)")
    run.add_argument("--external-id", metavar="ID",
                     help="the run's external_id (default: a new random one)")
    run.add_argument("--rerun-of", metavar="ID", type=int,
                     help="the id of the run this one runs again (from a re-run request)")
    _connection(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG ...]",
                     help="the command, after --")

    ping = commands.add_parser("ping", help="check the address and the token",
                               description="Ask Runwatch whose token this is (GET /api/ping).")
    _connection(ping)
    return top


def _connection(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", help="Runwatch's address (default: $RUNWATCH_URL)")
    command.add_argument("--token", help="an API token (default: $RUNWATCH_TOKEN)")


def main(argv: Optional[List[str]] = None) -> int:
    """The console script; returns the exit code."""
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.action == "ping":
        return ping(args.url, args.token)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser().error("exec: give the command to run after --, e.g. runwatch exec -- "
                       "./backup.sh")
    return execute(command, args.workflow, args.external_id, args.url, args.token,
                   rerun_of=args.rerun_of)


def warn(message: str) -> None:
    try:
        sys.stderr.write(f"runwatch: warning: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def execute(command: List[str], workflow: Optional[str] = None,
            external_id: Optional[str] = None, url: Optional[str] = None,
            token: Optional[str] = None, rerun_of: Optional[int] = None) -> int:
    """Run `command`, report it, and return the exit code a shell would give."""
    transport = Transport(url, token)
    report = RunReport(transport,
                       workflow or os.path.basename(command[0].rstrip("/")) or command[0],
                       external_id, input={"command": command, "host": socket.gethostname()},
                       on_problem=lambda problem: warn(f"could not report to Runwatch: {problem}"),
                       rerun_of=rerun_of)
    unset = transport.unset()
    if unset:
        # Said before the command's own output, once; the job itself still runs (cron
        # mails the warning), as when Runwatch is down.
        report.problem = unset
        warn(f"{unset}: this run is not reported; the command runs all the same")
    if transport.wait_problem:
        warn(transport.wait_problem)
    with SignalForwarder() as forwarder:
        started_at = now()
        try:
            # The start report goes out alongside the command, which it never delays.
            finished = run_command(command, forwarder,
                                   on_start=lambda: report.start(started_at))
        except OSError as exc:
            report.started_at = started_at
            return _not_started(report, command, exc)
        # Still within the forwarder: a SIGTERM now waits for the (bounded) report.
        report.finish(*outcome(finished))
    return finished.exit_code


def outcome(finished: Finished) -> tuple:
    """status, output and error of a finished command."""
    output = {"exit_code": finished.exit_code, "stdout_tail": finished.stdout_tail,
              "stderr_tail": finished.stderr_tail}
    if finished.exit_code == 0 and finished.signal_number is None:
        return "success", output, None
    said = last_line(finished.stderr_tail)
    if finished.signal_number is not None:
        return "failure", output, error("Signal", said or finished.signal_name)
    return "failure", output, error("ExitCode", said or f"exit code {finished.exit_code}")


def _not_started(report: RunReport, command: List[str], exc: OSError) -> int:
    """A command that cannot be started: 127 when it is not found, else 126 (as shells)."""
    exit_code = 127 if isinstance(exc, FileNotFoundError) else 126
    message = f"runwatch: {command[0]}: {exc.strerror or exc}"
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    report.finish("failure", {"exit_code": exit_code, "stdout_tail": "",
                              "stderr_tail": message + "\n"},
                  error("ExitCode", message))
    return exit_code


def ping(url: Optional[str], token: Optional[str]) -> int:
    """Check the address and the token: 0 when Runwatch knows the token."""
    transport = Transport(url, token)
    try:
        reply = transport.send("GET", "/api/ping", None, time.monotonic() + 2 * CALL_TIMEOUT)
    except Unreachable as exc:
        print(f"runwatch: {exc}", file=sys.stderr)
        return 1
    if not reply.ok:
        print(f"runwatch: {transport.url} answered {reply.describe()}", file=sys.stderr)
        return 1
    user = reply.body.get("user") if isinstance(reply.body, dict) else None
    print(f"ok: {transport.url} knows this token (account {user})")
    return 0
