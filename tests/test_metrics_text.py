"""The text of /metrics as `render` writes it: prometheus_client's own, byte for byte, and
read back by its parser whatever the workflows' names and however many there are."""
from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from metrics.exposition import Collector, render, stamp_text
from metrics.read import Snapshot, WorkflowRow

AWKWARD = ['quote"d', "back\\slash", "new\nline", 'all\\"\n three', "ünïcode ✓", "", "}{,="]


def snapshot(count: int) -> Snapshot:
    """`count` workflows, the awkward names among them, with every kind of value."""
    rng = random.Random(7)
    names = AWKWARD + [f"workflow-{k:05d}" for k in range(count - len(AWKWARD))]
    rows = [WorkflowRow(k, name, rng.choice(["late", "failing", "new", "ok"]), rng.randrange(9),
                        None if k % 10 == 0 else 1_765_000_000_000_000 + rng.randrange(10**13))
            for k, name in enumerate(names, start=1)]
    return Snapshot(version="1.2.3", workflows=rows,
                    runs={row.id: (rng.randrange(10**7), rng.randrange(50))
                          for row in rows if row.id % 4},
                    p95_ms={row.id: rng.randrange(10**6) for row in rows if row.id % 3},
                    scan_lag_seconds=1.5, outbox={"pending": 2, "delivered": 7},
                    deliveries={("webhook", "delivered"): 7})


def test_the_text_is_prometheus_clients_own_and_parses_back_with_many_awkward_names():
    shot = snapshot(3000)
    registry = CollectorRegistry()
    registry.register(Collector(shot))
    text = render(shot)
    assert text == generate_latest(registry)
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    by_name = {row.name: row for row in shot.workflows}
    streaks = {s.labels["workflow"]: s.value
               for s in families["runwatch_workflow_streak"].samples}
    assert streaks == {name: row.streak for name, row in by_name.items()}
    for name in AWKWARD:
        row = by_name[name]
        runs = {s.labels["status"]: s.value for s in families["runwatch_runs"].samples
                if s.labels["workflow"] == name}
        assert runs == dict(zip(("success", "failure"), shot.runs.get(row.id, (0, 0))))
        states = [s.labels["state"] for s in families["runwatch_workflow_state"].samples
                  if s.labels["workflow"] == name and s.value == 1]
        assert states == [row.state]
    stamps = {s.labels["workflow"]: s.value
              for s in families["runwatch_workflow_last_run_timestamp_seconds"].samples}
    assert stamps == {row.name: row.last_started_at / 1e6 for row in shot.workflows
                      if row.last_started_at is not None}
    assert len(families["runwatch_workflow_duration_p95_seconds"].samples) == len(shot.p95_ms)


def test_times_are_written_as_floatToGoString_writes_them():
    rng = random.Random(11)
    edges = [0, 1, 999_999, 10**12 - 1, 10**12, 2**33 * 10**6 - 1, 2**33 * 10**6,
             1_765_000_000_000_000, 1_765_000_000_100_000, 10**15, 10**18 + 1]
    rounded = [rng.randrange(10**12, 2**33 * 10**6) // 10**k * 10**k for k in range(16)]
    for micros in edges + rounded + [rng.randrange(10**12, 2**33 * 10**6)
                                     for _ in range(20_000)]:
        assert stamp_text(micros) == floatToGoString(micros / 1e6), micros
