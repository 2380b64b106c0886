"""The Flask extensions, created once and bound in `create_app`, and how they find the user."""
from flask import Request, request
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from models import User
from models.users import user_for_token

from .common import is_api_request

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.session_protection = "basic"


def bearer_sent(request: Request) -> bool:
    """Whether an API request carries credentials of its own, which then decide alone."""
    return is_api_request() and "Authorization" in request.headers


@login_manager.request_loader
def _load_user_from_bearer(request: Request):
    if not bearer_sent(request):
        return None
    scheme, _, token = request.headers["Authorization"].partition(" ")
    return user_for_token(token.strip()) if scheme.lower() == "bearer" else None


@login_manager.user_loader
def _load_user(user_id: str):
    # A sent token decides, not the session or remember-me cookie the client also holds
    # (Flask-Login asks the request loader only when neither names a user).
    if bearer_sent(request):
        return _load_user_from_bearer(request)
    return User.get_or_none(User.id == int(user_id)) if user_id.isdigit() else None
