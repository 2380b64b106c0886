"""A command's output shown as a log: the shape `runwatch exec` reports (`exit_code`,
`stdout_tail`, `stderr_tail`), masked, line breaks kept, ANSI colours as classed spans.

The page's Content-Security-Policy allows no inline style, so colours are classes
(ansi2html's `ansi31`, `ansi1 ansi32`, …) that executions.css paints. Every escape
sequence but a colour (SGR) is removed first: a cursor move means nothing on a page, and
a hyperlink (OSC 8) must not become a link the log's writer chose.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ansi2html import Ansi2HTMLConverter
from markupsafe import Markup, escape as escape_html

from models.payloads import CUT_BYTES, MASK, merged_spans, secret_spans

from .formatting import size_label

STREAMS = ("stdout", "stderr")
# Colour codes drawn per stream. Each costs ansi2html some 50 µs; a stream with more (a
# log coloured every few characters) is shown with its colours removed.
MAX_COLOUR_CODES = 2000
# Any escape sequence: CSI (colours, cursor moves, erasing), OSC (titles, hyperlinks) up to
# its terminator, or a lone ESC with its one following character.
_ESCAPE = re.compile(r"\x1b\[[0-?]*+[ -/]*+[@-~]|\x1b\][^\x07\x1b]*+(?:\x07|\x1b\\)?"
                     r"|\x1b[@-_]?")
_COLOUR = re.compile(r"\x1b\[[0-9;:]*m")


@dataclass
class Stream:
    """One stream of the log as the page shows it."""

    name: str  # "stdout" or "stderr"
    html: Markup | None  # None: nothing was written to it
    lines: int = 0
    cut: str | None = None  # "64 KB" when only its last 64 KB are shown


@dataclass
class CommandLog:
    """What a command printed, and how it ended."""

    exit_code: int | None
    streams: list[Stream]


def command_log(stored_output: str | None, limit: int = CUT_BYTES) -> CommandLog | None:
    """The log of a run whose output holds `stdout_tail`/`stderr_tail`; None for other runs."""
    if not stored_output or "_tail" not in stored_output:
        return None  # most outputs: no parse
    output = json.loads(stored_output)
    if not isinstance(output, dict) or not any(
            isinstance(output.get(f"{name}_tail"), str) for name in STREAMS):
        return None
    exit_code = output.get("exit_code")
    if not isinstance(exit_code, int) or isinstance(exit_code, bool):
        exit_code = None
    return CommandLog(exit_code, [_stream(name, output.get(f"{name}_tail"), limit)
                                  for name in STREAMS])


def _stream(name: str, text, limit: int) -> Stream:
    if not isinstance(text, str) or not text:
        return Stream(name, None)
    cut = size_label(limit) if len(text) > limit else None
    if cut:  # a tail: its end matters, from the first whole line
        text = text[-limit:]
        text = text[text.find("\n") + 1:]
    text = _last_versions(text)
    if not text:
        return Stream(name, None)
    return Stream(name, to_html(text), text.count("\n") + (not text.endswith("\n")), cut)


def _last_versions(text: str) -> str:
    """What a terminal shows of lines rewritten with carriage returns (a progress bar):
    the last version of each."""
    if "\r" not in text:
        return text
    return "\n".join(line.rpartition("\r")[2]
                     for line in text.replace("\r\n", "\n").split("\n"))


def to_html(text: str) -> Markup:
    """Terminal text as escaped HTML: secrets masked, colours as classed spans, other
    escape sequences dropped."""
    pieces = _pieces(text)
    plain = "".join(piece for escape, piece in pieces if not escape)
    colours = sum(escape for escape, _ in pieces)
    if colours > MAX_COLOUR_CODES:
        pieces = [(False, plain)]
    masked = _mask_between_colours(pieces, merged_spans(secret_spans(plain)))
    if not colours or colours > MAX_COLOUR_CODES:
        return escape_html(masked)
    converter = Ansi2HTMLConverter(inline=False, escaped=True, linkify=False)
    return Markup(converter.convert(masked, full=False, ensure_trailing_newline=False))


def plain_text(text: str) -> str:
    """Terminal text without its escape sequences (an error message read as a sentence)."""
    return _ESCAPE.sub("", text) if "\x1b" in text else text


def _pieces(text: str) -> list[tuple[bool, str]]:
    """The text as (is a colour code, piece) pairs; other escape sequences left out."""
    pieces, done = [], 0
    for found in _ESCAPE.finditer(text):
        if found.start() > done:
            pieces.append((False, text[done:found.start()]))
        if _COLOUR.fullmatch(found.group()):
            pieces.append((True, found.group()))
        done = found.end()
    if done < len(text):
        pieces.append((False, text[done:]))
    return pieces


def _mask_between_colours(pieces: list[tuple[bool, str]], spans: list[tuple[int, int]]) -> str:
    """The pieces joined, each span of the plain text (colour codes left out) replaced by
    MASK. A secret is found in what is shown, `pass\x1b[1mword=…` too; the colour codes
    inside it stay, so the colours after it are right."""
    out, position, index = [], 0, 0
    for escape, piece in pieces:
        if escape:
            out.append(piece)
            continue
        start, end, at = position, position + len(piece), position
        position = end
        while at < end:
            while index < len(spans) and spans[index][1] <= at:
                index += 1
            if index < len(spans) and spans[index][0] <= at:  # inside a secret
                if at == spans[index][0]:
                    out.append(MASK)
                at = min(end, spans[index][1])
            else:
                upto = min(end, spans[index][0]) if index < len(spans) else end
                out.append(piece[at - start:upto - start])
                at = upto
    return "".join(out)
