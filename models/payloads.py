"""Payloads as people see them: secret-looking values masked, JSON pretty-printed, big ones cut.

Plain functions over stored JSON text; the pages use them, and the API for callers who may
not see secrets (to the others it answers the stored data whole).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.encoder import encode_basestring  # C-accelerated, as json.dumps uses it
from typing import Any, Iterator

from .secret_names import is_secret_key  # which names label a secret

MASK = "••••••"
CUT_BYTES = 64 * 1024
# A text too long to show whole is masked this far past what can be shown, so that a
# secret starting before the cut is recognised whole (what lies past the cut is never shown).
LOOKAHEAD = 4096

def maskable(value: Any) -> bool:
    """Whether a value under a secret key is hidden: null and true/false reveal nothing."""
    return value is not None and not isinstance(value, bool)


# --- Masking JSON ---------------------------------------------------------------------------
# Beside secret keys, two shapes name a secret in their data: a name/value object
# (`{"name": "DB_PASSWORD", "value": …}`, HAR headers, Kubernetes env, AWS tags) and a
# pair in a list of pairs (`[["Authorization", "Bearer …"], …]`, headers as Python tuples).
NAME_FIELDS = ("name", "key", "Name", "Key")
VALUE_FIELDS = frozenset({"value", "Value"})


def names_secret(value: dict) -> bool:
    """Whether an object is a name/value pair whose name is secret (its value is hidden)."""
    if VALUE_FIELDS.isdisjoint(value):
        return False  # most objects: one C-level look
    for field in NAME_FIELDS:
        name = value.get(field)
        if isinstance(name, str):
            return is_secret_key(name)
    return False


def secret_pair(value: Any) -> bool:
    """Whether a list item is a [name, value] pair whose name is secret."""
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and maskable(value[1]) and is_secret_key(value[0]))


def mask(value: Any) -> Any:
    """A copy of a JSON value with secret values masked, at any depth."""
    if isinstance(value, dict):
        named = names_secret(value)
        return {key: (MASK if (is_secret_key(key) or (named and key in VALUE_FIELDS))
                      and maskable(item) else mask(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [[item[0], MASK] if type(item) is list and secret_pair(item) else mask(item)
                for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


# --- Masking text ---------------------------------------------------------------------------
# Credentials inside free text (logs, stack traces, string values, command lines):
# - the password of a URL (`postgres://app:••••••@db/app`),
# - `curl -u user:••••••` (and `--user`, `--proxy-user`; `-u 1000:1000`, a uid:gid,
#   stays),
# - the value after a secret name and `=`, `:` or `=>` (`DB_PASSWORD=`, `"api_key": `,
#   `Authorization: Bearer `): a quoted value whole, to its closing quote; an unquoted one
#   to the end of its line, a `,`, `;`, `&` or quote, or the next `name=`/`name:`
#   (`password=correct horse battery` hides all three words); after `Bearer`, `Basic`,
#   `Token` or `Digest`, one word,
# - the value after a secret `--flag` or `-flag` and a space (`--password hunter2`,
#   `--client-secret "a b"`); `--no-password` and `--password-file PATH` stay.
# The patterns run on a copy of the text with ASCII letters lower-cased (a case-blind
# pattern is several times slower). Each is possessive and looks at a name once, so the
# time is linear in the length of the text; names are found from the few words that can
# start a secret one (STEMS), so text without them costs a few substring searches.
STEMS = ("pass", "pwd", "secret", "token", "cookie", "cred", "auth", "bearer", "jwt", "otp",
         "pin", "session", "sig", "key")
_ANY_STEM = "(?:" + "|".join(STEMS) + ")"
NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_.-"
LONGEST_NAME = 256  # how far back from its separator a name is read
# From a stem over the names that follow it on the line (so that a stem without a
# separator costs one match, not one per word), then perhaps a separator (group 1) and an
# auth scheme (group 2): the name just before the separator is the one that counts.
_PAIR = re.compile(
    _ANY_STEM + r"[a-z0-9_.-]*+(?:[ \t]++[a-z0-9_.-]++)*+([\"']?[ \t]*+(?:=>|[:=])"
    r"[ \t]*+(?:(bearer|basic|token|digest)[ \t]++)?)?")
# A flag holding a stem at the start of a word, and the space before its value.
_FLAG = re.compile(r"-(?<![^\s\"']-)-?(?=[a-z0-9_-]*?" + _ANY_STEM + r")([a-z0-9][a-z0-9_-]*+)"
                   r"[ \t]++(?=[^\s<>|&;-])")
_USER_FLAG = re.compile(r"-(?<![^\s\"']-)(?:u|-user|-proxy-user)(?:=|[ \t]*+)[\"']?"
                        r"([^\s:\"'@/]++):([^\s\"']++)")
_URL_PASSWORD = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://[^\s:/@]*+:([^\s@/]++)@")
_URL_PASSWORD_CUT = re.compile(r"[^\s:/@]*+:([^\s@/]++)\Z")  # after "://", at a cut
# A quoted value to its closing quote, escapes included; unclosed, to the end of the text.
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*+\\?)(?:"|\Z)|\'((?:[^\'\\]|\\.)*+\\?)(?:\'|\Z)', re.S)
_ONE_WORD = re.compile(r"[^\s\"',;&]++")
_WORDS_TO_LINE_END = re.compile(
    r"[^\s\"',;&]++(?:[ \t]++(?![(\[{]*+[a-z0-9_.-]++[\"']?[ \t]*+(?:=>|[:=]))(?![-<>|])"
    r"[^\s\"',;&]++)*+")
_ANYTHING = re.compile("://|-u|" + "|".join(STEMS))  # what every pattern needs
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mask_text(text: str, cut: bool = False) -> str:
    """Hide credentials inside free text. `cut`: the text is the head of a longer one, so a
    secret that runs into its end (a URL password without its `@`) is hidden too."""
    spans = secret_spans(text, cut)
    return _replaced(text, spans) if spans else text


def secret_spans(text: str, cut: bool = False) -> list[tuple[int, int]]:
    """Where `mask_text` hides something in `text`: (start, end) pairs, perhaps overlapping."""
    if ":" not in text and "=" not in text and (
            "-" not in text or (" " not in text and "\t" not in text)):
        return []  # every pattern needs a `:` or `=`, or a `-flag` and a space
    low = text.lower()
    if len(low) != len(text):  # a few letters grow when lower-cased; keep positions
        low = text.translate(_ASCII_LOWER)
    if len(low) < 1000 and not _ANYTHING.search(low):
        return []  # most strings of a payload: one look
    spans = _url_passwords(low, cut) if "://" in low else []
    if "-u" in low:
        spans += [m.span(2) for m in _USER_FLAG.finditer(low)
                  if not (m.group(1).isdigit() and m.group(2).isdigit())]
    if any(stem in low for stem in STEMS):
        spans += _pair_values(text, low)
        if "-" in low:
            spans += _flag_values(low)
    return spans


def _url_passwords(low: str, cut: bool) -> list[tuple[int, int]]:
    spans = [m.span(1) for m in _URL_PASSWORD.finditer(low)]
    if cut:
        tail = _URL_PASSWORD_CUT.match(low, low.rfind("://") + 3)
        if tail:
            spans.append(tail.span(1))
    return spans


def _pair_values(text: str, low: str) -> list[tuple[int, int]]:
    """The values after secret names followed by `=`, `:` or `=>`."""
    spans: list[tuple[int, int]] = []
    position = 0
    while found := _PAIR.search(low, position):
        position, end = found.end(), found.start(1)  # end: the separator's start, or -1
        if end < 0:
            continue
        length = _name_length(low[end - 32 if end > 32 else 0:end])
        if length == 32:  # a long name: look further back
            length = _name_length(low[end - LONGEST_NAME if end > LONGEST_NAME else 0:end])
        if is_secret_key(text[end - length:end]):
            span = _value(low, position, found.start(2) >= 0)
            if span:
                spans.append(span)
                position = max(position, span[1])  # what a hidden value holds is hidden
    return spans


def _name_length(before: str) -> int:
    """How many name characters end `before`."""
    return len(before) - len(before.rstrip(NAME_CHARS))


def _flag_values(low: str) -> list[tuple[int, int]]:
    """The values after secret `--flags` (`--password hunter2`)."""
    spans = []
    for found in _FLAG.finditer(low):
        name = found.group(1)
        if not name.startswith("no-") and is_secret_key(name):
            span = _value(low, found.end(), True)
            if span:
                spans.append(span)
    return spans


def _value(low: str, at: int, one_word: bool) -> tuple[int, int] | None:
    """Where the value starting at `at` is, without its quotes; None if empty or masked."""
    if low.startswith(("\"", "'"), at):
        quoted = _QUOTED.match(low, at)
        span = quoted.span(1) if quoted.group(1) is not None else quoted.span(2)
    else:
        found = (_ONE_WORD if one_word else _WORDS_TO_LINE_END).match(low, at)
        if not found:
            return None
        span = found.span()
    if span[0] == span[1] or low.startswith(MASK, span[0]) and span[1] - span[0] == len(MASK):
        return None
    return span


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each span replaced by MASK (overlapping or touching spans as one)."""
    parts, done = [], 0
    for start, end in merged_spans(spans):
        parts += (text[done:start], MASK)
        done = end
    parts.append(text[done:])
    return "".join(parts)


def merged_spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans in order, those that overlap or touch joined into one."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


_URL_PARTS = re.compile(r"([a-z][a-z0-9+.-]*+://)([^/?#]*+)(.*)", re.I | re.S)


def mask_url(url: str) -> str:
    """A URL with only its scheme and host shown (`https://hooks.slack.com/••••••`): the
    path and query of a webhook URL are its secret, as is a password before the host."""
    parts = _URL_PARTS.fullmatch(url)
    if parts is None:
        return MASK
    scheme, authority, rest = parts.groups()
    if "@" in authority:  # a user name alone may be the secret too (https://TOKEN@host)
        user, _, host = authority.rpartition("@")
        authority = (f"{user.partition(':')[0]}:{MASK}@{host}" if ":" in user
                     else f"{MASK}@{host}")
    return scheme + authority + (rest[:1] + MASK if rest not in ("", "/") else rest)


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
    text, cut = _take(pretty_masked(json.loads(stored), longest=limit), limit)
    return Shown(text, cut, len(stored.encode()))


def pretty_masked(value: Any, indent: str = "", longest: int | None = None
                  ) -> Iterator[str | None]:
    """JSON text indented by two spaces, secrets masked, produced lazily.

    The same text as `json.dumps(mask(value), indent=2, ensure_ascii=False)`, but as
    a generator: a cut payload is masked and printed only as far as it is shown. A string
    of more than `longest` characters cannot be shown whole: only its head is masked and
    printed, and None follows it (cut here).
    """
    if isinstance(value, dict) and value:
        inner = indent + "  "
        separator = "{\n"
        named = names_secret(value)
        for key, item in value.items():
            head = f"{separator}{inner}{encode_basestring(key)}: "
            separator = ",\n"
            if (is_secret_key(key) or (named and key in VALUE_FIELDS)) and maskable(item):
                yield head + _MASK_JSON
            elif isinstance(item, (dict, list)) and item:
                yield head
                yield from pretty_masked(item, inner, longest)
            elif longest is not None and isinstance(item, str) and len(item) > longest:
                yield head + _string_head(item, longest)
                yield None
            else:
                yield head + _scalar(item)  # one chunk per line keeps the cut cheap
        yield f"\n{indent}}}"
    elif isinstance(value, list) and value:
        inner = indent + "  "
        separator = "[\n"
        for item in value:
            if isinstance(item, (dict, list)) and item:
                if len(item) == 2 and secret_pair(item):
                    item = [item[0], MASK]
                yield separator + inner
                yield from pretty_masked(item, inner, longest)
            elif longest is not None and isinstance(item, str) and len(item) > longest:
                yield separator + inner + _string_head(item, longest)
                yield None
            else:
                yield separator + inner + _scalar(item)
            separator = ",\n"
        yield f"\n{indent}]"
    elif longest is not None and isinstance(value, str) and len(value) > longest:
        yield _string_head(value, longest)
        yield None
    else:
        yield _scalar(value)


def _string_head(value: str, longest: int) -> str:
    """The start of a JSON string too long to show whole, masked (without its end quote)."""
    return encode_basestring(mask_text(value[:longest + LOOKAHEAD], cut=True))[:-1]


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
    if limit is not None and len(stored) > limit:  # cannot be shown whole: mask its head
        chunks = iter([mask_text(stored[:limit + LOOKAHEAD], cut=True), None])
    else:
        chunks = iter([mask_text(stored)])
    text, cut = _take(chunks, limit)
    return Shown(text, cut, len(stored.encode()))


def _take(chunks: Iterator[str | None], limit: int | None) -> tuple[str, bool]:
    """Join chunks until `limit` UTF-8 bytes or a None; a cut ends at the last whole line."""
    if limit is None:
        return "".join(chunks), False
    parts, size = [], 0
    for chunk in chunks:
        if chunk is not None:
            parts.append(chunk)
            size += len(chunk) if chunk.isascii() else len(chunk.encode())
        if size > limit or chunk is None:
            text = "".join(parts).encode()[:limit].decode(errors="ignore")
            line_end = text.rfind("\n")
            return (text[:line_end] if line_end > 0 else text), True
    return "".join(parts), False
