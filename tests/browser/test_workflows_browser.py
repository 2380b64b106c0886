"""The workflow pages in headless Chromium: find the late ones, open one, set its schedule."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
import requests

from alerts.config import config_from
from alerts.scheduler import scan
from models.db import connection

API = "/api/automations"


def _seed(live_server, token: str) -> datetime:
    headers = {"Authorization": f"Bearer {token}"}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    runs = [{"workflow": name, "status": status,
             "started_at": (now - timedelta(hours=i + 1)).isoformat(),
             "finished_at": (now - timedelta(hours=i + 1, seconds=-40)).isoformat(),
             **({"error": {"message": f"HTTP 502 on invoice {i}", "type": "HTTPError"}}
                if status == "failure" else {})}
            for i in range(30)
            for name, status in (("invoice-sync", "failure" if i % 4 == 0 else "success"),
                                 ("etl", "success"))]
    runs.append({"workflow": "once", "status": "success", "started_at": now.isoformat()})
    answer = requests.post(live_server.url + f"{API}/executions/batch", headers=headers,
                           json={"executions": runs}, timeout=10)
    assert answer.status_code == 201, answer.text
    answer = requests.patch(live_server.url + f"{API}/workflows/nightly-backup", timeout=10,
                            headers=headers, json={"schedule": "0 * * * *", "grace_seconds": 0})
    assert answer.status_code == 201, answer.text
    return datetime.fromisoformat(answer.json()["next_expected_at"].replace("Z", "+00:00"))


@pytest.mark.browser
def test_a_developer_finds_the_late_workflow_and_sets_a_schedule(app, page, live_server,
                                                                 live_token, audit):
    expected = _seed(live_server, live_token)
    with app.app_context(), connection():
        scan(config_from(app), expected + timedelta(minutes=2))  # its hourly run is overdue

    page.goto("/workflows")
    page.wait_for_selector("table.workflows")
    names = page.locator("tr.workflow td.name a").all_inner_texts()
    assert names == ["nightly-backup", "invoice-sync", "etl", "once"]  # late, failing, the rest
    assert len(page.locator("tr.workflow").nth(1).locator(".strip a.mark").all()) == 20
    [single] = page.locator("tr.workflow").nth(3).locator(".strip a.mark").all()
    assert single.bounding_box()["width"] == 7, "one run is one narrow mark, not a bar"
    audit(page, "the workflows overview")

    page.check("#state-late")
    page.wait_for_url(re.compile(r"/workflows\?state=late$"))
    page.wait_for_function("() => document.querySelectorAll('tr.workflow').length === 1")
    assert page.locator("tr.workflow .state-badge").inner_text().lower() == "late"

    page.click("tr.workflow td.name a")
    page.wait_for_url(re.compile(r"/workflows/nightly-backup$"))
    assert "none has started since" in page.inner_text(".late-note")
    audit(page, "a workflow's page")

    page.fill("#schedule", "30 2 * * *")
    page.wait_for_selector("#schedule-preview:has-text('At 02:30')")  # read back as typed
    page.fill("#timezone", "Europe/Berlin")
    page.locator("#timezone").blur()
    page.wait_for_selector("#schedule-preview:has-text('Europe/Berlin')")
    times = page.locator("#schedule-preview li").all_inner_texts()
    assert len(times) == 3 and all("02:30" in t for t in times)

    page.fill("#grace_seconds", "-5")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("#grace_seconds-error")
    assert page.url.endswith("/workflows/nightly-backup")  # swapped in place
    audit(page, "the settings form with an error")
    page.fill("#grace_seconds", "600")
    page.click("button:has-text('Save settings')")
    page.wait_for_selector("#settings .saved")
    saved = requests.get(live_server.url + f"{API}/workflows/nightly-backup", timeout=10,
                         headers={"Authorization": f"Bearer {live_token}"}).json()
    assert (saved["schedule"], saved["timezone"], saved["grace_seconds"]) == (
        "30 2 * * *", "Europe/Berlin", 600)
    assert page.locator("#schedule-preview li").count() == 3
    assert page.inner_text("#next-expected") == page.locator("#schedule-preview li").first \
        .inner_text(), "the figure at the top follows the new schedule, in its zone"

    page.goto("/workflows/invoice-sync")
    chart = page.locator("figure.chart svg rect.seg-failure").first.bounding_box()
    assert chart and chart["height"] > 2, "the runs chart draws its bars"
    assert page.locator("table.error-groups tbody tr").count() == 1
    audit(page, "a failing workflow's page")

    page.click("form.mute button:has-text('8 h')")  # quiet for a working day
    page.wait_for_selector(".quiet-muted")
    page.fill("form.acknowledge input[name=note]", "billing API down, on it")
    page.click("form.acknowledge button")
    page.wait_for_selector(".quiet-acknowledged")
    assert page.locator("form.mute button").all_inner_texts() == ["Unmute"]
    audit(page, "a failing workflow's page, muted and acknowledged")
    page.goto("/workflows")
    badges = page.locator("tr.workflow").nth(1).locator(".quiet-badge").all_inner_texts()
    assert [text.split(" ")[0] for text in badges] == ["muted", "acknowledged"]
    audit(page, "the workflows overview with a muted and acknowledged workflow")
