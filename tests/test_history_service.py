"""The history service and the filter's one URL builder, used without Flask."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

import peewee
import pytest

from models import Execution
from models.executions import STATUSES
from history.filters import Cursor, FilterError, HistoryFilter
from history.service import query_history

URL = "/api/automations/executions"
BATCH = "/api/automations/executions/batch"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def make(query: dict | str = "", path: str = "/executions") -> HistoryFilter:
    """A filter as the page builds it."""
    args = parse_qsl(query) if isinstance(query, str) else query
    return HistoryFilter.from_args(args, secret="s", path=path)


@pytest.fixture
def runs(api) -> list[int]:
    items = [{"workflow": ["alpha", "beta", "gamma"][i % 3],
              "status": STATUSES[i % 4],
              "started_at": f"2026-11-2{i % 5}T{i % 24:02d}:{i % 60:02d}:00Z"}
             for i in range(120)]
    response = api.post(BATCH, json={"executions": items})
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json["data"]]


def brute_counts(f: HistoryFilter) -> dict[str, int]:
    terms = f.conditions(with_status=False)
    query = Execution.select(Execution.status, peewee.fn.COUNT(Execution.id))
    found = dict((query.where(*terms) if terms else query).group_by(Execution.status).tuples())
    return {status: found.get(status, 0) for status in STATUSES}


QUERIES = [{}, {"workflow": "alpha"}, {"status": "failure"},
           {"workflow": ["beta", "gamma"], "status": ["success", "pending"],
            "from": "2026-11-21T05:30", "to": "2026-11-23", "tz": "Asia/Kolkata"},
           {"sort": "-duration", "limit": "7"}, {"workflow": "nobody"}]


@pytest.mark.parametrize("query", QUERIES, ids=[urlencode(q, doseq=True) or "none"
                                                for q in QUERIES])
def test_the_service_gives_exact_counts_and_the_same_page_with_or_without_bars(
        runs, db, query):
    f = make(query)
    with_bars = query_history(f, NOW)
    without = query_history(f, NOW, with_bars=False)
    assert with_bars.counts == without.counts == brute_counts(f)
    assert [r.id for r in with_bars.rows] == [r.id for r in without.rows]
    assert with_bars.next_cursor == without.next_cursor
    assert with_bars.matching == sum(with_bars.counts[s] for s in f.statuses or STATUSES)
    assert without.bars == []
    if with_bars.total:
        assert len(with_bars.bars) == len(with_bars.edges) - 1 >= 1
        assert sum(sum(bar.values()) for bar in with_bars.bars) == with_bars.total


def test_the_api_answers_what_the_service_found(api, runs, db):
    query = {"workflow": ["alpha", "beta"], "status": "failure", "limit": "5"}
    found = query_history(make(query), NOW, with_bars=False)
    body = api.get(f"{URL}?{urlencode(query, doseq=True)}").json
    assert [row["id"] for row in body["data"]] == [r.id for r in found.rows]
    assert body["counts"] == found.counts


def test_the_service_walks_every_page_exactly_once(runs, db):
    f, seen = make({"limit": "17", "status": ["success", "failure"]}), []
    for _ in range(20):
        found = query_history(f, NOW, with_bars=False)
        seen += [r.id for r in found.rows]
        if found.next_cursor is None:
            break
        f = f.but(cursor=found.next_cursor)
    assert len(seen) == len(set(seen)) == found.matching == 60


# --- one URL builder ------------------------------------------------------------------------

def test_without_changes_url_with_is_the_canonical_url_of_the_filter():
    f = make("status=failure,success&workflow=a&workflow=b&tz=Europe/Berlin&limit=7")
    assert f.url_with() == ("/executions?workflow=a&workflow=b&status=success&status=failure"
                            "&tz=Europe%2FBerlin&limit=7")
    assert make("").url_with() == "/executions"


URL_CASES = [
    # (query, changes, expected url)
    ("workflow=a&status=failure", {"workflows": ("b c",)},
     "/executions?workflow=b+c&status=failure"),
    ("workflow=a&sort=duration&tz=Asia/Kolkata", {"start": "2026-11-01T10:00", "end": None},
     "/executions?workflow=a&from=2026-11-01T10%3A00&tz=Asia%2FKolkata&sort=duration"),
    ("from=2026-11-01&to=2026-11-20&limit=9", {"start": "2026-11-02", "end": "2026-11-02"},
     "/executions?from=2026-11-02&to=2026-11-02&limit=9"),
    ("status=failure", {"statuses": ()}, "/executions"),
    ("status=failure&limit=10", {"cursor": Cursor(0, 1_700_000_000_000_000, 42)},
     None),  # checked below: only the cursor is added
]


@pytest.mark.parametrize("query,changes,expected", URL_CASES)
def test_url_with_replaces_only_what_it_is_given(query, changes, expected):
    f = make(query)
    url = f.url_with(**changes)
    if expected is not None:
        assert url == expected
    else:
        assert url.startswith(f.url_with() + "&cursor=")
    again = make(url.partition("?")[2])  # every link reads back as a valid filter
    assert make(again.url_with().partition("?")[2]) == again


def test_a_change_starts_from_page_one_and_newest_drops_the_cursor():
    f = make("limit=5").but(cursor=Cursor(0, 10, 3))
    assert "cursor=" in f.url_with()
    assert "cursor=" not in f.url_with(workflows=("x",))
    assert f.url_with(cursor=None) == "/executions?limit=5"


def test_the_poll_url_adds_after_last_on_another_path():
    assert make("").url_with(path="/executions/new", after=12) == "/executions/new?after=12"
    assert (make("status=failure").url_with(path="/executions/new", after=0)
            == "/executions/new?status=failure&after=0")


def test_the_cleared_filter_keeps_its_path_and_nothing_else():
    f = make("workflow=a&status=failure&tz=Europe/Berlin&sort=duration&limit=9")
    assert f.cleared().url_with() == "/executions"


# --- the form shows what was sent ----------------------------------------------------------

def test_a_bad_filter_carries_the_submitted_values_for_the_form():
    with pytest.raises(FilterError) as caught:
        make("workflow=a&workflow=b&workflow=a&status=failure,nope&from=yesterday"
             "&tz=Europe/Berlin&sort=-duration&limit=7")
    assert caught.value.errors.keys() == {"status", "from"}
    assert caught.value.values == {"workflow": ["a", "b"], "status": {"failure", "nope"},
                                   "external_id": [], "q": "", "from": "yesterday", "to": "", "tz": "Europe/Berlin",
                                   "sort": "-duration", "limit": "7"}


def test_a_valid_filter_fills_the_form_with_its_canonical_values():
    assert make("workflow=a&status=failure,success&from=2026-11-01&limit=7").form_values() == {
        "workflow": ["a"], "status": {"success", "failure"}, "external_id": [], "q": "",
        "from": "2026-11-01", "to": "",
        "tz": "", "sort": "", "limit": "7"}


def test_api_times_are_written_exactly_as_iso_writes_them():
    import random
    from models.db import from_micros, iso
    from views.formatting import iso_micros
    rng = random.Random(5)
    samples = [0, 1, 999_999, 1_000_000, 1_764_000_000_000_000, 4_102_444_799_999_999]
    samples += [rng.randrange(0, 4_102_444_800_000_000) for _ in range(2000)]
    samples += [rng.randrange(0, 4_102_444_800) * 1_000_000 for _ in range(200)]
    # What an older release stored: year 1 to 9999, before 1970 too.
    first, last = -62_135_596_800_000_000, 253_402_300_799_999_999
    samples += [first, first + 1, -1, -1_500_000, last, last - 999_999]
    samples += [rng.randrange(first, last) for _ in range(200)]
    assert [iso_micros(m) for m in samples] == [iso(from_micros(m)) for m in samples]
    assert iso_micros(None) is None
