"""An account's theme and time zone (Settings): the pages follow the theme, and show every
time in the zone, where the history's `tz` still shows its runs in another."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from helpers import csrf_from, parse, report
from views.formatting import format_time, iso_clock, precise_time

RUN = {"workflow": "invoice-sync", "status": "failure",
       "started_at": "2026-11-24T23:30:00Z", "finished_at": "2026-11-24T23:30:04.250Z",
       "error": {"message": "HTTP 502"}}


def save(client, theme: str = "system", time_zone: str = "UTC"):
    page = client.get("/settings").get_data(as_text=True)
    return client.post("/settings/preferences", data={
        "csrf_token": csrf_from(page), "theme": theme, "time_zone": time_zone})


def theme_of(client, url: str = "/settings") -> str | None:
    [html] = parse(client.get(url)).find("html")
    return html.attrs.get("data-theme")


def test_a_new_account_follows_the_system_theme_and_reads_utc(logged_in):
    assert theme_of(logged_in) is None, "no data-theme: the browser's colour scheme decides"
    form = parse(logged_in.get("/settings")).find("form", action="/settings/preferences")[0]
    [chosen] = [o for o in form.find("option") if "selected" in o.attrs]
    assert chosen.attrs["value"] == "system"
    assert form.find("input", name="time_zone")[0].attrs["value"] == "UTC"


@pytest.mark.parametrize("theme, shown", [("dark", "dark"), ("light", "light"),
                                          ("system", None)])
def test_the_chosen_theme_is_the_theme_of_every_page(logged_in, theme, shown):
    response = save(logged_in, theme, "UTC")
    assert response.status_code == 302
    for url in ("/settings", "/executions", "/workflows", "/alerts"):
        assert theme_of(logged_in, url) == shown, url


@pytest.mark.parametrize("theme, time_zone, field", [
    ("sepia", "UTC", "theme"), ("dark", "Mars/Olympus", "time_zone"),
    ("dark", "", "time_zone"), ("dark", "Europe/Berlin\x00", "time_zone")])
def test_a_theme_or_zone_that_does_not_exist_is_refused_beside_its_field(
        logged_in, theme, time_zone, field):
    response = save(logged_in, theme, time_zone)
    assert response.status_code == 400
    page = parse(response)
    assert page.by_id(f"{field}-error").text
    assert page.find("input" if field == "time_zone" else "select", name=field)[0] \
        .attrs["aria-invalid"] == "true"
    assert theme_of(logged_in) is None, "nothing was saved"


def test_every_time_on_the_pages_is_shown_in_the_accounts_zone(api, logged_in):
    run_id = report(api, RUN)
    assert save(logged_in, "system", "Europe/Berlin").status_code == 302
    run = logged_in.get(f"/executions/{run_id}").get_data(as_text=True)
    assert "2026-11-25 00:30:00.000 CET" in run and "2026-11-25 00:30:04.250 CET" in run
    assert "2026-11-24 23:30" not in run
    history = parse(logged_in.get("/executions"))
    assert "Started (Europe/Berlin)" in history.text
    assert "2026-11-25 00:30:00 CET" in logged_in.get("/executions").get_data(as_text=True)
    tokens = logged_in.get("/settings").get_data(as_text=True)
    assert "CET</time>" in tokens, "a token's creation time"


def test_the_history_reads_its_dates_in_the_accounts_zone_and_tz_overrides_it(api, logged_in):
    report(api, RUN)  # 23:30 on the 24th in UTC, 00:30 on the 25th in Berlin
    save(logged_in, "system", "Europe/Berlin")

    def shown(url):
        response = logged_in.get(url)
        assert response.status_code == 200, url
        return len([row for row in parse(response).find("tr") if "data-id" in row.attrs])

    assert shown("/executions?from=2026-11-25&to=2026-11-25") == 1
    assert shown("/executions?from=2026-11-24&to=2026-11-24") == 0
    assert shown("/executions?from=2026-11-24&to=2026-11-24&tz=UTC") == 1
    utc = logged_in.get("/executions?tz=UTC").get_data(as_text=True)
    assert "2026-11-24 23:30:00 UTC" in utc
    # The account's own zone is the default: the canonical address leaves it out.
    response = logged_in.get("/executions?tz=Europe/Berlin")
    assert response.status_code == 302 and response.headers["Location"] == "/executions"


def test_the_api_reads_dates_in_utc_whatever_the_accounts_zone(api, logged_in):
    report(api, RUN)
    save(logged_in, "system", "Pacific/Auckland")
    answer = logged_in.get("/api/automations/executions?from=2026-11-24&to=2026-11-24").json
    assert [run["started_at"] for run in answer["data"]] == ["2026-11-24T23:30:00Z"]


def test_a_workflows_figures_are_counted_by_the_days_of_the_accounts_zone(api, logged_in):
    report(api, RUN)
    save(logged_in, "system", "Europe/Berlin")
    page = logged_in.get("/workflows/invoice-sync?from=2026-11-25&to=2026-11-25")
    assert page.status_code == 200
    assert "From 2026-11-25 to 2026-11-25</h2>" in page.get_data(as_text=True), \
        "the account's own zone is not named"
    utc = logged_in.get("/workflows/invoice-sync?from=2026-11-25&to=2026-11-25&tz=UTC")
    assert "From 2026-11-25 to 2026-11-25 (UTC)</h2>" in utc.get_data(as_text=True)


def test_a_time_is_shown_in_the_zone_and_at_the_ends_of_the_calendar_in_utc():
    berlin, kiritimati = ZoneInfo("Europe/Berlin"), ZoneInfo("Pacific/Kiritimati")
    moment = datetime(2026, 7, 1, 22, 30, 4, 250_000, tzinfo=timezone.utc)
    assert format_time(moment, berlin) == "2026-07-02 00:30:04 CEST"
    assert precise_time(moment, berlin) == "2026-07-02 00:30:04.250 CEST"
    assert iso_clock("2026-07-01T22:30:04Z", berlin) == "2026-07-02 00:30 CEST"
    # Older releases stored runs in year 9999: +14 h would pass the calendar's end.
    end = datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc)
    assert format_time(end, kiritimati) == "9999-12-31 23:00:00 UTC"
