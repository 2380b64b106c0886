"""Settings: the account, its password, its API tokens, and the other accounts."""
from __future__ import annotations

from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request,
                   url_for)
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (EmailField, PasswordField, SelectChoice, SelectField, SelectMultipleField,
                     StringField)
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from models.users import (DEFAULT_SCOPES, SCOPES, AccountError, ApiToken, User,
                          change_password, create_token, create_user, revoke_token,
                          set_enabled, set_preferences)

from .auth import (LoginAttempt, TextForm, account_from, new_password_field, repeat_field,
                   start_session)
from .extensions import retry_after_seconds

bp = Blueprint("settings", __name__, url_prefix="/settings")

SCOPE_HELP = {
    "ingest": "report runs (the ingestion API and /api/ping)",
    "read": "read runs, alert rules and the delivery log (every GET under /api; webhook "
            "secrets stay hidden)",
    "metrics": "scrape GET /metrics alone (Prometheus; read and admin may too)",
    "admin": "everything, including changing alert rules and sending test notices",
}


class TokenForm(TextForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])
    scopes = SelectMultipleField(
        "Scopes", choices=[SelectChoice(s) for s in SCOPES], default=list(DEFAULT_SCOPES),
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        validators=[DataRequired(message="Pick at least one scope.")])


class PreferencesForm(TextForm):
    theme = SelectField("Theme", choices=[SelectChoice("system", "as the system is set (light or dark)"),
                                          SelectChoice("light", "light"),
                                          SelectChoice("dark", "dark")],
                        validate_choice=False)  # set_preferences names a theme it lacks
    time_zone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])


class ActionForm(FlaskForm):
    """Carries only the CSRF token (revoke, disable, enable)."""


class AccountForm(TextForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = new_password_field()


class PasswordForm(TextForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = new_password_field("New password")
    confirm_password = repeat_field("Repeat the new password", of="new_password")


def _page(status: int = 200, **context):
    """The settings page; forms not given are blank."""
    context.setdefault("form", TokenForm(formdata=None))
    context.setdefault("account_form", AccountForm(formdata=None))
    context.setdefault("password_form", PasswordForm(formdata=None))
    context.setdefault("preferences_form", PreferencesForm(
        formdata=None, theme=current_user.theme, time_zone=current_user.time_zone))
    tokens = (ApiToken.select().where(ApiToken.user == current_user.id)
              .order_by(ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc()))
    users = User.select().order_by(User.email)
    return render_template("settings/index.html", action_form=ActionForm(), tokens=tokens,
                           users=users, scope_help=SCOPE_HELP,
                           **context), status


@bp.get("")
def index():
    """The account, its tokens, and the other accounts."""
    return _page()


@bp.post("/tokens")
def create():
    """Create a token with the scopes ticked and show it once."""
    form = TokenForm()
    if form.validate_on_submit():
        try:
            row, secret = create_token(current_user._get_current_object(), form.name.data,
                                       form.scopes.data)
        except AccountError as exc:
            form[exc.field].errors = [str(exc)]
        else:
            return _page(new_token=secret, new_token_row=row)
    return _page(400, form=form)


@bp.post("/preferences")
def preferences():
    """Set the account's theme and the zone its pages show times in."""
    form = PreferencesForm()
    if form.validate_on_submit():
        try:
            set_preferences(current_user._get_current_object(), form.theme.data,
                            form.time_zone.data.strip())
        except AccountError as exc:
            form[exc.field].errors = [str(exc)]
        else:
            flash("Saved: the pages follow your theme and show times in "
                  f"{current_user.time_zone}.")
            return redirect(url_for("settings.index"))
    return _page(400, preferences_form=form)


@bp.post("/password")
def password():
    """Change one's own password: every other session of the account ends; this one stays.

    Wrong current passwords count against the sign-in limit, per account: each attempt is
    charged before its password is checked (see LoginAttempt), so attempts sent at once
    check no more passwords than the limit allows."""
    form = PasswordForm()
    if not form.validate_on_submit():
        return _page(400, password_form=form)
    user = current_user._get_current_object()
    attempt = LoginAttempt(f"account:{user.id}")
    if attempt.refused:
        return _throttled(form, attempt.reset_at())
    wrong = False
    try:
        wrong = not user.check_password(form.current_password.data)
    finally:
        attempt.end(failed=wrong)
    if wrong:
        form.current_password.errors = ["This is not your current password."]
        return _page(400, password_form=form)
    try:
        change_password(user, form.new_password.data)
    except AccountError as exc:
        form.new_password.errors = [str(exc)]
        return _page(400, password_form=form)
    # Sign this session in again under the new generation (and its remember-me cookie, if
    # it had one).
    cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    start_session(user, remember=cookie in request.cookies)
    flash("Your password is changed. Every other session of your account is signed out.")
    return redirect(url_for("settings.index"))


def _throttled(form: PasswordForm, reset_at: float):
    """The settings page again, with when to try again, as 429 with Retry-After."""
    seconds = retry_after_seconds(reset_at)
    unit = "second" if seconds == 1 else "seconds"
    form.current_password.errors = [f"Too many wrong passwords. Try again in {seconds} {unit}."]
    page, status = _page(429, password_form=form)
    return page, status, {"Retry-After": str(seconds)}


@bp.post("/accounts")
def add_account():
    """Add an account for a colleague."""
    form = AccountForm()
    created, user = account_from(form, create_user)
    if created:
        flash(f"Added the account {user.email}.")
        return redirect(url_for("settings.index"))
    return _page(400, account_form=form)


def _set_account(user_id: int, enabled: bool):
    user = User.get_or_none(User.id == user_id)
    if user is None:
        abort(404, f"There is no account {user_id}.")
    if user.id == current_user.id:
        return _page(400, accounts_error="You cannot disable or enable your own account.")
    try:
        changed = set_enabled(user, enabled)
    except AccountError as exc:
        return _page(400, accounts_error=str(exc))
    if not changed:
        flash(f"{user.email} was already {'enabled' if enabled else 'disabled'}.")
    elif enabled:
        flash(f"{user.email} is enabled again and can sign in.")
    else:
        flash(f"{user.email} is disabled: signed out everywhere; its API tokens get 401.")
    return redirect(url_for("settings.index", _anchor="accounts"))


@bp.post("/accounts/<int:user_id>/disable")
def disable(user_id: int):
    """Disable another account: it cannot sign in, its sessions end, its tokens get 401."""
    return _set_account(user_id, False)


@bp.post("/accounts/<int:user_id>/enable")
def enable(user_id: int):
    """Enable a disabled account again."""
    return _set_account(user_id, True)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke one of the signed-in user's tokens."""
    if revoke_token(current_user._get_current_object(), token_id):
        flash("The token is revoked; requests that use it now get 401.")
    else:
        flash("There is no such live token.")
    return redirect(url_for("settings.index"))
