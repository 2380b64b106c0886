"""The trace of one execution as the page draws it: a time axis, a waterfall, slices of steps.

Presentation only: percentages, SVG paths and slices computed from the rows that
`models.execution_detail` reads. Plain functions, callable without Flask.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

from models.times import to_micros
from models.execution_detail import ExecutionDetail, StepRow

# Steps listed at once (RUNWATCH_RUN_STEPS_PER_PAGE); the waterfall above the list shows them all.
STEP_SLICE = 500


@dataclass(frozen=True, slots=True)
class Bar:
    """Where a step's bar sits on the axis, in percent of its length (None: never started)."""

    offset: float | None = None
    width: float | None = None


NO_BAR = Bar()


def place_on_axis(execution: ExecutionDetail, now: datetime) -> tuple[int, list[Bar]]:
    """The axis length in ms and each step's bar on it (a list parallel to the steps)."""
    steps = execution.steps
    starts = [s.started_us for s in steps if s.started_us is not None]
    ends = [s.finished_us for s in steps if s.finished_us is not None]
    if execution.finished_at:
        ends.append(to_micros(execution.finished_at))
    origin = min([to_micros(execution.started_at), *starts])
    end = max([origin, *starts, *ends])
    if execution.live:
        end = max(end, to_micros(now))  # the open end of a live execution moves with the clock
    span = max(end - origin, 1)
    bars = []
    for step in steps:
        if step.started_us is None:
            bars.append(NO_BAR)
            continue
        start = step.started_us
        stop = step.finished_us if step.finished_us is not None else (
            end if execution.live else start)
        bars.append(Bar(round((start - origin) * 100 / span, 3),
                        round(max(stop - start, 0) * 100 / span, 3)))
    return span // 1000, bars


@dataclass
class StepSlice:
    """The steps that the list shows, and where the slices before and after start."""

    rows: list[StepRow]
    first: int  # index of rows[0] among all the steps (and their bars)
    previous_from: int | None  # position at which the previous slice starts
    next_from: int | None  # position at which the next slice starts
    remaining: int  # steps after this slice


def step_slice(steps: list[StepRow], start: int = 0, size: int = STEP_SLICE) -> StepSlice:
    """At most `size` steps from position `start` on (steps are in position order)."""
    positions = [s.position for s in steps]
    first = bisect.bisect_left(positions, start)
    last = first + size
    return StepSlice(steps[first:last], first,
                     positions[max(0, first - size)] if first > 0 else None,
                     positions[last] if last < len(steps) else None,
                     max(0, len(steps) - last))


def slice_start(steps: list[StepRow], position: int, size: int = STEP_SLICE) -> int:
    """The start of the slice (counted from the first step) that holds `position`."""
    index = bisect.bisect_left([s.position for s in steps], position)
    index = min(index, max(len(steps) - 1, 0)) // size * size
    return steps[index].position if steps else 0


@dataclass
class Waterfall:
    """Every step as one line on the execution's time axis, one SVG path per status."""

    rows: int
    height_px: int
    stroke_px: float
    paths: dict[str, str]
    failed_y: int | None  # the failed step's row


def waterfall(execution: ExecutionDetail, bars: list[Bar],
              max_height_px: int = 240) -> Waterfall:
    """The whole trace at a glance: a line per step, x = start..end, one row per step."""
    rows = max(len(execution.steps), 1)
    height = min(max(rows * 14, 28), max_height_px)
    segments: dict[str, list[str]] = {}
    failed_y = None
    for index, (step, bar) in enumerate(zip(execution.steps, bars, strict=True)):
        if step.position == execution.failed_step:
            failed_y = index
        if bar.offset is None:
            continue
        # The axis is 1000 units wide; a bar stays at least 2 units so instant steps show.
        segments.setdefault(step.status, []).append(
            f"M{bar.offset * 10:.1f} {index + .5}h{max(bar.width * 10, 2):.1f}")
    return Waterfall(rows, height, round(max(1.0, min(10.0, height / rows * .7)), 1),
                     {status: "".join(parts) for status, parts in segments.items()},
                     failed_y)


@dataclass
class Trace:
    """What the trace section draws: the axis, every bar, the waterfall and the listed slice."""

    axis_ms: int
    bars: list[Bar]
    waterfall: Waterfall
    slice: StepSlice


def trace_of(execution: ExecutionDetail, now: datetime, steps_from: int = 0,
             size: int = STEP_SLICE) -> Trace:
    """The trace of an execution, listing the slice of `size` steps from position
    `steps_from`."""
    axis_ms, bars = place_on_axis(execution, now)
    return Trace(axis_ms, bars, waterfall(execution, bars),
                 step_slice(execution.steps, steps_from, size))
