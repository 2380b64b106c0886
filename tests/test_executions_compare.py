"""Compare with the last success: what differs in the trigger payload and in each step's output."""
from __future__ import annotations

import pytest

from models.payloads import MASK
from helpers import htmx, parse, report


def run(status: str, minute: int, customer: dict, outputs: list, workflow: str = "billing",
        step_status: list[str] | None = None) -> dict:
    """A run of `workflow` started at 10:<minute> with one step per output."""
    step_status = step_status or ["success"] * len(outputs)
    return {"workflow": workflow, "status": status,
            "started_at": f"2026-11-24T10:{minute:02d}:00Z",
            "input": {"customer": customer, "api_key": f"sk_live_{minute}_secret"},
            "steps": [{"name": f"step {i}", "status": step_status[i], "output": output}
                      for i, output in enumerate(outputs)]}


def differences(section) -> list[tuple[str, str, str]]:
    """(path, last success, this run) for every row of every difference table."""
    rows = []
    for table in section.find("table", class_="diff"):
        for row in table.find("tbody")[0].find("tr"):
            path = row.find("th")[0].text.strip()
            before, after = (cell.text.strip() for cell in row.find("td"))
            rows.append((path, before, after))
    return rows


def test_compare_shows_a_changed_input_field_and_a_changed_step_output(api, logged_in):
    report(api, run("success", 0, {"id": 1, "region": "eu"}, [{"count": 3}, {"ok": True}]))
    failed = report(api, run("failure", 5, {"id": 1, "region": "us"},
                             [{"count": 0}, {"ok": True}]))
    response = htmx(logged_in, f"/executions/{failed}/compare")
    assert response.status_code == 200 and "<html" not in response.get_data(as_text=True)
    section = parse(response).find("section", class_="comparison")[0]
    rows = differences(section)
    assert ("$.customer.region", '"eu"', '"us"') in rows
    assert ("$.count", "3", "0") in rows
    assert not any(path.startswith("$.customer.id") for path, _, _ in rows)
    assert "Step 0 · step 0" in section.text and "Step 1" not in section.text
    assert "1 step has the same status and output" in section.text
    changed = section.find("tr", class_="diff-changed")
    assert changed, "differences are highlighted"


def test_compare_says_so_when_there_is_no_earlier_success(api, logged_in):
    report(api, run("failure", 0, {"id": 1}, [{}]))
    later_success = run("success", 9, {"id": 1}, [{}])
    report(api, later_success)  # a success after the run is no baseline
    report(api, run("success", 1, {"id": 1}, [{}], workflow="another-workflow"))
    failed = report(api, run("failure", 5, {"id": 2}, [{}]))
    section = parse(htmx(logged_in, f"/executions/{failed}/compare")) \
        .find("section", class_="comparison")[0]
    assert "There is no earlier successful run of billing to compare with." in \
        " ".join(section.text.split())
    assert not section.find("table")


def test_compare_uses_the_most_recent_success_started_before_the_run(api, logged_in):
    report(api, run("success", 0, {"id": "old"}, []))
    recent = report(api, run("success", 2, {"id": "recent"}, []))
    report(api, run("failure", 3, {"id": "failed-before"}, []))
    failed = report(api, run("failure", 5, {"id": "now"}, []))
    section = parse(htmx(logged_in, f"/executions/{failed}/compare"))
    link = section.find("p")[0].find("a")[0]
    assert link.attrs["href"] == f"/executions/{recent}"
    assert ("$.customer.id", '"recent"', '"now"') in differences(section)


def test_compare_shows_that_a_secret_changed_without_showing_it(api, logged_in):
    report(api, run("success", 0, {"id": 1}, []))
    failed = report(api, run("failure", 5, {"id": 1}, []))
    html = htmx(logged_in, f"/executions/{failed}/compare").get_data(as_text=True)
    assert "sk_live_0_secret" not in html and "sk_live_5_secret" not in html
    assert ("$.api_key", MASK, MASK) in differences(parse(
        htmx(logged_in, f"/executions/{failed}/compare")))


def test_compare_names_steps_that_ran_in_only_one_of_the_runs(api, logged_in):
    report(api, run("success", 0, {"id": 1}, [{"a": 1}, {"b": 2}, {"c": 3}]))
    failed = report(api, run("failure", 5, {"id": 1}, [{"a": 1}, None],
                             step_status=["success", "failure"]))
    section = parse(htmx(logged_in, f"/executions/{failed}/compare"))
    headings = [" ".join(h.text.split()) for h in section.find("h4")]
    assert headings == ["Step 1 · step 1 success → failure",
                        "Step 2 · step 2 success → did not run"]
    assert ("$", "{\"b\": 2}", "absent") in differences(section)


@pytest.mark.parametrize("status", ["success", "failure", "running"])
def test_the_comparison_page_without_htmx_is_the_whole_run_page(api, logged_in, status):
    report(api, run("success", 0, {"id": 1}, []))
    other = report(api, run(status, 5, {"id": 2}, []))
    response = logged_in.get(f"/executions/{other}/compare")
    page = parse(response)
    assert page.find("h1") and page.by_id("compare").find("section", class_="comparison")


def test_compare_can_show_unchanged_fields_and_hide_the_ids_and_times_that_always_differ(
        api, logged_in):
    def request_of(minute: int, uuid: str) -> dict:
        return {"request_id": uuid, "sentAt": f"2026-11-24T10:{minute:02d}:00Z",
                "batch": f"2026-11-{minute + 10}", "total": 10 + minute}
    report(api, run("success", 0, {"id": 7, "region": "eu"},
                    [request_of(0, "5b7c1f2e-0d3a-4c8e-9f6b-2a1d3c4e5f60")]))
    failed = report(api, run("failure", 5, {"id": 7, "region": "eu"},
                             [request_of(5, "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b")]))
    url = f"/executions/{failed}/compare"

    plain = parse(htmx(logged_in, url))
    assert [path for path, _, _ in differences(plain)] == [
        "$.api_key", "$.request_id", "$.sentAt", "$.batch", "$.total"]
    form = plain.find("form", class_="compare-options")[0]
    assert form.attrs["action"] == form.attrs["hx-get"] == url
    assert {i.attrs["name"] for i in form.find("input")} == {"unchanged", "hide_ids"}

    quiet = parse(htmx(logged_in, url + "?hide_ids=1"))
    assert [path for path, _, _ in differences(quiet)] == ["$.api_key", "$.total"]
    assert "(3 changed)" in quiet.find("form", class_="compare-options")[0].text
    assert "checked" in quiet.find("input", name="hide_ids")[0].attrs

    whole = parse(htmx(logged_in, url + "?unchanged=1&hide_ids=1"))
    same = {row.find("th")[0].text: [td.text for td in row.find("td")]
            for row in whole.find("tr", class_="diff-same")}
    assert same == {"$.customer.id": ["7", "7"], "$.customer.region": ['"eu"', '"eu"']}
    assert [path for path, _, _ in differences(whole)] == [
        "$.customer.id", "$.customer.region", "$.api_key", "$.total"]
    # Without htmx, the same address is the whole run page with the comparison in place.
    page = parse(logged_in.get(url + "?unchanged=1"))
    assert page.find("h1") and page.find("tr", class_="diff-same")
