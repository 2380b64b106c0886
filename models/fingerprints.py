"""Error fingerprints: a run's error type and message with what varies from run to run
replaced by placeholders, hashed to 64 bits. Computed once when a run's error is written
(and by migration 5 for runs stored before), kept on the run's row, and grouped by the
database for a workflow's error groups.

Every pattern here runs in linear time, whatever the text: no quantifier can backtrack
over what another one matched, and an e-mail address is only looked for from the start of
a run of the characters its local part may hold (see `_replace_emails`)."""
from __future__ import annotations

import hashlib
import re

_QUOTED = re.compile(r"'[^']*+'|\"[^\"]*+\"|`[^`]*+`")
# An address: local part, "@", a domain of two labels or more. Possessive: the local part
# cannot hold "@" and a label cannot hold ".", so giving characters back never helps.
_EMAIL_BODY = r"[\w.+-]++@[\w-]++(?:\.[\w-]++)++"
_EMAIL_HERE = re.compile(_EMAIL_BODY)
_EMAIL_RUN = re.compile(r"(?<![\w.+-])" + _EMAIL_BODY)
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}\b")
# "0x1f", or 8+ hex digits holding a digit and a letter: each lookahead skips the other
# kind possessively and wants one of its own next, so it reads a word once.
_HEX = re.compile(r"\b0[xX][0-9a-fA-F]++\b|\b(?=[a-fA-F]*+[0-9])(?=[0-9]*+[a-fA-F])"
                  r"[0-9a-fA-F]{8,}+\b")
_NUMBER = re.compile(r"\d+")


def _replace_emails(text: str) -> str:
    """`text` with each e-mail address replaced, as `re.sub` with `_EMAIL_BODY` would.

    Searched from every position, the local part would be read again from each of its
    characters (quadratic in a long run such as `ab1-ab1-…`); every start inside a run of
    local-part characters reaches the same "@" as the run's first, so only the run's first
    is tried, and the position right after an address (which may lie inside a run)."""
    parts, pos = [], 0
    while True:
        found = (_EMAIL_HERE.match(text, pos) if pos else None) or _EMAIL_RUN.search(text, pos)
        if found is None:
            break
        parts += [text[pos:found.start()], "<email>"]
        pos = found.end()
    return "".join(parts) + text[pos:] if parts else text


def normalise(message: str | None) -> str:
    """An error message with what varies from run to run replaced by placeholders: quoted
    strings, e-mail addresses, UUIDs, hex ids and numbers."""
    text = message or ""
    text = _QUOTED.sub("<str>", text)
    text = _replace_emails(text)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    return _NUMBER.sub("<n>", text)


def fingerprint(error_type: str | None, message: str | None) -> int | None:
    """The group of an error as a signed 64-bit number (the first 8 bytes of the SHA-256 of
    its type and normalised message); None for a run without an error."""
    if not error_type and not message:
        return None
    key = f"{error_type or ''}\n{normalise(message)}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


NO_ERROR = int.from_bytes(hashlib.sha256(b"\n").digest()[:8], "big", signed=True)


def as_text(value: int | None) -> str:
    """A fingerprint as the API gives it: 16 hex digits (failures without an error share
    the fingerprint of an empty type and message)."""
    return f"{(NO_ERROR if value is None else value) & 0xFFFF_FFFF_FFFF_FFFF:016x}"
