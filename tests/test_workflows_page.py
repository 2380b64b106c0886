"""The workflow pages as plain HTML: the overview's form and rows, a workflow's numbers,
charts, error groups and settings form (a plain POST, and in place with htmx)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from helpers import csrf_from, htmx, parse

UTC = timezone.utc
BATCH = "/api/automations/executions/batch"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def seeded(api):
    now = datetime.now(UTC).replace(microsecond=0)
    runs = []
    for i in range(25):
        started = now - timedelta(hours=i * 5 + 1)
        failed = i % 5 == 0
        runs.append({"workflow": "billing <sync>", "status": "failure" if failed else "success",
                     "started_at": iso(started), "finished_at": iso(started + timedelta(seconds=3)),
                     **({"error": {"message": f"HTTP 502 on invoice {i}", "type": "HTTPError"}}
                        if failed else {})})
    runs.append({"workflow": "etl", "status": "success", "started_at": iso(now - timedelta(hours=2)),
                 "finished_at": iso(now - timedelta(hours=1))})
    assert api.post(BATCH, json={"executions": runs}).status_code == 201
    assert api.patch("/api/automations/workflows/etl", json={
        "schedule": "0 * * * *", "description": "hourly <load>"}).status_code == 200
    return now


def test_the_overview_lists_each_workflow_with_its_strip_and_escapes_names(logged_in, seeded):
    page = logged_in.get("/workflows")
    assert page.status_code == 200
    assert "billing &lt;sync&gt;" in page.text and "billing <sync>" not in page.text
    tree = parse(page)
    rows = tree.find("tr", class_="workflow")
    assert [r.find("a")[0].text for r in rows] == ["billing <sync>", "etl"]
    marks = rows[0].find("a", class_="mark")
    assert len(marks) == 20 and marks[-1].attrs["href"].startswith("/executions/")
    assert "Every run" not in page.text  # the overview links each row to its own page
    assert rows[0].find("a")[0].attrs["href"] == "/workflows/billing%20%3Csync%3E"
    assert "hourly &lt;load&gt;" in page.text
    nav = tree.find("a", href="/workflows")
    assert nav and nav[0].attrs.get("aria-current") == "page"


def test_the_state_filter_works_as_a_plain_form_and_with_htmx(logged_in, seeded):
    plain = parse(logged_in.get("/workflows?state=ok&q=et"))
    assert [r.find("a")[0].text for r in plain.find("tr", class_="workflow")] == ["etl"]
    assert plain.by_id("state-ok").attrs.get("checked") is not None
    partial = htmx(logged_in, "/workflows?q=&state=ok")
    assert partial.status_code == 200 and "<h1>" not in partial.text
    assert partial.headers["HX-Push-Url"] == "/workflows?state=ok"
    bad = logged_in.get("/workflows?state=sleepy")
    assert bad.status_code == 400 and "must be one of" in bad.text


def test_a_workflow_page_shows_numbers_charts_errors_and_links(logged_in, seeded):
    page = logged_in.get("/workflows/billing%20%3Csync%3E")
    assert page.status_code == 200
    tree = parse(page)
    assert "billing &lt;sync&gt;" in page.text
    charts = tree.find("svg", role="img")
    assert len(charts) == 2
    day_titles = [g.find("title")[0].text for g in charts[0].find("g")]
    assert len(day_titles) == 30 and any("failure" in title for title in day_titles)
    [group] = tree.find("table", class_="error-groups")[0].find("tr")[1:]
    cells = [c.text for c in group.find("td")]
    assert cells[0] == "HTTPError" and cells[2] == "5"
    links = {a.text: a.attrs["href"] for a in group.find("a")}
    assert "status=failure" in links["Failures"] and "workflow=billing" in links["Failures"]
    assert tree.find("form", id="settings")
    week = logged_in.get("/workflows/etl?from=2026-11-01&to=2026-11-07&tz=Europe/Berlin")
    assert week.status_code == 200 and "(Europe/Berlin)" in week.text
    assert logged_in.get("/workflows/etl?from=2026-99-01").status_code == 400
    assert logged_in.get("/workflows/nope").status_code == 404


def test_the_settings_form_saves_and_shows_each_error_beside_its_field(logged_in, seeded):
    page = logged_in.get("/workflows/etl")
    token = csrf_from(page.text)
    bad = logged_in.post("/workflows/etl", data={
        "csrf_token": token, "schedule": "61 * * * *", "timezone": "Mars/Base",
        "grace_seconds": "soon", "max_duration_seconds": "0", "description": ""})
    assert bad.status_code == 400
    tree = parse(bad)
    for field in ("schedule", "timezone", "grace_seconds", "max_duration_seconds"):
        assert tree.by_id(f"{field}-error").text.strip(), field
        assert tree.by_id(field).attrs.get("aria-invalid") == "true"
    assert logged_in.get("/api/automations/workflows/etl").json["schedule"] == "0 * * * *"

    saved = logged_in.post("/workflows/etl", data={
        "csrf_token": token, "schedule": "*/15 * * * *", "timezone": "Europe/Berlin",
        "grace_seconds": "120", "max_duration_seconds": "", "description": "every quarter"})
    assert saved.status_code == 303 and saved.headers["Location"] == "/workflows/etl"
    after = logged_in.get("/api/automations/workflows/etl").json
    assert (after["schedule"], after["timezone"], after["grace_seconds"],
            after["description"]) == ("*/15 * * * *", "Europe/Berlin", 120, "every quarter")

    inline = logged_in.post("/workflows/etl", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "schedule": "0 6 * * 1-5", "timezone": "UTC", "grace_seconds": "0"})
    assert inline.status_code == 200 and "Settings saved." in inline.text
    assert "<h1>" not in inline.text and len(parse(inline).find("ol")[0].find("li")) == 3
    refused = logged_in.post("/workflows/etl", data={"schedule": "* * * * *"})
    assert refused.status_code == 400  # no CSRF token


def test_next_expected_is_in_the_workflow_zone_and_follows_settings_saved_in_place(
        logged_in, seeded):
    page = parse(logged_in.get("/workflows/etl"))
    assert page.by_id("next-expected").text.endswith(" UTC")
    token = csrf_from(logged_in.get("/workflows/etl").text)

    inline = logged_in.post("/workflows/etl", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "schedule": "30 2 * * *", "timezone": "America/New_York",
        "grace_seconds": "300"})
    answer = parse(inline)
    figure = answer.by_id("next-expected")
    assert figure.attrs["hx-swap-oob"] == "true", "the figure at the top is replaced too"
    first = answer.by_id("schedule-preview").find("li")[0].text
    assert figure.text == first and first.endswith(("EST", "EDT")) and " 02:30 " in first
    expected = logged_in.get("/api/automations/workflows/etl").json["next_expected_at"]
    assert figure.find("time")[0].attrs["datetime"] == expected
    assert parse(logged_in.get("/workflows/etl")).by_id("next-expected").text == first

    unscheduled = logged_in.post("/workflows/etl", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "schedule": "", "timezone": "UTC", "grace_seconds": "300"})
    assert parse(unscheduled).by_id("next-expected").text == "no schedule"
    failed = logged_in.post("/workflows/etl", headers={"HX-Request": "true"}, data={
        "csrf_token": token, "schedule": "61 * * * *", "timezone": "UTC"})
    assert failed.status_code == 400 and not parse(failed).find(id="next-expected")


def test_the_schedule_preview_reads_the_expression_and_lists_the_next_times(logged_in):
    preview = logged_in.get("/schedule-preview?schedule=30+2+*+*+*&timezone=Europe/Berlin")
    assert preview.status_code == 200 and "At 02:30" in preview.text
    times = [li.text for li in parse(preview).find("li")]
    assert len(times) == 3 and all("02:30" in t for t in times)
    wrong = logged_in.get("/schedule-preview?schedule=*+*+*")
    assert "must have 5 fields" in wrong.text


def test_the_start_page_says_which_workflows_need_attention(logged_in, seeded):
    start = parse(logged_in.get("/"))
    [note] = start.find("p", class_="attention")
    assert "1 failing" in note.text
    assert note.find("a")[0].attrs["href"] == "/workflows?state=late&state=failing"


def test_the_alerts_page_shows_late_workflows_at_a_glance(app, logged_in, api):
    from alerts.config import config_from
    from alerts.scheduler import scan
    from models.db import connection

    assert "No scheduled workflow is late." in logged_in.get("/alerts").text
    answer = api.patch("/api/automations/workflows/backup", json={
        "schedule": "0 3 * * *", "grace_seconds": 0}).json
    expected = datetime.fromisoformat(answer["next_expected_at"].replace("Z", "+00:00"))
    with connection():
        scan(config_from(app), expected + timedelta(minutes=1))
    [late] = parse(logged_in.get("/alerts")).by_id("late").find("li")
    assert late.find("a")[0].text == "backup"
    assert expected.strftime("%Y-%m-%d %H:%M") in late.text
