"""The plain functions behind the execution page: masking, pretty-printing, cutting, diffing, slicing."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from models.compare import diff
from models.execution_detail import ExecutionDetail, StepRow
from models.payloads import MASK, is_secret_key, mask, mask_text, pretty_masked, show_json, show_text
from views.trace import place_on_axis, slice_start, step_slice, waterfall


@pytest.mark.parametrize("key, secret", [
    ("password", True), ("PASSWORD", True), ("db_password", True), ("passwd", True),
    ("token", True), ("access_token", True), ("refreshToken", True), ("X-Auth-Token", True),
    ("csrftoken", True), ("secret", True), ("client_secret", True), ("Authorization", True),
    ("api_key", True), ("apiKey", True), ("X-API-KEY", True), ("cookie", True),
    ("Set-Cookie", True), ("credentials", True), ("private_key", True), ("auth", True),
    ("session_id", True), ("jwt", True), ("pwd", True),
    ("prompt_tokens", False), ("token_count", False), ("author", False), ("key", False),
    ("name", False), ("customer", False), ("passenger", False), ("", False),
])
def test_secret_looking_keys_are_recognised(key, secret):
    assert is_secret_key(key) is secret


@pytest.mark.parametrize("text, shown", [
    ("postgres://app:s3cret@db:5432/x", f"postgres://app:{MASK}@db:5432/x"),
    ("https://user:pa55@example.com/path", f"https://user:{MASK}@example.com/path"),
    ("login with password=hunter2, retrying", f"login with password={MASK}, retrying"),
    # an unquoted value may hold spaces: it runs to the end of its line
    ("login with password=correct horse\nretrying", f"login with password={MASK}\nretrying"),
    ('{"token": "abc"} sent', f'{{"token": "{MASK}"}} sent'),
    ("Authorization: Bearer abc.def", f"Authorization: Bearer {MASK}"),
    ("api_key: k1, next", f"api_key: {MASK}, next"),
    ("plain text, ratio 3:4", "plain text, ratio 3:4"),
    ("https://example.com/a?b=c", "https://example.com/a?b=c"),
])
def test_credentials_inside_text_are_masked(text, shown):
    assert mask_text(text) == shown


def test_masking_reaches_any_depth_and_leaves_the_original_alone():
    value = {"a": [{"b": {"password": {"nested": "x"}}}], "token": 5, "ok": "fine"}
    masked = mask(value)
    assert masked == {"a": [{"b": {"password": MASK}}], "token": MASK, "ok": "fine"}
    assert value["a"][0]["b"]["password"] == {"nested": "x"}


@pytest.mark.parametrize("value", [
    {}, [], None, 0, 2 ** 80, -1.5e-300, "</script>", {"a": {}, "b": [], "c": [[]]},
    {"k": [1, {"password": "x", "ok": [True, False, None]}], "ü": "東京"},
])
def test_the_lazy_printer_writes_what_json_dumps_would(value):
    assert "".join(pretty_masked(value)) == json.dumps(mask(value), indent=2,
                                                       ensure_ascii=False)


def test_a_cut_ends_on_a_whole_line_within_the_limit_even_with_multibyte_text():
    stored = json.dumps({"rows": ["äöü東京🚀" * 10] * 200}, ensure_ascii=False)
    shown = show_json(stored, limit=4096)
    assert shown.cut and len(shown.text.encode()) <= 4096
    whole = show_json(stored, limit=None)
    assert not whole.cut and whole.text.startswith(shown.text + "\n")
    assert shown.stored_bytes == len(stored.encode())


def test_a_payload_under_the_limit_is_not_cut_and_nothing_stored_shows_nothing():
    assert show_json('{"a":1}').cut is False
    assert show_json(None).text is None and show_text(None).text is None
    assert show_text("x" * 100, limit=10).cut is True


@pytest.mark.parametrize("before, after, expected", [
    ({"a": 1}, {"a": 1}, []),
    ({"a": 1}, {"a": 2}, [("$.a", "changed", "1", "2")]),
    ({"a": 1}, {"a": 1.0}, [("$.a", "changed", "1", "1.0")]),
    ({"a": 1}, {"a": True}, [("$.a", "changed", "1", "true")]),
    ({"a": 1}, {}, [("$.a", "removed", "1", None)]),
    ({}, {"b": None}, [("$.b", "added", None, "null")]),
    ([1, 2], [1, 3, 4], [("$[1]", "changed", "2", "3"), ("$[2]", "added", None, "4")]),
    ({"odd key": {"x": 1}}, {"odd key": {"x": 2}}, [('$["odd key"].x', "changed", "1", "2")]),
    ({"a": {"b": 1}}, {"a": [1]}, [("$.a", "changed", '{"b": 1}', "[1]")]),
    ({"auth": {"password": "x"}}, {"auth": {"password": "y"}},
     [("$.auth.password", "changed", MASK, MASK)]),
])
def test_diff_names_each_path_that_differs(before, after, expected):
    found = diff(before, after)
    assert [(d.path, d.kind, d.before, d.after) for d in found.items] == expected
    assert found.total == len(expected)


def test_diff_lists_a_limited_number_and_counts_the_rest():
    found = diff(list(range(500)), list(range(1, 501)), limit=10)
    assert len(found.items) == 10 and found.total == 500 and found.more == 490


def steps_at(*positions: int) -> list[StepRow]:
    return [StepRow(p, f"s{p}", None, "success", None, None, None, None) for p in positions]


def test_step_slice_is_cut_by_position_and_knows_its_neighbours():
    steps = steps_at(*range(0, 30, 2))  # 15 steps at even positions
    window = step_slice(steps, 0, size=4)
    assert [s.position for s in window.rows] == [0, 2, 4, 6]
    assert (window.previous_from, window.next_from, window.remaining) == (None, 8, 11)
    middle = step_slice(steps, 8, size=4)
    assert (middle.previous_from, middle.next_from) == (0, 16)
    last = step_slice(steps, 24, size=4)
    assert [s.position for s in last.rows] == [24, 26, 28] and last.next_from is None
    assert slice_start(steps, 18, size=4) == 16 and slice_start([], 3) == 0


def test_steps_are_placed_on_one_time_axis_with_gaps_visible():
    t0 = datetime(2026, 11, 24, 10, tzinfo=timezone.utc)
    us = int(t0.timestamp()) * 1_000_000
    steps = [StepRow(0, "a", None, "success", us, us + 1_000_000, 1000, None),
             StepRow(1, "b", None, "failure", us + 3_000_000, us + 4_000_000, 1000, None),
             StepRow(2, "c", None, "pending", None, None, None, None)]
    execution = ExecutionDetail(1, "w", None, "failure", t0, t0 + timedelta(seconds=4), 4000,
                                3, 1, "x", 0, steps=steps)
    axis_ms, bars = place_on_axis(execution, t0)
    assert axis_ms == 4000
    assert [(b.offset, b.width) for b in bars] == [(0.0, 25.0), (75.0, 25.0), (None, None)]
    drawn = waterfall(execution, bars)
    assert drawn.rows == 3 and drawn.failed_y == 1
    assert drawn.paths == {"success": "M0.0 0.5h250.0", "failure": "M750.0 1.5h250.0"}
