"""Signing in and out, the first-run account, and the guard in front of every route."""
from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from models.db import write_transaction
from models.users import (MIN_PASSWORD_LENGTH, AccountError, authenticate, create_user,
                          has_users)

from .common import api_error, is_api_request, safe_next
from .extensions import bearer_sent, csrf

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = {"auth.login", "auth.setup", "static"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")


class SetupForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired()])
    password = PasswordField("Password", validators=[
        DataRequired(), Length(min=MIN_PASSWORD_LENGTH,
                               message=f"At least {MIN_PASSWORD_LENGTH} characters.")])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The passwords differ.")])


def guard():
    """Let a request through only with a session or (on the API) a bearer token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        if request.method not in SAFE_METHODS:
            csrf.protect()
        return None
    if is_api_request():
        # Flask-Login reads the bearer token (see extensions.py); a sent one decides alone.
        if bearer_sent(request):
            if not current_user.is_authenticated:
                return _api_unauthorized("The API token is invalid or revoked.")
            return None  # a bearer token cannot be forged cross-site: no CSRF needed
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


@bp.route("/login", methods=["GET", "POST"])
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
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST only, with CSRF)."""
    logout_user()
    flash("You are signed out.")
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
            with write_transaction():
                if has_users():
                    return redirect(url_for("auth.login"))
                user = create_user(form.email.data, form.password.data)
        except AccountError as exc:
            form.email.errors = [str(exc)]
        else:
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
