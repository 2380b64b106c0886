"""Accounts in the browser: changing one's password, disabling and enabling a colleague,
token scopes, and the throttled login form; every state passes the axe-core audit."""
from __future__ import annotations

import pytest

from helpers import EMAIL, PASSWORD, LiveServer
from models import database
from models.db import connection
from models.users import create_user

pytestmark = pytest.mark.browser

OTHER = "colleague@example.com"


@pytest.fixture
def live_server(app, database_url, tmp_path):
    """One worker (its own failed sign-in counts) with a small login limit."""
    if not database.is_closed():
        database.close()
    server = LiveServer(database_url, tmp_path, workers=1,
                        env={"RUNWATCH_LOGIN_RATE_LIMIT": "2 per minute"}).start()
    yield server
    server.stop()


def test_a_colleague_is_disabled_and_enabled_in_settings(page, audit):
    with connection():
        create_user(OTHER, "their own password")
    page.goto("/settings")
    audit(page, "the settings page with two accounts")
    page.click(f"button:has-text('Disable {OTHER}')")
    page.wait_for_selector("p.flash")
    assert "is disabled" in page.inner_text("p.flash")
    row = page.locator("tr.account", has_text=OTHER)
    assert "disabled" in row.inner_text()
    audit(page, "the settings page after disabling an account")
    page.click(f"button:has-text('Enable {OTHER}')")
    page.wait_for_selector("p.flash")
    assert "enabled" in page.locator("tr.account", has_text=OTHER).inner_text()


def test_a_password_is_changed_in_settings(page, audit):
    page.goto("/settings")
    page.fill("#current_password", "not my password")
    page.fill("#new_password", "a brand new password")
    page.fill("#confirm_password", "a brand new password")
    page.click("button:has-text('Change password')")
    page.wait_for_selector("#current_password-error")
    audit(page, "the settings page with a wrong current password (400)")
    page.fill("#current_password", PASSWORD)
    page.fill("#new_password", "a brand new password")
    page.fill("#confirm_password", "a brand new password")
    page.click("button:has-text('Change password')")
    page.wait_for_selector("p.flash")
    assert "password is changed" in page.inner_text("p.flash")
    page.goto("/settings")  # this session stays signed in
    assert page.url.endswith("/settings")


def test_a_token_is_made_with_the_scopes_ticked(page, audit):
    page.goto("/settings")
    assert page.is_checked("input[value=admin]")
    page.fill("#name", "ci")
    page.uncheck("input[value=read]")
    page.uncheck("input[value=admin]")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    assert page.inner_text("td.token-scopes") == "ingest"
    page.goto("/settings")
    for box in ("ingest", "read", "admin"):
        page.uncheck(f"input[value={box}]")
    page.fill("#name", "nothing")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#scopes-error")
    audit(page, "the settings page with no scope ticked (400)")


def test_the_login_form_says_when_to_try_again(guest_page, audit, user):
    tab = guest_page
    for _ in range(2):
        tab.goto("/login")
        tab.fill("input[name=email]", EMAIL)
        tab.fill("input[name=password]", "wrong password")
        tab.click("button[type=submit]")
        tab.wait_for_selector("#password-error")
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_selector("form [role=alert]")
    assert "Try again in" in tab.inner_text("form [role=alert]")
    assert tab.input_value("input[name=email]") == EMAIL
    audit(tab, "the login page after too many failed sign-ins (429)")
