"""Settings: the account and its API tokens."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from models.users import AccountError, ApiToken, create_token, revoke_token

bp = Blueprint("settings", __name__, url_prefix="/settings")


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=100)])


class RevokeForm(FlaskForm):
    """Carries only the CSRF token."""


def _tokens():
    return (ApiToken.select().where(ApiToken.user == current_user.id)
            .order_by(ApiToken.revoked_at.is_null(False), ApiToken.created_at.desc()))


@bp.get("")
def index():
    """The account and its tokens."""
    return render_template("settings/index.html", form=TokenForm(), revoke_form=RevokeForm(),
                           tokens=_tokens(), new_token=None)


@bp.post("/tokens")
def create():
    """Create a token and show it once."""
    form = TokenForm()
    if not form.validate_on_submit():
        return render_template("settings/index.html", form=form, revoke_form=RevokeForm(),
                               tokens=_tokens(), new_token=None), 400
    try:
        row, secret = create_token(current_user._get_current_object(), form.name.data)
    except AccountError as exc:
        form.name.errors = [str(exc)]
        return render_template("settings/index.html", form=form, revoke_form=RevokeForm(),
                               tokens=_tokens(), new_token=None), 400
    return render_template("settings/index.html", form=TokenForm(formdata=None),
                           revoke_form=RevokeForm(), tokens=_tokens(),
                           new_token=secret, new_token_row=row)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    """Revoke one of the signed-in user's tokens."""
    if revoke_token(current_user._get_current_object(), token_id):
        flash("The token is revoked; requests that use it now get 401.")
    else:
        flash("There is no such live token.")
    return redirect(url_for("settings.index"))
