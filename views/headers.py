"""Security headers on every response, and a strict Content-Security-Policy on pages.

The pages hold no inline script or style and htmx runs without `eval` (see the
`htmx-config` meta tag in base.html), so the policy allows only our own files; pico's
form icons are `data:` images inside its stylesheet.
"""
from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # filter URLs stay inside Runwatch
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure(response: Response) -> Response:
    """Add the headers; nothing but our static files may be kept in a cache."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.endpoint != "static":
        # Pages and API answers hold runs, tokens and webhook secrets.
        response.headers["Cache-Control"] = "no-store"
    return response


def register(app: Flask) -> None:
    """Send the headers on every response, errors included."""
    app.after_request(secure)
