"""A snapshot as Prometheus series: prometheus_client's metric families (`Collector`, for
any registry), and the same text written straight (`render`), which `GET /metrics` sends.

prometheus_client's `generate_latest` checks and escapes each label of each sample anew: at
10,000 workflows (some 110,000 samples) that alone takes over a second. `render` writes the
same text, byte for byte (the tests compare them), escaping each workflow's name once.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import compress, repeat
from operator import is_not
from typing import Iterable, Iterator

from prometheus_client.core import Metric
from prometheus_client.utils import floatToGoString

from models.executions import FINISHED_STATUSES
from workflows.models import STATES

from .read import P95_DAYS, Snapshot


@dataclass(frozen=True)
class Family:
    """One metric family: its name (a counter's without `_total`), type, help and label
    names, in the order the text lists them (sorted, as prometheus_client writes them)."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()

    @property
    def sample_name(self) -> str:
        return self.name + "_total" if self.type == "counter" else self.name


RUNS = Family("runwatch_runs", "counter", "Finished runs stored, by workflow and status "
              "(success or failure; runs that retention deletes are taken out).",
              ("status", "workflow"))
STATE = Family("runwatch_workflow_state", "gauge", "1 for the state the workflow is in now "
               "(late, failing, new or ok), 0 for the others.", ("state", "workflow"))
STREAK = Family("runwatch_workflow_streak", "gauge", "Failures in a row at the end of the "
                "workflow's finished runs.", ("workflow",))
LAST_RUN = Family("runwatch_workflow_last_run_timestamp_seconds", "gauge", "When the "
                  "workflow's latest run started (UNIX time).", ("workflow",))
P95 = Family("runwatch_workflow_duration_p95_seconds", "gauge", "95th percentile of the "
             f"durations of the workflow's finished runs that started in the last {P95_DAYS} "
             "UTC days, today's included (within 4.5 %).", ("workflow",))
SCAN_LAG = Family("runwatch_alert_scan_lag_seconds", "gauge", "Seconds since the alert scan "
                  "last ran, or since the oldest run change no scan has looked at yet, "
                  "whichever is longer.")
OUTBOX = Family("runwatch_outbox_notices", "gauge", "Notices in the outbox, by state.",
                ("state",))
DELIVERIES = Family("runwatch_deliveries", "counter", "Notices whose delivery has ended, by "
                    "channel kind and outcome (delivered, or failed after the last attempt).",
                    ("channel", "outcome"))
BUILD = Family("runwatch_build_info", "gauge", "The release of Runwatch that answers.",
               ("version",))


_NONE = (0,) * len(FINISHED_STATUSES)


def _runs(status: str):
    k = FINISHED_STATUSES.index(status)
    return lambda s: [s.runs.get(w.id, _NONE)[k] for w in s.workflows]


def _state(state: str):
    return lambda s: [1 if w.state == state else 0 for w in s.workflows]


# The series of each workflow: (family, the value of its label before `workflow` or None,
# the values of the snapshot's workflows in order, None for no sample), in the text's order.
PER_WORKFLOW = (
    *((RUNS, status, _runs(status)) for status in FINISHED_STATUSES),
    *((STATE, state, _state(state)) for state in sorted(STATES)),
    (STREAK, None, lambda s: [w.streak for w in s.workflows]),
    (LAST_RUN, None, lambda s: [None if w.last_started_at is None else w.last_started_at / 1e6
                                for w in s.workflows]),
    (P95, None, lambda s: [None if (ms := s.p95_ms.get(w.id)) is None else ms / 1000
                           for w in s.workflows]),
)

Samples = Iterable[tuple[tuple[str, ...], float]]


def _others(snapshot: Snapshot) -> Iterator[tuple[Family, Samples]]:
    """The families that are not per workflow, with their samples."""
    lag = snapshot.scan_lag_seconds
    yield SCAN_LAG, [((), lag)] if lag is not None else []
    yield OUTBOX, [((state,), n) for state, n in sorted(snapshot.outbox.items())]
    yield DELIVERIES, [(key, n) for key, n in sorted(snapshot.deliveries.items())]
    yield BUILD, [((snapshot.version,), 1)]


def _grouped() -> list[tuple[Family, list]]:
    """PER_WORKFLOW's series gathered by family, in order."""
    families: dict[Family, list] = {}
    for family, label, value in PER_WORKFLOW:
        families.setdefault(family, []).append((label, value))
    return list(families.items())


def series(snapshot: Snapshot) -> Iterator[tuple[Family, Samples]]:
    """Each family with its samples: (label values in the family's order, value)."""
    for family, parts in _grouped():
        yield family, [((*([label] if label else []), w.name), v)
                       for label, column in parts
                       for w, v in zip(snapshot.workflows, column(snapshot)) if v is not None]
    yield from _others(snapshot)


class Collector:
    """A prometheus_client collector of one snapshot (`REGISTRY.register(Collector(s))`)."""

    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        for family, samples in series(self.snapshot):
            metric = Metric(family.name, family.help, family.type)
            for values, value in samples:
                metric.add_sample(family.sample_name, dict(zip(family.labels, values)), value)
            yield metric


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _header(family: Family) -> str:
    return (f"# HELP {family.sample_name} {family.help}\n"
            f"# TYPE {family.sample_name} {family.type}\n")


def stamp_text(micros: int) -> str:
    """`floatToGoString(micros / 1e6)`, from the digits of `micros`: the same text for a
    time from 1970-01-12 to the year 2242 (a float's step there is under a microsecond, so
    the shortest text that reads back as that float is the exact decimal, and Go writes it
    with an exponent), in a third of the time; floatToGoString's own outside it."""
    if not 10**12 <= micros < 2**33 * 10**6:
        return floatToGoString(micros / 1e6)
    digits = str(micros)
    mantissa = f"{digits[0]}.{digits[1:]}".rstrip("0").rstrip(".")
    return f"{mantissa}e+{len(digits) - 7:02d}"


def render(snapshot: Snapshot) -> bytes:
    """The Prometheus text format (0.0.4) of a snapshot: what `generate_latest` makes of
    its `Collector`, written faster: each name escaped and each distinct number formatted
    once, and a series' lines put together by the interpreter's own loops (map, join)."""
    out: list[str] = []
    write = out.append
    # What follows a series' prefix on each workflow's line: `name"} `, then the value.
    names = [_escape(w.name) + '"} ' for w in snapshot.workflows]
    # The last runs' times, nearly all distinct, are written from their digits.
    numbers = {w.last_started_at / 1e6: stamp_text(w.last_started_at) + "\n"
               for w in snapshot.workflows if w.last_started_at is not None}

    def texts(values: list) -> Iterator[str]:
        for value in set(values).difference(numbers):
            numbers[value] = floatToGoString(value) + "\n"
        return map(numbers.__getitem__, values)

    for family, parts in _grouped():
        write(_header(family))
        for label, column in parts:
            prefix = (f'{family.sample_name}{{{family.labels[0]}="{_escape(label)}",workflow="'
                      if label else f'{family.sample_name}{{workflow="')
            values, named = column(snapshot), names
            if None in values:
                kept = list(map(is_not, values, repeat(None)))
                values, named = list(compress(values, kept)), compress(names, kept)
            if values:
                write(prefix)
                write(prefix.join(map(str.__add__, named, texts(values))))
    for family, samples in _others(snapshot):
        write(_header(family))
        for values, value in samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in zip(family.labels, values))
            write(f"{family.sample_name}{{{labels}}} {floatToGoString(value)}\n" if labels
                  else f"{family.sample_name} {floatToGoString(value)}\n")
    return "".join(out).encode()
