"""Asking an engine's API: one JSON POST at a time, through the same door as webhooks
(`alerts.outbound.post`: the private-address rule, one checked look-up, a deadline for the
whole request), every failure a `PullError` that says what went wrong in a person's words."""
from __future__ import annotations

import json
from dataclasses import dataclass

from alerts.outbound import TransportError, post

ANSWER_BYTES = 32 * 1024 * 1024  # the largest answer read: a page of runs is far smaller
SHOWN_BYTES = 300  # of an answer that is not what was asked, quoted in the error


class PullError(Exception):
    """A pull that could not go on: the engine did not answer, refused, or answered
    something else than its API's JSON."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Remote:
    """An engine's API: its base URL, the headers each request carries (the credentials),
    whether a private address may be asked, and the deadline of each request."""

    url: str
    headers: dict[str, str]
    allow_private: bool
    timeout: float

    def post_json(self, path: str, body: object):
        """POST `body` as JSON to `path` under the base URL; the parsed answer."""
        target = self.url.rstrip("/") + path
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": "Runwatch-Sources/1", **self.headers}
        try:
            answer = post(target, json.dumps(body).encode(), headers,
                          allow_private=self.allow_private, timeout=self.timeout,
                          keep_body=True, body_limit=ANSWER_BYTES)
        except TransportError as exc:
            raise PullError(f"POST {path}: {exc.message}") from None
        if not 200 <= answer.status < 300:
            raise PullError(f"POST {path}: the server answered {answer.summary}"
                            + (f": {answer.body[:SHOWN_BYTES]}" if answer.body else ""))
        if answer.cut:
            raise PullError(f"POST {path}: the answer was cut short (larger than "
                            f"{ANSWER_BYTES} bytes, or broken off)")
        try:
            return json.loads(answer.body)
        except ValueError:
            raise PullError(f"POST {path}: the answer is not JSON: "
                            f"{answer.body[:SHOWN_BYTES]!r}") from None
