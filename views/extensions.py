"""The Flask extensions, created once and bound in `init_app`, and how they find the user."""
from __future__ import annotations

import math
import time
from datetime import timedelta

from flask import Flask, Request, g, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_wtf import CSRFProtect
from limits import parse_many
from limits.errors import ConfigurationError

from models.users import ALL_SCOPES, load_session_user, token_owner

from .common import api_error, is_api_request, is_token_only_request

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.session_protection = "basic"
# Limits are declared where they apply (the login form); none apply by default.
limiter = Limiter(key_func=get_remote_address, strategy="moving-window",
                  in_memory_fallback_enabled=True)

# How long "Keep me signed in" lasts; signing out or a password change ends it sooner.
REMEMBER_DAYS = 30


def init_app(app: Flask) -> None:
    """Cookie settings, then CSRF, Flask-Login and Flask-Limiter on `app`."""
    # Cookies go over https only when the site is served over https.
    secure = str(app.config["BASE_URL"]).lower().startswith("https://")
    for prefix in ("SESSION_COOKIE", "REMEMBER_COOKIE"):
        app.config.update({f"{prefix}_SECURE": secure, f"{prefix}_SAMESITE": "Lax",
                           f"{prefix}_HTTPONLY": True})
    if secure:
        # The __Host- prefix: the browser takes these cookies only from this very host over
        # https, so no sibling sub-domain can plant a session or remember-me cookie.
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
        app.config["REMEMBER_COOKIE_NAME"] = "__Host-remember_token"
    app.config["REMEMBER_COOKIE_DURATION"] = timedelta(days=REMEMBER_DAYS)
    try:
        if not parse_many(str(app.config["LOGIN_RATE_LIMIT"])):
            raise ValueError
    except ValueError:
        raise SystemExit("RUNWATCH_LOGIN_RATE_LIMIT must read like '10 per minute', not "
                         f"{app.config['LOGIN_RATE_LIMIT']!r}") from None
    csrf.init_app(app)
    login_manager.init_app(app)
    try:
        limiter.init_app(app)
    except ConfigurationError as exc:
        raise SystemExit(f"RUNWATCH_RATELIMIT_STORAGE_URI: {exc}") from None
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def bearer_sent(request: Request) -> bool:
    """Whether an API (or token-only) request carries credentials of its own, which then
    decide alone."""
    return (is_api_request() or is_token_only_request()) and "Authorization" in request.headers


@login_manager.request_loader
def _load_user_from_bearer(request: Request):
    if not bearer_sent(request):
        return None
    scheme, _, token = request.headers["Authorization"].partition(" ")
    found = token_owner(token.strip()) if scheme.lower() == "bearer" else None
    if found is None:
        return None
    user, g.token_scopes = found
    return user


@login_manager.user_loader
def _load_user(session_id: str):
    # A sent token decides, not the session or remember-me cookie the client also holds
    # (Flask-Login asks the request loader only when neither names a user).
    if bearer_sent(request):
        return _load_user_from_bearer(request)
    return load_session_user(session_id)


def current_scopes() -> frozenset[str]:
    """What the current request may do: a token's scopes, every scope for a browser session,
    none without credentials."""
    if not current_user.is_authenticated:  # also loads the user (and a token's scopes)
        return frozenset()
    return g.get("token_scopes", ALL_SCOPES)


def sees_secrets() -> bool:
    """Whether the caller may read secrets whole (webhook secrets, unmasked payloads):
    `admin` tokens and browser sessions. Others get what the pages show, masked."""
    return "admin" in current_scopes()


def reset_time(limit) -> float:
    """When a `RequestLimit` lets the next request through, as a UNIX time (its `reset_at`
    is a whole second later: a limit per minute would say 61 seconds)."""
    return limit.window.reset_time


def retry_after_seconds(reset_at: float) -> int:
    """Whole seconds until `reset_at` (a UNIX time), at least 1."""
    return max(1, math.ceil(reset_at - time.time()))


def _rate_limited(exc: RateLimitExceeded):
    """429 with Retry-After: the limit's own answer when it has one, else a page or JSON."""
    if exc.response is not None:
        return exc.response
    limit = limiter.current_limit
    seconds = retry_after_seconds(reset_time(limit)) if limit else 60
    message = f"Too many requests. Try again in {seconds} seconds."
    if is_api_request():
        response, status = api_error(429, "rate_limited", message)
    else:
        response, status = render_template("errors/error.html", error=exc,
                                           message=message), 429
    return response, status, {"Retry-After": str(seconds)}

