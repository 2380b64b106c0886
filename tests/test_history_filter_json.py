"""`filter=<JSON>`: the same filter as one JSON object, with the same answers and 400s."""
from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

URL = "/api/automations/executions"
PAGE = "/executions"
BATCH = "/api/automations/executions/batch"


@pytest.fixture
def runs(api) -> list[int]:
    items = [{"workflow": ["alpha", "beta", "gamma"][i % 3],
              "status": ["success", "failure", "pending", "running"][i % 4],
              "started_at": f"2026-11-{20 + i % 7}T{i % 24:02d}:00:00Z"} for i in range(84)]
    response = api.post(BATCH, json={"executions": items})
    assert response.status_code == 201, response.text
    return [item["id"] for item in response.json["data"]]


def as_filter(value: object, **beside: str) -> str:
    """A query string carrying `value` as the filter JSON (a str is sent as it is)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return urlencode({"filter": text, **beside})


SAME = [
    # (filter JSON, the plain query it stands for)
    ({}, {}),
    ({"workflow": ["alpha", "beta"]}, {"workflow": ["alpha", "beta"]}),
    ({"workflow": "alpha"}, {"workflow": "alpha"}),
    ({"status": "failure"}, {"status": "failure"}),
    ({"status": ["failure", "pending"]}, {"status": ["failure", "pending"]}),
    ({"status": "failure,running"}, {"status": "failure,running"}),
    ({"from": "2026-11-22", "to": "2026-11-24", "tz": "Europe/Berlin"},
     {"from": "2026-11-22", "to": "2026-11-24", "tz": "Europe/Berlin"}),
    ({"workflow": ["alpha", "gamma"], "status": ["failure"], "from": "2026-11-21",
      "to": "2026-11-25", "tz": "Asia/Kolkata"},
     {"workflow": ["alpha", "gamma"], "status": "failure", "from": "2026-11-21",
      "to": "2026-11-25", "tz": "Asia/Kolkata"}),
    ({"workflow": [], "status": None, "from": ""}, {}),
]


@pytest.mark.parametrize("value,plain", SAME, ids=[json.dumps(v) for v, _ in SAME])
def test_a_filter_json_answers_exactly_as_its_plain_parameters(api, runs, value, plain):
    from_json = api.get(f"{URL}?{as_filter(value, limit='500')}")
    from_plain = api.get(f"{URL}?{urlencode({**plain, 'limit': '500'}, doseq=True)}")
    assert from_json.status_code == from_plain.status_code == 200, from_json.text
    assert from_json.json == from_plain.json


BAD = [
    # (filter value as sent, parameters beside it, the field named)
    ("{not json", {}, "filter"),
    ('["alpha"]', {}, "filter"),
    ('"alpha"', {}, "filter"),
    ("null", {}, "filter"),
    ('{"workflow": NaN}', {}, "filter"),
    ({"workflows": ["alpha"]}, {}, "workflows"),
    ({"state": "failure"}, {}, "state"),
    ({"workflow": 7}, {}, "workflow"),
    ({"workflow": ["alpha", 7]}, {}, "workflow"),
    ({"workflow": "al\u0000pha"}, {}, "workflow"),
    ({"workflow": {"name": "alpha"}}, {}, "workflow"),
    ({"status": [True]}, {}, "status"),
    ({"from": 20261101}, {}, "from"),
    ({"to": ["2026-11-24"]}, {}, "to"),
    ({"tz": 1}, {}, "tz"),
    ({"status": "broken"}, {}, "status"),
    ({"from": "yesterday"}, {}, "from"),
    ({"from": "2026-11-25", "to": "2026-11-24"}, {}, "from"),
    ({"tz": "Mars/Olympus"}, {}, "tz"),
    ({"workflow": "x" * 201}, {}, "workflow"),
    ({"sort": "duration"}, {}, "sort"),
    ({"limit": "5"}, {}, "limit"),
    ({"workflow": "alpha"}, {"workflow": "beta"}, "filter"),
    ({}, {"status": "failure"}, "filter"),
    ({"status": "failure"}, {"from": "2026-11-01"}, "filter"),
    ({}, {"to": "2026-11-01"}, "filter"),
    ({}, {"tz": "UTC"}, "filter"),
    ({}, {"limit": "0"}, "limit"),
    ({}, {"sort": "name"}, "sort"),
    ({}, {"cursor": "forged"}, "cursor"),
]


@pytest.mark.parametrize("value,beside,field", BAD,
                         ids=[f"{f}:{json.dumps(v)[:30]}+{urlencode(b)}" for v, b, f in BAD])
def test_a_bad_filter_json_gets_a_400_naming_the_key(api, runs, value, beside, field):
    response = api.get(f"{URL}?{as_filter(value, **beside)}")
    assert response.status_code == 400, response.text
    error = response.json["error"]
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["message"]


def test_filter_given_twice_gets_a_400_naming_filter(api, runs):
    response = api.get(f"{URL}?filter=%7B%7D&filter=%7B%7D")
    assert (response.status_code, response.json["error"]["field"]) == (400, "filter")


def test_paging_parameters_beside_filter_walk_every_page_once(api, runs):
    value = {"workflow": ["alpha", "beta"], "status": ["success", "failure"]}
    seen, cursor = [], None
    for _ in range(20):
        beside = {"limit": "5", "sort": "started_at", **({"cursor": cursor} if cursor else {})}
        body = api.get(f"{URL}?{as_filter(value, **beside)}").json
        seen += [row["id"] for row in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    plain_query = urlencode({**value, "limit": "500", "sort": "started_at"}, doseq=True)
    plain = api.get(f"{URL}?{plain_query}").json
    assert seen == [row["id"] for row in plain["data"]] and len(seen) == len(set(seen)) > 5


def test_the_page_redirects_a_filter_json_to_its_canonical_plain_parameters(logged_in, runs):
    value = {"workflow": ["beta", "alpha"], "status": "failure,success",
             "from": "2026-11-21", "tz": "Europe/Berlin"}
    response = logged_in.get(f"{PAGE}?{as_filter(value, limit='7')}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location == ("/executions?workflow=beta&workflow=alpha&status=success"
                        "&status=failure&from=2026-11-21&tz=Europe%2FBerlin&limit=7")
    assert logged_in.get(location).status_code == 200
    assert dict(parse_qsl(urlsplit(location).query)).get("filter") is None


@pytest.mark.parametrize("value,beside,field", [
    ({"status": "nope"}, {}, "status"),
    ("{oops", {}, None),
    ({"colour": "red"}, {}, None),
    ({"workflow": "alpha"}, {"workflow": "beta"}, None),
])
def test_the_page_shows_a_bad_filter_json_with_status_400_and_the_sent_values(
        logged_in, runs, value, beside, field):
    response = logged_in.get(f"{PAGE}?{as_filter(value, **beside)}")
    assert response.status_code == 400
    assert 'class="field-error"' in response.text
    if field:
        assert f'id="{field}-error"' in response.text
        assert 'value="nope" checked' not in response.text  # unknown status: no such box
        assert 'aria-invalid="true"' in response.text
