"""What the masker hides and what it leaves: names, shapes, command lines, cuts and size.

Plain functions (`models.payloads`, `models.compare`), no Flask. Every secret below is a
value a user would not want on a shared screen; every look-alike is one they would miss.
"""
from __future__ import annotations

import json

import pytest

import models.payloads as payloads
from models.compare import diff
from models.payloads import (CUT_BYTES, MASK, mask, mask_text, mask_url, pretty_masked,
                             show_json, show_text)

# (payload, what must go, what must stay). A payload is a JSON value (masked as the API and
# the page mask it) or, when a string, free text (a log line, a command, an error).
CASES = [
    # plural and compound names
    ({"tokens": ["tok_A1", "tok_B2"]}, ["tok_A1", "tok_B2"], ["tokens"]),
    ({"access_tokens": ["at_1"]}, ["at_1"], []),
    ({"refresh_token_value": "rt_9"}, ["rt_9"], []),
    ({"ssh_key": "ssh_secret_1"}, ["ssh_secret_1"], []),
    ({"session": "sess_77"}, ["sess_77"], []),
    ({"otp_code": "913355"}, ["913355"], []),
    ({"sessionId": "sid_1"}, ["sid_1"], []),
    ({"AWS_SECRET_ACCESS_KEY": "aws_1"}, ["aws_1"], []),
    ({"X-API-Key": "xak_1"}, ["xak_1"], []),
    ({"client_secret": "cs_1"}, ["cs_1"], []),
    ({"Set-Cookie": "sid=ck_1"}, ["ck_1"], []),
    ({"db": {"passwords": ["pw_1", "pw_2"]}}, ["pw_1", "pw_2"], []),
    ({"routing_key": "rk_1"}, ["rk_1"], []),
    ({"id_token": "eyJ_1"}, ["eyJ_1"], []),
    ({"apiKeys": {"prod": "ak_1"}}, ["ak_1"], []),
    # look-alikes: counts, flags, hints, where a secret lives, words that hold a stem
    ({"token_count": 5121}, [], ["5121"]),
    ({"max_tokens": 1024}, [], ["1024"]),
    ({"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}, [], ["11", "22", "33"]),
    ({"tokens_used": 77}, [], ["77"]),
    ({"passwordless": "enabled"}, [], ["enabled"]),
    ({"author": "ada"}, [], ["ada"]),
    ({"keyboard": "qwerty"}, [], ["qwerty"]),
    ({"monkey": "george"}, [], ["george"]),
    ({"sessions_total": 42}, [], ["42"]),
    ({"password_hint": "first pet"}, [], ["first pet"]),
    ({"token_url": "https://auth.example.com/token"}, [], ["https://auth.example.com/token"]),
    ({"key": "region", "value": "eu-west"}, [], ["eu-west"]),
    ({"secret_name": "db-creds"}, [], ["db-creds"]),
    ({"ssh_key_path": "/home/ada/.ssh/id_ed25519"}, [], ["/home/ada/.ssh/id_ed25519"]),
    ({"token_type": "Bearer"}, [], ["Bearer"]),
    # name/value objects and lists of pairs name their secret in the data
    ({"env": [{"name": "DB_PASSWORD", "value": "nv_1"}, {"name": "REGION", "value": "eu-1"}]},
     ["nv_1"], ["DB_PASSWORD", "eu-1"]),
    ({"Tags": [{"Key": "api_key", "Value": "tag_1"}]}, ["tag_1"], ["api_key"]),
    ({"headers": [["Authorization", "Bearer hp_1"], ["Accept", "application/json"]]},
     ["hp_1"], ["Authorization", "application/json"]),
    ({"headers": [["X-Auth-Token", "hp_2"]]}, ["hp_2"], ["X-Auth-Token"]),
    # command lines
    ("run --password cli_1 --verbose", ["cli_1"], ["--password", "--verbose"]),
    ("mysql --user=app --password=cli_2 shop", ["cli_2"], ["--user=app"]),
    ("curl -u admin:cli_3 https://api.example.com", ["cli_3"],
     ["admin:", "https://api.example.com"]),
    ('deploy --client-secret "cli 4" --region eu', ["cli 4"], ["--region eu"]),
    ("docker run -u 1000:1000 image", [], ["-u 1000:1000 image"]),
    ("docker login --password-stdin < pw.txt", [], ["--password-stdin < pw.txt"]),
    ("pg_dump --no-password localhost", [], ["--no-password localhost"]),
    # whole values, quoted or not
    ("password=correct horse battery", ["correct", "horse", "battery"], ["password="]),
    ('password="correct horse battery" user=ada', ["correct", "horse"], ["user=ada"]),
    ("token='one two' next=1", ["one two"], ["next=1"]),
    ('{"secret": "esc\\"aped qt_1", "ok": 1}', ["aped", "qt_1"], ['"ok": 1']),
    ('password="unclosed to the end\\', ["unclosed", "end"], ["password="]),
    ("Authorization: Bearer hdr_1 from 10.0.0.1", ["hdr_1"], ["from 10.0.0.1"]),
    ("session=sx_1; path=/", ["sx_1"], ["path=/"]),
    ("https://user:up_1@example.com/x", ["up_1"], ["https://user:", "@example.com/x"]),
    # look-alikes in text
    ("max_tokens=512 tokens_used: 100", [], ["max_tokens=512 tokens_used: 100"]),
    ("author: ada, keyboard: qwerty, monkey: george", [], ["ada", "qwerty", "george"]),
    ("elapsed=12:00:01 status=ok", [], ["elapsed=12:00:01 status=ok"]),
]


def _shown(payload) -> list[str]:
    """The payload as every viewer gets it: the API's masked JSON and the page's text."""
    if isinstance(payload, str):
        return [mask_text(payload), show_text(payload).text]
    return [json.dumps(mask(payload), ensure_ascii=False), show_json(json.dumps(payload)).text]


@pytest.mark.parametrize("payload, hidden, kept", CASES)
def test_secrets_go_and_look_alikes_stay(payload, hidden, kept):
    for shown in _shown(payload):
        for secret in hidden:
            assert secret not in shown, shown
        for text in kept:
            assert text in shown, shown
        assert (MASK in shown) is bool(hidden), shown


@pytest.mark.parametrize("payload", [p for p, hidden, _ in CASES if hidden])
def test_masking_twice_changes_nothing_more(payload):
    once = mask_text(payload) if isinstance(payload, str) else mask(payload)
    assert (mask_text(once) if isinstance(once, str) else mask(once)) == once


def test_the_page_printer_hides_the_same_shapes_as_the_api():
    for payload, _, _ in CASES:
        if not isinstance(payload, str):
            assert "".join(pretty_masked(payload)) == json.dumps(
                mask(payload), indent=2, ensure_ascii=False)


def test_a_comparison_hides_a_changed_secret_of_a_name_value_pair_or_header_pair():
    before = {"env": [{"name": "DB_PASSWORD", "value": "old_pw"}],
              "headers": [["Authorization", "Bearer old_tok"]], "region": "eu"}
    after = {"env": [{"name": "DB_PASSWORD", "value": "new_pw"}],
             "headers": [["Authorization", "Bearer new_tok"]], "region": "us"}
    found = {d.path: (d.before, d.after) for d in diff(before, after).items}
    assert found == {"$.env[0].value": (MASK, MASK), "$.headers[0][1]": (MASK, MASK),
                     "$.region": ('"eu"', '"us"')}


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.slack.com/services/T0001/B0002/XXXXXXXX",
     f"https://hooks.slack.com/{MASK}"),
    ("https://discord.com/api/webhooks/123/abcDEF", f"https://discord.com/{MASK}"),
    ("https://example.com:8443/hook?sig=abc&code=42", f"https://example.com:8443/{MASK}"),
    ("https://example.com?sig=abc", f"https://example.com?{MASK}"),
    ("http://bob:hunter2@example.com/x", f"http://bob:{MASK}@example.com/{MASK}"),
    ("https://ghp_token123@example.com/", f"https://{MASK}@example.com/"),
    ("https://example.com/", "https://example.com/"),
    ("not a url", MASK),
])
def test_a_webhook_url_shows_its_scheme_and_host_alone(url, shown):
    assert mask_url(url) == shown


# --- Cutting --------------------------------------------------------------------------------

FILL = "x" * (CUT_BYTES - 30) + " "
STRADDLING = [  # a secret that begins before the cut and ends far past it
    FILL + "postgres://bob:" + "S" * 20_000 + "@db/app",
    FILL + 'password="' + "S" * 20_000 + '"',
    FILL + "--password " + "S" * 20_000,
    FILL + "Authorization: Bearer " + "S" * 20_000,
    FILL + "curl -u admin:" + "S" * 20_000,
]


@pytest.mark.parametrize("text", STRADDLING)
def test_a_secret_across_the_cut_shows_no_part_of_itself(text):
    for shown in (show_text(text), show_json(json.dumps(text)),
                  show_json(json.dumps({"log": text}))):
        assert shown.cut
        assert "S" not in shown.text


def test_a_cut_payload_masks_only_what_can_be_shown(monkeypatch):
    """A 9.5 MB string is cut at 64 KB: masking all of it first took seconds."""
    asked = []

    def counting(text, *args, **kwargs):
        asked.append(len(text))
        return mask_text(text, *args, **kwargs)

    monkeypatch.setattr(payloads, "mask_text", counting)
    huge = "a:" * 4_750_000
    for show, stored in ((show_json, json.dumps(huge)), (show_json, json.dumps({"input": huge})),
                         (show_text, huge)):
        asked.clear()
        assert show(stored).cut
        assert sum(asked) <= CUT_BYTES + payloads.LOOKAHEAD


def test_a_shortened_head_still_says_it_was_cut():
    """Masking may shrink the head below the limit: the page still offers the rest."""
    text = "password=" + "S" * 200_000
    for shown in (show_text(text), show_json(json.dumps(text))):
        assert shown.cut and "S" not in shown.text


# --- Linear time ------------------------------------------------------------------------------
# Every pattern is possessive and reads a name once. These 1 MB inputs are the shapes that
# make a backtracking or rescanning pattern quadratic (hours at this size); finishing at
# all is the evidence. Timings are in `python -m benchmarks.masking`.
ADVERSARIAL = ["a:" * 500_000, "a=" * 500_000, "password=" * 110_000, "password:" * 110_000,
               " " * 1_000_000, "token " * 170_000, "token" * 200_000 + ":", "-u a:" * 200_000,
               "--password " * 90_000, "x://a:" * 170_000, '"password": "' * 70_000,
               "password=a " * 90_000, "p://u:" + "x" * 1_000_000, "a" * 1_000_000 + " x=1",
               "key:" * 250_000, "-a" * 500_000, "'" * 1_000_000, "\\" * 1_000_000]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda text: repr(text[:12]))
def test_adversarial_text_is_masked_in_one_pass(text):
    assert show_text(text, limit=None).text == mask_text(text)
    assert show_text(text).cut is (len(text.encode()) > CUT_BYTES)
