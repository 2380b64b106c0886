"""OpenTelemetry intake benchmark: spans/second through `POST /v1/traces`, beside the JSON
batch API, on SQLite.

    python -m benchmarks.otlp [--batches 20] [--postgres URL]
    python -m benchmarks.otlp --server [--batches 40] [--clients 4] [--postgres URL]

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

With `--server`, the same exports go to gunicorn (2 workers, as on a 2-core machine) on
127.0.0.1 from `--clients` exporters at once, a thread each sending its exports in order
(in the split case each exporter sends its own traces, roots a batch after their
children): the first half of each case, case after case, then the second halves. The table
gives spans/s over each case's wall time (what a deployment takes in), and the ratio.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time

import requests

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from models.db import iso

from .harness import ROOT, Bench, empty_postgres, median, p, print_table, rss_mb

SPANS_PER_TRACE = 8
BATCH = 512
TRACES_PER_BATCH = BATCH // SPANS_PER_TRACE
BODY = "y" * 100


def make_traces(count: int, workflows: str = "workflow") -> list[list]:
    """`count` traces made by the SDK, each a list of its finished spans (root last): runs
    of 20 workflows named `workflows`-0 to -19, in the order they started."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench.workflows", "1.0")
    for number in range(count):
        with tracer.start_as_current_span(f"{workflows}-{number % 20}", attributes={
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


SPLIT = 2  # the case whose roots come a batch later


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


def serve(bench: Bench) -> tuple[str, subprocess.Popen]:
    """gunicorn with 2 workers on the bench's database, on a free port of 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RUNWATCH_DATABASE_URL": bench.app.config["DATABASE_URL"],
           "RUNWATCH_SECRET_KEY": "bench", "RUNWATCH_SCHEDULER": "false"}
    log = open(os.path.join(bench.tmp, "server.log"), "w+")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b",
                               f"127.0.0.1:{port}", "--timeout", "120", "app:create_app()"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return base, server
        except requests.ConnectionError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit(f"gunicorn did not answer on {base}")


def flood(base: str, headers: dict, url: str, streams: list[list[bytes]], content_type: str,
          extra: dict) -> float:
    """Seconds for one thread per stream (an exporter) to POST its bodies, in order."""
    failures: list[str] = []

    def exporter(bodies: list[bytes]) -> None:
        session = requests.Session()
        session.headers.update({**headers, "Content-Type": content_type, **extra})
        for body in bodies:
            response = session.post(f"{base}{url}", data=body, timeout=120)
            if response.status_code not in (200, 201) or (
                    url == "/v1/traces" and response.content not in (b"", b"{}")):
                failures.append(f"{response.status_code} {response.content[:200]!r}")

    threads = [threading.Thread(target=exporter, args=(stream,)) for stream in streams]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    return time.perf_counter() - started


def dealt(bodies: list, exporters: int) -> list[list]:
    """Bodies dealt to `exporters` streams, each a run of consecutive bodies."""
    return [bodies[i * len(bodies) // exporters:(i + 1) * len(bodies) // exporters]
            for i in range(exporters)]


def main_server(args, bench: Bench, cases: list, split_streams: list[list[bytes]],
                split_spans: int) -> None:
    """Each case from `--clients` exporters at once (a thread each, sending its exports in
    order) to gunicorn: the first half of every case, then the second halves. The split
    case's exporters each send their own traces, roots a batch after their children."""
    base, server = serve(bench)
    try:
        for case, (_, url, bodies, content_type, headers) in enumerate(cases):
            if case != SPLIT:  # warm-up: one export each (the split case's traces are new)
                flood(base, bench.headers, url, [bodies[:1]], content_type, headers)
        streams = [dealt(bodies[1:], args.clients) for _, _, bodies, _, _ in cases]
        streams[SPLIT] = split_streams
        seconds = [0.0] * len(cases)
        for half in (0, 1):
            for case, (_, url, _, content_type, headers) in enumerate(cases):
                share = [stream[:len(stream) // 2] if half == 0 else stream[len(stream) // 2:]
                         for stream in streams[case]]
                seconds[case] += flood(base, bench.headers, url, share, content_type, headers)
    finally:
        server.terminate()
        server.wait(timeout=30)
    requests_sent = [sum(map(len, case_streams)) for case_streams in streams]
    spans = [BATCH * sent for sent in requests_sent]
    spans[SPLIT] = split_spans
    base_rate = spans[0] / seconds[0]
    rows = [[name, requests_sent[case], seconds[case], f"{spans[case] / seconds[case]:,.0f}",
             spans[case] / seconds[case] / base_rate]
            for case, (name, *_) in enumerate(cases)]
    engine = "PostgreSQL" if args.postgres else "SQLite"
    print(f"{engine}; gunicorn -w 2 on 127.0.0.1, {args.clients} exporters at once; exports "
          f"of {BATCH} spans ({TRACES_PER_BATCH} traces of {SPANS_PER_TRACE} spans)")
    print_table(["case", "requests", "seconds", "spans/s", "vs JSON batch API"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20,
                        help="exports per case (the first warms up)")
    parser.add_argument("--postgres", default=None, metavar="URL",
                        help="an empty PostgreSQL database to run on (its tables are dropped)")
    parser.add_argument("--server", action="store_true",
                        help="to gunicorn (2 workers) from several clients at once")
    parser.add_argument("--clients", type=int, default=4,
                        help="with --server: exporters sending at once")
    args = parser.parse_args()
    if args.postgres:
        empty_postgres(args.postgres)
    bench = Bench(args.postgres)
    # Each case has workflows of its own, whose runs come in the order they started (as
    # one exporter sends them): no case's runs land behind another's.
    chunks = [make_traces(args.batches * TRACES_PER_BATCH, name)
              for name in ("whole", "split", "json", "gzip", "batch")]

    protobuf = [encode_spans(batch).SerializeToString() for batch in whole_batches(chunks[0])]
    # The last export of a split stream would hold 64 roots alone: it is left out (and with
    # it the 64 traces whose roots it holds, which stay kept).
    split_spans = split_batches(chunks[1])[:-1]
    assert all(len(batch) == BATCH for batch in split_spans[1:])
    split = [encode_spans(batch).SerializeToString() for batch in split_spans]
    # For --server: the same traces from several exporters, each its own in split exports.
    streams = [split_batches(part)[:-1] for part in dealt(chunks[1], args.clients)]
    split_streams = [[encode_spans(batch).SerializeToString() for batch in stream]
                     for stream in streams]
    split_stream_spans = sum(len(batch) for stream in streams for batch in stream)
    as_json = [json.dumps(hex_ids(json_format.MessageToDict(encode_spans(batch)))).encode()
               for batch in whole_batches(chunks[2])]
    gzipped = [gzip.compress(encode_spans(batch).SerializeToString())
               for batch in whole_batches(chunks[3])]
    runs = [json.dumps({"executions": [as_run(trace) for trace in
                                       chunks[4][i:i + TRACES_PER_BATCH]]}).encode()
            for i in range(0, len(chunks[4]), TRACES_PER_BATCH)]
    del chunks, split_spans, streams  # a server holds no SDK spans: the collector would walk them
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
    if args.server:
        main_server(args, bench, cases, split_streams, split_stream_spans)
        return
    # Round by round, each case in turn: every case sees the same database size and the same
    # neighbours on a shared machine. Each round starts one case later, so the periodic
    # cost of a write (SQLite copying its log into the database every few megabytes) falls
    # on every case alike rather than always on the same one.
    samples: list[list[float]] = [[] for _ in cases]
    for index in range(args.batches):
        for step in range(len(cases)):
            case = (index + step) % len(cases)
            _, url, bodies, content_type, headers = cases[case]
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
