"""The header of every signed-in page: a search box that asks the history for `q`, the
sections twice (a row for wide screens, a menu for phones), and the list of keys."""
from __future__ import annotations

import pytest

from helpers import parse, report


@pytest.fixture
def run_id(api) -> int:
    return report(api, {"workflow": "invoice-sync", "status": "success"})


@pytest.mark.parametrize("url", ["/executions", "/executions/{run_id}", "/workflows",
                                 "/workflows/invoice-sync", "/alerts", "/alerts/log",
                                 "/settings", "/executions/999999999"])
def test_every_page_has_a_search_box_that_asks_the_history_for_q(logged_in, run_id, url):
    page = parse(logged_in.get(url.format(run_id=run_id)))
    [form] = page.find("form", role="search")
    assert form.attrs["action"] == "/executions" and form.attrs.get("method") == "get"
    [box] = form.find("input", type="search")
    assert box.attrs["name"] == "q" and box.attrs["id"] == "site-search"
    assert page.find("label", **{"for": "site-search"}), "the box has a label"
    menus = page.find("details", class_="narrow-nav")
    assert len(menus) == 1 and "/settings" in [a.attrs["href"] for a in menus[0].find("a")]
    assert page.find("dialog", id="keys-help"), "? lists the keys"
    assert page.find("script", src="/static/site.js")


def test_the_search_box_finds_a_run_by_its_external_id_and_keeps_what_was_searched(
        api, logged_in):
    wanted = report(api, {"workflow": "backup", "external_id": "run-8812", "status": "success"})
    report(api, {"workflow": "backup", "external_id": "run-8813", "status": "success"})
    page = parse(logged_in.get("/executions?q=run-8812"))
    assert page.by_id("site-search").attrs["value"] == "run-8812"
    assert [row.attrs["data-id"] for row in page.find("tr") if "data-id" in row.attrs] \
        == [str(wanted)]
    assert parse(logged_in.get("/workflows?q=backup")).by_id("site-search").attrs["value"] == ""


def test_a_signed_out_page_has_no_search_box(client):
    page = parse(client.get("/login"))
    assert not page.find("form", role="search") and not page.find("dialog")
