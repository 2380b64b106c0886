"""What differs between an execution and the last successful execution of its workflow.

`diff` compares two JSON values path by path and is a plain function; values are
returned as masked JSON text, whole (the page decides how much of each to show).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee

from .times import from_micros, to_micros
from .execution_detail import ExecutionDetail
from .executions import Execution, ExecutionPayload, Step, StepPayload
from .payloads import (MASK, VALUE_FIELDS, is_secret_key, mask, maskable, names_secret,
                       secret_pair)

DIFF_LIMIT = 200  # differences listed per payload; the rest are counted


@dataclass
class Difference:
    """One path whose value differs (or, when asked for, is the same); values masked."""

    path: str
    kind: str  # "added", "removed", "changed" or "same"
    before: str | None
    after: str | None


@dataclass(frozen=True)
class CompareOptions:
    """What a comparison lists besides the differences that matter."""

    unchanged: bool = False  # list the paths whose value is the same in both runs too
    hide_volatile: bool = False  # leave out changed ids and times, which differ in any two runs


@dataclass
class Differences:
    """The differences between two payloads: the first DIFF_LIMIT of them and how many in all."""

    items: list[Difference] = field(default_factory=list)
    total: int = 0  # differences, hidden ones left out
    listed: int = 0  # what would be listed without the limit (the same paths too, if asked)
    hidden: int = 0  # changed ids and times left out

    @property
    def more(self) -> int:
        """How many differences are not listed."""
        return self.listed - len(self.items)


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
    """What differs between an execution and the last success of its workflow before it."""

    run_id: int
    baseline_id: int | None = None
    baseline_started_at: datetime | None = None
    input: Differences = field(default_factory=Differences)
    steps: list[StepComparison] = field(default_factory=list)
    same_steps: int = 0
    options: CompareOptions = CompareOptions()
    hidden: int = 0  # changed ids and times left out, in the input and every step's output


def last_success(execution: ExecutionDetail) -> tuple[int, datetime] | None:
    """The most recent successful execution of the same workflow started before this one."""
    key = peewee.Tuple(Execution.started_at, Execution.id)
    row = (Execution.select(Execution.id, Execution.started_at.cast("BIGINT"))
           .where(Execution.workflow == execution.workflow_id, Execution.status == "success",
                  key < (to_micros(execution.started_at), execution.id))
           .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).tuples().first())
    return (row[0], from_micros(row[1])) if row else None


def compare_with_last_success(execution: ExecutionDetail,
                              options: CompareOptions = CompareOptions()) -> Comparison:
    """Differences in trigger payload and in each step's output against the last success."""
    result = Comparison(execution.id, options=options)
    baseline = last_success(execution)
    if baseline is None:
        return result
    result.baseline_id, result.baseline_started_at = baseline
    before_input = (ExecutionPayload.select(ExecutionPayload.input)
                    .where(ExecutionPayload.execution == result.baseline_id).scalar())
    result.input = diff(_parsed(before_input), _parsed(execution.input), options=options)
    result.hidden = result.input.hidden
    before, after = _step_outputs(result.baseline_id), _step_outputs(execution.id)
    for position in sorted(before.keys() | after.keys()):
        old, new = before.get(position), after.get(position)
        # A step that ran in one run only differs by that alone; its output is not compared.
        outputs = (diff(_parsed(old[2]), _parsed(new[2]), options=options) if old and new
                   else Differences())
        result.hidden += outputs.hidden
        same_status = old is not None and new is not None and old[1] == new[1]
        if outputs.total == 0 and same_status and not outputs.items:
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


def diff(before: Any, after: Any, limit: int = DIFF_LIMIT,
         options: CompareOptions = CompareOptions()) -> Differences:
    """Paths at which two JSON values differ (types count: 1 is not 1.0 nor true); with
    `options`, also those that are the same, and without changed ids and times."""
    found = Differences()
    _walk(before, after, "$", False, found, limit, options=options)
    return found

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _walk(before: Any, after: Any, path: str, secret: bool, found: Differences,
          limit: int, in_list: bool = False, options: CompareOptions = CompareOptions(),
          key: str = "") -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        named = names_secret(before) or names_secret(after)  # {"name": "password", "value": …}
        for name in [*after, *(k for k in before if k not in after)]:
            child = f"{path}.{name}" if _IDENTIFIER.match(name) else f"{path}[{json.dumps(name)}]"
            _walk(before.get(name, ABSENT), after.get(name, ABSENT), child,
                  secret or is_secret_key(name) or (named and name in VALUE_FIELDS), found,
                  limit, options=options, key=name)
        return
    if isinstance(before, list) and isinstance(after, list):
        # [["Authorization", "Bearer …"], …]: the second of a secret pair is hidden
        pair = in_list and (secret_pair(before) or secret_pair(after))
        for index in range(max(len(before), len(after))):
            _walk(before[index] if index < len(before) else ABSENT,
                  after[index] if index < len(after) else ABSENT,
                  f"{path}[{index}]", secret or (pair and index == 1), found, limit, True,
                  options, key)
        return
    if _same(before, after):
        if not options.unchanged:
            return
        kind = "same"
    else:
        kind = ("added" if before is ABSENT else "removed" if after is ABSENT
                else "changed")
        if kind == "changed" and options.hide_volatile and volatile(key, before, after):
            found.hidden += 1
            return
        found.total += 1
    found.listed += 1
    if len(found.items) < limit:
        found.items.append(Difference(path, kind, _cell(before, secret), _cell(after, secret)))


# Names of values that differ from one run to the next by nature: ids and times.
_VOLATILE_WORDS = frozenset({"id", "ids", "uuid", "guid", "timestamp", "ts", "time", "date",
                             "datetime", "at", "created", "updated", "modified", "started",
                             "finished", "nonce", "etag"})
_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_VOLATILE_TEXT = re.compile(
    r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"  # a time
    r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)  # a UUID


def volatile(key: str, before: Any, after: Any) -> bool:
    """Whether a changed value is an id or a time (by its name's last word, or by both
    values' look), the kind that differs between any two runs."""
    words = _NAME_WORD.findall(key)
    if words and words[-1].lower() in _VOLATILE_WORDS:
        return True
    return all(isinstance(v, str) and _VOLATILE_TEXT.fullmatch(v) for v in (before, after))


def _same(before: Any, after: Any) -> bool:
    return type(before) is type(after) and before == after



def _cell(value: Any, secret: bool) -> str | None:
    if value is ABSENT:
        return None
    if secret and maskable(value):
        return MASK
    return json.dumps(mask(value), ensure_ascii=False)
