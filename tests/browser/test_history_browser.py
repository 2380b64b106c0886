"""The history page in headless Chromium: filter, push the URL, go back, reload a bookmark."""
from __future__ import annotations

import re

import pytest
import requests

BATCH = "/api/automations/executions/batch"


def _seed(live_server, token: str) -> None:
    runs = [{"workflow": ["alpha", "beta", "gamma"][i % 3],
             "status": ["success", "failure", "success", "pending"][i % 4],
             "started_at": f"2026-11-2{i % 5}T{10 + i % 12}:{i % 60:02d}:00Z"}
            for i in range(120)]
    response = requests.post(live_server.url + BATCH, json={"executions": runs}, timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text


def _rows(page) -> list[tuple[str, str, str]]:
    """(id, status, workflow) of every listed run."""
    page.wait_for_selector("#results")
    return [tuple(cells) for cells in page.eval_on_selector_all(
        "#results tbody tr",
        "rows => rows.map(r => [r.dataset.id, r.querySelector('.badge').textContent.trim(),"
        " r.querySelector('.workflow-link').textContent.trim()])")]


@pytest.mark.browser
@pytest.mark.spec("API-AUTO-EXEC-FILTER-001")
@pytest.mark.spec("API-AUTO-EXEC-FILTER-003")
def test_filtering_pushes_the_url_and_back_and_bookmarks_restore_the_view(page, live_server,
                                                                          live_token):
    _seed(live_server, live_token)
    page.goto("/executions")
    everything = _rows(page)
    assert {status for _, status, _ in everything} == {"success", "failure", "pending"}

    page.check("#status-failure")
    page.wait_for_url(re.compile(r"/executions\?status=failure$"))
    page.wait_for_function("() => [...document.querySelectorAll('#results .badge')]"
                           ".every(b => b.textContent.trim() === 'failure')")
    failures = _rows(page)
    assert failures and {status for _, status, _ in failures} == {"failure"}
    assert page.locator(".count[data-status=failure]").inner_text() == str(len(failures))

    page.fill("#workflow-input", "beta")
    page.press("#workflow-input", "Enter")
    page.wait_for_url(re.compile(r"/executions\?workflow=beta&status=failure$"))
    page.wait_for_function("() => [...document.querySelectorAll('#results .workflow-link')]"
                           ".every(a => a.textContent.trim() === 'beta')")
    beta_failures = _rows(page)
    assert beta_failures and {(s, w) for _, s, w in beta_failures} == {("failure", "beta")}
    bookmark = page.url

    page.go_back()
    page.wait_for_url(re.compile(r"/executions\?status=failure$"))
    page.wait_for_function("n => document.querySelectorAll('#results tbody tr').length === n",
                           arg=len(failures))
    assert _rows(page) == failures
    assert page.is_checked("#status-failure")

    page.goto(bookmark)
    assert _rows(page) == beta_failures
    page.reload()
    assert _rows(page) == beta_failures
    assert page.is_checked("input[name=workflow][value=beta]")
