"""Accepted times: reported times from 1970 to a day ahead, query bounds from 1970 to 2100,
and a history that stays whole whatever an older release stored."""
from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from pydantic import ConfigDict, TypeAdapter, ValidationError

from helpers import parse
from history.rollups import MAX_BARS, bar_edges
from models import Execution, Step, Workflow, database
from models.db import to_micros
from models.ingest import store_executions
from models.schemas import ExecutionIn, InputError, StepIn
from models.schemas import parse as parse_body

URL = "/api/automations/executions"
UTC = timezone.utc
MIDDLE = "2026-11-24T10:00:00Z"


def soon(hours: float) -> str:
    """A time `hours` after now, as a client would write it."""
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def stored() -> tuple[int, int, int]:
    return Workflow.select().count(), Execution.select().count(), Step.select().count()


# --- Reported times ----------------------------------------------------------------------

OUT_OF_RANGE = [
    "9999-12-31T23:59:59Z",
    "9999-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",  # before year 1 once read in UTC
    "1969-12-31T23:59:59.999999Z",
    "2100-01-01T00:00:00Z",
]


@pytest.mark.parametrize("value", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["started_at", "finished_at"])
def test_a_reported_time_outside_1970_to_a_day_ahead_is_a_400_naming_it(api, db, field, value):
    body = {"workflow": "w", "status": "success", "started_at": "1970-01-01T00:00:00Z",
            field: value}
    response = api.post(URL, json=body)
    assert response.status_code == 400, response.text
    assert response.json["error"]["field"] == field
    assert "1970-01-01T00:00:00Z" in response.json["error"]["message"]
    assert stored() == (0, 0, 0)


def test_a_time_more_than_a_day_after_receipt_is_refused_and_one_within_it_kept(api, db):
    late = api.post(URL, json={"workflow": "w", "status": "running", "started_at": soon(24.5)})
    assert late.status_code == 400 and late.json["error"]["field"] == "started_at"
    assert stored() == (0, 0, 0)
    for started in ("1970-01-01T00:00:00Z", soon(23.5)):
        response = api.post(URL, json={"workflow": "w", "status": "running",
                                       "started_at": started})
        assert response.status_code == 201, response.text
    assert Execution.select().count() == 2


def test_batches_patches_and_steps_name_the_time_at_fault(api, db):
    run_id = api.post(URL, json={"workflow": "w", "status": "running",
                                 "started_at": MIDDLE}).json["id"]
    before = stored()
    cases = [
        ("post", f"{URL}/batch", {"executions": [
            {"workflow": "w", "status": "success"},
            {"workflow": "w", "status": "success", "started_at": "9999-12-31T23:59:59Z"}]},
         "executions.1.started_at"),
        ("post", URL, {"workflow": "w", "status": "success", "steps": [
            {"name": "a", "finished_at": "0001-01-01T00:00:00+14:00"}]}, "steps.0.finished_at"),
        ("patch", f"{URL}/{run_id}", {"status": "success",
                                      "finished_at": "9999-12-31T23:59:59Z"}, "finished_at"),
        ("post", f"{URL}/{run_id}/steps", {"steps": [
            {"name": "a", "started_at": "1969-07-20T20:17:40Z"}]}, "steps.0.started_at"),
    ]
    for method, url, body, field in cases:
        response = getattr(api, method)(url, json=body)
        assert response.status_code == 400, (url, response.text)
        assert response.json["error"]["field"] == field
    assert stored() == before
    assert Execution.get_by_id(run_id).status == "running"


# --- Query bounds ------------------------------------------------------------------------

BAD_BOUNDS = [
    ({"to": "9999-12-31T23:59:59.999999Z"}, "to"),
    ({"from": "0001-01-01", "tz": "America/Adak"}, "from"),
    ({"from": "0001-01-01T00:00:00+14:00"}, "from"),
    ({"from": "1969-12-31"}, "from"),
    ({"to": "2100-01-02"}, "to"),
    ({"from": "9999-12-31", "tz": "Pacific/Kiritimati"}, "from"),
    ({"filter": json.dumps({"from": "0001-01-01", "tz": "America/Adak"})}, "from"),
    ({"filter": json.dumps({"to": "9999-12-31T23:59:59.999999Z"})}, "to"),
]


WRITTEN = ["2026-11-24T10:00:00Z", "2026-11-24T10:00:00.5Z", "2026-11-24T10:00:00.123456Z",
           "2026-11-24T10:00:00.1234567Z", "2026-11-24T10:00:00+05:30", "2026-11-24T10:00:00-00:00",
           "2026-11-24T10:00:00-23:59", "2026-11-24T10:00:00+24:00", "2026-11-24T10:00:00",
           "2026-11-24 10:00:00Z", "2026-11-24t10:00:00z", "2026-11-24T10:00Z",
           "2026-11-24T10:00:60Z", "2026-11-24T24:00:00Z", "2026-02-30T10:00:00Z",
           "2026-13-24T10:00:00Z", "2026-11-24", "1764000000", "", 1764000000, True, None]


@pytest.mark.parametrize("written", WRITTEN, ids=[json.dumps(w) for w in WRITTEN])
def test_a_reported_time_reads_as_pydantic_reads_it_or_fails_as_it_does(written):
    """The usual strings are read by the standard library (its datetimes compare faster):
    every one of them, and every other value, reads as pydantic's own datetime does."""
    own = TypeAdapter(datetime, config=ConfigDict(strict=True))
    try:
        value = own.validate_json(json.dumps(written))
        expected = (value.replace(tzinfo=UTC) if value.utcoffset() is None
                    else value.astimezone(UTC))
    except ValidationError as exc:
        expected = "started_at: " + exc.errors()[0]["msg"]
    body = json.dumps({"workflow": "w", "status": "running", "started_at": written})
    try:
        got = parse_body(ExecutionIn, body.encode()).started_at
    except InputError as exc:
        got = exc.message
    if written is None:
        expected = None  # the field may be null
    assert got == expected
    assert got is None or isinstance(got, str) or got.tzinfo is UTC


@pytest.mark.parametrize("query,field", BAD_BOUNDS,
                         ids=[urlencode(q)[:40] for q, _ in BAD_BOUNDS])
def test_a_query_bound_outside_1970_to_2100_is_a_400_naming_it(api, logged_in, query, field):
    response = api.get(f"{URL}?{urlencode(query)}")
    assert response.status_code == 400, response.text
    assert response.json["error"]["field"] == field
    assert "1970-01-01" in response.json["error"]["message"]
    for page in ("/executions", "/"):
        shown = logged_in.get(f"{page}?{urlencode(query)}")
        assert shown.status_code == 400
        assert parse(shown).by_id(f"{field}-error").text.startswith(f"{field} must be from")


def test_the_first_and_last_accepted_query_bounds_answer(api):
    response = api.get(f"{URL}?from=1970-01-01&to=2100-01-01&tz=Pacific/Kiritimati")
    assert response.status_code == 200, response.text
    response = api.get(f"{URL}?from=1970-01-01T00:00:00Z&to=2100-01-01T23:59:59.999999-12:00")
    assert response.status_code == 200, response.text


# --- What an older release may have stored -----------------------------------------------

def _stored_directly(*moments: datetime) -> list[int]:
    """Runs written without validation, as a release that accepted any year did."""
    items = [ExecutionIn.model_construct(
        workflow="legacy", external_id=None, status="failure", started_at=moment,
        finished_at=moment, input=None, output=None, error=None,
        steps=[StepIn.model_construct(position=0, name="s", action=None, status="failure",
                                      started_at=moment, finished_at=moment, input=None,
                                      output=None, error=None, logs=None)])
        for moment in moments]
    with database.connection_context():
        return [run_id for run_id, _ in store_executions(items)]


LEGACY = {
    "year 9999, last moment": [datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
    "year 9999": [datetime(9999, 1, 1, tzinfo=UTC)],
    "year 1": [datetime(1, 1, 1, tzinfo=UTC)],
    "years 1 and 9999": [datetime(1, 1, 1, tzinfo=UTC),
                         datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)],
}


@pytest.mark.parametrize("moments", LEGACY.values(), ids=LEGACY.keys())
def test_runs_stored_far_in_the_past_or_future_leave_every_history_page_whole(
        api, logged_in, moments):
    normal = api.post(f"{URL}/batch", json={"executions": [
        {"workflow": "w", "status": "success", "started_at": MIDDLE}] * 5})
    assert normal.status_code == 201
    legacy_ids = _stored_directly(*moments)
    pages = ["/executions", "/", "/executions?tz=Pacific/Kiritimati",
             "/executions?tz=America/Adak&sort=started_at", "/executions?workflow=legacy",
             "/executions?from=2026-01-01", "/executions?to=2026-12-31&tz=Asia/Tokyo"]
    for url in pages:
        logged_in.get(url)  # the first render compiles templates; time the next one
        began = time.perf_counter()
        response = logged_in.get(url, follow_redirects=True)
        elapsed = time.perf_counter() - began
        assert response.status_code == 200, (url, response.text[-500:])
        bars = parse(response).find(class_="bar")
        assert 0 < len(bars) <= MAX_BARS, (url, len(bars))
        assert len(response.data) < 300_000, (url, len(response.data))
        assert elapsed < 2, (url, elapsed)  # an older build took 3 s and 22 MB per load
    for query in ("", "?sort=started_at", "?tz=America/Adak", "?workflow=legacy&limit=1"):
        response = api.get(f"{URL}{query}")
        assert response.status_code == 200, response.text
        assert sum(response.json["counts"].values()) >= 1
    listed = {row["id"] for row in api.get(f"{URL}?limit=500").json["data"]}
    assert set(legacy_ids) <= listed
    for run_id in legacy_ids:
        for url in (f"/executions/{run_id}", f"/executions/{run_id}/steps/0",
                    f"/executions/{run_id}/compare"):
            assert logged_in.get(url).status_code == 200, url
        assert api.get(f"{URL}/{run_id}").status_code == 200


def test_histogram_bars_never_outnumber_max_bars_for_any_span_or_zone():
    rng = random.Random(7)
    first, last = to_micros(datetime(1, 1, 1, tzinfo=UTC)), to_micros(
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
    zones = [ZoneInfo(name) for name in ("UTC", "Pacific/Kiritimati", "America/Adak",
                                         "Asia/Kolkata", "Europe/Berlin", "Australia/Lord_Howe")]
    spans = [(first, last + 1), (first, to_micros(datetime(2026, 11, 26, tzinfo=UTC))),
             (to_micros(datetime(2026, 1, 1, tzinfo=UTC)), last + 1)]
    for _ in range(300):
        start = rng.randrange(first, last)
        spans.append((start, min(last + 1, start + rng.choice(
            [1, 60_000_000, 86_400_000_000, 10**14, 3 * 10**15, 10**17, 10**20]))))
    for start, end in spans:
        for zone in zones:
            edges, width = bar_edges(start, end, zone)
            assert edges[0] == start and edges[-1] == end
            assert all(a < b for a, b in zip(edges, edges[1:]))
            assert len(edges) - 1 <= MAX_BARS, (start, end, zone, len(edges) - 1)
            assert width > 0
