"""Finding runs: `q` (a run id, an external id, or error text) and `external_id` in the
history grammar, on the page and the API, with the other filters and keyset paging; and
unknown parameters, refused by the API and dropped by the page with a note."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from helpers import parse

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"


def run(workflow: str, status: str, minute: int, message: str | None = None,
        **extra) -> dict:
    body = {"workflow": workflow, "status": status,
            "started_at": f"2026-11-24T10:{minute:02d}:00Z", **extra}
    if message is not None:
        body["error"] = {"message": message, "type": "Failure"}
    return body


@pytest.fixture
def runs(api) -> dict[str, int]:
    """Runs with external ids and error texts worth looking for; name → id."""
    reported = {
        "billing-502": run("billing", "failure", 1, "HTTP 502 from Billing", external_id="run-8812"),
        "billing-ok": run("billing", "success", 2, external_id="run-8813"),
        "etl-502": run("etl", "failure", 3, "upstream said http 502", external_id="run-8812"),
        "percent": run("etl", "failure", 4, "disk 100% full_now"),
        "percentless": run("etl", "failure", 5, "disk 1000 fullXnow"),
        "number": run("etl", "failure", 6, "row 7 of 2011 rejected", external_id="2011"),
        "quoted": run("etl", "failure", 7, 'key "customer_id" missing'),
        "short": run("etl", "failure", 8, "ab"),
    }
    response = api.post(BATCH, json={"executions": list(reported.values())})
    assert response.status_code == 201, response.text
    return dict(zip(reported, (item["id"] for item in response.json["data"])))


def found(api, runs: dict[str, int], **query) -> set[str]:
    response = api.get(f"{URL}?{urlencode(query, doseq=True)}")
    assert response.status_code == 200, response.text
    by_id = {v: k for k, v in runs.items()}
    return {by_id.get(row["id"], row["id"]) for row in response.json["data"]}


def test_q_finds_a_run_by_its_id_with_or_without_a_hash(api, runs):
    run_id = runs["billing-ok"]
    assert "billing-ok" in found(api, runs, q=str(run_id))  # and errors holding the digit
    assert found(api, runs, q=f"#{run_id}") == {"billing-ok"}
    assert found(api, runs, q=f" #{run_id} ") == {"billing-ok"}
    assert found(api, runs, q="#99999999") == set()


def test_q_finds_runs_by_exact_external_id_in_every_workflow(api, runs):
    assert found(api, runs, q="run-8812") == {"billing-502", "etl-502"}
    assert found(api, runs, q="run-881") == set()  # exact, not contained
    assert found(api, runs, q="RUN-8812") == set()


def test_a_number_in_q_finds_the_run_with_that_id_that_external_id_and_that_error_text(
        api, runs):
    # 2011 is no run's id here (the ids are small): the external id and the error text.
    assert found(api, runs, q="2011") == {"number"}
    assert found(api, runs, q=str(runs["quoted"])) >= {"quoted"}


@pytest.mark.parametrize("q, expected", [
    ("billing", {"billing-502"}),  # case-insensitive
    ("HTTP 502", {"billing-502", "etl-502"}),
    ("100%", {"percent"}),  # % is a plain character, not "anything"
    ("% full_", {"percent"}),  # _ too: "fullXnow" does not match
    ("_now", {"percent"}),
    ('"customer_id"', {"quoted"}),  # quotes are searched as written
    ("ab", {"short"}),  # shorter than a trigram: still found
    ("no such text", set()),
])
def test_q_finds_text_contained_in_the_error_message(api, runs, q, expected):
    assert found(api, runs, q=q) == expected


def test_external_id_is_exact_and_repeatable(api, runs):
    assert found(api, runs, external_id="run-8812") == {"billing-502", "etl-502"}
    assert found(api, runs, external_id=["run-8812", "run-8813"]) == {
        "billing-502", "etl-502", "billing-ok"}
    assert found(api, runs, external_id="run-88") == set()


def test_search_combines_with_the_other_filters_and_counts_what_it_finds(api, runs):
    assert found(api, runs, q="run-8812", workflow="etl") == {"etl-502"}
    assert found(api, runs, q="502", status="success") == set()
    assert found(api, runs, external_id="run-8813", status="success") == {"billing-ok"}
    assert found(api, runs, q="502", **{"from": "2026-11-24T10:02:00Z"}) == {"etl-502"}
    body = api.get(f"{URL}?q=run-8812&status=success").json
    assert body["data"] == []
    assert body["counts"] == {"pending": 0, "running": 0, "success": 0, "failure": 2}
    body = api.get(f"{URL}?external_id=run-8812&external_id=run-8813").json
    assert body["counts"] == {"pending": 0, "running": 0, "success": 1, "failure": 2}


def test_search_pages_by_keyset_each_run_once(api):
    runs = [run("paged", "failure", minute % 3, f"Paged failure {minute}") for minute in range(7)]
    runs += [run("paged", "failure", 5, "something else")]
    assert api.post(BATCH, json={"executions": runs}).status_code == 201
    seen, url = [], f"{URL}?q=paged+FAILURE&limit=3"
    for _ in range(10):
        body = api.get(url).json
        seen += [row["id"] for row in body["data"]]
        if not body["next_cursor"]:
            break
        url = f"{URL}?q=paged+FAILURE&limit=3&cursor={body['next_cursor']}"
    assert len(seen) == len(set(seen)) == 7
    started = [row["started_at"] for row in api.get(f"{URL}?q=paged+failure").json["data"]]
    assert started == sorted(started, reverse=True)
    by_duration = api.get(f"{URL}?q=paged+failure&sort=duration&limit=2").json
    assert len(by_duration["data"]) == 2 and by_duration["next_cursor"]


def test_the_filter_json_form_carries_q_and_external_id(api, runs):
    assert found(api, runs, filter='{"q": "billing"}') == {"billing-502"}
    assert found(api, runs, filter='{"external_id": ["run-8812"], "workflow": "etl"}') == {
        "etl-502"}
    response = api.get(f"{URL}?" + urlencode({"filter": '{"q": 5}'}))
    assert response.status_code == 400 and response.json["error"]["field"] == "q"


@pytest.mark.parametrize("query, field", [
    ({"q": "a\x00b"}, "q"),
    ({"q": "x" * 301}, "q"),
    ({"external_id": "a\x00b"}, "external_id"),
    ({"external_id": "x" * 201}, "external_id"),
    ({"q": ["a", "b"]}, "q"),
])
def test_a_bad_search_gets_a_400_naming_its_field(api, query, field):
    response = api.get(f"{URL}?{urlencode(query, doseq=True)}")
    assert response.status_code == 400
    assert response.json["error"]["field"] == field


def test_the_api_refuses_unknown_parameters_naming_them(api, runs):
    response = api.get(f"{URL}?external_ids=run-8812&workflow=etl")
    assert response.status_code == 400
    error = response.json["error"]
    assert error["field"] == "external_ids" and "external_ids" in error["message"]
    response = api.get(f"{URL}?foo=1&bar=2")
    assert response.json["error"]["field"] == "foo" and "'bar'" in response.json["error"]["message"]


def test_the_page_drops_unknown_parameters_with_a_note(logged_in, runs):
    response = logged_in.get("/executions?q=billing&utm_source=mail&color=red")
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert parse_qsl(target.query) == [("q", "billing")]
    page = logged_in.get(response.headers["Location"])
    notes = [p.text for p in parse(page).find("p", class_="flash")]
    assert notes == ["Ignored the unknown parameters utm_source, color."]
    assert [row.attrs["data-id"] for row in parse(page).find("tr") if "data-id" in row.attrs] \
        == [str(runs["billing-502"])]


def test_the_page_searches_and_keeps_q_in_its_links(logged_in, runs):
    page = logged_in.get("/executions?q=run-8812")
    assert page.status_code == 200
    tree = parse(page)
    assert tree.by_id("q").attrs["value"] == "run-8812"
    assert "matching \u201crun-8812\u201d" in tree.find("p", class_="describe")[0].text
    assert {row.attrs["data-id"] for row in tree.find("tr") if "data-id" in row.attrs} == {
        str(runs["billing-502"]), str(runs["etl-502"])}
    [download] = [a for a in tree.find("a") if a.text == "Download CSV"]
    assert download.attrs["href"] == "/api/automations/executions/export?q=run-8812&format=csv"
    bad = logged_in.get("/executions?q=" + "x" * 301)
    assert bad.status_code == 400
    assert parse(bad).by_id("q-error").text.startswith("q has at most 300")


def test_a_text_many_runs_hold_pages_the_same_when_the_walk_reads_the_order(api, monkeypatch):
    from history import search

    runs = [run("dense", "failure", minute % 10, f"Dense failure {minute}") for minute in range(9)]
    runs += [run("dense", "success", minute % 10) for minute in range(5)]
    assert api.post(BATCH, json={"executions": runs}).status_code == 201

    def walk(query: str) -> list[int]:
        seen, url = [], f"{URL}?{query}&limit=4"
        for _ in range(10):
            body = api.get(url).json
            seen += [row["id"] for row in body["data"]]
            if not body["next_cursor"]:
                return seen
            url = f"{URL}?{query}&limit=4&cursor={body['next_cursor']}"
        raise AssertionError("no last page")

    fetched = walk("q=dense+failure")
    monkeypatch.setattr(search, "DENSE", 3)
    monkeypatch.setattr("history.service.DENSE", 3)
    assert walk("q=dense+failure") == fetched and len(fetched) == 9
    assert walk("q=dense+failure&sort=duration") != []
