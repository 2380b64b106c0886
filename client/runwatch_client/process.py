"""Running a command: its output passed through as it comes with the last 32 KB of each
stream kept, and SIGINT and SIGTERM passed on to it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Callable, List, Optional

TAIL_BYTES = 32 * 1024
DRAIN_GRACE = 1.0  # after the command ends, how long to wait for a pipe a child of it holds
FORWARDED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM") if hasattr(signal, n))


class Tail:
    """The last `limit` bytes written to a stream."""

    def __init__(self, limit: int = TAIL_BYTES):
        self.limit = limit
        self._data = bytearray()
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._data += chunk
            if len(self._data) > 2 * self.limit:  # trim now and then, not on every chunk
                del self._data[:-self.limit]

    def text(self) -> str:
        """The tail as text (UTF-8, undecodable bytes replaced), not starting mid-character."""
        with self._lock:
            data = bytes(self._data)
        if len(data) > self.limit:
            data = data[-self.limit:]
            start = 0
            while start < 3 and start < len(data) and 0x80 <= data[start] < 0xC0:
                start += 1
            data = data[start:]
        return data.decode("utf-8", "replace")


# Terminal escape sequences (colours, cursor moves): an error message is read as plain text.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")


def last_line(text: str) -> Optional[str]:
    """The last line of `text` that is not blank, stripped of its escape sequences."""
    for line in reversed(_ESCAPES.sub("", text).splitlines()):
        if line.strip():
            return line.strip()
    return None


class Pump(threading.Thread):
    """Copies a pipe to one of our own file descriptors as data comes, keeping its tail."""

    def __init__(self, source: IO[bytes], target_fd: int):
        super().__init__(name=f"runwatch-pump-{target_fd}", daemon=True)
        self.source = source
        self.target_fd = target_fd
        self.tail = Tail()
        self.passing = True  # until our own stream is closed (EPIPE): then only the tail
        self.writing = False
        self.activity = time.monotonic()

    def run(self) -> None:
        fd = self.source.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.activity = time.monotonic()
            self.tail.add(chunk)
            if self.passing:
                self.writing = True
                try:
                    _write_all(self.target_fd, chunk)
                except OSError:
                    self.passing = False
                finally:
                    self.writing = False
                    self.activity = time.monotonic()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def drain(pumps: List[Pump], since: float, grace: float = DRAIN_GRACE) -> None:
    """Wait for the pipes to reach their end; give up on a pipe that stays silent for
    `grace` seconds after `since` (a background child of the command may hold it open)."""
    while True:
        alive = [p for p in pumps if p.is_alive()]
        if not alive:
            return
        idle = all(not p.writing and time.monotonic() - max(p.activity, since) > grace
                   for p in alive)
        if idle:
            return
        alive[0].join(0.05)


def _terminal_sends_sigint() -> bool:
    """Whether we run in the foreground of a terminal: a Ctrl-C there reaches the command
    (in our process group) by itself, and must not reach it twice."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


class SignalForwarder:
    """Passes SIGINT and SIGTERM received by this process on to the command."""

    def __init__(self):
        self.process: Optional[subprocess.Popen] = None
        self.pending: List[int] = []
        self._previous: dict = {}

    def __enter__(self) -> "SignalForwarder":
        for signum in FORWARDED:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (ValueError, OSError):  # not the main thread, or not allowed here
                pass
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def attach(self, process: subprocess.Popen) -> None:
        """Forward to `process` from now on, and what arrived before it started."""
        self.process = process
        pending, self.pending = self.pending, []
        for signum in pending:
            self._forward(signum)

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and _terminal_sends_sigint():
            return
        if self.process is None:
            self.pending.append(signum)
        else:
            self._forward(signum)

    def _forward(self, signum: int) -> None:
        try:
            self.process.send_signal(signum)  # nothing once the command has ended
        except (ProcessLookupError, OSError):
            pass


class Finished:
    """How the command ended: exit status as a shell reports it, and its streams' tails."""

    def __init__(self, exit_code: int, signal_number: Optional[int], stdout_tail: str,
                 stderr_tail: str):
        self.exit_code = exit_code
        self.signal_number = signal_number
        self.stdout_tail = stdout_tail
        self.stderr_tail = stderr_tail

    @property
    def signal_name(self) -> Optional[str]:
        if self.signal_number is None:
            return None
        try:
            return signal.Signals(self.signal_number).name
        except ValueError:
            return f"signal {self.signal_number}"


def run_command(command: List[str], forwarder: SignalForwarder,
                on_start: Optional[Callable[[], None]] = None) -> Finished:
    """Run `command` to its end, calling `on_start` once it has started (OSError when it
    cannot be started)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    forwarder.attach(process)
    if on_start is not None:
        on_start()
    pumps = [Pump(process.stdout, sys.stdout.fileno()), Pump(process.stderr, sys.stderr.fileno())]
    for pump in pumps:
        pump.start()
    returncode = process.wait()
    drain(pumps, since=time.monotonic())
    for pump in pumps:
        if not pump.is_alive():
            pump.source.close()
    signal_number = -returncode if returncode < 0 else None
    exit_code = 128 + signal_number if signal_number else returncode
    return Finished(exit_code, signal_number, pumps[0].tail.text(), pumps[1].tail.text())
