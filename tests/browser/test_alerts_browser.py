"""The alerts page in headless Chromium: create a rule, send a test, read the delivery log."""
from __future__ import annotations

import pytest


def create_rule_and_send_test(page) -> str:
    """Create the rule the form holds, send its test, and wait until it is delivered: the
    rule's row as it read once created."""
    page.click("button:has-text('Create rule')")
    page.wait_for_selector("#rule-1")
    row = page.inner_text("#rule-1")
    page.click("#rule-1 button:has-text('Send test')")
    page.wait_for_selector("#test-result-1 li:has-text('delivered')")
    return row


@pytest.mark.browser
@pytest.mark.spec("API-AUTO-EXEC-ALERT-003")
def test_a_rule_made_in_the_form_sends_a_test_that_shows_in_the_delivery_log(page, receiver):
    page.goto("/alerts")
    assert "The alert scan has stalled" in page.inner_text("#health")  # no scan ran yet
    page.fill("input[name=workflow]", "invoice-sync")
    page.fill("input[name=threshold]", "0")
    page.locator("input[name=threshold]").blur()
    page.wait_for_selector("#error-threshold:has-text('from 1 to 1000')")  # checked inline
    page.fill("input[name=threshold]", "3")
    page.locator("input[name=threshold]").blur()
    page.wait_for_selector("#error-threshold:empty", state="attached")
    page.fill("input[name=webhook_url]", receiver.url)
    assert "invoice-sync — 3 failures in a row" in create_rule_and_send_test(page)
    page.wait_for_selector("#log #notice-1")
    row = page.inner_text("#notice-1")
    assert "test" in row and "invoice-sync" in row and "delivered" in row
    assert page.url.endswith("/alerts#rule-1")  # htmx swapped in place: no navigation
    [request] = receiver.wait_for(1)
    assert request.json()["type"] == "test"


@pytest.mark.browser
def test_a_slack_channel_made_in_the_form_gets_the_slack_test_message(page, receiver):
    page.goto("/alerts")
    page.fill("input[name=workflow]", "invoice-sync")
    page.click("summary:has-text('Slack')")  # each service's part is folded until used
    page.fill("input[name=slack_url]", receiver.url)
    assert "Slack http://127.0.0.1:" in create_rule_and_send_test(page)
    [request] = receiver.wait_for(1)
    assert request.json()["blocks"][0]["text"]["text"] == "Test notice for invoice-sync (rule #1)"


@pytest.mark.browser
def test_a_slack_channel_and_a_maintenance_window_made_on_the_page_are_both_listed(page,
                                                                                   audit):
    page.goto("/alerts")
    page.fill("input[name=workflow]", "invoice-sync")
    page.click("summary:has-text('Slack')")
    page.fill("input[name=slack_url]", "https://hooks.slack.com/services/T0/B0/XXXX")
    page.click("button:has-text('Create rule')")
    page.wait_for_selector("#rule-1")
    assert "Slack https://hooks.slack.com/••••••" in page.inner_text("#rule-1 .channels")

    page.fill("#mw-workflow", "invoice-sync")
    page.check("input[name=shape][value=recurring]")
    page.fill("#mw-schedule", "0 3 * * 0")
    page.fill("#mw-duration_minutes", "0")
    page.fill("#mw-timezone", "Europe/Berlin")
    page.click("button:has-text('Create window')")
    page.wait_for_selector("#mw-duration_minutes-error")  # refused, beside its field
    audit(page, "the alerts page with a maintenance window refused")
    page.fill("#mw-duration_minutes", "90")
    page.fill("#mw-reason", "weekly database upkeep")
    page.click("button:has-text('Create window')")

    page.wait_for_selector("#window-1")
    row = page.inner_text("#window-1")
    assert "invoice-sync" in row and "0 3 * * 0 in Europe/Berlin" in row
    assert "weekly database upkeep" in row
    assert "Slack https://hooks.slack.com/••••••" in page.inner_text("#rule-1 .channels")
    audit(page, "the alerts page with a Slack rule and a maintenance window")
