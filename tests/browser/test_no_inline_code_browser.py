"""No inline code, so a strict Content-Security-Policy can be sent: htmx's `hx-confirm` and
`htmx.config.responseHandling` (set by a <meta> tag) do what inline handlers did."""
from __future__ import annotations

import re

import pytest

from alert_servers import make_rule
from helpers import ROOT
from models.db import connection

# An inline event handler or hx-on attribute, a javascript: URL, or a <script> without src.
INLINE = re.compile(r"""\son[a-z]+\s*=|\shx-on[:-]|\sdata-hx-on|javascript:|<script(?![^>]*\ssrc=)[^>]*>""",
                    re.IGNORECASE)


def test_no_template_or_script_of_ours_holds_inline_code():
    found = []
    for path in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/*.js")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INLINE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "inline code:\n" + "\n".join(found)


@pytest.mark.browser
def test_htmx_swaps_a_400_in_place_and_keeps_its_defaults_for_every_other_code(page):
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
