"""Settings: the account and its API tokens."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from models.users import (MIN_PASSWORD_LENGTH, AccountError, ApiToken, User, create_token,
                          create_user, revoke_token)

bp = Blueprint("settings", __name__, url_prefix="/settings")


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


class RevokeForm(FlaskForm):
    """Carries only the CSRF token."""


class AccountForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH,
                               message=f"At least {MIN_PASSWORD_LENGTH} characters.")])


def _page(status: int = 200, **context):
    """The settings page; forms not given are blank."""
    context.setdefault("form", TokenForm(formdata=None))
    context.setdefault("account_form", AccountForm(formdata=None))
    tokens = (ApiToken.select().where(ApiToken.user == current_user.id)
              .order_by(ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc()))
    users = User.select().order_by(User.email)
    return render_template("settings/index.html", revoke_form=RevokeForm(), tokens=tokens,
                           users=users, **context), status


@bp.get("")
def index():
    """The account, its tokens, and the other accounts."""
    return _page()


@bp.post("/tokens")
def create():
    """Create a token and show it once."""
    form = TokenForm()
    if form.validate_on_submit():
        try:
            row, secret = create_token(current_user._get_current_object(), form.name.data)
        except AccountError as exc:
            form.name.errors = [str(exc)]
        else:
            return _page(new_token=secret, new_token_row=row)
    return _page(400, form=form)


@bp.post("/accounts")
def add_account():
    """Add an account for a colleague."""
    form = AccountForm()
    if form.validate_on_submit():
        try:
            user = create_user(form.email.data, form.password.data)
        except AccountError as exc:
            form.email.errors = [str(exc)]
        else:
            flash(f"Added the account {user.email}.")
            return redirect(url_for("settings.index"))
    return _page(400, account_form=form)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke one of the signed-in user's tokens."""
    if revoke_token(current_user._get_current_object(), token_id):
        flash("The token is revoked; requests that use it now get 401.")
    else:
        flash("There is no such live token.")
    return redirect(url_for("settings.index"))
