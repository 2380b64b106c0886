"""How a service's answer is read, and the one way a message is posted to a service.

A 2xx is delivered. A 429 (rate limited), a 408 or a 5xx may work later: a failed attempt,
retried with backoff. Any other answer will not change by asking again (a wrong or removed
URL, a revoked key, a body the service refuses, a redirect, which is not followed): a
permanent failure, its message saying so and what to fix.
"""
from __future__ import annotations

import json

from ..config import AlertConfig
from ..outbound import Answer, TransportError, post
from .facts import cut

USER_AGENT = "Runwatch-Alerts/1"
SAID_CHARS = 300  # of a refusal's body in the delivery log
# What a lasting refusal most likely means, by status; the service's own words follow.
LASTING = {
    400: "the service refused the message or its key",
    401: "the key or URL is not accepted (revoked or wrong)",
    403: "the key or URL is not allowed to post (revoked, or the channel is archived)",
    404: "the URL or key does not exist (wrong, or the webhook was removed)",
    410: "the webhook was removed",
    413: "the message is too large for the service",
}


def read_answer(service: str, answer: Answer) -> str:
    """The delivery log's line for a 2xx answer; TransportError for any other, permanent
    unless asking again may help (429, 408, 5xx)."""
    words = " ".join(answer.body.split())  # an error page's markup on one line, cut short
    said = f"{answer.summary}: {cut(words, SAID_CHARS)}" if words else answer.summary
    if 200 <= answer.status < 300:
        return answer.summary
    if answer.status == 429:
        wait = answer.headers.get("retry-after")
        later = (f" (it asks to wait {wait} s)" if wait and wait.isdigit()
                 else f" (it asks to wait until {wait})" if wait else "")
        raise TransportError(f"{service} is limiting the rate of messages{later}; "
                             f"retried later: {said}", answer.summary)
    if answer.status == 408 or answer.status >= 500:
        raise TransportError(f"{service} could not take the message now; retried later: {said}",
                             answer.summary)
    if 300 <= answer.status < 400:
        where = answer.headers.get("location", "another address")
        raise TransportError(f"{service} answered with a redirect to {where}, which is not "
                             f"followed: set the channel to the URL it points to; it is not retried ({said})",
                             answer.summary, permanent=True)
    meaning = LASTING.get(answer.status, "the service refused the message")
    raise TransportError(f"{service} refused for good: {meaning}; fix the channel, it is not "
                         f"retried ({said})", answer.summary, permanent=True)


def post_json(service: str, url: str, message: dict, config: AlertConfig,
              headers: dict[str, str] | None = None) -> str:
    """POST `message` as JSON to `url` through the outbound rules (private addresses refused
    unless allowed, one deadline for the whole attempt) and read the answer."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
    answer = post(url, body, {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                              **(headers or {})},
                  allow_private=config.webhook_allow_private, timeout=config.webhook_timeout)
    return read_answer(service, answer)
