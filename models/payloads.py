"""Payloads as people see them: secret-looking values masked, JSON pretty-printed, big ones cut.

Plain functions over stored JSON text; the page uses them, the API never does (it answers
the stored data whole).
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring  # C-accelerated, as json.dumps uses it
from typing import Any, Iterator

MASK = "••••••"
CUT_BYTES = 64 * 1024

# --- Masking -------------------------------------------------------------------------------

# A key is secret when, lower-cased and stripped of everything but letters and digits,
# it contains one of these, ends in "token", or is one of the short names below.
SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "authorization", "apikey",
                "cookie", "credential", "privatekey", "accesskey", "sessionid", "signingkey",
                "bearer", "jwt")
SECRET_NAMES = {"auth", "pwd", "pass", "pin", "otp"}
_NON_ALNUM = re.compile(r"[^a-z0-9]")
# Credentials inside free text: user:password@ in URLs, and key=value / key: value pairs
# whose key is secret by the same rule as an object key (DB_PASSWORD=, "client_secret": …,
# Authorization: Bearer …). A key is a run of letters, digits, `_`, `.` and `-`.
# Every run of name characters is tried once, from its start and without backtracking
# (a lookbehind and possessive quantifiers), so the time is linear in the text's length.
_URL_PASSWORD = re.compile(r"(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*+://[^\s:/@]*+:)([^\s@/]++)(@)",
                           re.I)
# A key and its separator; the value is read only after a secret key, so a key inside a
# value that is not secret (`url=https://host/?token=…`) is still found.
_PAIR = re.compile(
    r"(?<![a-z0-9_.-])([a-z0-9_.-]++)[\"']?\s*+[:=]\s*+[\"']?(?:bearer\s+|basic\s+|token\s+)?",
    re.I)
_VALUE = re.compile(r"[^\s\"',;&]+")


@functools.lru_cache(maxsize=4096)  # payloads repeat the same keys thousands of times
def is_secret_key(key: str) -> bool:
    """Whether values under this object key should be hidden on screen."""
    flat = _NON_ALNUM.sub("", key.lower())
    return (flat in SECRET_NAMES or flat.endswith("token")
            or any(part in flat for part in SECRET_PARTS))


def mask_text(text: str) -> str:
    """Hide passwords in URLs and secret `key=value`-like pairs inside free text."""
    if ":" not in text and "=" not in text:
        return text  # the common case, and no pattern can match without these
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    parts, done = [], 0
    for match in _PAIR.finditer(text):
        start = match.end()
        if start < done or not is_secret_key(match.group(1)):
            continue
        value = _VALUE.match(text, start)
        if value is None or value.group() == MASK:
            continue
        parts += [text[done:start], MASK]
        done = value.end()
    return "".join(parts) + text[done:] if parts else text


def mask(value: Any) -> Any:
    """A copy of a JSON value with secret-looking keys' values masked, at any depth."""
    if isinstance(value, dict):
        return {key: (MASK if is_secret_key(key) and maskable(item) else mask(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def maskable(value: Any) -> bool:
    """Whether a value under a secret key is hidden: null and true/false reveal nothing."""
    return value is not None and not isinstance(value, bool)


# --- Showing payloads ---------------------------------------------------------------------

@dataclass
class Shown:
    """A payload as the page shows it: masked, pretty-printed, perhaps cut."""

    text: str | None  # None when nothing was stored
    cut: bool = False
    stored_bytes: int = 0


def show_json(stored: str | None, limit: int | None = CUT_BYTES) -> Shown:
    """Pretty-print a stored JSON payload, masked, cut near `limit` bytes (None: whole)."""
    if stored is None:
        return Shown(None)
    text, cut = _take(pretty_masked(json.loads(stored)), limit)
    return Shown(text, cut, len(stored.encode()))


def pretty_masked(value: Any, indent: str = "") -> Iterator[str]:
    """JSON text indented by two spaces, secrets masked, produced lazily.

    The same text as `json.dumps(mask(value), indent=2, ensure_ascii=False)`, but as
    a generator: a cut payload is masked and printed only as far as it is shown.
    """
    if isinstance(value, dict) and value:
        inner = indent + "  "
        separator = "{\n"
        for key, item in value.items():
            head = f"{separator}{inner}{encode_basestring(key)}: "
            separator = ",\n"
            if is_secret_key(key) and maskable(item):
                yield head + _MASK_JSON
            elif isinstance(item, (dict, list)) and item:
                yield head
                yield from pretty_masked(item, inner)
            else:
                yield head + _scalar(item)  # one chunk per line keeps the cut cheap
        yield f"\n{indent}}}"
    elif isinstance(value, list) and value:
        inner = indent + "  "
        separator = "[\n"
        for item in value:
            if isinstance(item, (dict, list)) and item:
                yield separator + inner
                yield from pretty_masked(item, inner)
            else:
                yield separator + inner + _scalar(item)
            separator = ",\n"
        yield f"\n{indent}]"
    else:
        yield _scalar(value)


def _scalar(value: Any) -> str:
    """A string (masked inside), number of any size, true/false/null, {} or [] as JSON."""
    # What json.dumps writes for each, without its per-call set-up (thousands per payload).
    if isinstance(value, str):
        return encode_basestring(mask_text(value))
    if value is None or isinstance(value, bool):
        return _CONSTANTS[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)  # stored JSON holds no NaN or Infinity
    return json.dumps(value)


_CONSTANTS = {None: "null", True: "true", False: "false"}


_MASK_JSON = json.dumps(MASK, ensure_ascii=False)


def show_text(stored: str | None, limit: int | None = CUT_BYTES) -> Shown:
    """Free text (logs, stack traces), masked and cut near `limit` bytes (None: whole)."""
    if stored is None:
        return Shown(None)
    text, cut = _take(iter([mask_text(stored)]), limit)
    return Shown(text, cut, len(stored.encode()))


def _take(chunks: Iterator[str], limit: int | None) -> tuple[str, bool]:
    """Join chunks until `limit` UTF-8 bytes; a cut ends at the last whole line."""
    if limit is None:
        return "".join(chunks), False
    parts, size = [], 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk) if chunk.isascii() else len(chunk.encode())
        if size > limit:
            text = "".join(parts).encode()[:limit].decode(errors="ignore")
            line_end = text.rfind("\n")
            return (text[:line_end] if line_end > 0 else text), True
    return "".join(parts), False
