"""Runwatch: the application factory."""
from __future__ import annotations

import os
import secrets

from flask import Flask, g
from werkzeug.middleware.proxy_fix import ProxyFix

import alerts
import cli
import history
import metrics
import otel
import reruns
import scheduling
import sources
import workflows
from models import MODELS, database, hooks, init_database
from models.startup import create_schema_when_reachable
import views
from views.auth import guard
from views import extensions, formatting, headers, json_writer, links, memory
from views.common import register_error_handlers
from views.ids import DatabaseInteger
from alerts.config import PAGERDUTY_EVENTS_URL
from views.trace import STEP_SLICE

DEFAULTS = {
    "BASE_URL": "http://localhost:5000",
    "ALERT_SCAN_SECONDS": 30,
    "DELIVERY_RETRY_SECONDS": 60,
    "DELIVERY_MAX_ATTEMPTS": 6,
    "DELIVERY_LEASE_SECONDS": 10,
    "WEBHOOK_TIMEOUT_SECONDS": 10,
    "SMTP_TIMEOUT_SECONDS": 30,
    "SMTP_HOST": None,
    "SMTP_PORT": 25,
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_STARTTLS": False,
    "MAIL_FROM": "runwatch@localhost",
    "SCHEDULER": True,
    "SCHEDULER_LEASE_SECONDS": 15,
    "MAX_PAYLOAD_BYTES": 10 * 1024 * 1024,
    "WEBHOOK_ALLOW_PRIVATE": False,
    "PAGERDUTY_EVENTS_URL": PAGERDUTY_EVENTS_URL,
    "LOGIN_RATE_LIMIT": "10 per minute",
    "RATELIMIT_STORAGE_URI": "memory://",
    "MAX_STEPS_PER_REQUEST": 5000,
    "MAX_STEPS_PER_RUN": 2000,
    "RETENTION_DAYS": None,  # unset: keep every run
    "OTLP_PENDING_SPANS": 100_000,  # spans kept to join the later spans of their trace
    "OTLP_PENDING_SECONDS": 3600,  # ...for this long after their trace's last new span
    "RUN_REFRESH_SECONDS": 2,  # how often a live run's page asks for what changed
    "RUN_STEPS_PER_PAGE": STEP_SLICE,  # steps a run's page lists at once
    "RERUN_TIMEOUT_SECONDS": 10,  # a whole re-run request, from look-up to answer
    "SOURCE_TIMEOUT_SECONDS": 10,  # one request of a source's pull, from look-up to answer
    "PROXY_COUNT": 0,  # reverse proxies in front whose X-Forwarded-* headers are trusted
}
MAX_PROXIES = 5
# Features, in the order they are wired: each has its `MODELS` (and `MIGRATIONS`, if its
# tables changed) and an `init_app(app)` that registers its write hooks, start-up checks and
# blueprints. Background jobs are listed in scheduling.JOBS.
FEATURES = (history, alerts, workflows, otel, reruns, sources, metrics)
INTEGER_SETTINGS = ("ALERT_SCAN_SECONDS", "DELIVERY_RETRY_SECONDS", "DELIVERY_MAX_ATTEMPTS",
                    "DELIVERY_LEASE_SECONDS", "WEBHOOK_TIMEOUT_SECONDS", "SMTP_TIMEOUT_SECONDS",
                    "SMTP_PORT", "MAX_PAYLOAD_BYTES", "MAX_STEPS_PER_REQUEST",
                    "MAX_STEPS_PER_RUN", "SCHEDULER_LEASE_SECONDS", "OTLP_PENDING_SPANS",
                    "OTLP_PENDING_SECONDS", "RUN_REFRESH_SECONDS", "RUN_STEPS_PER_PAGE",
                    "SOURCE_TIMEOUT_SECONDS")


def create_app(config: dict | None = None) -> Flask:
    """Build the app: defaults, then RUNWATCH_* variables, then `config` (for tests)."""
    # Read before any setting: where the settings' defaults (the SQLite file, the secret key)
    # live. A machine's state folder under systemd, say; `instance/` beside app.py without it.
    instance = os.environ.get("RUNWATCH_INSTANCE_PATH")
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.path.abspath(instance) if instance else None)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        DEFAULTS,
        DATABASE_URL=f"sqlite:///{os.path.join(app.instance_path, 'runwatch.db')}",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        WTF_CSRF_CHECK_DEFAULT=False,  # the guard checks CSRF, so API tokens can skip it
        WTF_CSRF_TIME_LIMIT=12 * 3600,  # a form left open longer asks to be reloaded
    )
    app.config.from_prefixed_env("RUNWATCH")
    if config:
        app.config.update(config)
    _check_settings(app)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app.instance_path)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_PAYLOAD_BYTES"]
    if app.config["PROXY_COUNT"]:
        # The client's address (the login limit's key), the scheme and the host the proxies
        # were asked for: from the last PROXY_COUNT values of each header, which the
        # proxies added (a client may send any it likes before them).
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)

    init_database(app.config["DATABASE_URL"])
    hooks.init_app(app)  # the features' init_app fill them
    create_schema_when_reachable(
        [*MODELS, *scheduling.MODELS, *(model for feature in FEATURES for model in feature.MODELS)],
        [getattr(feature, "MIGRATIONS", {}) for feature in FEATURES])

    app.before_request(_connect)
    extensions.init_app(app)
    json_writer.init_app(app)
    app.before_request(guard)
    app.teardown_appcontext(_close)
    app.url_map.converters["int"] = DatabaseInteger  # before any route is added
    for blueprint in views.blueprints():
        app.register_blueprint(blueprint)
    for feature in FEATURES:
        feature.init_app(app)
    scheduling.init_app(app)  # honours RUNWATCH_SCHEDULER; at most once per process
    register_error_handlers(app)
    memory.init_app(app)
    formatting.register(app)
    links.register(app)
    headers.register(app)
    cli.register(app)
    memory.freeze_startup(app)  # last: everything the start made is kept for good
    return app


def _connect() -> None:
    g.opened_database = database.connect(reuse_if_open=True)


def _close(_exc) -> None:
    # Close only what this request opened (a CLI command or test may hold its own).
    if g.pop("opened_database", False) and not database.is_closed():
        database.close()


def _check_settings(app: Flask) -> None:
    for key in INTEGER_SETTINGS:
        try:
            app.config[key] = int(app.config[key])
        except (TypeError, ValueError):
            raise SystemExit(f"RUNWATCH_{key} must be an integer, not {app.config[key]!r}")
        if app.config[key] < 1:
            raise SystemExit(f"RUNWATCH_{key} must be at least 1")
    proxies = app.config["PROXY_COUNT"]
    if (isinstance(proxies, bool) or not isinstance(proxies, (int, str))
            or not str(proxies).strip().isdigit() or int(proxies) > MAX_PROXIES):
        raise SystemExit(f"RUNWATCH_PROXY_COUNT must be a whole number from 0 to {MAX_PROXIES} "
                         f"(the reverse proxies in front), not {proxies!r}")
    app.config["PROXY_COUNT"] = int(proxies)
    if app.config["RETENTION_DAYS"] in ("", None):
        app.config["RETENTION_DAYS"] = None
    else:
        try:
            app.config["RETENTION_DAYS"] = int(app.config["RETENTION_DAYS"])
        except (TypeError, ValueError):
            raise SystemExit("RUNWATCH_RETENTION_DAYS must be an integer, "
                             f"not {app.config['RETENTION_DAYS']!r}")
        if app.config["RETENTION_DAYS"] < 1:
            raise SystemExit("RUNWATCH_RETENTION_DAYS must be at least 1")
    for key in ("SCHEDULER", "SMTP_STARTTLS", "WEBHOOK_ALLOW_PRIVATE"):
        value = app.config[key]
        if isinstance(value, str):
            app.config[key] = value.strip().lower() in ("1", "true", "yes", "on")


def _instance_secret(instance_path: str) -> str:
    """A secret key generated on first start and kept in the instance folder."""
    path = os.path.join(instance_path, "secret_key")
    try:
        with open(path) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker wrote it first
        return _instance_secret(instance_path)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key
