"""The run page in headless Chromium: debug a failed run, and watch a running one finish."""
from __future__ import annotations

import re
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from helpers import client_env, console_script

RUNS = "/api/automations/executions"


def _report(live_server, token: str, body: dict) -> int:
    response = requests.post(live_server.url + RUNS, json=body, timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _call(method: str, live_server, token: str, path: str, body: dict) -> None:
    response = requests.request(method, live_server.url + path, json=body, timeout=10,
                                headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


def _invoice_run(status: str, minute: int, region: str, steps: list[dict]) -> dict:
    return {"workflow": "invoice-sync", "status": status,
            "started_at": f"2026-11-24T10:{minute:02d}:00Z",
            "finished_at": f"2026-11-24T10:{minute:02d}:04Z",
            "input": {"customer": {"id": 42, "region": region}, "password": "hunter2"},
            "steps": steps}


@pytest.mark.browser
@pytest.mark.spec("API-AUTO-EXEC-DETAIL-001")
@pytest.mark.spec("API-AUTO-EXEC-DETAIL-002")
@pytest.mark.spec("API-AUTO-EXEC-DETAIL-003")
def test_a_developer_opens_a_failed_run_reads_the_failing_step_and_compares(page, live_server,
                                                                            live_token):
    fetch = {"name": "Fetch invoices", "status": "success", "action": "http.get",
             "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:01Z",
             "output": {"count": 3}}
    _report(live_server, live_token, _invoice_run("success", 0, "eu", [
        {**fetch}, {"name": "Post to billing", "status": "success", "output": {"posted": 3}}]))
    failed = _report(live_server, live_token, {
        **_invoice_run("failure", 5, "us", [
            {**fetch, "output": {"count": 0, "note": "<b>empty</b>"}},
            {"name": "Post to billing", "status": "failure", "action": "http.post",
             "output": {"posted": 0, "response": "502 Bad Gateway"},
             "error": {"message": "HTTP 502", "type": "HTTPError"}}]),
        "error": {"message": "HTTP 502 from billing", "type": "HTTPError",
                  "stack": "Traceback (most recent call last):\nHTTPError: 502"}})

    page.goto("/executions")
    page.click(f"#results a[href='/executions/{failed}']")
    page.wait_for_url(f"**/executions/{failed}")
    error = page.locator(".error-panel").first
    assert "HTTPError" in error.inner_text() and "HTTP 502 from billing" in error.inner_text()
    assert "Traceback" in page.locator("#run-stack-text").inner_text()
    marked = page.locator("li.failed-step")
    assert marked.count() == 1 and "Post to billing" in marked.inner_text()
    assert "hunter2" not in page.content()

    marked.locator("a").click()
    page.wait_for_url(f"**/executions/{failed}/steps/1")
    panel = page.locator("#step-panel article")
    panel.wait_for()
    assert '"502 Bad Gateway"' in page.locator("#step-1-output-text").inner_text()
    page.wait_for_selector("#step-1.selected")  # marked once htmx has settled the panel

    page.click("text=Compare with last success")
    page.wait_for_selector("#compare table.diff")
    comparison = page.locator("#compare").inner_text()
    assert "$.customer.region" in comparison and '"eu"' in comparison and '"us"' in comparison
    assert "$.count" in comparison and "$.posted" in comparison
    assert page.locator("#step-1-output-text").is_visible(), "the open step stays open"


REFRESH_SECONDS = 1


@pytest.fixture
def refreshing_every_second(monkeypatch):
    """The server started after this fixture refreshes a live run's page every second (the
    least it allows): a test waits out a refresh or two in far less time."""
    monkeypatch.setenv("RUNWATCH_RUN_REFRESH_SECONDS", str(REFRESH_SECONDS))


@pytest.mark.browser
def test_a_running_run_shows_new_steps_by_itself_and_stops_refreshing_when_done(
        refreshing_every_second, page, live_server, live_token):
    run_id = _report(live_server, live_token, {
        "workflow": "nightly-backup", "status": "running",
        "steps": [{"name": "Dump database", "status": "success", "output": {"mb": 12}}]})
    page.goto(f"/executions/{run_id}")
    page.locator("#step-0 a").click()
    page.locator("#step-0-output-text").wait_for()
    assert page.get_attribute("#run", "hx-trigger") == f"every {REFRESH_SECONDS}s"

    _call("POST", live_server, live_token, f"{RUNS}/{run_id}/steps",
          {"steps": [{"name": "Compress", "status": "running"}]})
    page.locator("#step-1").wait_for(timeout=10_000)
    assert "Compress" in page.locator("#step-1").inner_text()
    assert page.locator("#step-0-output-text").is_visible(), "the open step survives"

    _call("PATCH", live_server, live_token, f"{RUNS}/{run_id}",
          {"status": "success", "finished_at": _in_an_hour()})
    page.wait_for_function("() => document.querySelector('#run-status').textContent === "
                           "'success'", timeout=10_000)
    assert page.get_attribute("#run", "hx-trigger") is None
    requests_after = []
    page.on("request", lambda request: requests_after.append(request.url))
    page.wait_for_timeout(REFRESH_SECONDS * 1500)  # more than one refresh's interval
    assert not [url for url in requests_after if re.search(rf"/executions/{run_id}\?", url)]


@pytest.mark.browser
def test_the_copy_button_copies_the_payload_as_shown(page, live_server, live_token):
    run_id = _report(live_server, live_token, {"workflow": "copy", "status": "success",
                                               "input": {"a": [1, 2], "token": "t0k"}})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/executions/{run_id}")
    button = page.locator("button[data-copy='run-input-text']")
    button.click()
    page.wait_for_function("() => document.querySelector(\"button[data-copy='run-input-text']\")"
                           ".textContent === 'Copied'")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.locator("#run-input-text").inner_text() and "t0k" not in copied


@pytest.mark.browser
def test_the_copy_buttons_sit_beside_their_summaries_and_copying_keeps_a_section_open(
        page, live_server, live_token):
    run_id = _report(live_server, live_token, {
        "workflow": "copy", "status": "failure", "input": {"a": 1},
        "error": {"message": "boom", "type": "ValueError", "stack": "Traceback\nValueError"},
        "steps": [{"name": "Only", "status": "success", "output": {"b": 2}}]})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(f"/executions/{run_id}/steps/0")
    page.locator("#step-panel article").wait_for()
    assert page.locator("summary button").count() == 0, "no button inside a <summary>"
    # the run's stack trace and input, the step's output (it has no input or logs)
    assert page.locator("details.collapsible > summary + button.copy").count() == 3

    section = page.locator("details:has(> button[data-copy='step-0-output-text'])")
    page.click("button[data-copy='step-0-output-text']")
    page.wait_for_function("() => document.querySelector(\"button[data-copy="
                           "'step-0-output-text']\").textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == page.locator(
        "#step-0-output-text").inner_text()
    assert section.get_attribute("open") is not None, "copying does not fold the section"


def _in_an_hour() -> str:
    """A finish time after any start of this test and inside the accepted range."""
    return (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()


LOGGED_COMMAND = ("printf '\\033[32mok\\033[0m <b>saved</b> %s\\n' \"$RUN\"; "
                  "printf '\\033[1;31merror:\\033[0m disk full\\n' >&2; exit $CODE")


@pytest.mark.browser
def test_a_command_run_by_runwatch_exec_reads_as_a_log(page, live_server, live_token, audit):
    runwatch = console_script("runwatch", "pip install -e ./client")
    for number, code in ((1, 0), (2, 3)):  # a success, then a failure that compares with it
        env = {**client_env(live_server.url, live_token), "RUN": str(number), "CODE": str(code)}
        done = subprocess.run([runwatch, "exec", "--workflow", "backup", "--", "sh", "-c",
                               LOGGED_COMMAND], env=env, capture_output=True, timeout=60)
        assert done.returncode == code, done.stderr
    runs = requests.get(live_server.url + RUNS, params={"workflow": "backup"}, timeout=10,
                        headers={"Authorization": f"Bearer {live_token}"}).json()["data"]

    page.goto(f"/executions/{runs[0]['id']}")
    assert page.locator("#exit-code").inner_text() == "3"
    assert page.locator(".error-message").inner_text() == "error: disk full"
    assert page.locator(".command-log details").get_attribute("open") is not None
    stdout, stderr = page.locator("#run-stdout-text"), page.locator("#run-stderr-text")
    assert stdout.inner_text() == "ok <b>saved</b> 2\n", "escaped, the colour codes gone"
    assert stdout.locator("b").count() == 0
    green = stdout.locator("span.ansi32")
    assert green.inner_text() == "ok"
    assert green.evaluate("e => getComputedStyle(e).color") == "rgb(17, 99, 41)"
    assert stderr.locator("span.ansi1.ansi31").inner_text() == "error:"

    def style(locator, name: str) -> str:
        return locator.evaluate(f"e => getComputedStyle(e)[{name!r}]")
    assert style(stdout, "whiteSpace") == "pre-wrap"
    assert style(stdout, "borderLeftColor") != style(stderr, "borderLeftColor"), \
        "stderr stands apart from stdout"
    assert page.locator("section.trace").count() == 0, "no steps, no trace"
    audit(page, "a command's run read as a log")

    page.click("text=Compare with last success")
    page.wait_for_selector("#compare .compare-options")
    page.check("#compare input[name=unchanged]")
    page.wait_for_selector("#compare tr.diff-same")
    assert page.url.endswith("/compare?unchanged=1")
    same = page.locator("#compare tr.diff-same th").all_inner_texts()
    assert "$.command[0]" in same and "$.workflow" not in same
    audit(page, "the comparison with unchanged fields")
