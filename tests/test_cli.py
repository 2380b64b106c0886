"""The `flask --app app …` commands."""
from __future__ import annotations

import json
from datetime import timedelta

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
