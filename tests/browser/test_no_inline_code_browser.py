"""No inline code or style, so a strict Content-Security-Policy is sent: htmx's `hx-confirm`
and `htmx.config` (set by a <meta> tag) do what inline handlers did, and bars are drawn with
SVG attributes. Browsers then find nothing on any page that the policy refuses."""
from __future__ import annotations

import re

import pytest
import requests

from alert_servers import make_rule
from helpers import ROOT
from models.db import connection

# An inline event handler or hx-on attribute, a javascript: URL, a <script> without src,
# a style attribute or a <style> element.
INLINE = re.compile(r"""\son[a-z]+\s*=|\shx-on[:-]|\sdata-hx-on|javascript:|<script(?![^>]*\ssrc=)[^>]*>"""
                    r"""|\sstyle\s*=|<style""", re.IGNORECASE)
# E-mails are not pages: mail readers need their styles inline.
NOT_PAGES = {"templates/alerts/email.html"}


def test_no_template_or_script_of_ours_holds_inline_code():
    found = []
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/*.js")]:
        if str(path.relative_to(ROOT)) in NOT_PAGES:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INLINE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "inline code:\n" + "\n".join(found)


@pytest.mark.browser
def test_htmx_swaps_a_400_in_place_and_keeps_its_defaults_for_every_other_code(form_page):
    page = form_page  # signed in through the form, on the history page it leads to
    assert page.evaluate("() => htmx.config.responseHandling") == [
        {"code": "204", "swap": False},
        {"code": "400", "swap": True, "error": False},
        {"code": "[23]..", "swap": True},
        {"code": "[45]..", "swap": False, "error": True}]
    page.evaluate("() => { window.notReloaded = true; }")
    page.fill("#from", "not a date")
    page.press("#from", "Enter")
    page.wait_for_selector("#from-error")
    assert "date" in page.inner_text("#from-error")
    assert page.get_attribute("#from", "aria-describedby") == "from-error"
    assert page.evaluate("() => window.notReloaded === true"), "swapped in place by htmx"


@pytest.fixture
def rule(app):
    with connection():
        return make_rule(3, [{"type": "email", "to": ["ops@example.com"]}],
                         workflow="invoice-sync")


@pytest.mark.browser
def test_deleting_a_rule_asks_first_and_only_a_yes_deletes_it(page, rule):
    page.goto(f"/alerts/rules/{rule.id}/edit")
    page.evaluate("() => { window.notReloaded = true; }")
    questions = []

    def no(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", no)
    page.click("button:has-text('Delete this rule')")
    page.wait_for_timeout(300)
    assert questions == [f"Delete rule #{rule.id}?"]
    assert page.url.endswith(f"/alerts/rules/{rule.id}/edit")
    page.goto("/alerts")
    assert page.locator(f"#rule-{rule.id}").count() == 1, "a no keeps the rule"

    page.goto(f"/alerts/rules/{rule.id}/edit")
    page.evaluate("() => { window.notReloaded = true; }")

    def yes(dialog):
        questions.append(dialog.message)
        dialog.accept()

    page.once("dialog", yes)
    page.click("button:has-text('Delete this rule')")
    page.wait_for_url(re.compile(r"/alerts$"))
    page.wait_for_selector(f".flash:has-text('Rule #{rule.id} is deleted')")
    assert len(questions) == 2
    assert page.locator(f"#rule-{rule.id}").count() == 0
    assert page.title().startswith("Alerts")
    assert page.evaluate("() => window.notReloaded === true"), "htmx sent it and swapped"


@pytest.mark.browser
def test_deleting_a_rule_works_as_a_plain_form_without_javascript(no_js_page, rule):
    no_js_page.goto(f"/alerts/rules/{rule.id}/edit")
    no_js_page.click("button:has-text('Delete this rule')")
    no_js_page.wait_for_url(re.compile(r"/alerts$"))
    assert f"Rule #{rule.id} is deleted" in no_js_page.inner_text(".flash")
    assert no_js_page.locator(f"#rule-{rule.id}").count() == 0


def _report(live_server, token: str, body: dict) -> int:
    response = requests.post(live_server.url + "/api/automations/executions", json=body,
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.mark.browser
def test_no_page_does_anything_the_content_security_policy_refuses(page, live_server,
                                                                  live_token, rule):
    refused = []
    page.context.add_init_script(
        "document.addEventListener('securitypolicyviolation', e => console.error("
        "'refused by the policy: ' + e.violatedDirective + ' ' + e.blockedURI));")
    page.on("console", lambda message: ("policy" in message.text.lower()
                                         and refused.append(message.text)))
    steps = [{"name": f"step-{i}", "status": "success" if i < 3 else "failure",
              "started_at": f"2026-11-24T10:00:0{i}Z", "finished_at": f"2026-11-24T10:00:0{i + 1}Z"}
             for i in range(4)]
    steps[3]["error"] = {"message": "HTTP 502 from billing"}
    failed = _report(live_server, live_token, {
        "workflow": "invoice-sync", "status": "failure", "started_at": "2026-11-24T10:00:00Z",
        "finished_at": "2026-11-24T10:00:05Z", "error": {"message": "HTTP 502"}, "steps": steps})
    _report(live_server, live_token, {"workflow": "invoice-sync", "status": "success",
                                      "started_at": "2026-11-23T10:00:00Z",
                                      "finished_at": "2026-11-23T10:00:05Z"})

    page.goto("/executions?from=2026-11-20&to=2026-11-25")
    bar = page.locator(".histogram .bar rect").first.bounding_box()
    assert bar["height"] > 5, "the histogram's bars are drawn"
    page.goto(f"/executions/{failed}")
    step_bar = page.locator(".steps li.failed-step rect").bounding_box()
    assert step_bar["width"] > 5, "each step's bar sits on the time axis"
    assert page.locator(".axis span").nth(2).bounding_box()["x"] > page.locator(
        ".axis span").nth(1).bounding_box()["x"], "the axis labels are spread out"
    page.click(".steps li.failed-step a")
    page.wait_for_selector(".step-error")
    for url in ("/alerts", f"/alerts/rules/{rule.id}/edit", "/alerts/log", "/settings"):
        page.goto(url)
    page.wait_for_timeout(200)
    assert refused == []
