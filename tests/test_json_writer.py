"""The API's JSON writer (orjson) writes the documents Flask's own writer writes: the same
values read back, keys in the same order, and what orjson cannot write (an integer past 64
bits) still written, never a 500."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask.json.provider import DefaultJSONProvider
from markupsafe import Markup


@dataclass
class Point:
    x: int
    y: str


DOCUMENTS = [
    {"b": 1, "a": [1.5, None, True, "é \u2028 \x00 \"quoted\" \\"], "c": {"z": 1, "y": 2}},
    {"id": 2**64, "negative": -(2**70)},
    {"when": datetime(2026, 12, 8, 1, 2, 3, tzinfo=timezone.utc), "day": date(2026, 1, 31)},
    {"markup": Markup("<b>bold</b>"), "decimal": Decimal("1.25"), "point": Point(1, "y")},
    {2: "integer keys", 10: "as text"},
    [], "", 0,
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_a_document_reads_back_as_flasks_own_writer_writes_it(app, document):
    flask_own = DefaultJSONProvider(app)
    with app.app_context():
        text = app.json.dumps(document)
        assert json.loads(text) == json.loads(flask_own.dumps(document))
        assert list(json.loads(text)) == list(json.loads(flask_own.dumps(document))) \
            if isinstance(document, dict) else True
        response = app.json.response(document)
        assert response.mimetype == "application/json"
        assert response.get_data(as_text=True).endswith("\n")
        assert json.loads(response.get_data()) == json.loads(flask_own.response(document)
                                                             .get_data())


def test_an_api_answer_is_written_by_the_fast_writer(api):
    answer = api.get("/api/ping")
    assert answer.status_code == 200
    assert answer.get_data(as_text=True) == json.dumps(answer.json, sort_keys=True,
                                                       separators=(",", ":")) + "\n"
