"""The `flask --app app …` commands."""
from __future__ import annotations

import click
import peewee
from flask import Flask
from flask.cli import with_appcontext

from models.db import connection
from models.users import (DEFAULT_SCOPES, AccountError, ApiToken, User, change_password,
                          create_token, create_user, normalise_email, parse_scopes,
                          revoke_token, set_enabled)


def register(app: Flask) -> None:
    """Attach the command groups to `app`."""
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(demo)
    app.cli.add_command(alerts)
    app.cli.add_command(scheduler)
    app.cli.add_command(retention)


@click.group(help="Manage accounts.")
def users():
    pass


@users.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The password (asked for when not given).")
def users_create(email: str, password: str):
    """Create an account."""
    with connection():
        try:
            user = create_user(email, password)
        except AccountError as exc:
            raise click.ClickException(str(exc))
    click.echo(f"Created account {user.email}.")


@users.command("password")
@click.argument("email")
@click.option("--password", prompt="New password", hide_input=True, confirmation_prompt=True,
              help="The new password (asked for twice, hidden, when not given).")
def users_password(email: str, password: str):
    """Set an account's password; every session of the account ends."""
    with connection():
        user = _account(email)
        try:
            change_password(user, password)
        except AccountError as exc:
            raise click.ClickException(str(exc))
    click.echo(f"Changed the password of {user.email}; its sessions are signed out.")


@users.command("disable")
@click.argument("email")
def users_disable(email: str):
    """Disable an account: it cannot sign in, its sessions end, its tokens get 401."""
    _set_enabled(email, False)


@users.command("enable")
@click.argument("email")
def users_enable(email: str):
    """Enable a disabled account again (its tokens work again)."""
    _set_enabled(email, True)


def _set_enabled(email: str, enabled: bool) -> None:
    state = "enabled" if enabled else "disabled"
    with connection():
        user = _account(email)
        try:
            changed = set_enabled(user, enabled)
        except AccountError as exc:
            raise click.ClickException(str(exc))
    if not changed:
        click.echo(f"{user.email} was already {state}.")
    elif enabled:
        click.echo(f"Enabled {user.email}.")
    else:
        click.echo(f"Disabled {user.email}: its sessions are signed out and its tokens get 401.")


@users.command("list")
def users_list():
    """List the accounts: e-mail address, enabled or disabled, created, live tokens."""
    with connection():
        live = (ApiToken.select(ApiToken.user, peewee.fn.COUNT(ApiToken.id))
                .where(ApiToken.revoked_at.is_null()).group_by(ApiToken.user).tuples())
        counts = dict(live)
        for user in User.select().order_by(User.email):
            state = "disabled" if user.disabled_at else "enabled"
            click.echo(f"{user.email}\t{state}\t{user.created_at:%Y-%m-%d}\t"
                       f"{counts.get(user.id, 0)} token(s)")


@click.group(help="Manage API tokens.")
def tokens():
    pass


def _scopes_option(_ctx, _param, value: str) -> frozenset[str]:
    try:
        return parse_scopes(value)
    except AccountError as exc:
        raise click.BadParameter(str(exc))


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A name to recognise the token by.")
@click.option("--scope", "scopes", default=",".join(DEFAULT_SCOPES), show_default=True,
              callback=_scopes_option,
              help="What the token may do, comma-separated: ingest (report runs), read "
                   "(every GET under /api, and /metrics), metrics (GET /metrics alone), "
                   "admin (everything).")
def tokens_create(email: str, name: str, scopes: frozenset[str]):
    """Create an API token; the token alone is printed on the last line."""
    with connection():
        user = _account(email)
        try:
            row, secret = create_token(user, name, scopes)
        except AccountError as exc:
            raise click.ClickException(str(exc))
    click.echo(f"Token {name!r} for {user.email} with scopes {', '.join(row.scope_list)} "
               "(shown once, stored hashed):")
    click.echo(secret)


def _account(email: str) -> User:
    try:
        user = User.get_or_none(User.email == normalise_email(email))
    except AccountError:
        user = None
    if user is None:
        raise click.ClickException(f"There is no account {email}.")
    return user


@tokens.command("list")
@click.argument("email")
def tokens_list(email: str):
    """List an account's tokens (id, name, first characters, state)."""
    with connection():
        for row in _account(email).tokens.order_by(ApiToken.id):
            state = "revoked" if row.revoked_at else "active"
            click.echo(f"{row.id}\t{row.name}\t{row.prefix}…\t{state}\t"
                       f"{','.join(row.scope_list)}")


@tokens.command("revoke")
@click.argument("email")
@click.argument("token_id", type=int)
def tokens_revoke(email: str, token_id: int):
    """Revoke one of an account's tokens by its id (see `tokens list`)."""
    with connection():
        if not revoke_token(_account(email), token_id):
            raise click.ClickException(f"{email} has no live token {token_id}.")
    click.echo(f"Revoked token {token_id}; requests that use it now get 401.")


@click.command(help="Fill the database with realistic sample runs.")
@click.option("--runs", default=2000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.option("--seed", default=None, type=int, help="Random seed, for repeatable data.")
def demo(runs: int, days: int, seed: int | None):
    """Create sample workflows, runs, steps and one workflow failing now."""
    from datetime import timedelta

    from models.times import utcnow
    from models.demo import fill_demo
    from workflows.settings import apply_demo_settings

    with connection():
        stats = fill_demo(runs=runs, days=days, seed=seed)
        apply_demo_settings(utcnow() - timedelta(days=days))
    click.echo(f"Stored {stats['runs']} runs of {stats['workflows']} workflows "
               f"over {days} days; {stats['failing']!r} is failing "
               f"{stats['streak']} times in a row; warehouse-export has an hourly schedule "
               "and no run (late after the next alert scan).")


@click.group(help="Failure alerts.")
def alerts():
    pass


@alerts.command("scan")
def alerts_scan():
    """Run one alert scan and one delivery pass now, then exit (for cron)."""
    from flask import current_app

    from alerts.scheduler import run_once
    from alerts.config import config_from

    scanned, delivered = run_once(config_from(current_app))
    click.echo(f"Scan: {scanned.examined} workflow(s) examined, {scanned.decided} notice(s) "
               f"decided in {scanned.duration_ms:.1f} ms. Delivery: {delivered.delivered} "
               f"delivered, {delivered.retrying} to retry, {delivered.failed} failed.")


@click.command(help="Run the background jobs in the foreground, until SIGTERM or Ctrl-C.")
def scheduler():
    """Take part in the scheduler lease and run the jobs while holding it (for web workers
    started with RUNWATCH_SCHEDULER=false); stops cleanly on SIGTERM or Ctrl-C."""
    import logging
    import signal

    from flask import current_app

    import scheduling

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    runner = scheduling.start(current_app._get_current_object())
    names = ", ".join(job.name for job in runner.jobs)
    click.echo(f"Scheduler {runner.holder}: jobs {names}; lease "
               f"{runner.lease.seconds:g} s, renewed every {runner.renew_seconds:g} s.")

    def _stop(signum, _frame):
        runner.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runner.wait()
    click.echo("Stopping: waiting for a running job, then releasing the lease.")
    runner.stop(wait=True)
    click.echo("Stopped.")


@click.command(help="Delete runs older than RUNWATCH_RETENTION_DAYS (or --days) once.")
@click.option("--days", type=click.IntRange(1, None), default=None,
              help="Keep runs that started in the last DAYS days (default: "
                   "RUNWATCH_RETENTION_DAYS).")
@click.option("--batch", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Runs deleted per transaction.")
@with_appcontext
def retention(days: int | None, batch: int):
    """Delete expired runs with their steps and payloads, in short transactions."""
    from flask import current_app

    from history.retention import purge_expired
    from models.times import utcnow

    days = days or current_app.config["RETENTION_DAYS"]
    if days is None:
        raise click.ClickException("RUNWATCH_RETENTION_DAYS is not set (every run is kept); "
                                   "set it or pass --days.")
    with connection():
        purged = purge_expired(utcnow(), days, batch=batch)
    click.echo(f"Deleted {purged.runs} run(s) older than {days} day(s), {purged.steps} step(s), "
               f"{purged.run_payloads + purged.step_payloads} payload row(s) in "
               f"{purged.batches} batch(es); the longest held the write lock "
               f"{purged.longest_batch_ms:.1f} ms.")
