"""Every page, signed out and signed in on a demo-filled app, passes an axe-core audit
(WCAG 2.1 A/AA and best practices) and carries no inline code, in each state a person
reaches: with errors, with a step or the comparison open, after htmx swaps."""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from alert_servers import make_rule
from alerts.config import ALLOW_PRIVATE, config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from helpers import EMAIL, PASSWORD
from models.db import connection
from models.demo import FAILING_WORKFLOW, fill_demo
from models.executions import Execution, Workflow
from models.ingest import store_executions
from models.schemas import ExecutionIn
from models.users import create_user
from reruns.schemas import RerunIn
from reruns.settings import save_hook

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config):
    # Deliveries decided in this process give up after one attempt: the log shows a failure.
    # Webhooks may go to the receiver on 127.0.0.1.
    return {**app_config, "DELIVERY_MAX_ATTEMPTS": 1, "DELIVERY_RETRY_SECONDS": 1,
            "WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def demo(app):
    """The sample data of `flask --app app demo`: runs of nine workflows, one failing now."""
    with connection():
        fill_demo(runs=400, seed=11)


def _latest(status: str, workflow: str | None = None) -> int:
    with connection():
        query = Execution.select(Execution.id).where(Execution.status == status,
                                                     Execution.step_count > 0)
        if workflow:
            query = query.join(Workflow).where(Workflow.name == workflow)
        return query.order_by(Execution.started_at.desc()).first().id


def test_the_signed_out_pages(guest_page, audit):
    tab = guest_page
    tab.goto("/")
    tab.wait_for_url(re.compile(r"/setup\b"))
    audit(tab, "the first-run setup")

    tab.fill("input[name=email]", "first@example.com")
    tab.fill("input[name=password]", "short")
    tab.fill("input[name=confirm]", "different")
    tab.click("button[type=submit]")
    tab.wait_for_selector(".field-error")
    assert tab.get_attribute("input[name=password]", "aria-invalid") == "true"
    audit(tab, "the first-run setup with errors")

    with connection():
        create_user(EMAIL, PASSWORD)
    tab.goto("/login")
    assert tab.get_attribute("input[name=email]", "aria-describedby") is None
    audit(tab, "the login page")

    tab.fill("input[name=email]", EMAIL)
    tab.fill("input[name=password]", "wrong password")
    tab.click("button[type=submit]")
    tab.wait_for_selector("#password-error")
    assert tab.get_attribute("input[name=password]", "aria-describedby") == "password-error"
    audit(tab, "the login page with a wrong password")

    tab.evaluate("() => document.querySelector('input[name=csrf_token]').remove()")
    tab.click("button[type=submit]")
    tab.wait_for_selector(".error-page")
    assert "400" in tab.inner_text("h1")
    audit(tab, "the error page of a form sent without its CSRF token")

    tab.goto("/static/nothing-here.css")
    assert "404" in tab.inner_text("h1")
    audit(tab, "a 404 error page")


def test_the_history_page(demo, page, audit):
    page.goto("/executions")
    page.wait_for_selector("#results tbody tr")
    audit(page, "the history page")

    page.goto(f"/executions?workflow={FAILING_WORKFLOW}&status=failure")
    page.wait_for_selector("#results tbody tr")
    audit(page, "the history page, filtered")

    page.goto("/executions?from=last+thursday&tz=Mars/Olympus")
    assert page.locator("#from-error").is_visible() and page.locator("#tz-error").is_visible()
    audit(page, "the history page with bad fields (400)")

    page.goto("/executions?workflow=no-such-workflow")
    page.wait_for_selector(".empty-state")
    audit(page, "the history page when no run matches")

    page.goto("/executions")
    page.check("#status-running")
    page.wait_for_url(re.compile(r"status=running"))
    page.fill("#from", "not a date")
    page.press("#from", "Enter")
    page.wait_for_selector("#from-error")
    audit(page, "the history page after htmx swapped in a bad field")


def test_the_history_page_beside_runs_an_older_release_stored_in_years_1_and_9999(
        demo, page, audit):
    with connection():
        store_executions([ExecutionIn.model_construct(
            workflow="legacy", external_id=None, status="failure", started_at=moment,
            finished_at=None, input=None, output=None, error=None, steps=[])
            for moment in (datetime(1, 1, 1, tzinfo=timezone.utc),
                           datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc))])
    page.goto("/executions")
    page.wait_for_selector("#results tbody tr")
    assert page.locator(".histogram span.bar").count() > 0  # bars outside 1970-2100: no link
    audit(page, "the history page with bars that are not links")


def test_the_execution_pages(demo, page, audit, receiver):
    failed = _latest("failure", FAILING_WORKFLOW)
    page.goto(f"/executions/{failed}")
    page.wait_for_selector(".error-panel")
    audit(page, "a failed run")

    with connection():  # a re-run hook: the run page asks first, then shows the answer
        save_hook(Workflow.get(Workflow.name == FAILING_WORKFLOW).id, RerunIn.model_validate(
            {"url": receiver.url}, context={ALLOW_PRIVATE: True}))
    page.goto(f"/executions/{failed}")
    page.click("text=Re-run with this input")
    page.click("button:has-text('Send the re-run request')")
    page.wait_for_selector("#reruns tr.rerun")
    assert len(receiver.requests) == 1
    audit(page, "a failed run with a re-run requested")

    page.locator(".steps li a").first.click()
    page.wait_for_selector("#step-panel article")
    page.wait_for_selector(".steps li.selected")
    audit(page, "a failed run with a step open")

    page.click("text=Compare with last success")
    page.wait_for_selector("#compare .comparison")
    assert page.locator("#compare a[href^='/executions/']").count() > 0, "a baseline exists"
    audit(page, "a failed run with a step and the comparison open")

    page.goto(f"/executions/{failed}/steps/0")
    page.wait_for_selector("#step-panel article")
    page.locator("#step-panel details").first.locator("summary").click()  # fold a section
    audit(page, "a step's own address, with a section folded")

    page.goto(f"/executions/{failed}/compare")
    page.wait_for_selector("#compare .comparison")
    audit(page, "a failed run's comparison at its own address")

    running = _latest("running")
    page.goto(f"/executions/{running}")
    page.wait_for_selector(".live-note")
    audit(page, "a running run")

    page.goto("/executions/999999999")
    assert "404" in page.inner_text("h1")
    audit(page, "a 404 error page, signed in")


SLICE = 20  # steps listed at once on the server of the long run's test


@pytest.mark.server_env(RUNWATCH_RUN_STEPS_PER_PAGE=str(SLICE))
def test_a_long_run_with_a_large_payload(app, page, audit):
    # Past the first slice of the step list by a few steps: every state of a long run
    # (a slice, the next one loaded, a later slice at its own address) without making
    # axe-core read hundreds of rows (the slice is 20 steps here, 500 by default).
    steps = SLICE + 10
    rows = [{"row": i, "text": "x" * 60} for i in range(1500)]  # beyond the cut
    with connection():
        [(run_id, _)] = store_executions([ExecutionIn.model_validate_json(json.dumps({
            "workflow": "bulk-import", "status": "success", "input": {"rows": rows},
            "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:20:00Z",
            "steps": [{"name": f"Import batch {i}", "status": "success"}
                      for i in range(steps)]}))])
    page.goto(f"/executions/{run_id}")
    page.wait_for_selector(".cut-note")
    page.wait_for_selector(".steps li.more")
    assert page.locator(f"#step-{SLICE}").count() == 0
    audit(page, f"a run of {steps} steps with a payload cut short")

    page.click(".steps li.more a")
    page.wait_for_selector(f"#step-{steps - 1}")
    page.click(".cut-note a")
    page.wait_for_selector("#run-input .code")
    page.wait_for_function("() => !document.querySelector('#run-input .cut-note')")
    audit(page, "a long run after loading more steps and the rest of the payload")

    page.goto(f"/executions/{run_id}/steps?from={SLICE}")
    page.wait_for_selector(f"#step-{steps - 1}")
    assert page.locator("#step-0").count() == 0
    audit(page, "a long run's later steps at their own address")

    page.goto(f"/executions/{run_id}/payloads/input")
    page.wait_for_selector("#run-input .code")
    audit(page, "a run's whole payload at its own address")


def test_the_alert_pages(demo, app, page, audit, receiver):
    config = config_from(app)
    with connection():
        rule = make_rule(3, [{"type": "webhook", "url": receiver.url},
                             {"type": "email", "to": ["ops@example.com"]}],
                         workflow=FAILING_WORKFLOW)
        make_rule(1, [{"type": "webhook", "url": "http://127.0.0.1:9/closed"}],
                  enabled=False, notify_recovery=False)
        scan(config)
        deliver_due(config)  # the webhook delivers; mail has no server here: it fails

    page.goto("/alerts")
    page.wait_for_selector(f"#rule-{rule.id}")
    assert page.locator("#log .notice").count() >= 2
    audit(page, "the alerts page with rules and notices")

    page.click(f"#rule-{rule.id} button:has-text('Send test')")
    page.wait_for_selector(f"#test-result-{rule.id} li")
    page.locator("#log details summary").first.click()
    audit(page, "the alerts page after a test, with a notice's attempts open")

    page.fill("#new-rule input[name=threshold]", "0")
    page.locator("#new-rule input[name=threshold]").blur()
    page.wait_for_selector("#error-threshold:has-text('from 1 to 1000')")
    audit(page, "the new-rule form with an error shown as it is typed")

    page.goto(f"/alerts/rules/{rule.id}/edit")
    audit(page, "a rule's edit page")

    page.fill("input[name=threshold]", "")
    page.fill("input[name=webhook_url] >> nth=0", "not a url")
    page.click("button:has-text('Save rule')")
    page.wait_for_selector("p.field-error[role=alert]")
    audit(page, "a rule's edit page with errors (400)")

    page.goto("/alerts/log")
    page.wait_for_selector("#log .notice")
    audit(page, "the delivery log on its own page")

    page.goto("/alerts/health")
    page.wait_for_selector("#health")
    audit(page, "the alert scan's health on its own page")


def test_the_settings_page(page, audit):
    page.goto("/settings")
    audit(page, "the settings page")

    page.fill("#name", "deploy-bot")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    audit(page, "the settings page showing a new token")

    page.goto("/settings")
    page.click("button:has-text('Create token')")  # no name
    page.wait_for_selector("#name-error")
    audit(page, "the settings page with a token form error (400)")

    _submit(page, {"#accounts input[name=email]": "colleague@example.com",
                   "#accounts input[name=password]": "short"}, "Add account",
            "#accounts .field-error")
    audit(page, "the settings page with an account form error (400)")

    # Its Sources page: a form error, a source added, paused (a boosted form) and deleted
    # after its confirmation.
    page.click("#sources a:has-text('Sources')")
    _submit(page, {"#source-url": "http://127.0.0.1:4200/api", "#source-interval": "5"},
            "Add source", "#source-interval_seconds-error")
    audit(page, "the sources page with a form error (400)")
    _submit(page, {"#source-interval": "60", "#source-token": "pnu_key"}, "Add source",
            "tr.source")
    assert "pnu_key" not in page.content()
    page.click("tr.source button:has-text('Pause')")
    page.wait_for_selector("tr.source button:has-text('Resume')")
    page.click("tr.source summary")
    audit(page, "the sources page with a paused source, asked to delete it")
    page.click("tr.source button:has-text('Delete source')")
    page.wait_for_selector("text=No sources yet")


def _submit(page, fields: dict[str, str], button: str, then: str) -> None:
    """Fill the fields, press the button, wait until `then` shows."""
    for selector, value in fields.items():
        page.fill(selector, value)
    page.click(f"button:has-text('{button}')")
    page.wait_for_selector(then)


def test_the_audit_finds_a_violation_and_inline_code_on_every_element_it_concerns(browser,
                                                                                  audit):
    """The audit reports violations only (axe-core's `resultTypes`, which keeps it fast on
    long pages), each with every element it concerns."""
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.set_content('<!doctype html><html lang="en"><head><title>t</title></head><body>'
                        '<main><h1>t</h1><img src="a.png" id="first"><img src="b.png" '
                        'id="second"><a href="#" onclick="go()">go</a></main></body></html>')
        with pytest.raises(AssertionError) as failed:
            audit(tab, "a page with two images without text")
    finally:
        context.close()
    message = str(failed.value)
    assert "image-alt (critical)" in message
    assert "#first" in message and "#second" in message
    assert "<a> onclick" in message
