"""The run page: payloads escaped and masked, the error first, the trace, steps on demand."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from models.payloads import MASK
from helpers import TRICKY, add_steps, detail, htmx, parse, report

API = "/api/automations/executions"
@pytest.fixture
def failed_run(api) -> int:
    """A failed run: trigger payload, a successful step, the failing step, one never reached."""
    return report(api, {
        "workflow": "invoice-sync", "external_id": "run-1", "status": "failure",
        "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:04Z",
        "input": {"customer": 42, "note": TRICKY["script"], "html": TRICKY["html"]},
        "error": {"message": "HTTP 502 from billing", "type": "HTTPError",
                  "stack": "Traceback (most recent call last):\n  File \"sync.py\"\nHTTPError"},
        "steps": [
            {"name": "Fetch invoices", "action": "http.get", "status": "success",
             "started_at": "2026-11-24T10:00:00.100Z", "finished_at": "2026-11-24T10:00:01Z",
             "input": {"page": 1}, "output": {"count": 3, "tag": "<i>x</i>"},
             "logs": "GET /invoices 200\n"},
            {"name": "Post to billing", "action": "http.post", "status": "failure",
             "started_at": "2026-11-24T10:00:02Z", "finished_at": "2026-11-24T10:00:04Z",
             "input": {"invoices": [1, 2, 3]},
             "error": {"message": "HTTP 502", "type": "HTTPError", "stack": "step stack"}},
        ]})


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-001")
def test_the_trigger_payload_is_shown_pretty_printed_and_escaped(api, logged_in):
    run_id = report(api, {"workflow": "sync", "status": "success", "input": TRICKY})
    response = logged_in.get(f"/executions/{run_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "</script><script>alert(1)" not in html and "<b>bold</b>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    shown = parse(response).by_id("run-input-text").text
    assert json.loads(shown) == TRICKY, "exactly the stored payload"
    assert shown == json.dumps(TRICKY, indent=2, ensure_ascii=False)


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-004")
def test_the_page_sends_a_signed_out_visitor_to_the_login_even_for_unknown_ids(client, api):
    run_id = report(api, {"workflow": "sync", "status": "success"})
    for url in (f"/executions/{run_id}", "/executions/999999", f"/executions/{run_id}/steps/0",
                f"/executions/{run_id}/compare"):
        response = client.get(url)
        assert response.status_code == 302 and "/login?next=" in response.headers["Location"]
        assert htmx(client, url).status_code == 401


@pytest.mark.parametrize("url", ["/executions/999999", "/executions/999999/steps/0",
                                 "/executions/999999/compare", "/executions/999999/steps",
                                 "/executions/999999/payloads/input"])
def test_an_unknown_run_is_a_404_page_once_signed_in(logged_in, url):
    response = logged_in.get(url)
    assert response.status_code == 404
    assert "There is no execution 999999" in response.get_data(as_text=True)


@pytest.mark.parametrize("path, status", [
    ("?since=yesterday", 400),
    ("/steps?from=-1", 400),
    ("/steps?from=abc", 400),
    ("/steps/7", 404),
    ("/steps/-1", 404),
    ("/payloads/password", 404),
    ("/steps/0/payloads/secrets", 404),
])
def test_bad_addresses_get_a_clear_4xx_and_never_a_500(logged_in, failed_run, path, status):
    assert logged_in.get(f"/executions/{failed_run}{path}").status_code == status


def test_a_failed_run_shows_its_error_first_and_marks_the_failed_step(logged_in, failed_run):
    page = parse(logged_in.get(f"/executions/{failed_run}"))
    error = page.find("section", class_="error-panel")[0]
    assert "HTTPError" in error.text and "HTTP 502 from billing" in error.text
    assert "Traceback (most recent call last)" in error.text
    link = error.find("p", class_="failed-at")[0].find("a")[0]
    assert link.text == "1 · Post to billing"
    assert link.attrs["href"] == f"/executions/{failed_run}/steps/1"
    marked = page.find("li", class_="failed-step")
    assert [li.attrs["id"] for li in marked] == ["step-1"]
    assert "failed here" in marked[0].text
    sections = [e.attrs["class"] for e in page.find("section")]
    assert sections.index("error-panel") < sections.index("payloads") < sections.index("trace")


def test_a_failure_reported_only_on_a_step_shows_that_steps_error(api, logged_in):
    run_id = report(api, {"workflow": "sync", "status": "failure", "steps": [
        {"name": "ok", "status": "success"},
        {"name": "breaks", "status": "failure",
         "error": {"message": "disk full", "type": "OSError", "stack": "deep stack"}}]})
    error = parse(logged_in.get(f"/executions/{run_id}")).find("section", class_="error-panel")[0]
    assert "OSError" in error.text and "disk full" in error.text
    assert error.by_id("run-stack-text").text == "deep stack"
    assert "1 · breaks" in error.text


def test_the_header_links_the_workflows_history_and_its_neighbouring_runs(api, logged_in):
    ids = [report(api, {"workflow": name, "status": "success",
                        "started_at": f"2026-11-24T10:0{minute}:00Z"})
           for minute, name in enumerate(["w", "other", "w", "w"])]
    page = parse(logged_in.get(f"/executions/{ids[2]}"))
    assert page.find("a", rel="prev")[0].attrs["href"] == f"/executions/{ids[0]}"
    assert page.find("a", rel="next")[0].attrs["href"] == f"/executions/{ids[3]}"
    workflow = page.find("a", class_="workflow-link")[0]
    assert workflow.attrs["href"] == "/executions?workflow=w"
    first = parse(logged_in.get(f"/executions/{ids[0]}"))
    assert not first.find("a", rel="prev") and "No earlier run" in first.text


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-003")
def test_the_trace_lists_every_step_in_order_on_one_time_axis(logged_in, failed_run):
    page = parse(logged_in.get(f"/executions/{failed_run}"))
    rows = page.find("ol", class_="steps")[0].find("li")
    assert [row.find("a")[0].text for row in rows] == ["Fetch invoices", "Post to billing"]
    bars = [(rect.attrs["x"], rect.attrs["width"])
            for rect in (row.find("rect")[0] for row in rows)]
    # 10:00:00 → 10:00:04 is the axis: 0.1 s in, 0.9 s long; 2 s in, 2 s long (the gap shows);
    # out of 100 units.
    assert bars == [("2.5", "22.5"), ("50.0", "50.0")]
    waterfall = page.find("svg", class_="waterfall")[0]
    assert {p.attrs["class"] for p in waterfall.find("path")} >= {"w-success", "w-failure"}


@pytest.mark.spec("API-AUTO-EXEC-DETAIL-002")
def test_opening_a_step_loads_its_input_output_and_logs_on_demand(logged_in, failed_run):
    first = logged_in.get(f"/executions/{failed_run}").get_data(as_text=True)
    assert "GET /invoices 200" not in first, "step payloads are not in the first response"
    panel = htmx(logged_in, f"/executions/{failed_run}/steps/0")
    assert panel.status_code == 200 and "<html" not in panel.get_data(as_text=True)
    tree = parse(panel)
    assert json.loads(tree.by_id("step-0-input-text").text) == {"page": 1}
    assert json.loads(tree.by_id("step-0-output-text").text) == {"count": 3, "tag": "<i>x</i>"}
    assert tree.by_id("step-0-logs-text").text == "GET /invoices 200\n"
    assert "&lt;i&gt;x&lt;/i&gt;" in panel.get_data(as_text=True)


def test_a_steps_address_without_htmx_is_the_whole_page_with_that_step_open(logged_in, failed_run):
    page = parse(logged_in.get(f"/executions/{failed_run}/steps/1"))
    assert page.find("h1")
    panel = page.by_id("step-panel")
    assert "Post to billing" in panel.text and "HTTP 502" in panel.text and "step stack" in panel.text
    assert "selected" in page.by_id("step-1").attrs["class"].split()


SECRETS = {
    "password": "hunter2-pw-1", "api_key": "sk_live_secret_2",
    "Authorization": "Bearer abc.def.secret-3",
    "nested": {"deeper": [{"client_secret": "secret-value-4", "X-Api-Key": "secret-value-5",
                           "refreshToken": "secret-value-6"}]},
    "headers": {"Cookie": "session=secret-value-7", "set-cookie": ["secret-value-8"]},
    "db": "postgres://app:secret-value-9@db.internal/app",
    "prompt_tokens": 120, "author": "ada", "has_password": True, "token": None,
}
HIDDEN = ["hunter2-pw-1", "sk_live_secret_2", "abc.def.secret-3"] + \
    [f"secret-value-{i}" for i in range(4, 10)]


def test_secret_values_are_masked_on_the_page_at_any_depth_and_kept_whole(api, logged_in):
    run_id = report(api, {"workflow": "sync", "status": "success", "input": SECRETS,
                          "steps": [{"name": "call", "output": SECRETS,
                                     "logs": "connecting with password=secret-log-10\n"}]})
    page = logged_in.get(f"/executions/{run_id}").get_data(as_text=True)
    panel = htmx(logged_in, f"/executions/{run_id}/steps/0").get_data(as_text=True)
    for html in (page, panel):
        for secret in HIDDEN:
            assert secret not in html
        assert MASK in html
    assert "secret-log-10" not in panel and "password=" + MASK in panel
    shown = json.loads(parse(logged_in.get(f"/executions/{run_id}")).by_id("run-input-text").text)
    # Harmless look-alikes stay readable: counts, other words, booleans and nulls.
    assert (shown["prompt_tokens"], shown["author"], shown["has_password"], shown["token"]) == \
        (120, "ada", True, None)
    assert shown["nested"]["deeper"][0]["client_secret"] == MASK
    assert shown["db"] == f"postgres://app:{MASK}@db.internal/app"
    body = detail(api, run_id)
    assert body["input"] == SECRETS and body["steps"][0]["output"] == SECRETS


def test_a_very_large_payload_is_cut_and_the_rest_loads_on_request(api, logged_in):
    big = {"rows": [{"id": i, "name": f"row {i} ünïcode"} for i in range(4000)]}
    run_id = report(api, {"workflow": "sync", "status": "success", "input": big,
                          "steps": [{"name": "s", "output": big}]})
    page = parse(logged_in.get(f"/executions/{run_id}"))
    shown = page.by_id("run-input-text").text
    assert 60 * 1024 < len(shown.encode()) <= 64 * 1024
    assert json.dumps(big, indent=2, ensure_ascii=False).startswith(shown + "\n"), \
        "cut after a whole line"
    link = page.by_id("run-input").find("a")[0]
    assert link.text == "Load the rest" and link.attrs["hx-get"] == link.attrs["href"]
    rest = htmx(logged_in, link.attrs["href"])
    assert json.loads(parse(rest).by_id("run-input-text").text) == big
    step_rest = htmx(logged_in, f"/executions/{run_id}/steps/0/payloads/output")
    assert json.loads(parse(step_rest).by_id("step-0-output-text").text) == big
    whole_page = parse(logged_in.get(link.attrs["href"]))
    assert whole_page.find("h1") and json.loads(whole_page.by_id("run-input-text").text) == big


def test_a_long_run_lists_its_steps_a_slice_at_a_time_and_loads_the_next(api, logged_in):
    steps = [{"name": f"step {i}", "status": "success"} for i in range(520)]
    run_id = report(api, {"workflow": "long", "status": "success", "steps": steps})
    page = parse(logged_in.get(f"/executions/{run_id}"))
    rows = page.find("ol", class_="steps")[0].find("li")
    assert len(rows) == 501 and rows[-1].text.startswith("Show the next 20 steps")
    more = rows[-1].find("a")[0].attrs["hx-get"]
    rest = parse(htmx(logged_in, more)).find("li")
    assert [r.attrs["id"] for r in rest] == [f"step-{i}" for i in range(500, 520)]
    opened = parse(logged_in.get(f"/executions/{run_id}/steps/510"))
    assert "selected" in opened.by_id("step-510").attrs["class"]


@pytest.fixture
def small_pages(app_config):
    app_config["RUN_STEPS_PER_PAGE"] = 3


def test_the_steps_listed_at_once_are_a_setting(small_pages, api, logged_in):
    steps = [{"name": f"step {i}", "status": "success"} for i in range(7)]
    run_id = report(api, {"workflow": "long", "status": "success", "steps": steps})
    rows = parse(logged_in.get(f"/executions/{run_id}")).find("ol", class_="steps")[0].find("li")
    assert [r.attrs.get("id") for r in rows[:-1]] == ["step-0", "step-1", "step-2"]
    assert rows[-1].text.startswith("Show the next 3 steps")
    later = parse(logged_in.get(f"/executions/{run_id}/steps/6")).find("ol", class_="steps")[0]
    assert [r.attrs.get("id") for r in later.find("li") if r.attrs.get("id")] == ["step-6"]


def running_run(api) -> int:
    return report(api, {"workflow": "live", "status": "running",
                        "steps": [{"name": "first", "status": "success"}]})


def poll(client, run_id: int):
    """What the page's polling element asks: the run section, given its version."""
    page = parse(client.get(f"/executions/{run_id}"))
    url = page.by_id("run").attrs.get("hx-get")
    assert url, "a live run's section polls"
    return htmx(client, url), url


def test_a_step_appended_to_a_running_run_appears_on_the_next_refresh(api, logged_in):
    run_id = running_run(api)
    unchanged, url = poll(logged_in, run_id)
    assert unchanged.status_code == 204, "nothing new: htmx keeps the page"
    add_steps(api, run_id, [{"name": "second step", "status": "running"}])
    refreshed = htmx(logged_in, url)
    assert refreshed.status_code == 200
    section = parse(refreshed).by_id("run")
    assert [a.text for a in section.find("ol", class_="steps")[0].find("a")] == \
        ["first", "second step"]
    assert section.attrs["hx-trigger"].startswith("every ")


def test_the_refresh_stops_once_the_run_has_finished(api, logged_in):
    run_id = running_run(api)
    _, url = poll(logged_in, run_id)
    response = api.patch(f"{API}/{run_id}", json={"status": "failure",
                                                  "finished_at": _in_an_hour(),
                                                  "error": {"message": "stopped"}})
    assert response.status_code == 200
    section = parse(htmx(logged_in, url)).by_id("run")
    assert "hx-get" not in section.attrs and "hx-trigger" not in section.attrs
    assert "stopped" in section.text and section.by_id("run-status").text == "failure"


def test_the_open_step_and_the_comparison_survive_a_refresh(api, logged_in):
    run_id = running_run(api)
    section = parse(logged_in.get(f"/executions/{run_id}")).by_id("run")
    assert section.by_id("step-panel").attrs["hx-preserve"] == "true"
    assert section.by_id("compare").attrs["hx-preserve"] == "true"


def test_a_boosted_request_from_another_page_gets_the_whole_page(logged_in, failed_run):
    response = logged_in.get(f"/executions/{failed_run}/steps/0",
                             headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


def _in_an_hour() -> str:
    """A finish time after any start of this test and inside the accepted range."""
    return (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
