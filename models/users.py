"""Accounts and their API tokens; passwords and tokens are stored hashed only."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import peewee
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from .db import BaseModel, UTCMicros, utcnow

TOKEN_PREFIX = "rw_"
MIN_PASSWORD_LENGTH = 8
# Writing `last_used_at` on every call would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class User(UserMixin, BaseModel):
    """A person who signs in with e-mail address and password."""

    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    created_at = UTCMicros()

    def check_password(self, password: str) -> bool:
        """Whether `password` is this user's password."""
        return check_password_hash(self.password_hash, password)


class ApiToken(BaseModel):
    """A bearer token for the API; only its SHA-256 is kept."""

    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=100)
    token_hash = peewee.CharField(max_length=64, unique=True)
    prefix = peewee.CharField(max_length=16)
    created_at = UTCMicros()
    last_used_at = UTCMicros(null=True)
    revoked_at = UTCMicros(null=True)


class AccountError(ValueError):
    """A user or token could not be created; the message says why."""


def normalise_email(email: str) -> str:
    """Trim and lower-case an address, and check its shape."""
    email = (email or "").strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email or len(email) > 254:
        raise AccountError("Enter a valid e-mail address.")
    return email


def create_user(email: str, password: str) -> User:
    """Create an account; raises AccountError on a bad address, short password or duplicate."""
    email = normalise_email(email)
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.")
    try:
        return User.create(email=email, password_hash=generate_password_hash(password),
                           created_at=utcnow())
    except peewee.IntegrityError:
        raise AccountError(f"An account for {email} already exists.") from None


def authenticate(email: str, password: str) -> User | None:
    """The user with this address and password, or None."""
    try:
        user = User.get(User.email == normalise_email(email))
    except (AccountError, User.DoesNotExist):
        return None
    return user if user.check_password(password) else None


def has_users() -> bool:
    """Whether any account exists yet."""
    return User.select().exists()


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise AccountError("Give the token a name of 1 to 100 characters.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(user=user, name=name, token_hash=hash_token(secret),
                          prefix=secret[:10], created_at=utcnow())
    return row, secret


def user_for_token(secret: str) -> User | None:
    """The owner of a live token, or None for unknown and revoked tokens."""
    row = (ApiToken.select(ApiToken, User).join(User)
           .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_null())
           .first())
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row.user


def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one of `user`'s tokens; False when there is no such live token."""
    return bool(ApiToken.update(revoked_at=utcnow())
                .where(ApiToken.id == token_id, ApiToken.user == user,
                       ApiToken.revoked_at.is_null())
                .execute())
