"""One run in detail: loading it, showing payloads safely, and comparing it with the last success.

Plain functions over the models, so tests can call them without Flask. The page
masks secret-looking values and cuts very large payloads; the API answers the
stored data whole.
"""
from __future__ import annotations

import bisect
import functools
import json
import re
from json.encoder import encode_basestring  # C-accelerated, as json.dumps uses it
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

import peewee

from .db import database, from_micros, iso, to_micros, utcnow
from .executions import (FINISHED_STATUSES, Execution, ExecutionPayload, Step, StepPayload,
                         Workflow)
from .ingest import execution_summary

MASK = "••••••"
CUT_BYTES = 64 * 1024
RUN_PARTS = ("input", "output", "error")
STEP_PARTS = ("input", "output", "error", "logs")
STEP_WINDOW = 500  # steps listed at once; the waterfall above the list shows them all
DIFF_LIMIT = 200  # differences listed per payload; the rest are counted
VALUE_CHARS = 300  # longest value shown in a comparison cell


# --- Masking -------------------------------------------------------------------------------

# A key is secret when, lower-cased and stripped of everything but letters and digits,
# it contains one of these, ends in "token", or is one of the short names below.
SECRET_PARTS = ("password", "passwd", "passphrase", "secret", "authorization", "apikey",
                "cookie", "credential", "privatekey", "accesskey", "sessionid", "signingkey",
                "bearer", "jwt")
SECRET_NAMES = {"auth", "pwd", "pass", "pin", "otp"}
_NON_ALNUM = re.compile(r"[^a-z0-9]")
# Credentials inside free text: user:password@ in URLs, and key=value / key: value pairs.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)", re.I)
_SECRET_PAIR = re.compile(
    r"(\b(?:password|passwd|secret|token|api[_-]?key|authorization|cookie)\b[\"']?\s*[:=]\s*"
    r"[\"']?(?:bearer\s+|basic\s+)?)([^\s\"',;&]+)", re.I)


@functools.lru_cache(maxsize=4096)  # payloads repeat the same keys thousands of times
def is_secret_key(key: str) -> bool:
    """Whether values under this object key should be hidden on screen."""
    flat = _NON_ALNUM.sub("", key.lower())
    return (flat in SECRET_NAMES or flat.endswith("token")
            or any(part in flat for part in SECRET_PARTS))


def mask_text(text: str) -> str:
    """Hide passwords in URLs and `password=…`-like pairs inside free text."""
    if ":" not in text and "=" not in text:
        return text  # the common case, and no pattern can match without these
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    return _SECRET_PAIR.sub(lambda m: m.group(1) + MASK, text)


def mask(value: Any) -> Any:
    """A copy of a JSON value with secret-looking keys' values masked, at any depth."""
    if isinstance(value, dict):
        return {key: (MASK if is_secret_key(key) and _maskable(item) else mask(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [mask(item) for item in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def _maskable(value: Any) -> bool:
    # null and true/false reveal nothing; everything else under a secret key is hidden.
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
            if is_secret_key(key) and _maskable(item):
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


# --- Loading a run -------------------------------------------------------------------------

@dataclass(slots=True)
class StepRow:
    """A step as the trace lists it (no payloads), with its bar on the run's time axis."""

    position: int
    name: str
    action: str | None
    status: str
    started_us: int | None  # microseconds, as stored: 2,000 rows need no datetime objects
    finished_us: int | None
    duration_ms: int | None
    error_message: str | None
    offset: float | None = None  # percent of the axis where the bar starts
    width: float | None = None  # percent of the axis the bar covers

    @property
    def started_at(self) -> datetime | None:
        """When the step started (UTC)."""
        return _time(self.started_us)

    @property
    def finished_at(self) -> datetime | None:
        """When the step finished (UTC)."""
        return _time(self.finished_us)


@dataclass
class Run:
    """One execution with what its page needs, payloads not yet rendered."""

    id: int
    workflow: str
    external_id: str | None
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: int | None
    step_count: int
    failed_step: int | None
    error_message: str | None
    updated_at: int  # microseconds; changes with every write to the run or its steps
    input: str | None = None
    output: str | None = None
    error: dict | None = None
    steps: list[StepRow] = field(default_factory=list)
    axis_ms: int = 0  # length of the time axis of the waterfall
    previous_id: int | None = None
    next_id: int | None = None
    workflow_id: int = 0

    @property
    def live(self) -> bool:
        """Whether the run may still change (pending or running)."""
        return self.status not in FINISHED_STATUSES


_RUN_FIELDS = (Execution.id, Workflow.name, Execution.external_id, Execution.status,
               Execution.started_at, Execution.finished_at, Execution.duration_ms,
               Execution.step_count, Execution.failed_step, Execution.error_message,
               Execution.updated_at.cast("BIGINT"), Execution.workflow)


def load_run(execution_id: int, with_steps: bool = True, now: datetime | None = None) -> Run | None:
    """The run with its payload texts, its steps in order (no step payloads) and neighbours."""
    row = (Execution.select(*_RUN_FIELDS).join(Workflow)
           .where(Execution.id == execution_id).tuples().first())
    if row is None:
        return None
    *fields, workflow_id = row
    run = Run(*fields, workflow_id=workflow_id)
    payload = (ExecutionPayload.select(ExecutionPayload.input, ExecutionPayload.output,
                                       ExecutionPayload.error)
               .where(ExecutionPayload.execution == execution_id).tuples().first())
    if payload:
        run.input, run.output = payload[0], payload[1]
        run.error = json.loads(payload[2]) if payload[2] else None
    if with_steps:
        run.steps = load_steps(execution_id)
        run.axis_ms = place_on_axis(run, now or utcnow())
    run.previous_id, run.next_id = neighbours(run)
    return run


def _time(value) -> datetime | None:
    return None if value is None else from_micros(value)


def load_steps(execution_id: int) -> list[StepRow]:
    """The steps of a run in position order, without their payloads."""
    query = (Step.select(Step.position, Step.name, Step.action, Step.status,
                         Step.started_at, Step.finished_at, Step.duration_ms,
                         Step.error_message)
             .where(Step.execution == execution_id).order_by(Step.position))
    # Plain columns read straight from the cursor: peewee's per-value conversion would
    # cost more than the query itself for thousands of steps, and times stay integers.
    return [StepRow(*row) for row in database.execute(query).fetchall()]


def place_on_axis(run: Run, now: datetime) -> int:
    """Set each step's bar (offset and width, in percent) on one axis; return its length in ms."""
    starts = [s.started_us for s in run.steps if s.started_us is not None]
    ends = [s.finished_us for s in run.steps if s.finished_us is not None]
    if run.finished_at:
        ends.append(to_micros(run.finished_at))
    origin = min([to_micros(run.started_at), *starts])
    end = max([origin, *starts, *ends])
    if run.live:
        end = max(end, to_micros(now))  # the open end of a running run moves with the clock
    span = max(end - origin, 1)
    for step in run.steps:
        if step.started_us is None:
            continue
        start = step.started_us
        stop = step.finished_us if step.finished_us is not None else (end if run.live else start)
        step.offset = round((start - origin) * 100 / span, 3)
        step.width = round(max(stop - start, 0) * 100 / span, 3)
    return span // 1000


@dataclass
class Window:
    """The slice of the steps that the list shows, and where the slices before and after start."""

    rows: list[StepRow]
    previous_from: int | None  # position at which the previous slice starts
    next_from: int | None  # position at which the next slice starts
    remaining: int  # steps after this slice


def step_window(steps: list[StepRow], start: int = 0, size: int = STEP_WINDOW) -> Window:
    """At most `size` steps from position `start` on (steps are in position order)."""
    positions = [s.position for s in steps]
    first = bisect.bisect_left(positions, start)
    last = first + size
    return Window(steps[first:last],
                  positions[max(0, first - size)] if first > 0 else None,
                  positions[last] if last < len(steps) else None,
                  max(0, len(steps) - last))


def window_start(steps: list[StepRow], position: int, size: int = STEP_WINDOW) -> int:
    """The start of the slice (counted from the first step) that holds `position`."""
    index = bisect.bisect_left([s.position for s in steps], position)
    index = min(index, max(len(steps) - 1, 0)) // size * size
    return steps[index].position if steps else 0


@dataclass
class Waterfall:
    """Every step as one line on the run's time axis, drawn as one SVG path per status."""

    rows: int
    height_px: int
    stroke_px: float
    paths: dict[str, str]
    failed_y: int | None  # the failed step's row


def waterfall(run: Run, max_height_px: int = 240) -> Waterfall:
    """The whole trace at a glance: a line per step, x = start..end, one row per step."""
    rows = max(len(run.steps), 1)
    height = min(max(rows * 14, 28), max_height_px)
    segments: dict[str, list[str]] = {}
    failed_y = None
    for index, step in enumerate(run.steps):
        if step.position == run.failed_step:
            failed_y = index
        if step.offset is None:
            continue
        # The axis is 1000 units wide; a bar stays at least 2 units so instant steps show.
        segments.setdefault(step.status, []).append(
            f"M{step.offset * 10:.1f} {index + .5}h{max(step.width * 10, 2):.1f}")
    return Waterfall(rows, height, round(max(1.0, min(10.0, height / rows * .7)), 1),
                     {status: "".join(parts) for status, parts in segments.items()},
                     failed_y)


def neighbours(run: Run) -> tuple[int | None, int | None]:
    """Ids of the runs of the same workflow started just before and just after this one."""
    key = peewee.Tuple(Execution.started_at, Execution.id)
    here = (to_micros(run.started_at), run.id)
    same = Execution.select(Execution.id).where(Execution.workflow == run.workflow_id)
    before = (same.where(key < here)
              .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).scalar())
    after = (same.where(key > here)
             .order_by(Execution.started_at, Execution.id).limit(1).scalar())
    return before, after


def run_version(execution_id: int) -> int | None:
    """When the run or its steps last changed (microseconds), or None if there is no such run."""
    return (Execution.select(Execution.updated_at.cast("BIGINT"))
            .where(Execution.id == execution_id).scalar())


def load_step(execution_id: int, position: int) -> tuple[StepRow, dict] | None:
    """One step with its stored payload texts (`input`, `output`, `error`, `logs`)."""
    row = (Step.select(Step.position, Step.name, Step.action, Step.status,
                       Step.started_at.cast("BIGINT"), Step.finished_at.cast("BIGINT"),
                       Step.duration_ms, Step.error_message, StepPayload.input,
                       StepPayload.output, StepPayload.error, StepPayload.logs)
           .join(StepPayload, peewee.JOIN.LEFT_OUTER)
           .where(Step.execution == execution_id, Step.position == position).tuples().first())
    if row is None:
        return None
    return StepRow(*row[:8]), dict(zip(STEP_PARTS, row[8:]))


def step_error(execution_id: int, position: int) -> dict | None:
    """The stored error of one step (message, type, stack), or None."""
    text = (StepPayload.select(StepPayload.error).join(Step)
            .where(Step.execution == execution_id, Step.position == position).scalar())
    return json.loads(text) if text else None


# --- The API answer ------------------------------------------------------------------------

def detail_json(execution_id: int, url: str) -> str | None:
    """The run as API JSON, payloads whole and unmasked; None if there is no such run.

    Stored payloads are already JSON text, so they are spliced in as they are:
    nothing is parsed and re-encoded, and big numbers and key order survive.
    """
    summary = execution_summary(execution_id)
    if summary is None:
        return None
    payload = (ExecutionPayload.select(ExecutionPayload.input, ExecutionPayload.output,
                                       ExecutionPayload.error)
               .where(ExecutionPayload.execution == execution_id).tuples().first())
    summary["url"] = url
    fields = [(key, json.dumps(value, ensure_ascii=False)) for key, value in summary.items()]
    fields += [(part, _raw(text)) for part, text in zip(RUN_PARTS, payload or (None,) * 3)]
    fields.append(("steps", "[" + ",".join(_step_json(row) for row in _steps_whole(execution_id))
                   + "]"))
    return _object(fields)


def _steps_whole(execution_id: int):
    return (Step.select(Step.position, Step.name, Step.action, Step.status, Step.started_at,
                        Step.finished_at, Step.duration_ms, StepPayload.input,
                        StepPayload.output, StepPayload.error, StepPayload.logs)
            .join(StepPayload, peewee.JOIN.LEFT_OUTER)
            .where(Step.execution == execution_id).order_by(Step.position).tuples())


def _step_json(row: tuple) -> str:
    position, name, action, status, started, finished, duration, input_, output, error, logs = row
    plain = {"position": position, "name": name, "action": action, "status": status,
             "started_at": iso(started), "finished_at": iso(finished), "duration_ms": duration}
    fields = [(key, json.dumps(value, ensure_ascii=False)) for key, value in plain.items()]
    fields += [("input", _raw(input_)), ("output", _raw(output)), ("error", _raw(error)),
               ("logs", json.dumps(logs, ensure_ascii=False))]
    return _object(fields)


def _raw(stored: str | None) -> str:
    return "null" if stored is None else stored


def _object(fields: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in fields) + "}"


# --- Comparing with the last success -------------------------------------------------------

@dataclass
class Difference:
    """One path whose value differs; values are shown masked and shortened."""

    path: str
    kind: str  # "added", "removed" or "changed"
    before: str | None
    after: str | None


@dataclass
class Differences:
    """The differences between two payloads: the first DIFF_LIMIT of them and how many in all."""

    items: list[Difference] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        """How many differences are not listed."""
        return self.total - len(self.items)


@dataclass
class StepComparison:
    """A step that differs between the two runs (matched by position)."""

    position: int
    name: str
    before_status: str | None  # None: the step did not run in the earlier run
    after_status: str | None  # None: the step did not run in this run
    output: Differences


@dataclass
class Comparison:
    """What differs between a run and the last successful run of its workflow before it."""

    run_id: int
    baseline_id: int | None = None
    baseline_started_at: datetime | None = None
    input: Differences = field(default_factory=Differences)
    steps: list[StepComparison] = field(default_factory=list)
    same_steps: int = 0


def last_success(run: Run) -> tuple[int, datetime] | None:
    """The most recent successful run of the same workflow started before this one."""
    key = peewee.Tuple(Execution.started_at, Execution.id)
    row = (Execution.select(Execution.id, Execution.started_at.cast("BIGINT"))
           .where(Execution.workflow == run.workflow_id, Execution.status == "success",
                  key < (to_micros(run.started_at), run.id))
           .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).tuples().first())
    return (row[0], from_micros(row[1])) if row else None


def compare_with_last_success(run: Run) -> Comparison:
    """Differences in trigger payload and in each step's output against the last success."""
    result = Comparison(run.id)
    baseline = last_success(run)
    if baseline is None:
        return result
    result.baseline_id, result.baseline_started_at = baseline
    before_input = (ExecutionPayload.select(ExecutionPayload.input)
                    .where(ExecutionPayload.execution == result.baseline_id).scalar())
    result.input = diff(_parsed(before_input), _parsed(run.input))
    before, after = _step_outputs(result.baseline_id), _step_outputs(run.id)
    for position in sorted(before.keys() | after.keys()):
        old, new = before.get(position), after.get(position)
        # A step that ran in one run only differs by that alone; its output is not compared.
        outputs = diff(_parsed(old[2]), _parsed(new[2])) if old and new else Differences()
        same_status = old is not None and new is not None and old[1] == new[1]
        if outputs.total == 0 and same_status:
            result.same_steps += 1
            continue
        result.steps.append(StepComparison(position, (new or old)[0], old and old[1],
                                           new and new[1], outputs))
    return result


def _parsed(stored: str | None) -> Any:
    return ABSENT if stored is None else json.loads(stored)


def _step_outputs(execution_id: int) -> dict[int, tuple[str, str, str | None]]:
    query = (Step.select(Step.position, Step.name, Step.status, StepPayload.output)
             .join(StepPayload, peewee.JOIN.LEFT_OUTER)
             .where(Step.execution == execution_id).tuples())
    return {position: (name, status, output) for position, name, status, output in query}


ABSENT = object()  # a key, item or whole payload that one side does not have


def diff(before: Any, after: Any, limit: int = DIFF_LIMIT) -> Differences:
    """Paths at which two JSON values differ (types count: 1 is not 1.0 nor true)."""
    found = Differences()
    _walk(before, after, "$", False, found, limit)
    return found

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _walk(before: Any, after: Any, path: str, secret: bool, found: Differences,
          limit: int) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for key in [*after, *(k for k in before if k not in after)]:
            child = f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"
            _walk(before.get(key, ABSENT), after.get(key, ABSENT), child,
                  secret or is_secret_key(key), found, limit)
        return
    if isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            _walk(before[index] if index < len(before) else ABSENT,
                  after[index] if index < len(after) else ABSENT,
                  f"{path}[{index}]", secret, found, limit)
        return
    if _same(before, after):
        return
    found.total += 1
    if len(found.items) < limit:
        kind = ("added" if before is ABSENT else "removed" if after is ABSENT
                else "changed")
        found.items.append(Difference(path, kind, _cell(before, secret), _cell(after, secret)))


def _same(before: Any, after: Any) -> bool:
    return type(before) is type(after) and before == after


def _cell(value: Any, secret: bool) -> str | None:
    if value is ABSENT:
        return None
    if secret and _maskable(value):
        return MASK
    text = json.dumps(mask(value), ensure_ascii=False)
    return text if len(text) <= VALUE_CHARS else text[:VALUE_CHARS - 1] + "…"
