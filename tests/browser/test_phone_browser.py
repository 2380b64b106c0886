"""Every page on a 390 px phone and a wide screen, in the light and the dark theme: nothing
wider than the window, axe-core content in both themes; the menu that opens without
JavaScript; the keys."""
from __future__ import annotations

import re

import pytest

from alert_servers import make_rule
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from models.db import connection
from models.demo import FAILING_WORKFLOW, fill_demo
from models.executions import Execution, Workflow
from models.ingest import store_executions
from models.schemas import ExecutionIn
from sources.models import Source
from sources.schemas import SourceIn
from sources.service import create_source

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}  # between the two: its width alone is checked
WIDE = {"width": 1400, "height": 900}
# How wide the document is against the window (the page must never scroll sideways), and
# the outermost elements that reach past the window's right edge, to say what to fix.
WIDTHS = """() => {
    const wide = [...document.body.querySelectorAll("*")].filter(el =>
        el.getBoundingClientRect().right > innerWidth + 1 && el.offsetParent !== null);
    const outermost = wide.filter(el => !wide.includes(el.parentElement)).slice(0, 5);
    return [document.documentElement.scrollWidth, innerWidth, outermost.map(el =>
        `<${el.localName} class="${el.className}"> ${Math.round(el.getBoundingClientRect().right)} px`)];
}"""


@pytest.fixture
def app_config(app_config):
    return {**app_config, "DELIVERY_MAX_ATTEMPTS": 1, "WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def pages(app, receiver) -> list[tuple[str, str]]:
    """Demo runs, a rule that has sent notices, and every page that shows them."""
    with connection():
        fill_demo(runs=120, seed=11)
        rule = make_rule(3, [{"type": "webhook", "url": receiver.url}],
                         workflow=FAILING_WORKFLOW)
        scan(config_from(app))
        deliver_due(config_from(app))
        failed = (Execution.select(Execution.id).join(Workflow)
                  .where(Execution.status == "failure", Execution.step_count > 0,
                         Workflow.name == FAILING_WORKFLOW)
                  .order_by(Execution.started_at.desc()).first().id)
        [(command, _)] = store_executions([ExecutionIn.model_validate({
            "workflow": "nightly-backup", "status": "failure",
            "error": {"type": "ExitCode", "message": "exit code 3"},
            "output": {"exit_code": 3, "stdout_tail": "saving /var/lib/app\n\x1b[32mok\x1b[0m "
                       + "a-long-path-without-spaces/" * 12 + "\n",
                       "stderr_tail": "\x1b[31mdisk full\x1b[0m\n"}})])
        for url, error in (("http://prefect.example.com:4200/api", None),
                           ("https://api.prefect.cloud/api/accounts/8f6b0c9e-4d2a-4f3b-9c1e-"
                            "2a7d5e6f8b9c/workspaces/0d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",
                            "POST /flow_runs/filter: the server answered HTTP 401 "
                            "Unauthorized: {\"detail\": \"Invalid authentication\"}")):
            source = create_source(SourceIn.model_validate(
                {"type": "prefect", "url": url, "token": "pnu_key"}))
            Source.update(last_error=error, last_pull_at=source.created_at, last_pulled=3,
                          runs=120).where(Source.id == source.id).execute()
    return [("/executions", "the history"),
            (f"/executions?workflow={FAILING_WORKFLOW}&status=failure", "a filtered history"),
            (f"/executions/{failed}", "a failed run"),
            (f"/executions/{failed}/compare", "a run's comparison"),
            (f"/executions/{failed}/steps/1", "a step at its own address"),
            (f"/executions/{command}", "a command's run, its output as a log"),
            ("/workflows", "the workflows"),
            (f"/workflows/{FAILING_WORKFLOW}", "a workflow"),
            ("/alerts", "the alerts"),
            (f"/alerts/rules/{rule.id}/edit", "a rule's edit page"),
            ("/alerts/log", "the delivery log"),
            ("/alerts/health", "the alert scan's health"),
            ("/settings", "the settings"),
            ("/settings/sources", "the sources"),
            ("/executions/999999999", "a 404 page")]


def _signed_in_tab(browser, live_server, live_session, **options):
    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.goto("/login")
    context.add_cookies([{"name": cookie.name, "value": cookie.value, "url": live_server.url}
                         for cookie in live_session.cookies])
    return tab


def _too_wide(tab, what: str) -> list[str]:
    document, window, culprits = tab.evaluate(WIDTHS)
    if document <= window:
        return []
    return [f"{what} is {document} px wide in a {window} px window: " + ", ".join(culprits)]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone_and_a_wide_screen_and_passes_axe_core(
        browser, live_server, live_session, pages, audit, scheme):
    too_wide = []
    for viewport in (PHONE, WIDE) if scheme == "dark" else (PHONE, TABLET, WIDE):
        tab = _signed_in_tab(browser, live_server, live_session, viewport=viewport,
                             color_scheme=scheme)
        try:
            where = f"{viewport['width']} px, {scheme}"
            # The wide light pages are audited in every state by test_accessibility_browser.
            check = audit if viewport == PHONE or scheme == "dark" else lambda tab, what: None
            too_wide += _too_wide(tab, f"the login page ({where})")  # signed out still
            check(tab, f"the login page ({where})")
            for url, what in pages:
                tab.goto(url)
                too_wide += _too_wide(tab, f"{what} ({where})")
                check(tab, f"{what} ({where})")
        finally:
            tab.context.close()
    assert not too_wide, "\n".join(too_wide)


def test_on_a_phone_the_sections_are_in_a_menu_that_opens_without_javascript(
        browser, live_server, live_session):
    tab = _signed_in_tab(browser, live_server, live_session, viewport=PHONE,
                         java_script_enabled=False)
    try:
        tab.goto("/settings")
        menu = tab.locator("header details.narrow-nav")
        assert tab.locator("header .wide-nav").is_hidden()
        assert menu.locator("a", has_text="Alerts").is_hidden()
        menu.locator("summary").click()
        for name in ("Workflows", "Executions", "Alerts", "Settings"):
            box = menu.locator("a", has_text=name).bounding_box()
            assert box and 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], name
        sign_out = menu.locator("button", has_text="Sign out").bounding_box()
        assert sign_out["x"] >= 0 and sign_out["x"] + sign_out["width"] <= PHONE["width"]
        menu.locator("a", has_text="Alerts").click()
        tab.wait_for_url(re.compile(r"/alerts$"))
    finally:
        tab.context.close()


def test_the_keys_find_a_run_move_through_rows_open_one_and_list_themselves(page, pages):
    page.goto("/workflows")
    assert page.locator("header .wide-nav").is_visible()  # a wide screen: no menu
    assert page.locator("header .narrow-nav").is_hidden()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "site-search"
    page.keyboard.type("j")  # typed into the box: not a key of the page
    assert page.input_value("#site-search") == "j"
    page.keyboard.press("Enter")  # the history reads `q`
    page.wait_for_url(re.compile(r"/executions\?q=j$"))

    page.goto("/executions")
    ids = page.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => r.dataset.id)")
    selected = "() => document.activeElement.closest('tr')?.dataset.id"
    page.keyboard.press("j")
    assert page.evaluate(selected) == ids[0]
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.evaluate(selected) == ids[1]
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/executions/{ids[1]}$"))

    page.keyboard.press("?")
    help_list = page.locator("#keys-help")
    assert help_list.is_visible() and "open the selected row" in help_list.inner_text()
    page.keyboard.press("Escape")
    assert help_list.is_hidden()
