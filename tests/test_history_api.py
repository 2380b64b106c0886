"""The history API: the filter grammar, counts, and a clear 400 for every bad parameter."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode

import pytest

from models import Execution, Workflow
from models.db import to_micros
from history.filters import HistoryFilter

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"
UTC = timezone.utc
ODD_NAMES = ["zürich-sync ☃", "name with spaces", "100%_done", "it's \"quoted\"",
             "<script>alert(1)</script>"]


def at(text: str) -> str:
    return text if text.endswith("Z") else text + "Z"


def report(api, runs: list[dict]) -> list[int]:
    """Report runs through the batch API (in batches of up to 1000); their ids in order."""
    ids = []
    for start in range(0, len(runs), 1000):
        response = api.post(BATCH, json={"executions": runs[start:start + 1000]})
        assert response.status_code == 201, response.text
        ids += [item["id"] for item in response.json["data"]]
    return ids


def run(workflow: str, status: str, started: str, seconds: float | None = 1.0, **extra) -> dict:
    body = {"workflow": workflow, "status": status, "started_at": at(started), **extra}
    if seconds is not None and status in ("success", "failure"):
        finished = datetime.fromisoformat(at(started)) + timedelta(seconds=seconds)
        body["finished_at"] = finished.isoformat()
    return body


def listed(api, query: str | dict = "") -> dict:
    if isinstance(query, dict):
        query = urlencode(query, doseq=True)
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 200, response.text
    return response.json


def ids_of(body: dict) -> list[int]:
    return [row["id"] for row in body["data"]]


@pytest.fixture
def sample(api) -> dict[str, int]:
    """A small history across two days and three workflows; name → id."""
    runs = {
        "a1": run("alpha", "success", "2026-11-23T23:30:00"),
        "a2": run("alpha", "failure", "2026-11-24T00:00:00", error={"message": "boom"}),
        "a3": run("alpha", "running", "2026-11-24T12:00:00"),
        "b1": run("beta", "success", "2026-11-24T23:59:59.999999"),
        "b2": run("beta", "pending", "2026-11-25T00:00:00"),
        "c1": run("gamma", "failure", "2026-11-25T09:15:00"),
        "c2": run("gamma", "success", "2026-11-25T22:30:00"),
    }
    return dict(zip(runs, report(api, list(runs.values()))))


def names(sample: dict[str, int], body: dict) -> set[str]:
    by_id = {v: k for k, v in sample.items()}
    return {by_id[i] for i in ids_of(body)}


FILTERS = [
    # (query, expected runs)  — each filter alone, then combined
    ({}, {"a1", "a2", "a3", "b1", "b2", "c1", "c2"}),
    ({"workflow": "alpha"}, {"a1", "a2", "a3"}),
    ({"workflow": ["alpha", "gamma"]}, {"a1", "a2", "a3", "c1", "c2"}),
    ({"workflow": "nobody"}, set()),
    ({"workflow": "ALPHA"}, set()),
    ({"status": "failure"}, {"a2", "c1"}),
    ({"status": ["failure", "pending"]}, {"a2", "c1", "b2"}),
    ({"status": "failure,pending"}, {"a2", "c1", "b2"}),
    ({"status": ["failure, pending", "running"]}, {"a2", "c1", "b2", "a3"}),
    ({"from": "2026-11-24"}, {"a2", "a3", "b1", "b2", "c1", "c2"}),
    ({"to": "2026-11-24"}, {"a1", "a2", "a3", "b1"}),
    ({"from": "2026-11-24", "to": "2026-11-24"}, {"a2", "a3", "b1"}),
    ({"from": "2026-11-24T12:00:00Z", "to": "2026-11-25T00:00:00Z"}, {"a3", "b1", "b2"}),
    ({"from": "2026-11-24T14:00:00+02:00"}, {"a3", "b1", "b2", "c1", "c2"}),
    ({"from": "2026-11-24T12:00:00.000001"}, {"b1", "b2", "c1", "c2"}),
    ({"to": "2026-11-24T01:00:00+01:00"}, {"a1", "a2"}),
    # a date in a zone: 24 Nov in New York is 05:00Z on the 24th to 05:00Z on the 25th
    ({"from": "2026-11-24", "to": "2026-11-24", "tz": "America/New_York"}, {"a3", "b1", "b2"}),
    ({"from": "2026-11-24T19:00", "tz": "America/New_York"}, {"b2", "c1", "c2"}),
    ({"from": "2026-11-25T10:00", "tz": "Asia/Kolkata"}, {"c1", "c2"}),
    ({"to": "2026-11-24T05:30:00", "tz": "Asia/Kolkata"}, {"a1", "a2"}),
    ({"workflow": ["alpha", "beta"], "status": ["success", "pending"], "from": "2026-11-24",
      "to": "2026-11-25"}, {"b1", "b2"}),
    ({"workflow": "gamma", "status": "failure", "from": "2026-11-25T09:15:00Z",
      "to": "2026-11-25T09:15:00Z", "tz": "Europe/Berlin", "sort": "duration",
      "limit": "1"}, {"c1"}),
]


@pytest.mark.spec("API-AUTO-EXEC-FILTER-001")
@pytest.mark.spec("API-AUTO-EXEC-FILTER-002")
@pytest.mark.spec("API-AUTO-EXEC-FILTER-003")
@pytest.mark.parametrize("query,expected", FILTERS, ids=[urlencode(q, doseq=True) or "none"
                                                         for q, _ in FILTERS])
def test_each_filter_alone_and_combined_returns_exactly_the_matching_runs(api, sample, query,
                                                                          expected):
    body = listed(api, query)
    assert names(sample, body) == expected
    assert body["next_cursor"] is None


@pytest.mark.spec("API-AUTO-EXEC-FILTER-002")
def test_a_date_to_covers_the_whole_day_up_to_its_last_microsecond(api, sample):
    body = listed(api, {"to": "2026-11-24", "from": "2026-11-24T23:59:59Z"})
    assert names(sample, body) == {"b1"}


def test_rows_carry_every_field_of_the_answer_format(api, sample):
    body = listed(api, {"workflow": "alpha", "status": "failure"})
    assert set(body) == {"data", "next_cursor", "counts"}
    [row] = body["data"]
    assert row == {"id": sample["a2"], "workflow": "alpha", "status": "failure",
                   "started_at": "2026-11-24T00:00:00Z", "finished_at": "2026-11-24T00:00:01Z",
                   "duration_ms": 1000, "step_count": 0, "error_message": "boom",
                   "maintenance": False, "url": f"http://localhost/executions/{sample['a2']}"}


@pytest.mark.spec("API-AUTO-EXEC-FILTER-001")
@pytest.mark.parametrize("name", ODD_NAMES)
def test_workflow_names_with_unicode_and_sql_wildcards_match_exactly(api, name):
    lookalike = name.replace("%", "x").replace("_", "y") + " " if "%" in name else name + "!"
    [own, _] = report(api, [run(name, "success", "2026-11-24T10:00:00"),
                            run(lookalike, "success", "2026-11-24T10:00:00")])
    body = listed(api, {"workflow": name})
    assert ids_of(body) == [own]
    assert body["data"][0]["workflow"] == name
    assert body["counts"]["success"] == 1


@pytest.mark.spec("API-AUTO-EXEC-FILTER-003")
def test_counts_ignore_the_status_restriction_and_match_a_direct_count(api, sample, db):
    body = listed(api, {"status": "failure", "from": "2026-11-24"})
    direct = {status: Execution.select().where(
        Execution.status == status,
        Execution.started_at >= datetime(2026, 11, 24, tzinfo=UTC)).count()
        for status in ("pending", "running", "success", "failure")}
    assert body["counts"] == direct == {"pending": 1, "running": 1, "success": 2, "failure": 2}
    assert len(body["data"]) == 2


BAD = [
    ({"status": "broken"}, "status"),
    ({"status": "success,"}, None),
    ({"status": "failure,oops"}, "status"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-13-01"}, "from"),
    ({"to": "2026-11-24T25:00"}, "to"),
    ({"to": "9999-12-31"}, "to"),
    ({"from": "2026-11-25", "to": "2026-11-24"}, "from"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"tz": "../../etc/passwd"}, "tz"),
    # files of the zone database that are no zone name the API document lists
    ({"tz": "posix/Europe/Berlin"}, "tz"),
    ({"tz": "right/UTC"}, "tz"),
    ({"sort": "name"}, "sort"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": ["5", "6"]}, "limit"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"workflow": "x" * 201}, "workflow"),
    ({"workflow": "a\x00b"}, "workflow"),
    ({"workflow": ["ok", "\x00"]}, "workflow"),
]


@pytest.mark.parametrize("query,field", BAD, ids=[f"{f}:{urlencode(q, doseq=True)[:30]}"
                                                  for q, f in BAD])
def test_every_bad_parameter_gets_a_400_naming_its_field(api, sample, db, query, field):
    before = Execution.select().count()
    response = api.get(f"{URL}?{urlencode(query, doseq=True)}")
    if field is None:  # an empty part of a comma list is simply ignored
        assert response.status_code == 200
        return
    assert response.status_code == 400, response.text
    assert response.json["error"]["field"] == field
    assert response.json["error"]["message"]
    assert Execution.select().count() == before


def test_a_forged_or_edited_cursor_is_refused(api, app):
    report(api, [run("w", "success", f"2026-11-24T10:00:0{i}") for i in range(5)])
    cursor = listed(api, {"limit": "2"})["next_cursor"]
    assert cursor
    forged = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    for bad, field in ((forged, "cursor"), (cursor + "x", "cursor")):
        response = api.get(f"{URL}?limit=2&cursor={bad}")
        assert (response.status_code, response.json["error"]["field"]) == (400, field)
    # a real cursor of another sort order does not fit this one
    response = api.get(f"{URL}?limit=2&sort=started_at&cursor={cursor}")
    assert (response.status_code, response.json["error"]["field"]) == (400, "cursor")


@pytest.mark.spec("API-AUTO-EXEC-FILTER-004")
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
def test_the_history_api_answers_401_without_valid_credentials(client, sample, headers):
    response = client.get(f"{URL}?status=failure", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_browser_session_may_use_the_api(logged_in, sample):
    response = logged_in.get(f"{URL}?workflow=beta")
    assert response.status_code == 200
    assert len(response.json["data"]) == 2


def test_times_are_stored_and_filtered_to_the_microsecond(api, db):
    [run_id] = report(api, [run("w", "success", "2026-11-24T10:00:00.000123")])
    start = datetime(2026, 11, 24, 10, 0, 0, 123, tzinfo=UTC)
    assert Execution.get_by_id(run_id).started_at == start
    assert ids_of(listed(api, {"from": "2026-11-24T10:00:00.000123Z",
                               "to": "2026-11-24T10:00:00.000123Z"})) == [run_id]
    assert ids_of(listed(api, {"from": "2026-11-24T10:00:00.000124Z"})) == []
    assert to_micros(start) % 1_000_000 == 123
    assert Workflow.select().count() == 1


@pytest.mark.parametrize("query", [q for q, _ in FILTERS], ids=[urlencode(q, doseq=True) or "none"
                                                               for q, _ in FILTERS])
def test_the_canonical_query_string_reads_back_as_the_same_filter(query):
    f = HistoryFilter.from_args(query, secret="s")
    again = HistoryFilter.from_args(parse_qsl(f.query_string()), secret="s")
    assert again == f
    assert again.query_string() == f.query_string()


@pytest.mark.parametrize("query,sentence", [
    ({}, "All runs, newest first"),
    ({"status": "failure", "workflow": "invoice-sync", "from": "2026-11-01"},
     "Failure runs of invoice-sync since 2026-11-01, newest first"),
    ({"to": "2026-11-24", "tz": "Europe/Berlin", "sort": "-duration"},
     "All runs until 2026-11-24 (Europe/Berlin), longest first"),
])
def test_the_filter_describes_itself_in_a_sentence(query, sentence):
    assert HistoryFilter.from_args(query, secret="s").describe() == sentence
