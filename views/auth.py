"""Signing in and out, the first-run account, and the guard in front of every route."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import (Blueprint, Response, current_app, flash, g, jsonify, make_response, redirect,
                   render_template, request, url_for)
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from models.users import (MIN_PASSWORD_LENGTH, SCOPES, AccountError, authenticate,
                          create_first_user, end_sessions, has_users)

from .common import api_error, is_api_request, is_token_only_request, safe_next
from .extensions import (REMEMBER_DAYS, bearer_sent, csrf, limiter, reset_time,
                         retry_after_seconds)

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "health.healthz", "static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

# The scope a token needs, decided here alone. A token may call a route when it has one of
# the scopes `scopes_allowed` answers; a browser session has every scope. `admin` opens
# every route; `read` every GET under /api; `ingest` the routes that report runs. A route
# that is listed nowhere needs `admin`, so a new one is closed to narrower tokens until
# it is listed here.
INGEST_ENDPOINTS = frozenset({"ingest.create", "ingest.create_batch", "ingest.update",
                              "ingest.steps", "auth.ping"})
INGEST_PATHS = frozenset({"/v1/traces"})
# Exceptions to the rules above, by endpoint: the scopes (besides `admin`) that open it.
SCOPE_OVERRIDES: dict[str, frozenset[str]] = {}


class LoginForm(FlaskForm):
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


class SetupForm(FlaskForm):
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
        # OTLP intake: a bearer token alone (no session, so no CSRF to check).
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


def _api_unauthorized(message: str):
    body, status = api_error(401, "unauthorized", message)
    body.headers["WWW-Authenticate"] = 'Bearer realm="runwatch"'
    return body, status


def _failed_sign_in(response: Response) -> bool:
    return response.status_code == 401


def _login_rate_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _client_key() -> str:
    return f"address:{get_remote_address()}"


def _email_key() -> str:
    return f"email:{(request.form.get('email') or '').strip().lower()[:254]}"


def _login_throttled(limit: RequestLimit) -> Response:
    """The login form again, with when to try again, as 429 with Retry-After."""
    seconds = retry_after_seconds(reset_time(limit))
    at = datetime.fromtimestamp(reset_time(limit), timezone.utc).strftime("%H:%M:%S")
    unit = "second" if seconds == 1 else "seconds"
    message = (f"Too many failed sign-ins. Try again in {seconds} {unit} "
               f"(after {at} UTC).")
    response = make_response(_login_page(LoginForm(), form_error=message), 429)
    response.headers["Retry-After"] = str(seconds)
    return response


def _login_page(form: LoginForm, form_error: str | None = None) -> str:
    return render_template("auth/login.html", form=form, form_error=form_error,
                           remember_days=REMEMBER_DAYS)


# Failed attempts count, per client address and per e-mail address; when either runs out,
# even the right password waits (429) until the window has room again.
_throttle = {"methods": ["POST"], "deduct_when": _failed_sign_in, "on_breach": _login_throttled}


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_rate_limit, key_func=_client_key, **_throttle)
@limiter.limit(_login_rate_limit, key_func=_email_key, **_throttle)
def login():
    """Sign in with e-mail address and password."""
    if not has_users():
        return redirect(url_for("auth.setup"))
    target = safe_next(request.args.get("next"), url_for("history.index"))
    if current_user.is_authenticated:
        return redirect(target)
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            login_user(user, remember=form.remember.data)
            return redirect(target)
        form.password.errors = ["Wrong e-mail address or password."]
    if request.method == "POST":
        status = 401
    return _login_page(form), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, with CSRF): every session and remember-me cookie of the account
    ends, on every device."""
    end_sessions(current_user._get_current_object())
    logout_user()
    flash("You are signed out, on every device.")
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first account; gone once any account exists."""
    if has_users():
        return redirect(url_for("auth.login"))
    form = SetupForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = create_first_user(form.email.data, form.password.data)
        except AccountError as exc:
            form[exc.field].errors = [str(exc)]
        else:
            if user is None:  # someone else was first
                return redirect(url_for("auth.login"))
            login_user(user)
            flash("Welcome to Runwatch. Create an API token below to start reporting runs.")
            return redirect(url_for("settings.index"))
    if request.method == "POST":
        status = 400
    return render_template("auth/setup.html", form=form), status


@bp.get("/api/ping")
def ping():
    """Check credentials: answers who the token or session belongs to, and does nothing else."""
    return jsonify({"ok": True, "user": current_user.email})
