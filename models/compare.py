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
    """What differs between an execution and the last success of its workflow before it."""

    run_id: int
    baseline_id: int | None = None
    baseline_started_at: datetime | None = None
    input: Differences = field(default_factory=Differences)
    steps: list[StepComparison] = field(default_factory=list)
    same_steps: int = 0


def last_success(execution: ExecutionDetail) -> tuple[int, datetime] | None:
    """The most recent successful execution of the same workflow started before this one."""
    key = peewee.Tuple(Execution.started_at, Execution.id)
    row = (Execution.select(Execution.id, Execution.started_at.cast("BIGINT"))
           .where(Execution.workflow == execution.workflow_id, Execution.status == "success",
                  key < (to_micros(execution.started_at), execution.id))
           .order_by(Execution.started_at.desc(), Execution.id.desc()).limit(1).tuples().first())
    return (row[0], from_micros(row[1])) if row else None


def compare_with_last_success(execution: ExecutionDetail) -> Comparison:
    """Differences in trigger payload and in each step's output against the last success."""
    result = Comparison(execution.id)
    baseline = last_success(execution)
    if baseline is None:
        return result
    result.baseline_id, result.baseline_started_at = baseline
    before_input = (ExecutionPayload.select(ExecutionPayload.input)
                    .where(ExecutionPayload.execution == result.baseline_id).scalar())
    result.input = diff(_parsed(before_input), _parsed(execution.input))
    before, after = _step_outputs(result.baseline_id), _step_outputs(execution.id)
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
          limit: int, in_list: bool = False) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        named = names_secret(before) or names_secret(after)  # {"name": "password", "value": …}
        for key in [*after, *(k for k in before if k not in after)]:
            child = f"{path}.{key}" if _IDENTIFIER.match(key) else f"{path}[{json.dumps(key)}]"
            _walk(before.get(key, ABSENT), after.get(key, ABSENT), child,
                  secret or is_secret_key(key) or (named and key in VALUE_FIELDS), found, limit)
        return
    if isinstance(before, list) and isinstance(after, list):
        # [["Authorization", "Bearer …"], …]: the second of a secret pair is hidden
        pair = in_list and (secret_pair(before) or secret_pair(after))
        for index in range(max(len(before), len(after))):
            _walk(before[index] if index < len(before) else ABSENT,
                  after[index] if index < len(after) else ABSENT,
                  f"{path}[{index}]", secret or (pair and index == 1), found, limit, True)
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
    if secret and maskable(value):
        return MASK
    return json.dumps(mask(value), ensure_ascii=False)
