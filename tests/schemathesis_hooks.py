"""What schemathesis cannot learn from the API document, for the suite and the command line.

Some rules depend on the server or on several values, not on one value's shape, and the
document says them in words: a reported time lies from 1970 to 24 hours after its receipt
and a run does not finish before it starts; a maintenance window ends after it begins; a
`from`/`to` date lies from 1970 to 2100 and a workflow's period spans at most 400 days; a schedule is a cron expression that fires; a
`cursor` is a token the server signed; a `rerun_of` names a stored run. Made-up values that break them are bad input, which the server refuses;
examples meant to be good keep to them.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st

EARLIEST = datetime(1970, 1, 2)  # a day after the earliest, so that any offset keeps in range


def _latest() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=23)


def _written(moment: datetime, offset_minutes: int) -> str:
    """`moment` (UTC) as ISO 8601 in a zone `offset_minutes` east of UTC."""
    zone = timezone(timedelta(minutes=offset_minutes))
    return moment.replace(tzinfo=timezone.utc).astimezone(zone).isoformat() \
        .replace("+00:00", "Z")


schemathesis.openapi.format("date-time", st.builds(
    _written, st.datetimes(min_value=EARLIEST, max_value=_latest()),
    st.integers(min_value=-12 * 60, max_value=12 * 60)))
schemathesis.openapi.format("date", st.dates(min_value=date(1970, 1, 1),
                                             max_value=date(2099, 12, 31)).map(str))
# Cron expressions that fire: each field a value, a range, a step or any.
schemathesis.openapi.format("cron", st.tuples(
    *(st.sampled_from(["*", f"*/{step}", str(low), f"{low}-{high}"])
      for low, high, step in ((0, 59, 15), (0, 23, 6), (1, 28, 7), (1, 12, 3), (0, 6, 2)))
).map(" ".join))


FILTERS = ("workflow", "status", "external_id", "q", "from", "to", "tz")  # the history's; `filter` stands for them


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _in_order(value, first: str, then: str) -> None:
    """Swap `first` and `then` wherever the second comes before the first, at any depth."""
    if isinstance(value, list):
        for item in value:
            _in_order(item, first, then)
    elif isinstance(value, dict):
        start, end = value.get(first), value.get(then)
        if isinstance(start, str) and isinstance(end, str):
            try:
                if _instant(end) < _instant(start):
                    value[first], value[then] = end, start
            except ValueError:
                pass
        for item in value.values():
            _in_order(item, first, then)


def _window_in_order(body) -> None:
    """A maintenance window's `ends_at` after its `starts_at` (swapped, or a minute on)."""
    if not isinstance(body, dict):
        return
    _in_order(body, "starts_at", "ends_at")
    start, end = body.get("starts_at"), body.get("ends_at")
    if isinstance(start, str) and isinstance(end, str):
        try:
            if _instant(end) <= _instant(start):
                body["ends_at"] = _written((_instant(start) + timedelta(minutes=1))
                                           .astimezone(timezone.utc).replace(tzinfo=None), 0)
        except ValueError:
            pass


def _no_origin(body) -> None:
    """A run reported without `rerun_of`: a made-up id names no stored run (refused)."""
    runs = body.get("executions") if isinstance(body, dict) else None
    for run in [body, *(runs if isinstance(runs, list) else [])]:
        if isinstance(run, dict):
            run.pop("rerun_of", None)


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    """Examples meant to be accepted keep to the rules the document says in words: runs
    finish after they start, `to` is not before `from`, `filter` comes without the
    parameters it stands for, and a `cursor` is one the server gave out (a made-up one is
    left out: the first page stands in for it)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return
    _in_order(case.body, "started_at", "finished_at")
    _window_in_order(case.body)
    _no_origin(case.body)
    query = case.query
    if isinstance(query, dict):
        query.pop("cursor", None)
        if query.get("filter") not in (None, ""):
            for name in FILTERS:
                query.pop(name, None)
        _in_order(query, "from", "to")
        if case.operation.path == "/api/automations/workflows/{name}" and query.get("from"):
            query["to"] = query["from"]  # a workflow's period: at most 400 days
