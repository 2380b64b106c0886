"""Signing in and out, the first-run account, and the guard in front of every route."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from flask import (Blueprint, Response, current_app, flash, g, jsonify, make_response, redirect,
                   render_template, request, session, url_for)
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from models.users import (MIN_PASSWORD_LENGTH, SCOPES, AccountError, authenticate,
                          create_first_user, end_sessions, has_users)

from .common import api_error, is_api_request, is_token_only_request, safe_next
from .extensions import REMEMBER_DAYS, bearer_sent, csrf, limiter, retry_after_seconds

bp = Blueprint("auth", __name__)
log = logging.getLogger(__name__)

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "health.healthz", "static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# The scope a token needs, decided here alone. A token may call a route when it has one of
# the scopes `scopes_allowed` answers; a browser session has every scope. `admin` opens
# every route; `read` every GET under /api; `ingest` the routes that report runs; `metrics`
# `GET /metrics` alone (which `read` opens too). A route
# that is listed nowhere needs `admin`, so a new one is closed to narrower tokens until
# it is listed here.
INGEST_ENDPOINTS = frozenset({"ingest.create", "ingest.create_batch", "ingest.update",
                              "ingest.steps", "auth.ping"})
INGEST_PATHS = frozenset({"/v1/traces"})
# Exceptions to the rules above, by endpoint: the scopes (besides `admin`) that open it.
SCOPE_OVERRIDES: dict[str, frozenset[str]] = {
    "metrics.scrape": frozenset({"metrics", "read"}),  # Prometheus: GET /metrics
}


class TextForm(FlaskForm):
    """A form whose text fields take text alone. A JSON body may hold a number or an object
    where text goes, and a multipart body a file: that is the field's error (`malformed`
    then holds the fields' names), checked before any validator or the view sees it."""

    malformed: tuple[str, ...] = ()

    def validate(self, extra_validators=None) -> bool:
        self.malformed = tuple(field.name for field in self if isinstance(field, StringField)
                               and field.data is not None and not isinstance(field.data, str))
        for name in self.malformed:
            self[name].errors = [f"{self[name].label.text} must be text."]
        return not self.malformed and super().validate(extra_validators)


class LoginForm(TextForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")


def new_password_field(label: str = "Password") -> PasswordField:
    """A field for a password being chosen: at least MIN_PASSWORD_LENGTH characters."""
    return PasswordField(label, validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH,
                               message=f"At least {MIN_PASSWORD_LENGTH} characters.")])


def repeat_field(label: str, of: str) -> PasswordField:
    """A field that must repeat the field named `of`."""
    return PasswordField(label, validators=[
        DataRequired(), EqualTo(of, message="The passwords differ.")])


class SetupForm(TextForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = new_password_field()
    confirm = repeat_field("Repeat the password", of="password")


def scopes_allowed(endpoint: str | None, rule: str | None, method: str) -> frozenset[str]:
    """The scopes any one of which lets a token call this route."""
    if endpoint in SCOPE_OVERRIDES:
        return SCOPE_OVERRIDES[endpoint] | {"admin"}
    allowed = {"admin"}
    if endpoint in INGEST_ENDPOINTS or rule in INGEST_PATHS:
        allowed.add("ingest")
    if method in SAFE_METHODS and rule is not None and rule.startswith("/api/"):
        allowed.add("read")
    return frozenset(allowed)


def _scope_refusal():
    """403 when the token that authenticated this request lacks the scope of its route."""
    token_scopes = g.get("token_scopes")
    if token_scopes is None or request.url_rule is None:  # a session, or a 404/405 to come
        return None
    allowed = scopes_allowed(request.endpoint, request.url_rule.rule, request.method)
    if token_scopes & allowed:
        return None
    needed = [s for s in SCOPES if s in allowed]
    has = [s for s in SCOPES if s in token_scopes]
    body, status = api_error(403, "forbidden", (
        f"This token may not {request.method} {request.path}: that needs the "
        f"{' or '.join(needed)} scope; the token has {', '.join(has)}."))
    body.headers["WWW-Authenticate"] = (f'Bearer realm="runwatch", error="insufficient_scope", '
                                        f'scope="{" ".join(needed)}"')
    return body, status


def guard():
    """Let a request through only with a session or (on the API) a bearer token that has
    the route's scope."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method not in SAFE_METHODS:
            csrf.protect()
        return None
    if is_token_only_request():
        # OTLP intake and /metrics: a bearer token alone (no session, so no CSRF to check).
        if not bearer_sent(request):
            return _api_unauthorized("Send an API token: Authorization: Bearer <token>.")
        if not current_user.is_authenticated:
            return _api_unauthorized("The API token is invalid or revoked.")
        return _scope_refusal()
    if is_api_request():
        # Flask-Login reads the bearer token (see extensions.py); a sent one decides alone.
        if bearer_sent(request):
            if not current_user.is_authenticated:
                return _api_unauthorized("The API token is invalid or revoked.")
            return _scope_refusal()  # a bearer token cannot be forged cross-site: no CSRF
        if not current_user.is_authenticated:
            return _api_unauthorized("Send an API token: Authorization: Bearer <token>.")
    elif not current_user.is_authenticated:
        target = url_for("auth.login" if has_users() else "auth.setup",
                         next=request.full_path.rstrip("?"))
        if request.headers.get("HX-Request") == "true":
            return "", 401, {"HX-Redirect": target}
        return redirect(target)
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return None


def start_session(user, remember: bool = False) -> None:
    """Sign `user` in on a session of its own: nothing of the session before it is kept,
    above all not its CSRF token, which someone else may have planted and read."""
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)  # cached token
    login_user(user, remember=remember)


def _api_unauthorized(message: str):
    body, status = api_error(401, "unauthorized", message)
    body.headers["WWW-Authenticate"] = 'Bearer realm="runwatch"'
    return body, status


def _login_limits() -> list[RateLimitItem]:
    return parse_many(current_app.config["LOGIN_RATE_LIMIT"])


class LoginAttempt:
    """One attempt at a password (a sign-in, or the current password of a change), charged
    against the limits before the password is checked.

    Failed attempts count, per key (a sign-in's client address and e-mail address, a
    change's account), in the limiter's moving window; when one runs out, even the right password waits (429) until the
    window has room again. An attempt is charged first as *pending* (a counter beside the
    window) and admitted only while failures and pending attempts together stay within the
    limit, so attempts made at the same moment cannot all pass one test before any of them
    is counted. A failure is then recorded in the window before its pending charge goes;
    a success (or an error, which decides nothing) only gives the pending charge back.
    """

    # Pending charges are counted in buckets of this many seconds; an attempt counts those
    # of its bucket and the one before, so none expires while it is checked, and the charge
    # of a process that died is forgotten two buckets later.
    PENDING_SECONDS = 60

    def __init__(self, *keys: str):
        self.taken: list[tuple[RateLimitItem, str, str]] = []  # limit, key, pending key
        self.refused: tuple[RateLimitItem, str] | None = None
        self.strategy = limiter.limiter
        try:
            self._charge(keys)
        except _storage_errors(self.strategy) as exc:
            # The shared store does not answer: count in this process meanwhile, as the
            # limiter's own in-memory fallback does.
            log.warning("login limits: %s does not answer (%s); counting in this process",
                        type(self.strategy.storage).__name__, exc)
            self.taken, self.strategy = [], _IN_PROCESS
            self._charge(keys)

    @classmethod
    def sign_in(cls, email: str) -> "LoginAttempt":
        """A sign-in: counted per client address and per e-mail address."""
        return cls(f"address:{get_remote_address()}", f"email:{email.strip().lower()[:254]}")

    def _charge(self, keys: tuple[str, ...]) -> None:
        storage, bucket = self.strategy.storage, int(time.time() // self.PENDING_SECONDS)
        for item in _login_limits():
            for key in keys:
                mine = self._pending(item, key, bucket)
                pending = (storage.incr(mine, 2 * self.PENDING_SECONDS)
                           + storage.get(self._pending(item, key, bucket - 1)))
                self.taken.append((item, key, mine))
                failed = item.amount - self.strategy.get_window_stats(item, key).remaining
                if failed + pending > item.amount:
                    self.refused = (item, key)
                    self.end(failed=False)
                    return

    @staticmethod
    def _pending(item: RateLimitItem, key: str, bucket: int) -> str:
        return item.key_for("login-pending", key, str(bucket))

    def reset_at(self) -> float:
        """When the limit that refused this attempt has room again (a UNIX time)."""
        item, key = self.refused
        return self.strategy.get_window_stats(item, key).reset_time

    def end(self, failed: bool) -> None:
        """Record a failure, and give the pending charges back."""
        taken, self.taken = self.taken, []
        try:
            for item, key, pending in taken:
                if failed:
                    self.strategy.hit(item, key)
                self.strategy.storage.incr(pending, 2 * self.PENDING_SECONDS, amount=-1)
        except _storage_errors(self.strategy) as exc:  # its pending charges expire
            log.warning("login limits: could not record an attempt (%s)", exc)


# Where attempts are counted while the configured store does not answer.
_IN_PROCESS = MovingWindowRateLimiter(MemoryStorage())


def _storage_errors(strategy) -> tuple[type[BaseException], ...]:
    """What the strategy's store raises when it does not answer."""
    return (StorageError, *_as_tuple(strategy.storage.base_exceptions))


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _login_throttled(reset_at: float) -> Response:
    """The login form again, with when to try again, as 429 with Retry-After."""
    seconds = retry_after_seconds(reset_at)
    at = datetime.fromtimestamp(reset_at, timezone.utc).strftime("%H:%M:%S")
    unit = "second" if seconds == 1 else "seconds"
    message = (f"Too many failed sign-ins. Try again in {seconds} {unit} "
               f"(after {at} UTC).")
    response = make_response(_login_page(LoginForm(), form_error=message), 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def _login_page(form: LoginForm, form_error: str | None = None) -> str:
    return render_template("auth/login.html", form=form, form_error=form_error,
                           remember_days=REMEMBER_DAYS)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with e-mail address and password."""
    if not has_users():
        return redirect(url_for("auth.setup"))
    target = safe_next(request.args.get("next"), url_for("history.index"))
    if current_user.is_authenticated:
        return redirect(target)
    form = LoginForm()
    if request.method != "POST":
        return _login_page(form)
    attempt = LoginAttempt.sign_in(form.email.data if isinstance(form.email.data, str) else "")
    if attempt.refused:
        return _login_throttled(attempt.reset_at())
    failed = None  # no verdict yet: an error decides nothing and is not counted
    try:
        if form.validate_on_submit():
            user = authenticate(form.email.data, form.password.data)
            if user is not None:
                failed = False
                start_session(user, remember=form.remember.data)
                return redirect(target)
            form.password.errors = ["Wrong e-mail address or password."]
        failed = True  # a wrong password, and a form that is missing or malformed
    finally:
        attempt.end(failed=bool(failed))
    return _login_page(form), 400 if form.malformed else 401


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, with CSRF): every session and remember-me cookie of the account
    ends, on every device."""
    end_sessions(current_user._get_current_object())
    logout_user()
    flash("You are signed out, on every device.")
    return redirect(url_for("auth.login"))


def account_from(form: FlaskForm, create) -> tuple[bool, object]:
    """`create(email, password)` from a submitted account form: (True, what it returned),
    or (False, None) when the form is not valid or the account is refused (the reason put
    on the field it is about)."""
    if not form.validate_on_submit():
        return False, None
    try:
        return True, create(form.email.data, form.password.data)
    except AccountError as exc:
        form[exc.field].errors = [str(exc)]
        return False, None


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first account; gone once any account exists."""
    if has_users():
        return redirect(url_for("auth.login"))
    form = SetupForm()
    status = 200
    created, user = account_from(form, create_first_user)
    if created:
        if user is None:  # someone else was first
            return redirect(url_for("auth.login"))
        start_session(user)
        flash("Welcome to Runwatch. Create an API token below to start reporting runs.")
        return redirect(url_for("settings.index"))
    if request.method == "POST":
        status = 400
    return render_template("auth/setup.html", form=form), status


@bp.get("/api/ping")
def ping():
    """Check credentials: answers who the token or session belongs to, and does nothing else."""
    return jsonify({"ok": True, "user": current_user.email})
