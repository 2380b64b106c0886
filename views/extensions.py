"""The Flask extensions, created once and bound in `create_app`."""
from flask_login import LoginManager
from flask_wtf import CSRFProtect

from models import User

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.session_protection = "basic"


@login_manager.user_loader
def _load_user(user_id: str):
    return User.get_or_none(User.id == int(user_id)) if user_id.isdigit() else None
