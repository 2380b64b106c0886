"""The history page: plain GET form, htmx partials, errors beside fields, escaped names."""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

PAGE = "/executions"
BATCH = "/api/automations/executions/batch"
HTMX = {"HX-Request": "true"}
EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """The parts of a history page that tests look at."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.row_ids: list[int] = []
        self.counts: dict[str, int] = {}
        self.errors: dict[str, str] = {}
        self.text: list[str] = []
        self._capture: tuple[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr" and "data-id" in attrs:
            self.row_ids.append(int(attrs["data-id"]))
        if tag == "span" and "data-status" in attrs:
            self._capture = ("count", attrs["data-status"])
        if tag == "small" and "field-error" in attrs.get("class", ""):
            self._capture = ("error", attrs["id"].removesuffix("-error"))

    def handle_data(self, data):
        self.text.append(data)
        if self._capture:
            kind, key = self._capture
            if kind == "count":
                self.counts[key] = int(data) if data.strip().isdigit() else None
            else:
                self.errors[key] = data.strip()
            self._capture = None

    def links(self, css_class: str | None = None) -> list[str]:
        return [a["href"] for tag, a in self.tags if tag == "a" and "href" in a
                and (css_class is None or css_class in a.get("class", "").split())]

    def has(self, tag: str, **attrs) -> bool:
        return any(t == tag and all(k in a and a[k] == v for k, v in attrs.items())
                   for t, a in self.tags)


def report(api, runs: list[dict]) -> list[int]:
    response = api.post(BATCH, json={"executions": runs})
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json["data"]]


@pytest.fixture
def runs(api) -> list[int]:
    items = [{"workflow": "alpha" if i % 3 else "beta",
              "status": ["success", "failure", "success", "running"][i % 4],
              "started_at": f"2026-11-2{i % 5}T1{i % 10}:00:00Z"} for i in range(60)]
    items[1]["error"] = {"message": "HTTP 502 from billing"}
    return report(api, items)


def test_a_plain_request_gets_the_full_page_and_htmx_the_partial_with_the_same_rows(
        logged_in, runs):
    full = logged_in.get(f"{PAGE}?workflow=alpha&status=failure")
    partial = logged_in.get(f"{PAGE}?workflow=alpha&status=failure", headers=HTMX)
    assert full.status_code == partial.status_code == 200
    assert "<html" in full.text and "<html" not in partial.text
    assert "<nav" in full.text and 'class="site-header"' not in partial.text
    full_rows, partial_rows = Page(full.text).row_ids, Page(partial.text).row_ids
    assert full_rows == partial_rows and full_rows
    assert "HX-Request" in full.headers["Vary"] and "HX-Request" in partial.headers["Vary"]
    assert partial.headers["HX-Push-Url"] == "/executions?workflow=alpha&status=failure"


def test_a_history_restore_gets_the_full_page(logged_in, runs):
    response = logged_in.get(PAGE, headers={**HTMX, "HX-History-Restore-Request": "true"})
    assert "<html" in response.text


def test_page_and_api_with_the_same_query_string_list_the_same_runs(logged_in, runs):
    query = "workflow=alpha&workflow=beta&status=success&from=2026-11-21&to=2026-11-23&limit=7"
    page = Page(logged_in.get(f"{PAGE}?{query}").text)
    api = logged_in.get(f"/api/automations/executions?{query}").json
    assert page.row_ids == [row["id"] for row in api["data"]]
    assert page.counts == api["counts"]


def test_status_chips_show_the_count_of_each_status_for_the_current_filter(logged_in, runs):
    page = Page(logged_in.get(f"{PAGE}?workflow=beta&status=failure").text)
    api = logged_in.get("/api/automations/executions?workflow=beta").json
    assert page.counts == api["counts"]
    assert page.has("input", name="status", value="failure", checked=None)
    assert not page.has("input", name="status", value="success", checked=None)


def test_a_form_submission_with_empty_fields_is_sent_to_the_canonical_address(logged_in, runs):
    response = logged_in.get(f"{PAGE}?workflow=&status=failure,success&from=&to=&tz=&sort="
                             "-started_at&limit=")
    assert response.status_code == 302
    assert response.headers["Location"] == "/executions?status=success&status=failure"


@pytest.mark.parametrize("query,field", [
    ("status=nope", "status"), ("from=yesterday", "from"), ("to=2026-02-30", "to"),
    ("from=2026-11-25&to=2026-11-24", "from"), ("tz=Nowhere/Land", "tz"),
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"),
])
def test_a_bad_value_is_shown_beside_its_field_with_status_400(logged_in, runs, query, field):
    for headers in ({}, HTMX):
        response = logged_in.get(f"{PAGE}?{query}", headers=headers)
        assert response.status_code == 400
        page = Page(response.text)
        assert set(page.errors) == {field}
        assert page.has("input", **{"aria-invalid": "true"}) or page.has(
            "select", **{"aria-invalid": "true"})
        assert page.row_ids == []


def test_a_forged_cursor_on_the_page_is_a_400_with_a_way_back(logged_in, runs):
    response = logged_in.get(f"{PAGE}?cursor=forged")
    assert response.status_code == 400
    assert "cursor" in response.text and 'href="/executions"' in response.text


def test_workflow_names_are_escaped_everywhere_on_the_page(logged_in, api):
    report(api, [{"workflow": EVIL, "status": "failure", "error": {"message": EVIL}}])
    for url in (PAGE, f"{PAGE}?workflow=%3Cscript%3Ealert%281%29%3C%2Fscript%3E"):
        response = logged_in.get(url)
        assert response.status_code == 200
        assert EVIL not in response.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        assert len(Page(response.text).row_ids) == 1


def test_rows_link_to_the_run_and_the_workflow_link_filters_by_it(logged_in, runs):
    page = Page(logged_in.get(f"{PAGE}?status=failure").text)
    first = page.row_ids[0]
    assert f"/executions/{first}" in page.links()
    workflow_link = page.links("workflow-link")[0]
    assert parse_qs(urlsplit(workflow_link).query)["workflow"] in (["alpha"], ["beta"])
    assert parse_qs(urlsplit(workflow_link).query)["status"] == ["failure"]


def test_older_links_walk_the_pages_without_repeating_a_run(logged_in, runs):
    seen, url = [], f"{PAGE}?limit=25"
    for _ in range(10):
        page = Page(logged_in.get(url).text)
        seen += page.row_ids
        older = [href for tag, a in page.tags if tag == "a" and a.get("rel") == "next"
                 for href in [a["href"]]]
        if not older:
            break
        url = older[0]
    assert sorted(seen) == sorted(runs)


def test_histogram_bars_narrow_the_range_to_themselves(logged_in, runs):
    page = Page(logged_in.get(f"{PAGE}?workflow=alpha").text)
    bars = page.links("bar")
    assert 1 <= len(bars) <= 101
    args = parse_qs(urlsplit(bars[0]).query)
    assert args["workflow"] == ["alpha"] and "from" in args and "to" in args
    assert logged_in.get(bars[0]).status_code == 200


def test_without_runs_the_page_shows_a_curl_to_report_a_first_run(logged_in):
    response = logged_in.get(PAGE)
    assert response.status_code == 200
    assert "curl -X POST http://localhost/api/automations/executions" in response.text


def test_a_filter_that_matches_nothing_offers_to_clear_it(logged_in, runs):
    response = logged_in.get(f"{PAGE}?workflow=nobody")
    assert "No runs match" in response.text and "curl" not in response.text


def test_the_new_runs_hint_counts_runs_that_arrived_after_the_newest_shown(logged_in, api,
                                                                           runs):
    page = Page(logged_in.get(f"{PAGE}?workflow=alpha").text)
    [poll] = [a["hx-get"] for tag, a in page.tags if a.get("id") == "fresh"]
    assert "new run" not in logged_in.get(poll, headers=HTMX).text
    report(api, [{"workflow": "alpha", "status": "success"},
                 {"workflow": "alpha", "status": "failure"},
                 {"workflow": "beta", "status": "success"}])
    hint = logged_in.get(poll, headers=HTMX)
    assert hint.status_code == 200 and "2 new runs" in hint.text


def test_the_start_page_is_the_history(logged_in, runs):
    assert Page(logged_in.get("/").text).row_ids == Page(logged_in.get(PAGE).text).row_ids


@pytest.mark.spec("API-AUTO-EXEC-FILTER-004")
def test_signed_out_visitors_are_sent_to_the_login_page(client, runs):
    page = client.get(f"{PAGE}?status=failure")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    htmx = client.get(f"{PAGE}?status=failure", headers=HTMX)
    assert htmx.status_code == 401 and "HX-Redirect" in htmx.headers
