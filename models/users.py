"""Accounts and their API tokens; passwords and tokens are stored hashed only."""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Iterable

import peewee
from flask import current_app, has_app_context
from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from .base import BaseModel, UTCMicros
from .db import database, is_sqlite, write_transaction
from .inputs import zone_names
from .times import utcnow

TOKEN_PREFIX = "rw_"
PASSWORD_METHOD = "scrypt"  # werkzeug's method for new password hashes
MIN_PASSWORD_LENGTH = 8
# Writing `last_used_at` on every call would turn each API read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# What a token may do, in the order they are listed: report runs, read, scrape the metrics,
# everything. `read` and `admin` open the metrics too, so a token made without naming
# its scopes (DEFAULT_SCOPES) may do everything.
SCOPES = ("ingest", "read", "metrics", "admin")
DEFAULT_SCOPES = ("ingest", "read", "admin")
THEMES = ("system", "light", "dark")
ALL_SCOPES = frozenset(SCOPES)
# Taken for the length of a transaction that must see the accounts alone (PostgreSQL);
# SQLite's write transactions are serial already.
ACCOUNTS_LOCK_KEY = 0x52554E58  # "RUNX"


class User(UserMixin, BaseModel):
    """A person who signs in with e-mail address and password."""

    email = peewee.CharField(max_length=254, unique=True)
    password_hash = peewee.CharField(max_length=255)
    created_at = UTCMicros()
    disabled_at = UTCMicros(null=True)
    # Part of every session and remember-me cookie: bumping it ends them all at once.
    session_generation = peewee.IntegerField(default=0, constraints=[peewee.SQL("DEFAULT 0")])
    # How the pages look to this account: "system" follows the browser's colour scheme.
    theme = peewee.CharField(max_length=8, default="system",
                             constraints=[peewee.SQL("DEFAULT 'system'")])
    # The IANA zone every time on the pages is shown in (`tz` overrides it where it exists).
    time_zone = peewee.CharField(max_length=64, default="UTC",
                                 constraints=[peewee.SQL("DEFAULT 'UTC'")])

    # The random part of the sign-in this object was loaded for (see `get_id`).
    login_nonce: str | None = None

    def check_password(self, password: str) -> bool:
        """Whether `password` is this user's password."""
        return check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:
        """Disabled accounts cannot sign in (Flask-Login asks this)."""
        return self.disabled_at is None

    def get_id(self) -> str:
        """What a session and a remember-me cookie hold: id, generation and a per-sign-in part."""
        if self.login_nonce is None:
            self.login_nonce = secrets.token_urlsafe(12)
        return f"{self.id}:{self.session_generation}:{self.login_nonce}"


class ApiToken(BaseModel):
    """A bearer token for the API; only its SHA-256 is kept."""

    user = peewee.ForeignKeyField(User, backref="tokens", on_delete="CASCADE")
    name = peewee.CharField(max_length=100)
    token_hash = peewee.CharField(max_length=64, unique=True)
    prefix = peewee.CharField(max_length=16)
    created_at = UTCMicros()
    last_used_at = UTCMicros(null=True)
    revoked_at = UTCMicros(null=True)
    # Comma-separated, in the order of SCOPES; tokens made before scopes existed have all.
    scopes = peewee.CharField(max_length=64, default=",".join(DEFAULT_SCOPES),
                              constraints=[peewee.SQL("DEFAULT '%s'" % ",".join(DEFAULT_SCOPES))])

    @property
    def scope_set(self) -> frozenset[str]:
        """The scopes of this token."""
        return frozenset(s for s in self.scopes.split(",") if s)

    @property
    def scope_list(self) -> list[str]:
        """The scopes in their listed order, for people."""
        return [s for s in SCOPES if s in self.scope_set]


class AccountError(ValueError):
    """A user or token could not be created or changed; the message says why and `field`
    names the form field it is about."""

    def __init__(self, message: str, field: str = "email"):
        super().__init__(message)
        self.field = field


def normalise_email(email: str) -> str:
    """Trim and lower-case an address, and check its shape loosely (it also finds the
    accounts older releases made; a new account's address must pass `new_email` too)."""
    email = (email or "").strip().lower()
    local, _, domain = email.partition("@")
    if (not local or "." not in domain or " " in email or len(email) > 254
            or any(ord(c) < 32 or ord(c) == 127 for c in email)):
        raise AccountError("Enter a valid e-mail address.")
    return email


# An address as mail is sent to: a dot-atom local part (letters of any script, digits and
# !#$%&'*+/=?^_`{|}~-, dots between), an @, and a domain of two or more labels (letters and
# digits, hyphens inside), the last one not a number.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:(?:[^\W_]|-)*[^\W_])?"
_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?!\d+\Z){_LABEL}\Z")


def new_email(email: str) -> str:
    """The address of a new account, normalised; AccountError unless it is one."""
    email = normalise_email(email)
    if not _ADDRESS.match(email) or len(email.partition("@")[0]) > 64:
        raise AccountError("Enter a valid e-mail address, such as you@example.com.")
    return email


def _password_hash(password: str) -> str:
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.",
                           "password")
    if "\x00" in password:
        raise AccountError("A password cannot contain a NUL character.", "password")
    return generate_password_hash(password, method=_password_method())


def _password_method() -> str:
    """The method for new password hashes: scrypt, unless a test app (TESTING) names a
    cheaper one in PASSWORD_HASH_METHOD, so that a test suite does not spend its time
    hashing. Checking reads the method from the stored hash, whichever made it."""
    if has_app_context() and current_app.testing:
        return current_app.config.get("PASSWORD_HASH_METHOD") or PASSWORD_METHOD
    return PASSWORD_METHOD


def lock_accounts() -> None:
    """Within a write transaction: let one writer at a time decide about the accounts."""
    if not is_sqlite():
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (ACCOUNTS_LOCK_KEY,))


def create_user(email: str, password: str) -> User:
    """Create an account; raises AccountError on a bad address, short password or duplicate."""
    email = new_email(email)
    password_hash = _password_hash(password)
    try:
        with database.atomic():
            return User.create(email=email, password_hash=password_hash, created_at=utcnow())
    except peewee.IntegrityError:
        raise AccountError(f"An account for {email} already exists.") from None


def create_first_user(email: str, password: str) -> User | None:
    """Create the first account, or None when one exists already, however many try at once.

    The slow password hash comes first; the check and the insert then run under a lock.
    """
    email = new_email(email)
    password_hash = _password_hash(password)
    with write_transaction():
        lock_accounts()
        if has_users():
            return None
        return User.create(email=email, password_hash=password_hash, created_at=utcnow())


@functools.cache
def _dummy_hash(method: str) -> str:
    """A hash of `method` for a password nobody knows, checked in place of a real one."""
    return generate_password_hash(secrets.token_urlsafe(24), method=method)


def authenticate(email: str, password: str) -> User | None:
    """The enabled user with this address and password, or None.

    Unknown and disabled accounts check the password against a dummy hash of the same
    method, so the answer takes as long whether or not the address has an account.
    """
    try:
        user = User.get_or_none(User.email == normalise_email(email))
    except AccountError:
        user = None
    if user is None or not user.is_active:
        check_password_hash(_dummy_hash(_password_method()), password or "")
        return None
    return user if user.check_password(password or "") else None


def load_session_user(session_id: str) -> User | None:
    """The enabled user a session or remember-me cookie names, if its generation is current."""
    user_id, _, rest = (session_id or "").partition(":")
    generation, _, nonce = rest.partition(":")
    if not (user_id.isdigit() and generation.isdigit() and nonce):
        return None  # also the plain ids of sessions made before generations existed
    user = User.get_or_none(User.id == int(user_id), User.disabled_at.is_null(),
                            User.session_generation == int(generation))
    if user is not None:
        user.login_nonce = nonce
    return user


def end_sessions(user: User) -> None:
    """End every session and remember-me cookie of `user` (its tokens stay)."""
    User.update(session_generation=User.session_generation + 1).where(User.id == user.id).execute()
    user.session_generation = User.get_by_id(user.id).session_generation
    user.login_nonce = None


def change_password(user: User, password: str) -> None:
    """Set a new password and end every session of the account."""
    password_hash = _password_hash(password)
    with database.atomic():
        User.update(password_hash=password_hash).where(User.id == user.id).execute()
        user.password_hash = password_hash
        end_sessions(user)


def set_enabled(user: User, enabled: bool) -> bool:
    """Enable or disable an account; False when it already was. Disabling ends its sessions.

    Refuses (AccountError) to disable the last enabled account: someone must be able to sign in.
    """
    with write_transaction():
        lock_accounts()
        current = User.get_by_id(user.id)
        if current.is_active == enabled:
            return False
        if not enabled and not (User.select().where(User.disabled_at.is_null(),
                                                    User.id != user.id).exists()):
            raise AccountError(f"{user.email} is the last enabled account; enable another "
                               "account first.")
        User.update(disabled_at=None if enabled else utcnow()).where(User.id == user.id).execute()
        if not enabled:
            end_sessions(user)
    user.disabled_at = User.get_by_id(user.id).disabled_at
    return True


def set_preferences(user: User, theme: str, time_zone: str) -> None:
    """Set how the pages look to this account: its theme and the zone its times are shown in.
    Raises AccountError naming the field for a theme or zone that does not exist."""
    if theme not in THEMES:
        raise AccountError(f"Pick one of {', '.join(THEMES)}.", field="theme")
    if time_zone not in zone_names():
        raise AccountError("Unknown time zone; use an IANA name like Europe/Berlin or UTC.",
                           field="time_zone")
    User.update(theme=theme, time_zone=time_zone).where(User.id == user.id).execute()
    user.theme, user.time_zone = theme, time_zone


def has_users() -> bool:
    """Whether any account exists yet."""
    return User.select().exists()


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_scopes(scopes: str | Iterable[str]) -> frozenset[str]:
    """Scope names (a comma-separated string or a list) as a set; AccountError on unknown ones."""
    if isinstance(scopes, str):
        scopes = scopes.split(",")
    chosen = frozenset(s.strip().lower() for s in scopes if s and s.strip())
    unknown = chosen - ALL_SCOPES
    if unknown:
        raise AccountError(f"Unknown scope {', '.join(sorted(unknown))}; the scopes are "
                           f"{', '.join(SCOPES)}.", "scopes")
    if not chosen:
        raise AccountError(f"Give the token at least one scope: {', '.join(SCOPES)}.",
                           "scopes")
    return chosen


def create_token(user: User, name: str,
                 scopes: Iterable[str] = DEFAULT_SCOPES) -> tuple[ApiToken, str]:
    """Create a token for `user`; returns the row and the secret, which is never stored."""
    name = (name or "").strip()
    if not name or len(name) > 100 or any(ord(c) < 32 for c in name):
        raise AccountError("Give the token a name of 1 to 100 characters.", "name")
    chosen = parse_scopes(scopes)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.create(user=user, name=name, token_hash=hash_token(secret),
                          prefix=secret[:10], created_at=utcnow(),
                          scopes=",".join(s for s in SCOPES if s in chosen))
    return row, secret


def token_owner(secret: str) -> tuple[User, frozenset[str]] | None:
    """The enabled owner of a live token and the token's scopes, or None."""
    if not secret:
        return None
    row = (ApiToken.select(ApiToken, User).join(User)
           .where(ApiToken.token_hash == hash_token(secret), ApiToken.revoked_at.is_null(),
                  User.disabled_at.is_null())
           .first())
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row.user, row.scope_set


def user_for_token(secret: str) -> User | None:
    """The enabled owner of a live token, or None for unknown, revoked and disabled ones."""
    found = token_owner(secret)
    return found[0] if found else None


def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one of `user`'s tokens; False when there is no such live token."""
    return bool(ApiToken.update(revoked_at=utcnow())
                .where(ApiToken.id == token_id, ApiToken.user == user,
                       ApiToken.revoked_at.is_null())
                .execute())
