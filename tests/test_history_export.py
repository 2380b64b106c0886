"""The history taken out: every matching run, newest first, as CSV or NDJSON, read back as
a program would."""
from __future__ import annotations

import csv
import io
import json
from urllib.parse import urlencode

import pytest

from history import export

URL = "/api/automations/executions/export"
BATCH = "/api/automations/executions/batch"
COLUMNS = ["id", "workflow", "status", "started_at", "finished_at", "duration_ms",
           "step_count", "external_id", "error_type", "error_message", "url"]
AWKWARD = 'HTTP 502, "bad gateway"\nretry with token=s3cret; 100% of 1_000'


@pytest.fixture
def reported(api) -> list[int]:
    """Five runs, oldest first, one with an error message that CSV must quote."""
    runs = [
        {"workflow": "billing, EU", "status": "failure", "external_id": "run-1",
         "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:04.250Z",
         "error": {"message": AWKWARD, "type": "HTTPError"},
         "steps": [{"name": "fetch", "status": "success"}]},
        {"workflow": "billing, EU", "status": "success", "started_at": "2026-11-24T11:00:00Z"},
        {"workflow": "etl", "status": "running", "started_at": "2026-11-24T11:00:00Z"},
        {"workflow": "etl", "status": "failure", "started_at": "2026-11-24T12:00:00.5Z",
         "error": {"message": "zürich ☃ down"}},
        {"workflow": "etl", "status": "pending", "started_at": "2026-11-25T00:00:00Z"},
    ]
    response = api.post(BATCH, json={"executions": runs})
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json["data"]]


def csv_rows(api, **query) -> list[dict]:
    response = api.get(f"{URL}?{urlencode({**query, 'format': 'csv'}, doseq=True)}")
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    reader = csv.reader(io.StringIO(response.get_data(as_text=True), newline=""))
    header, *rows = list(reader)
    assert header == COLUMNS
    return [dict(zip(header, row)) for row in rows]


def test_the_csv_holds_every_run_newest_first_and_reads_back_whole(api, reported):
    rows = csv_rows(api)
    assert [int(r["id"]) for r in rows] == [reported[i] for i in (4, 3, 2, 1, 0)]
    first = rows[-1]
    assert first == {
        "id": str(reported[0]), "workflow": "billing, EU", "status": "failure",
        "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:04.250000Z",
        "duration_ms": "4250", "step_count": "1", "external_id": "run-1",
        "error_type": "HTTPError", "error_message": AWKWARD,  # an admin token sees secrets
        "url": f"http://localhost/executions/{reported[0]}"}
    assert rows[1]["error_message"] == "zürich ☃ down"
    assert rows[0]["finished_at"] == rows[0]["duration_ms"] == rows[0]["external_id"] == ""


def test_the_export_applies_the_filter(api, reported):
    assert [r["id"] for r in csv_rows(api, workflow="etl", status="failure")] == [
        str(reported[3])]
    assert [r["id"] for r in csv_rows(api, q="bad gateway")] == [str(reported[0])]
    assert [r["id"] for r in csv_rows(api, external_id="run-1")] == [str(reported[0])]
    assert [r["id"] for r in csv_rows(api, **{"from": "2026-11-24T11:00:00Z",
                                              "to": "2026-11-24"})] == [
        str(reported[3]), str(reported[2]), str(reported[1])]
    assert [r["id"] for r in csv_rows(api, filter='{"workflow": ["etl"], "to": "2026-11-24"}')] \
        == [str(reported[3]), str(reported[2])]
    assert csv_rows(api, workflow="nobody") == []


def test_ndjson_is_one_json_object_per_run(api, reported):
    response = api.get(f"{URL}?format=ndjson&workflow=billing,%20EU")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    lines = response.get_data(as_text=True).splitlines()
    runs = [json.loads(line) for line in lines]
    assert [r["id"] for r in runs] == [reported[1], reported[0]]
    assert list(runs[1]) == COLUMNS
    assert runs[1]["error_message"] == AWKWARD and runs[1]["duration_ms"] == 4250
    assert runs[0]["finished_at"] is None and runs[0]["error_type"] is None


def test_a_read_token_gets_the_error_messages_masked(api, reported, user):
    from models.users import create_token
    from models.db import connection

    with connection():
        read_only = create_token(user, "reader", scopes=["read"])[1]
    response = api.client.get(f"{URL}?q=bad+gateway",
                              headers={"Authorization": f"Bearer {read_only}"})
    assert response.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert "s3cret" not in row["error_message"] and "bad gateway" in row["error_message"]


@pytest.mark.parametrize("query, field", [
    ("format=xml", "format"),
    ("format=csv&limit=10", "limit"),
    ("format=csv&cursor=abc", "cursor"),
    ("format=csv&sort=duration", "sort"),
    ("format=csv&colour=red", "colour"),
    ("format=csv&status=finished", "status"),
    ("format=csv&q=a%00b", "q"),
])
def test_a_bad_export_request_gets_a_400_naming_its_field(api, query, field):
    response = api.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert response.json["error"]["field"] == field


def test_the_export_reads_in_batches_newest_first_each_run_once(api, reported, app,
                                                                 monkeypatch):
    monkeypatch.setattr(export, "BATCH", 2)
    # Two runs share 11:00: the keyset (start, id) keeps both, once each.
    assert [int(r["id"]) for r in csv_rows(api)] == [reported[i] for i in (4, 3, 2, 1, 0)]


def test_the_history_page_links_its_filter_to_the_export(logged_in, reported):
    from helpers import parse

    page = parse(logged_in.get("/executions?workflow=etl&status=failure&limit=20"))
    [link] = [a for a in page.find("a") if a.text == "Download CSV"]
    href = link.attrs["href"]
    assert href == f"{URL}?workflow=etl&status=failure&format=csv"
    response = logged_in.get(href)
    assert response.status_code == 200
    assert [r["id"] for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))] == [
        str(reported[3])]


def test_the_download_link_carries_the_zone_the_page_reads_its_dates_in(logged_in, reported):
    from helpers import parse

    page = parse(logged_in.get("/executions?from=2026-11-25&tz=Asia%2FTokyo"))
    [link] = [a for a in page.find("a") if a.text == "Download CSV"]
    assert link.attrs["href"] == f"{URL}?from=2026-11-25&tz=Asia%2FTokyo&format=csv"
    rows = list(csv.DictReader(io.StringIO(logged_in.get(link.attrs["href"]).get_data(
        as_text=True))))
    # 2026-11-25 in Tokyo began at 15:00 UTC the day before.
    assert [r["id"] for r in rows] == [str(reported[4])]


def test_the_csv_lines_the_database_writes_are_those_the_csv_module_writes(api, reported, db):
    """The database writes each line of a CSV export (times, quoting, addresses); the
    `csv` module writes them where error messages are masked: both the same, byte for
    byte, for every awkward value, and for the times an older release stored."""
    from datetime import datetime, timezone

    from history.filters import HistoryFilter
    from models.ingest import store_executions
    from models.schemas import ErrorIn, ExecutionIn
    from views.formatting import iso_micros

    def older(workflow: str, moment: datetime, message: str | None = None,
              external_id: str | None = None) -> None:
        """A run written without validation, as a release that accepted more did."""
        error = message and ErrorIn.model_construct(message=message, type='a,"b"', stack=None)
        store_executions([ExecutionIn.model_construct(
            workflow=workflow, external_id=external_id, status="failure", started_at=moment,
            finished_at=moment, input=None, output=None, error=error, steps=[])])

    utc = timezone.utc
    older("legacy\nname", datetime(1, 1, 1, tzinfo=utc), "carriage\rreturn", 'ext "1", b')
    older("legacy", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=utc), "line\r\nbreak")
    older("legacy", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=utc), '""')
    older("legacy", datetime(2026, 11, 24, 23, 59, 59, 1, tzinfo=utc), ",")
    f = HistoryFilter.from_args({}, secret="s")
    url = ("http://runwatch.example:8080/executions/", "?from=export")
    by_database = "".join(export.export_lines(f, "csv", url, iso_micros))
    by_module = "".join(export.export_lines(f, "csv", url, iso_micros, lambda text: text))
    assert by_database == by_module
    rows = list(csv.DictReader(io.StringIO(by_database, newline="")))
    assert len(rows) == len(reported) + 4
    assert [(r["workflow"], r["started_at"], r["external_id"]) for r in rows[-2:]] == [
        ("legacy", "1969-12-31T23:59:59.500000Z", ""),
        ("legacy\nname", "0001-01-01T00:00:00Z", 'ext "1", b')]
    assert rows[0]["started_at"] == "9999-12-31T23:59:59.999999Z"
    assert rows[0]["url"] == f"{url[0]}{rows[0]['id']}{url[1]}"
