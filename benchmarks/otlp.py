"""OpenTelemetry intake benchmark: spans/second through `POST /v1/traces`, beside the JSON
batch API, on SQLite.

    python -m benchmarks.otlp [--batches 20] [--postgres URL]

The spans are made by the OpenTelemetry SDK (a workflow of 8 spans: a root, three
children and four grandchildren; attributes, an output, an event) and encoded by its OTLP
exporter's own encoder, 512 spans an export (the batch processor's default). Cases:

- whole traces: each export holds 64 traces whole, children before their root;
- roots a batch later: each export holds the 448 children of 64 traces and the 64 roots
  of the traces of the export before (the join of kept spans);
- JSON encoding: whole traces, in OTLP's JSON encoding;
- gzip: whole traces, protobuf compressed with gzip (what the exporter sends by default);
- the JSON batch API: the same runs as `{"executions": [...]}`, 64 runs of 7 steps each.

Spans/s counts every span (a run of the batch API counts as its root span), at the median
time of an export (the machines these run on are shared: the median is the cost, the p95
the neighbours). The cases take turns, one export each, and each is also given as a ratio
to the batch API, timed in the same rounds.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import time

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from models.db import iso

from .harness import Bench, empty_postgres, median, p, print_table, rss_mb

SPANS_PER_TRACE = 8
BATCH = 512
TRACES_PER_BATCH = BATCH // SPANS_PER_TRACE
BODY = "y" * 100


def make_traces(count: int) -> list[list]:
    """`count` traces made by the SDK, each a list of its finished spans (root last)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench.workflows", "1.0")
    for number in range(count):
        with tracer.start_as_current_span(f"workflow-{number % 20}", attributes={
                "customer": number, "note": "x" * 200, "tags": ["a", "b", "c"]}) as root:
            for child in range(3):
                with tracer.start_as_current_span(f"step-{child}", attributes={
                        "i": child, "runwatch.action": "http.post",
                        "runwatch.output": json.dumps({"ok": True, "body": BODY})}) as span:
                    span.add_event("retry", {"attempt": 1})
                    for grandchild in range(1 if child else 2):
                        with tracer.start_as_current_span(f"step-{child}.{grandchild}",
                                                          attributes={"i": grandchild}):
                            pass
            if number % 10 == 0:
                root.set_status(Status(StatusCode.ERROR, "HTTP 502 from billing"))
    provider.shutdown()
    spans = exporter.get_finished_spans()
    traces: dict[int, list] = {}
    for span in spans:
        traces.setdefault(span.context.trace_id, []).append(span)
    return list(traces.values())


def whole_batches(traces: list[list]) -> list[list]:
    """Exports of 64 whole traces each."""
    return [[span for trace in traces[i:i + TRACES_PER_BATCH] for span in trace]
            for i in range(0, len(traces), TRACES_PER_BATCH)]


def split_batches(traces: list[list]) -> list[list]:
    """Exports of the children of 64 traces and the roots of the 64 before them."""
    groups = [traces[i:i + TRACES_PER_BATCH] for i in range(0, len(traces), TRACES_PER_BATCH)]
    batches, late_roots = [], []
    for group in groups:
        children = [span for trace in group for span in trace if span.parent is not None]
        batches.append(children + late_roots)
        late_roots = [span for trace in group for span in trace if span.parent is None]
    batches.append(late_roots)
    return batches


def as_run(trace: list) -> dict:
    """The same trace as the JSON batch API takes it."""
    root = next(span for span in trace if span.parent is None)
    steps = sorted((span for span in trace if span.parent is not None),
                   key=lambda span: span.start_time)
    return {
        "workflow": root.name, "external_id": f"bench-{root.context.trace_id:032x}",
        "status": "failure" if root.status.status_code == StatusCode.ERROR else "success",
        "started_at": _iso(root.start_time), "finished_at": _iso(root.end_time),
        "input": dict(root.attributes),
        "steps": [{"name": span.name, "action": span.attributes.get("runwatch.action"),
                   "status": "success", "started_at": _iso(span.start_time),
                   "finished_at": _iso(span.end_time),
                   "input": {k: v for k, v in span.attributes.items()
                             if not k.startswith("runwatch.")},
                   "output": ({"ok": True, "body": BODY}
                              if "runwatch.output" in span.attributes else None),
                   "logs": "\n".join(event.name for event in span.events) or None}
                  for span in steps],
    }


def _iso(nanos: int) -> str:
    from datetime import datetime, timezone
    return iso(datetime.fromtimestamp(nanos / 1e9, timezone.utc))


def hex_ids(document):
    """OTLP JSON writes ids in hex where the protobuf JSON mapping writes base64."""
    import base64
    if isinstance(document, dict):
        return {key: (base64.b64decode(value).hex()
                      if key in ("traceId", "spanId", "parentSpanId") else hex_ids(value))
                for key, value in document.items()}
    if isinstance(document, list):
        return [hex_ids(item) for item in document]
    return document


def post(bench: Bench, url: str, body: bytes, content_type: str, **headers) -> float:
    """Milliseconds of one POST that stores everything it carries."""
    start = time.perf_counter()
    response = bench.client.post(url, data=body, content_type=content_type,
                                 headers={**bench.headers, **headers})
    elapsed = (time.perf_counter() - start) * 1000
    assert response.status_code in (200, 201), response.data[:300]
    if url == "/v1/traces":
        assert response.data in (b"", b"{}"), response.data[:300]  # no partial success
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20,
                        help="exports per case (the first warms up)")
    parser.add_argument("--postgres", default=None, metavar="URL",
                        help="an empty PostgreSQL database to run on (its tables are dropped)")
    args = parser.parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    traces = make_traces(args.batches * TRACES_PER_BATCH * 5)
    chunks = [traces[i * args.batches * TRACES_PER_BATCH:(i + 1) * args.batches
                     * TRACES_PER_BATCH] for i in range(5)]

    protobuf = [encode_spans(batch).SerializeToString() for batch in whole_batches(chunks[0])]
    split_spans = split_batches(chunks[1])[:-1]  # the last export holds 64 roots alone
    assert all(len(batch) == BATCH for batch in split_spans[1:])
    split = [encode_spans(batch).SerializeToString() for batch in split_spans]
    as_json = [json.dumps(hex_ids(json_format.MessageToDict(encode_spans(batch)))).encode()
               for batch in whole_batches(chunks[2])]
    gzipped = [gzip.compress(encode_spans(batch).SerializeToString())
               for batch in whole_batches(chunks[3])]
    runs = [json.dumps({"executions": [as_run(trace) for trace in
                                       chunks[4][i:i + TRACES_PER_BATCH]]}).encode()
            for i in range(0, len(chunks[4]), TRACES_PER_BATCH)]
    del traces, chunks, split_spans  # a server holds no SDK spans: the collector would walk them
    gc.collect()

    # (name, url, bodies, content type, headers); every export but the first (the warm-up)
    # holds 512 spans.
    cases = [
        ("JSON batch API, 64 runs x 7 steps", "/api/automations/executions/batch", runs,
         "application/json", {}),
        ("OTLP protobuf, whole traces", "/v1/traces", protobuf, "application/x-protobuf", {}),
        ("OTLP protobuf, roots a batch later", "/v1/traces", split, "application/x-protobuf",
         {}),
        ("OTLP protobuf + gzip, whole traces", "/v1/traces", gzipped,
         "application/x-protobuf", {"Content-Encoding": "gzip"}),
        ("OTLP JSON, whole traces", "/v1/traces", as_json, "application/json", {}),
    ]
    # Round by round, each case in turn: every case sees the same database size and the same
    # neighbours on a shared machine.
    samples: list[list[float]] = [[] for _ in cases]
    for index in range(args.batches):
        for case, (_, url, bodies, content_type, headers) in enumerate(cases):
            elapsed = post(bench, url, bodies[index], content_type, **headers)
            if index:
                samples[case].append(elapsed)
    base = BATCH * 1000 / median(samples[0])
    rows = []
    for (name, *_), times in zip(cases, samples):
        rate = BATCH * 1000 / median(times)
        rows.append([name, len(times), p(times, 50), p(times, 95), f"{rate:,.0f}",
                     rate / base])
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{engine}, in process; exports of {BATCH} spans ({TRACES_PER_BATCH} traces of "
          f"{SPANS_PER_TRACE} spans), protobuf {len(protobuf[1]):,} bytes, JSON "
          f"{len(as_json[1]):,} bytes, gzip {len(gzipped[1]):,} bytes; RSS {rss_mb():.0f} MB")
    print_table(["case", "requests", "p50 ms", "p95 ms", "spans/s at p50",
                 "vs JSON batch API"], rows)


if __name__ == "__main__":
    main()
