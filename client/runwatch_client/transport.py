"""HTTP calls to Runwatch: short timeouts, bounded retries, and a deadline the caller sets."""
from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from . import __version__

CALL_TIMEOUT = 3.0  # one HTTP call, from connecting to the last byte of the answer
WAIT = 8.0  # the most the end of a run waits for Runwatch in all, unless RUNWATCH_TIMEOUT says
ATTEMPTS = 3  # per report; only 5xx answers and connection errors are tried again
BACKOFF = (0.25, 0.75)  # the waits between attempts
MAX_ANSWER = 1 << 20  # Runwatch's answers to reports are a few hundred bytes


class Unreachable(Exception):
    """Runwatch gave no usable answer before the deadline (refused, hung, 5xx, a redirect),
    or cannot be asked at all (no address or no token set)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Never follows a redirect: the request carries the token, which must not go to
    whatever address a 3xx names. The 3xx comes back as an HTTPError instead."""

    def redirect_request(self, *args, **kwargs):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class Reply:
    """An answer below 500: its status and its JSON body (None when it is not JSON)."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        """`401 unauthorized: …`, from Runwatch's error document when there is one."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if isinstance(error, dict):
            return f"{self.status} {error.get('code', '')}: {error.get('message', '')}".strip()
        return f"HTTP {self.status}"


def settings(url: Optional[str], token: Optional[str]) -> "tuple[Optional[str], Optional[str]]":
    """The Runwatch address and token: the arguments, else RUNWATCH_URL and RUNWATCH_TOKEN."""
    url = url or os.environ.get("RUNWATCH_URL") or None
    token = token or os.environ.get("RUNWATCH_TOKEN") or None
    return (url.rstrip("/") if url else None), token


def wait_setting() -> "tuple[float, Optional[str]]":
    """The most the end of a run waits for Runwatch, in seconds (RUNWATCH_TIMEOUT, default
    WAIT), and what is wrong with the setting when it cannot be used (WAIT holds then)."""
    given = os.environ.get("RUNWATCH_TIMEOUT", "").strip()
    if not given:
        return WAIT, None
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        shown = "".join(c if c.isprintable() else "?" for c in given)[:100]
        return WAIT, (f"RUNWATCH_TIMEOUT must be a number of seconds above 0, not {shown!r}; "
                      f"waiting up to {WAIT:g} s")
    return seconds, None


class Transport:
    """Sends JSON to one Runwatch with one token."""

    def __init__(self, url: Optional[str], token: Optional[str]):
        self.url, self.token = settings(url, token)
        self.wait, self.wait_problem = wait_setting()

    def unset(self) -> Optional[str]:
        """Which settings are missing, by name (None when both are there): without an
        address nothing can be sent, and without a token every request would get 401."""
        missing = [f"{variable} is not set (nor --{option}, nor {option}=)"
                   for variable, option, value in (("RUNWATCH_URL", "url", self.url),
                                                   ("RUNWATCH_TOKEN", "token", self.token))
                   if not value]
        return " and ".join(missing) or None

    def send(self, method: str, path: str, body: Any, deadline: float) -> Reply:
        """One request, tried again on 5xx and connection errors until `deadline`
        (a `time.monotonic()` value); a 4xx is answered at once. Raises Unreachable."""
        unset = self.unset()
        if unset:
            raise Unreachable(unset)
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        reason = "no time left to try"
        for attempt in range(ATTEMPTS):
            remaining = deadline - time.monotonic()
            if remaining < 0.05:
                break
            try:
                status, raw, location = self._call_once(method, path, data,
                                                        min(CALL_TIMEOUT, remaining))
            except Exception as exc:  # refused, reset, timed out, not HTTP at all
                reason = f"cannot reach {self.url}: {_describe(exc)}"
            else:
                if 300 <= status < 400:
                    raise Unreachable(self._redirected(path, status, location))
                if status < 500:
                    return Reply(status, _json(raw))
                reason = f"{self.url} answered {Reply(status, _json(raw)).describe()}"
            if attempt + 1 < ATTEMPTS:
                pause = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                if time.monotonic() + pause >= deadline:
                    break
                time.sleep(pause)
        raise Unreachable(reason)

    def _redirected(self, path: str, status: int, location: Optional[str]) -> str:
        """What to tell the user of a redirect, which is not followed."""
        if not location:
            return f"{self.url} answered {status} (a redirect) without a Location; not followed"
        target = urllib.parse.urljoin(self.url + path, location)
        target = "".join(c if c.isprintable() else "?" for c in target)[:500]
        return (f"{self.url} answered {status}, a redirect to {target}; redirects are not "
                "followed, so that the token goes nowhere else: if that is Runwatch, set "
                "RUNWATCH_URL (or --url, or url=) to its address")

    def _call_once(self, method: str, path: str, data: Optional[bytes],
                   timeout: float) -> "tuple[int, bytes, Optional[str]]":
        """One HTTP exchange, given up after `timeout` seconds in all.

        urllib's timeout applies to each socket operation, so a server that trickles its
        answer could hold a call for ever; the call runs in a daemon thread instead, which
        is abandoned (and ends at its own socket timeout) once the time is up.
        """
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": f"runwatch-client/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers=headers)
        outcome: dict = {}

        def exchange() -> None:
            try:
                with _OPENER.open(request, timeout=timeout) as answer:
                    outcome["answer"] = (answer.status, answer.read(MAX_ANSWER), None)
            except urllib.error.HTTPError as exc:  # every status outside 2xx, 3xx included
                location = exc.headers.get("Location") if exc.headers else None
                try:
                    outcome["answer"] = (exc.code, exc.read(MAX_ANSWER), location)
                except Exception:
                    outcome["answer"] = (exc.code, b"", location)
                finally:
                    exc.close()
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=exchange, name="runwatch-http", daemon=True)
        worker.start()
        worker.join(timeout + 0.05)
        if "answer" in outcome:
            return outcome["answer"]
        if "error" in outcome:
            raise outcome["error"]
        raise TimeoutError(f"no answer within {timeout:.1f} s")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError) or type(exc).__name__ == "timeout":
        return str(exc) or "timed out"
    text = getattr(exc, "strerror", None) or str(exc)
    return text or type(exc).__name__
