"""Finding runs: `q` (a run id, an external id, or error text) and `external_id` in the
history grammar, on the page and the API, with the other filters and keyset paging; and
unknown parameters, refused by the API and dropped by the page with a note."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from werkzeug.datastructures import MultiDict

from helpers import parse
from history.parameters import SORTS
from models import database
from models.times import to_micros

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


# --- Every way a search is answered gives the same pages, counts and bars ------------------

def _searched(api) -> list[dict]:
    """Runs that a word, an id and an external id each find in more than one way: the word
    in error texts in several cases and as one run's external id, a run's id in another's
    error text; durations (and none), shared start times, two workflows."""
    def report(items: list[dict]) -> list[dict]:
        response = api.post(BATCH, json={"executions": items})
        assert response.status_code == 201, response.text
        return [{**item, "id": made["id"]} for item, made in zip(items, response.json["data"])]

    def item(n: int, status: str, message: str | None = None, **extra) -> dict:
        minute = n % 5  # runs share start times
        body = {"workflow": "beta" if n % 3 else "alpha", "status": status,
                "started_at": f"2026-11-24T10:{minute:02d}:00Z", **extra}
        if status in ("success", "failure"):
            body["finished_at"] = f"2026-11-24T10:{minute:02d}:{n % 4 * 10:02d}Z"
        if message:
            body["error"] = {"message": message}
        return body

    first = report([
        item(0, "failure", "Quokka jam in feeder 2"), item(1, "failure", "quokka jam, again"),
        item(2, "success", external_id="quokka"), item(3, "running"),
        item(4, "failure", "QUOKKA: disk full", external_id="quokka", workflow="alpha"),
        item(5, "failure", "timeout after 30 s", external_id="jam-7"),
        item(6, "success"), item(7, "failure", "tiny quokka"), item(8, "pending")])
    named = first[3]["id"]
    return first + report([
        item(9, "failure", f"row {named} rejected"), item(10, "failure", "jam-7 again"),
        item(11, "running", "quokka still running"), item(12, "failure", "quokka", external_id="x1")])


def _expected(runs: list[dict], f) -> tuple[list[int], dict[str, int]]:
    """What `f` finds, worked out from the reported runs: its runs in its order, and its
    counts per status."""
    from models.executions import STATUSES

    def found(run: dict) -> bool:
        message = (run.get("error") or {}).get("message") or ""
        ok = True
        if f.q:
            ok = (f.q.lstrip("#") == str(run["id"]) or (not f.q.startswith("#") and (
                run.get("external_id") == f.q or f.q.lower() in message.lower())))
        if f.external_ids:
            ok = ok and run.get("external_id") in f.external_ids
        if f.workflows:
            ok = ok and run["workflow"] in f.workflows
        if f.start:
            ok = ok and to_micros(datetime.fromisoformat(run["started_at"])) >= f.start.micros
        return ok

    matched = [run for run in runs if found(run)]
    counts = {status: sum(run["status"] == status for run in matched) for status in STATUSES}

    def duration(run: dict) -> int | None:  # each run starts on a whole minute
        return int(run["finished_at"][17:19]) * 1000 if "finished_at" in run else None

    listed = [run for run in matched if not f.statuses or run["status"] in f.statuses]
    if f.sort.endswith("started_at"):
        listed.sort(key=lambda run: (run["started_at"], run["id"]))
    else:
        listed.sort(key=lambda run: (duration(run) is None, duration(run) or 0, run["id"]))
        if f.sort.startswith("-"):
            listed = ([run for run in reversed(listed) if duration(run) is not None]
                      + [run for run in reversed(listed) if duration(run) is None])
    if f.sort == "-started_at":
        listed.reverse()
    return [run["id"] for run in listed], counts


def _walk(f, mode: str) -> tuple[list[int], dict[str, int], list]:
    """Every page of `f` through the service: the runs, the counts, the first page's bars.
    "fresh": nothing kept from one page to the next; "kept": counts kept after page one."""
    from history.changes import cache
    from history.service import query_history

    seen, counts, bars = [], None, None
    for _ in range(20):
        if mode != "kept":
            cache.clear()
        found = query_history(f, datetime(2026, 11, 26, tzinfo=timezone.utc))
        seen += [row.id for row in found.rows]
        counts = counts or found.counts
        assert found.counts == counts
        bars = bars if bars is not None else (found.edges, found.bars)
        if found.next_cursor is None:
            return seen, counts, bars
        f = f.but(cursor=found.next_cursor)
    raise AssertionError("no last page")


SEARCHES = [{"q": "quokka", "sort": sort, **status} for sort in SORTS
            for status in ({}, {"status": "failure"})]
SEARCHES += [{"q": "NAMED"}, {"q": "jam-7"}, {"external_id": ["jam-7", "x1"]},
             {"q": "quokka", "workflow": "beta"}, {"q": "Quokka", "from": "2026-11-24T10:01"},
             {"q": "#NAMED", "sort": "-duration"}]


def test_a_search_lists_and_counts_the_same_whether_read_whole_or_counted_by_the_database(
        api, db, monkeypatch):
    from history import found, service
    from history.filters import HistoryFilter

    runs = _searched(api)
    named = str(runs[3]["id"])
    for query in SEARCHES:
        query = {key: value.replace("NAMED", named) if isinstance(value, str) else value
                 for key, value in {**query, "limit": "2"}.items()}
        f = HistoryFilter.from_args(MultiDict(query), secret="s")
        ids, counts = _expected(runs, f)
        assert ids, query  # each search finds something
        answers = {}
        for mode, few, dense in (("fresh", found.FEW, service.DENSE),
                                 ("kept", found.FEW, service.DENSE),
                                 ("fresh", 0, service.DENSE), ("fresh", 0, 1)):
            monkeypatch.setattr(found, "FEW", few)
            monkeypatch.setattr(found, "_MANY", {})  # no guess kept from another way
            monkeypatch.setattr(service, "DENSE", dense)
            seen, found_counts, bars = _walk(f, mode)
            assert (seen, found_counts) == (ids, counts), (query, mode, few, dense)
            answers[(mode, few, dense)] = bars
        assert len({repr(bars) for bars in answers.values()}) == 1, query


def test_a_search_that_found_many_runs_is_counted_at_once_the_next_time(api, db,
                                                                        monkeypatch):
    """Without the query that would find out again that there are too many to read."""
    from history import found
    from history.changes import cache
    from history.filters import HistoryFilter
    from history.service import query_history

    monkeypatch.setattr(found, "FEW", 2)
    monkeypatch.setattr(found, "_MANY", {})
    _searched(api)
    f = HistoryFilter.from_args({"q": "quokka", "limit": "3"}, secret="s")
    statements: list[str] = []
    execute = database.obj.execute_sql
    monkeypatch.setattr(database.obj, "execute_sql", lambda sql, *args, **kwargs: (
        statements.append(sql), execute(sql, *args, **kwargs))[1])

    def ask() -> tuple[tuple, int]:
        cache.clear()  # as after a write
        statements.clear()
        result = query_history(f, datetime(2026, 11, 26, tzinfo=timezone.utc))
        return (result.counts, [row.id for row in result.rows], result.bars), len(statements)

    first, read_first = ask()
    again, read_again = ask()
    assert again == first and read_again == read_first - 1
    monkeypatch.setattr(found, "FEW", 100)  # now they are few: counted once more, then
    assert ask() == (first, read_again)     # answered by one query (not three: counts,
    assert ask() == (first, read_again - 2)  # bars, the page)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # PostgreSQL plans by statistics
def test_sqlite_counts_a_texts_matches_from_the_index_of_runs_with_an_error(api, db):
    """Counting ten thousand matches read each one's row from the table (0.5 s at a million
    runs); the narrow index answers them from a few megabytes."""
    from history.filters import HistoryFilter
    from history.search import ERROR_RUNS_INDEX, _branches
    from models import Execution

    _searched(api)
    [root] = database.execute_sql(
        "SELECT rootpage FROM sqlite_master WHERE name = 'execution'").fetchone()
    for query in ({"q": "quokka"}, {"q": "quokka", "workflow": "beta", "from": "2026-11-24"}):
        f = HistoryFilter.from_args(query, secret="s")
        in_text = _branches(f, f.workflow_ids(), (Execution.status, Execution.started_at))[0]
        sql, params = in_text.sql()
        plan = [row[-1] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)]
        assert any(ERROR_RUNS_INDEX in step for step in plan), plan
        # No run's row is read: the table is opened (for a seek it defers), never read.
        program = database.execute_sql(f"EXPLAIN {sql}", params).fetchall()
        tables = {p1 for _, op, p1, p2, *_ in program if op == "OpenRead" and p2 == root}
        assert tables and not [op for _, op, p1, *_ in program if p1 in tables and op in (
            "Column", "Rowid", "SeekRowid", "NotExists", "Rewind", "Last", "Next", "Prev")]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_database_without_the_index_of_runs_with_an_error_gets_it_at_start(api, runs, db):
    """A database made at schema version 9 before the index existed."""
    from history.search import ERROR_RUNS_INDEX, ensure_text_index

    database.execute_sql(f'DROP INDEX "{ERROR_RUNS_INDEX}"')
    ensure_text_index()  # what the app's start does
    assert database.execute_sql("SELECT count(*) FROM sqlite_master WHERE name = ?",
                                (ERROR_RUNS_INDEX,)).fetchone()[0] == 1
    assert found(api, runs, q="HTTP 502") == {"billing-502", "etl-502"}
