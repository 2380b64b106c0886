"""Helpers shared by the views: JSON errors, full page or partial, safe redirects."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import peewee
from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from models.availability import is_unavailable
from models.schemas import InputError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 asks a client to wait while the database is away


# Machine routes outside /api: a bearer token alone opens them (OTLP/HTTP intake, whose
# other signals' paths are /v1/metrics and /v1/logs: not served, but never a page either;
# and Prometheus' scrape).
TOKEN_ONLY_PREFIX = "/v1/"
TOKEN_ONLY_PATHS = frozenset({"/metrics"})


def is_api_request() -> bool:
    """Whether the request is for the JSON API."""
    return request.path == "/api" or request.path.startswith("/api/")


def is_token_only_request() -> bool:
    """Whether the request is for a machine route that takes a bearer token alone."""
    return request.path.startswith(TOKEN_ONLY_PREFIX) or request.path in TOKEN_ONLY_PATHS


def api_error(status: int, code: str, message: str, field: str | None = None):
    """An API error response: `{"error": {"code", "message", "field"?}}`."""
    error = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return jsonify({"error": error}), status


def input_error_response(exc: InputError):
    """The 4xx answer for an invalid request body or parameter."""
    return api_error(exc.status, exc.code, exc.message, exc.field)


def wants_partial() -> bool:
    """Partial only for htmx requests that are not a history restore nor a boosted link."""
    headers = request.headers
    return (headers.get("HX-Request") == "true"
            and headers.get("HX-History-Restore-Request") != "true"
            and headers.get("HX-Boosted") != "true")


def render_page(full: str, partial: str, status: int = 200, **context):
    """Render the full page, or just its partial for htmx; responses vary on HX-Request.

    The one place that decides page or partial: every view that answers both goes here.
    """
    body = render_template(partial if wants_partial() else full, **context)
    return body, status, {"Vary": "HX-Request"}


def render_fragment(template: str, headers: dict | None = None, **context):
    """A partial that only htmx asks for (after a POST); it too varies on HX-Request."""
    return render_template(template, **context), 200, {"Vary": "HX-Request", **(headers or {})}


def safe_next(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default` (no open redirects)."""
    if not target:
        return default
    target = target.strip()
    parts = urlsplit(target)
    if (parts.scheme or parts.netloc or not target.startswith("/")
            or target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target)):
        return default
    return target


def with_headers_of(exc: HTTPException, response: Response) -> Response:
    """`response` with the headers `exc` asks for besides its own body's (a 405's `Allow`,
    which RFC 9110 requires, listing the methods the URL answers)."""
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """JSON errors on the API; friendly pages elsewhere."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return with_headers_of(exc, app.make_response(_http_error_body(exc)))

    def _http_error_body(exc: HTTPException):
        if is_api_request() or is_token_only_request():
            code = (exc.name or "error").lower().replace(" ", "_")
            message = exc.description or exc.name
            if exc.code == 413:
                message = (f"The request body is larger than "
                           f"{app.config['MAX_PAYLOAD_BYTES']} bytes.")
            elif exc.code == 400 and "CSRF" in (exc.description or ""):
                code = "csrf"
            return api_error(exc.code or 500, code, message)
        if exc.code == 400 and "CSRF" in (exc.description or ""):
            message = "Your form has expired or was not sent from this site. Please try again."
        else:
            message = exc.description
        return render_template("errors/error.html", error=exc, message=message), exc.code

    @app.errorhandler(peewee.DatabaseError)
    @app.errorhandler(peewee.InterfaceError)
    def _database_error(exc: peewee.DatabaseError):
        if not is_unavailable(exc):
            raise exc  # a mistake, not an outage: the usual 500
        return unavailable_response(exc)

    @app.errorhandler(InputError)
    def _input_error(exc: InputError):
        return input_error_response(exc)


def unavailable_response(exc: BaseException):
    """503 while the database does not answer: the API's JSON error `unavailable`, or a short
    page that needs no database, with Retry-After either way; one log line, no traceback."""
    log.warning("database unavailable: %s %s: %s", request.method, request.path,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if request.path == "/healthz":
        return jsonify({"status": "error", "database": "unavailable"}), 503, headers
    message = ("The database does not answer right now. Runwatch reconnects by itself; "
               f"try again in {RETRY_AFTER_SECONDS} seconds.")
    if is_api_request() or is_token_only_request():
        body, status = api_error(503, "unavailable", message)
        return body, status, headers
    again = safe_next(request.full_path.rstrip("?"), "/")
    # Rendered without the context processors: Flask-Login's would load the signed-in user
    # from the database that just failed (and turn this 503 into a 500).
    page = current_app.jinja_env.get_template("errors/unavailable.html")
    return page.render(message=message, again=again), 503, headers
