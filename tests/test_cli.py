"""The `flask --app app …` commands."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from models import Execution, ExecutionPayload, Step, StepPayload, Workflow
from models.db import utcnow
from models.users import User


def test_users_create_makes_an_account_that_can_sign_in(runner, auth, db):
    result = runner.invoke(args=["users", "create", "ops@example.com", "--password",
                                 "a long password"])
    assert result.exit_code == 0, result.output
    assert User.get().email == "ops@example.com"
    assert auth.login("ops@example.com", "a long password").status_code == 302


def test_users_create_prompts_for_the_password(runner, db):
    result = runner.invoke(args=["users", "create", "ops@example.com"],
                           input="a long password\na long password\n")
    assert result.exit_code == 0, result.output
    assert User.get().check_password("a long password")


def test_users_create_refuses_a_duplicate_or_a_short_password(runner, db):
    runner.invoke(args=["users", "create", "ops@example.com", "--password", "a long password"])
    again = runner.invoke(args=["users", "create", "OPS@example.com", "--password", "another one"])
    assert again.exit_code != 0 and "already exists" in again.output
    short = runner.invoke(args=["users", "create", "new@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output
    assert User.select().count() == 1


def test_tokens_create_prints_a_working_token_alone_on_the_last_line(runner, user, client):
    result = runner.invoke(args=["tokens", "create", user.email, "--name", "deploy"])
    assert result.exit_code == 0, result.output
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("rw_") and " " not in token
    response = client.get("/api/ping", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_tokens_create_for_an_unknown_account_fails(runner, db):
    result = runner.invoke(args=["tokens", "create", "nobody@example.com"])
    assert result.exit_code != 0 and "no account" in result.output


def test_demo_fills_realistic_runs_with_a_failing_streak(runner, db):
    result = runner.invoke(args=["demo", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert Workflow.select().count() >= 8
    assert Execution.select().count() == 2000
    statuses = {row.status for row in Execution.select(Execution.status).distinct()}
    assert statuses == {"pending", "running", "success", "failure"}
    oldest = Execution.select().order_by(Execution.started_at).first().started_at
    assert utcnow() - oldest > timedelta(days=25)
    assert Step.select().count() > 2 * Execution.select().count()
    assert StepPayload.select().where(StepPayload.output.is_null(False)).exists()
    failed = ExecutionPayload.select().where(ExecutionPayload.error.is_null(False)).first()
    assert "Traceback" in json.loads(failed.error)["stack"]
    assert ExecutionPayload.select().where(ExecutionPayload.input.is_null(False)).count() == 2000
    # One workflow is failing several times in a row right now.
    streak_workflow = Workflow.get(Workflow.name == "payment-retry")
    latest = (Execution.select().where(Execution.workflow == streak_workflow,
                                       Execution.status.in_(["success", "failure"]))
              .order_by(Execution.started_at.desc()).limit(3))
    assert [run.status for run in latest] == ["failure"] * 3


def test_tokens_are_listed_and_revoked_from_the_command_line(runner, user, client):
    token = runner.invoke(args=["tokens", "create", user.email]).output.strip().splitlines()[-1]
    listing = runner.invoke(args=["tokens", "list", user.email])
    assert listing.exit_code == 0 and "active" in listing.output
    assert token not in listing.output
    token_id = listing.output.split("\t")[0]
    result = runner.invoke(args=["tokens", "revoke", user.email, token_id])
    assert result.exit_code == 0, result.output
    assert "revoked" in runner.invoke(args=["tokens", "list", user.email]).output
    assert client.get("/api/ping", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    again = runner.invoke(args=["tokens", "revoke", user.email, token_id])
    assert again.exit_code != 0 and "no live token" in again.output


def test_the_demo_streak_is_exactly_five_failures_after_a_success(runner, db):
    runner.invoke(args=["demo", "--runs", "300", "--seed", "3"])
    workflow = Workflow.get(Workflow.name == "payment-retry")
    latest = (Execution.select().where(Execution.workflow == workflow,
                                       Execution.status.in_(["success", "failure"]))
              .order_by(Execution.started_at.desc()).limit(6))
    assert [run.status for run in latest] == ["failure"] * 5 + ["success"]
    assert Execution.select().count() == 300


def _signed_in_client(app, email: str, password: str):
    from helpers import csrf_from
    client = app.test_client()
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.text), "email": email,
                                           "password": password, "remember": "y"})
    assert response.status_code == 302
    return client


def test_users_password_sets_a_new_one_and_signs_the_account_out(runner, app, user, auth):
    from helpers import EMAIL, PASSWORD
    client = _signed_in_client(app, EMAIL, PASSWORD)
    result = runner.invoke(args=["users", "password", EMAIL, "--password", "a new password"])
    assert result.exit_code == 0, result.output
    assert client.get("/settings").status_code == 302
    assert auth.login(password=PASSWORD).status_code == 401
    assert auth.login(password="a new password").status_code == 302


def test_users_password_prompts_twice_without_echo(runner, user, db):
    result = runner.invoke(args=["users", "password", user.email],
                           input="a new password\na new password\n")
    assert result.exit_code == 0, result.output
    assert "a new password" not in result.output  # hidden
    assert "New password:" in result.output and "Repeat for confirmation:" in result.output
    assert User.get().check_password("a new password")
    mismatch = runner.invoke(args=["users", "password", user.email],
                             input="one password\nanother one\none password\none password\n")
    assert mismatch.exit_code == 0 and "do not match" in mismatch.output
    assert User.get().check_password("one password")


@pytest.mark.parametrize("args, message", [
    (["users", "password", "nobody@example.com", "--password", "long enough"], "no account"),
    (["users", "password", "dev@example.com", "--password", "short"], "at least 8"),
    (["users", "disable", "nobody@example.com"], "no account"),
    (["users", "enable", "not an address"], "no account"),
])
def test_account_commands_refuse_what_they_cannot_do(runner, user, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0 and message in result.output, result.output


def test_users_disable_and_enable_from_the_command_line(runner, app, user, token):
    from models.users import create_user
    from models.db import connection
    with connection():
        create_user("ops@example.com", "a long password")
    client = _signed_in_client(app, "ops@example.com", "a long password")
    listing = runner.invoke(args=["users", "list"])
    assert listing.exit_code == 0
    rows = [line.split("\t") for line in listing.output.strip().splitlines()]
    assert [(r[0], r[1], r[3]) for r in rows] == [("dev@example.com", "enabled", "1 token(s)"),
                                                  ("ops@example.com", "enabled", "0 token(s)")]

    result = runner.invoke(args=["users", "disable", "dev@example.com"])
    assert result.exit_code == 0, result.output
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/ping", headers=headers).status_code == 401
    assert "dev@example.com\tdisabled" in runner.invoke(args=["users", "list"]).output
    # The last enabled account stays enabled.
    last = runner.invoke(args=["users", "disable", "ops@example.com"])
    assert last.exit_code != 0 and "last enabled account" in last.output
    assert client.get("/settings").status_code == 200

    result = runner.invoke(args=["users", "enable", "DEV@example.com"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get("/api/ping", headers=headers).status_code == 200
    again = runner.invoke(args=["users", "enable", "dev@example.com"])
    assert again.exit_code == 0 and "already enabled" in again.output
