"""Quiet alerts on the pages: the badges muted, acknowledged and in maintenance on the
overview, a workflow's page and the Alerts page; the mute quick choices and the acknowledge
buttons; the Alerts page's maintenance windows; the maintenance badge of runs."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from helpers import EMAIL, csrf_from, parse

UTC = timezone.utc
BATCH = "/api/automations/executions/batch"
WORKFLOWS = "/api/automations/workflows"
MAINTENANCE = "/api/automations/maintenance"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def report(api, workflow: str, statuses: str, start: datetime) -> list[int]:
    """Runs of `workflow` a minute apart from `start`: "F" failed, "S" succeeded."""
    runs = [{"workflow": workflow, "status": "failure" if s == "F" else "success",
             "started_at": iso(start + timedelta(minutes=i)),
             "finished_at": iso(start + timedelta(minutes=i, seconds=5)),
             **({"error": {"type": "HTTPError", "message": "HTTP 502"}} if s == "F" else {})}
            for i, s in enumerate(statuses)]
    answer = api.post(BATCH, json={"executions": runs})
    assert answer.status_code == 201, answer.text
    return [item["id"] for item in answer.json["data"]]


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def failing(api, now) -> str:
    """A workflow failing three times in a row, and a rule that watches every workflow."""
    report(api, "invoice-sync", "SFFF", now - timedelta(minutes=30))
    report(api, "etl", "S", now - timedelta(minutes=30))
    rule = api.post("/api/automations/alerts", json={
        "workflow": None, "threshold": 3,
        "channels": [{"type": "email", "to": ["ops@example.com"]}]})
    assert rule.status_code == 201, rule.text
    return "invoice-sync"


def badges(tree, ident: str | None = None) -> list[str]:
    """The texts of the quiet badges in `tree` (or in the element with id `ident`)."""
    where = tree.by_id(ident) if ident else tree
    return [span.text.strip() for span in where.find("span", class_="quiet-badge")]


def row_of(tree, name: str):
    """The overview's row of workflow `name`."""
    (row,) = [r for r in tree.find("tr", class_="workflow") if r.find("a")[0].text == name]
    return row


def post_form(client, page_url: str, action: str, **fields):
    """Post a form of the page at `page_url` as a browser does, with its CSRF token."""
    token = csrf_from(client.get(page_url).text)
    return client.post(action, data={"csrf_token": token, **fields})


def test_a_quick_choice_mutes_a_workflow_for_that_long_and_unmute_ends_it(
        logged_in, api, failing, now):
    page = parse(logged_in.get("/workflows/invoice-sync"))
    (mute,) = page.find("form", class_="mute")
    choices = [b.attrs["value"] for b in mute.find("button")]
    assert choices == ["1h", "8h", "24h"] and mute.attrs["action"] == "/workflows/invoice-sync"

    answer = post_form(logged_in, "/workflows/invoice-sync", "/workflows/invoice-sync",
                       mute="8h")

    assert answer.status_code == 303
    muted = api.get(f"{WORKFLOWS}/invoice-sync").json["muted_until"]
    until = datetime.fromisoformat(muted.replace("Z", "+00:00"))
    assert timedelta(hours=8) - timedelta(minutes=1) < until - now < timedelta(hours=8, minutes=1)
    page = parse(logged_in.get("/workflows/invoice-sync"))
    assert badges(page) == [f"muted until {until:%Y-%m-%d %H:%M} UTC"]
    overview = parse(logged_in.get("/workflows"))
    assert badges(row_of(overview, "invoice-sync")) == badges(page)
    assert badges(row_of(overview, "etl")) == []
    (unmute,) = page.find("form", class_="mute")[0].find("button")
    assert unmute.text == "Unmute"

    post_form(logged_in, "/workflows/invoice-sync", "/workflows/invoice-sync", mute="off")

    assert api.get(f"{WORKFLOWS}/invoice-sync").json["muted_until"] is None
    assert badges(parse(logged_in.get("/workflows/invoice-sync"))) == []


def test_the_workflow_page_acknowledges_a_failing_episode_with_a_note(logged_in, api, failing):
    page = parse(logged_in.get("/workflows/invoice-sync"))
    (form,) = page.find("form", class_="acknowledge")
    assert form.attrs["action"] == "/workflows/invoice-sync/acknowledge"
    assert not parse(logged_in.get("/workflows/etl")).find("form", class_="acknowledge")

    answer = post_form(logged_in, "/workflows/invoice-sync", form.attrs["action"],
                       note="billing API down, on it", next="/workflows/invoice-sync")

    assert answer.status_code == 303 and answer.headers["Location"].endswith(
        "/workflows/invoice-sync")
    page = parse(logged_in.get("/workflows/invoice-sync"))
    assert badges(page) == [f"acknowledged by {EMAIL}"]
    (badge,) = page.find("span", class_="quiet-acknowledged")
    assert badge.attrs["title"].endswith(": billing API down, on it")
    assert not page.find("form", class_="acknowledge")  # once is enough
    assert badges(row_of(parse(logged_in.get("/workflows")), "invoice-sync")) == [
        f"acknowledged by {EMAIL}"]
    acknowledged = api.get(f"{WORKFLOWS}/invoice-sync").json["acknowledged"]
    assert acknowledged["note"] == "billing API down, on it"


def test_the_alerts_page_shows_badges_on_rule_rows_and_acknowledges_back_to_the_rule(
        logged_in, api, failing):
    page = parse(logged_in.get("/alerts"))
    (article,) = page.find("article", class_="rule")
    rows = {r.find("td")[0].text.split()[0]: r for r in article.find("tr")[1:]}
    assert set(rows) == {"invoice-sync", "etl"}
    (form,) = rows["invoice-sync"].find("form", class_="acknowledge")
    assert not rows["etl"].find("form", class_="acknowledge")
    note = form.find("input", name="note")[0]
    assert page.find("label", **{"for": note.attrs["id"]})  # labelled, for screen readers

    answer = post_form(logged_in, "/alerts", form.attrs["action"],
                       next=form.find("input", name="next")[0].attrs["value"])

    assert answer.status_code == 303
    assert answer.headers["Location"].endswith(f"/alerts#{article.attrs['id']}")
    assert badges(parse(logged_in.get("/alerts")), article.attrs["id"]) == [
        f"acknowledged by {EMAIL}"]
    api.patch(f"{WORKFLOWS}/etl", json={"muted_until": iso(datetime(2099, 1, 1, tzinfo=UTC))})
    assert "muted until 2099-01-01 00:00 UTC" in badges(parse(logged_in.get("/alerts")))


def window_form(**fields) -> dict:
    """The Alerts page's maintenance form as a browser posts it: defaults, then `fields`."""
    return {"workflow": "", "shape": "one-off", "starts_at": "", "ends_at": "",
            "schedule": "", "timezone": "UTC", "duration_minutes": "", "reason": "", **fields}


def test_a_one_off_window_made_on_the_alerts_page_is_read_in_its_zone_and_listed(
        logged_in, api, failing, now):
    berlin = now.astimezone(ZoneInfo("Europe/Berlin"))
    start, end = berlin - timedelta(hours=1), berlin + timedelta(hours=2)

    answer = post_form(logged_in, "/alerts", "/alerts/maintenance", **window_form(
        workflow="invoice-sync", timezone="Europe/Berlin", reason="database upgrade",
        starts_at=start.strftime("%Y-%m-%dT%H:%M"), ends_at=end.strftime("%Y-%m-%dT%H:%M")))

    assert answer.status_code == 303
    (window,) = api.get(MAINTENANCE).json["data"]
    assert answer.headers["Location"].endswith(f"/alerts#window-{window['id']}")
    assert window["workflow"] == "invoice-sync" and window["active"] is True
    assert window["starts_at"] == iso(start.replace(second=0).astimezone(UTC))
    page = parse(logged_in.get("/alerts"))
    cells = [c.text.strip() for c in page.by_id(f"window-{window['id']}").find("td")]
    assert cells[0] == "invoice-sync" and cells[2] == "database upgrade"
    assert cells[3] == "active now" and "UTC" in cells[1]
    until = f"{end.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    assert f"in maintenance until {until}" in badges(page)
    overview = parse(logged_in.get("/workflows"))
    assert badges(row_of(overview, "invoice-sync")) == [f"in maintenance until {until}"]
    assert badges(row_of(overview, "etl")) == []
    assert badges(parse(logged_in.get("/workflows/invoice-sync"))) == [
        f"in maintenance until {until}"]


def test_a_recurring_window_for_every_workflow_is_listed_with_its_schedule_and_deleted(
        logged_in, api, failing):
    answer = post_form(logged_in, "/alerts", "/alerts/maintenance", **window_form(
        shape="recurring", schedule="0 3 * * 0", timezone="Europe/Berlin",
        duration_minutes="90", reason="weekly upkeep"))
    assert answer.status_code == 303
    (window,) = api.get(MAINTENANCE).json["data"]
    assert (window["workflow"], window["schedule"], window["duration_minutes"]) == (
        None, "0 3 * * 0", 90)
    row = parse(logged_in.get("/alerts")).by_id(f"window-{window['id']}")
    when = row.find("td")[1].text
    assert row.find("td")[0].text == "every workflow"
    assert "0 3 * * 0" in when and "Europe/Berlin" in when and "90 min" in when

    delete = row.find("form")[0].attrs["action"]
    answer = post_form(logged_in, "/alerts", delete)

    assert answer.status_code == 303 and api.get(MAINTENANCE).json["data"] == []
    assert post_form(logged_in, "/alerts", delete).status_code == 404


@pytest.mark.parametrize("fields, field", [
    ({"starts_at": "2030-01-01T10:00", "ends_at": "2030-01-01T09:00"}, "ends_at"),
    ({"starts_at": "2030-01-01T10:00"}, "ends_at"),
    ({"starts_at": "tomorrow", "ends_at": "2030-01-01T09:00"}, "starts_at"),
    ({"starts_at": "2100-01-01T10:00", "ends_at": "2100-01-01T11:00"}, "starts_at"),
    ({"timezone": "Mars/Olympus", "starts_at": "2030-01-01T10:00",
      "ends_at": "2030-01-01T11:00"}, "timezone"),
    ({"shape": "recurring", "schedule": "61 * * * *", "duration_minutes": "30"}, "schedule"),
    ({"shape": "recurring", "schedule": "0 3 * * *", "duration_minutes": "0"},
     "duration_minutes"),
    ({"shape": "recurring", "schedule": "0 3 * * *", "duration_minutes": "an hour"},
     "duration_minutes"),
    ({"shape": "recurring", "schedule": "0 3 * * *", "duration_minutes": "10081"},
     "duration_minutes"),
    ({"workflow": "x" * 201, "starts_at": "2030-01-01T10:00", "ends_at": "2030-01-01T11:00"},
     "workflow"),
])
def test_a_bad_window_comes_back_with_the_error_beside_its_field(logged_in, api, fields,
                                                                field):
    answer = post_form(logged_in, "/alerts", "/alerts/maintenance", **window_form(**fields))

    assert answer.status_code == 400
    tree = parse(answer)
    (error,) = tree.find("small", class_="field-error", id=f"mw-{field}-error")
    assert error.text.strip()
    (box,) = tree.find(id=f"mw-{field}")
    assert box.attrs.get("aria-invalid") == "true"
    assert box.attrs.get("aria-describedby") == f"mw-{field}-error"
    if fields.get("shape") != "recurring" and field != "timezone":
        assert box.attrs.get("value", "") == fields.get(field, "")  # kept as typed
    assert api.get(MAINTENANCE).json["data"] == []


def test_runs_started_inside_a_window_carry_the_maintenance_badge(logged_in, api, now):
    window = api.post(MAINTENANCE, json={
        "workflow": "backup", "starts_at": iso(now - timedelta(hours=1)),
        "ends_at": iso(now + timedelta(hours=1)), "reason": "disk swap"})
    assert window.status_code == 201, window.text
    before, inside = (report(api, "backup", "F", now - timedelta(hours=2))
                      + report(api, "backup", "F", now - timedelta(minutes=30)))
    assert api.get(f"/api/automations/executions/{inside}").json["maintenance"] is True

    history = parse(logged_in.get("/executions?workflow=backup"))
    marked = {int(row.attrs["data-id"]): [b.text for b in row.find("span", class_="badge")]
              for row in history.find("tr")[1:]}
    assert marked == {inside: ["failure", "maintenance"], before: ["failure"]}
    assert parse(logged_in.get(f"/executions/{inside}")).find("span", class_="badge-maintenance")
    assert not parse(logged_in.get(f"/executions/{before}")).find(
        "span", class_="badge-maintenance")
