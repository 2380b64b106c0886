"""The `flask --app app …` commands."""
from __future__ import annotations

import click
from flask import Flask

from models.db import connection
from models.users import AccountError, User, create_token, create_user, normalise_email


def register(app: Flask) -> None:
    """Attach the command groups to `app`."""
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(demo)
    app.cli.add_command(alerts)


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


@click.group(help="Manage API tokens.")
def tokens():
    pass


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="A name to recognise the token by.")
def tokens_create(email: str, name: str):
    """Create an API token; the token alone is printed on the last line."""
    with connection():
        try:
            user = User.get_or_none(User.email == normalise_email(email))
            if user is None:
                raise AccountError(f"There is no account {email}.")
            _, secret = create_token(user, name)
        except AccountError as exc:
            raise click.ClickException(str(exc))
    click.echo(f"Token {name!r} for {user.email} (shown once, stored hashed):")
    click.echo(secret)


@click.command(help="Fill the database with realistic sample runs.")
@click.option("--runs", default=2000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 3650))
@click.option("--seed", default=None, type=int, help="Random seed, for repeatable data.")
def demo(runs: int, days: int, seed: int | None):
    """Create sample workflows, runs, steps and one workflow failing now."""
    from models.demo import fill_demo

    with connection():
        stats = fill_demo(runs=runs, days=days, seed=seed)
    click.echo(f"Stored {stats['runs']} runs of {stats['workflows']} workflows "
               f"over {days} days; {stats['failing']!r} is failing "
               f"{stats['streak']} times in a row.")


@click.group(help="Failure alerts.")
def alerts():
    pass


@alerts.command("scan")
def alerts_scan():
    """Run one alert scan and one delivery pass now, then exit (for cron)."""
    from flask import current_app

    from alerts.scheduler import run_once
    from alerts.settings import settings_from

    scanned, delivered = run_once(settings_from(current_app))
    click.echo(f"Scan: {scanned.examined} workflow(s) examined, {scanned.decided} notice(s) "
               f"decided in {scanned.duration_ms:.1f} ms. Delivery: {delivered.delivered} "
               f"delivered, {delivered.retrying} to retry, {delivered.failed} failed.")
