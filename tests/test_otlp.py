"""OpenTelemetry intake: `POST /v1/traces` turns OTLP/HTTP trace exports into runs.

Most cases post hand-made exports (the `opentelemetry-proto` message classes) through the
test client; the real OpenTelemetry SDK and its OTLP/HTTP exporter send to a live server
where the exporter itself is what is tested.
"""
from __future__ import annotations

import base64
import gzip
import json
import zlib
from datetime import datetime, timezone

import peewee
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from helpers import detail
from models import Execution, database
from models.db import connection
from models.users import create_token
from otel.models import OtelSpans, OtelTrace
from otel.otlp import MAX_MEMBERS, read_status

URL = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
T0 = 1_748_736_000_000_000_000  # 2025-06-01T00:00:00Z, in nanoseconds
MS = 1_000_000
# Store and join tests run on both databases; the rest on SQLite alone.
both_backends = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])


@pytest.fixture
def backend() -> str:
    return "sqlite"


# --- Building exports by hand ------------------------------------------------------------

def any_value(value) -> AnyValue:
    """A Python value as an OTLP attribute value."""
    out = AnyValue()
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(any_value(item) for item in value)
    elif isinstance(value, dict):
        for key, item in value.items():
            out.kvlist_value.values.add(key=key, value=any_value(item))
    return out


def span(trace: str, span_id: str, name: str, start_ms: int, end_ms: int,
         parent: str | None = None, attributes: dict | None = None,
         events: list[tuple] = (), error: str | None = None) -> Span:
    """A span of `trace` (hex), times in milliseconds after T0; events are
    (name, ms, attributes); `error` sets status ERROR with that message."""
    out = Span(trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span_id), name=name,
               start_time_unix_nano=T0 + start_ms * MS, end_time_unix_nano=T0 + end_ms * MS)
    if parent:
        out.parent_span_id = bytes.fromhex(parent)
    for key, value in (attributes or {}).items():
        out.attributes.add(key=key, value=any_value(value))
    for event_name, at_ms, event_attributes in events:
        event = out.events.add(name=event_name, time_unix_nano=T0 + at_ms * MS)
        for key, value in event_attributes.items():
            event.attributes.add(key=key, value=any_value(value))
    if error is not None:
        out.status.code = Status.STATUS_CODE_ERROR
        out.status.message = error
    return out


def export(*spans: Span, scope: str = "billing.jobs") -> ExportTraceServiceRequest:
    """One export holding `spans` under one resource and instrumentation scope."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name", value=any_value("billing"))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.spans.extend(spans)
    return request


def as_json(request: ExportTraceServiceRequest) -> bytes:
    """The OTLP JSON encoding: the protobuf JSON mapping with ids in hex."""
    def hex_ids(node):
        if isinstance(node, dict):
            return {k: (base64.b64decode(v).hex().upper()
                        if k in ("traceId", "spanId", "parentSpanId") else hex_ids(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [hex_ids(item) for item in node]
        return node
    return json.dumps(hex_ids(json_format.MessageToDict(request))).encode()


def send(api, request: ExportTraceServiceRequest | bytes, encoding: str = PROTOBUF,
         coding: str | None = None, **headers):
    """POST an export (a message, or a body as it is) to /v1/traces."""
    if isinstance(request, ExportTraceServiceRequest):
        body = request.SerializeToString() if encoding == PROTOBUF else as_json(request)
    else:
        body = request
    if coding == "gzip":
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    elif coding == "deflate":
        body = zlib.compress(body)
        headers["Content-Encoding"] = "deflate"
    return api.post(URL, data=body, content_type=encoding, headers=headers)


def members(body: bytes, count: int) -> bytes:
    """`body` gzip-compressed as `count` members one after the other, each holding the
    next slice of it (the last ones empty when it is short)."""
    size = -(-len(body) // count)
    return b"".join(gzip.compress(body[i * size:(i + 1) * size]) for i in range(count))


def answer(response) -> ExportTraceServiceResponse:
    """The ExportTraceServiceResponse of a 200, read in the answer's encoding."""
    assert response.status_code == 200, (response.status_code, response.data[:500])
    message = ExportTraceServiceResponse()
    if response.mimetype == PROTOBUF:
        message.ParseFromString(response.data)
    else:
        assert response.mimetype == JSON
        json_format.Parse(response.data, message)
    return message


def accepted(response) -> None:
    """A 200 that rejected nothing: `partial_success` left unset."""
    assert not answer(response).HasField("partial_success"), response.data


def run_of(api, trace: str) -> dict:
    """The stored run of a trace, as the API shows it."""
    with connection():
        execution = Execution.get_or_none(Execution.external_id == f"otel-{trace}")
    assert execution is not None, f"no run for trace {trace}"
    return detail(api, execution.id)


def runs_stored() -> int:
    with connection():
        return Execution.select().count()


def row_counts() -> dict[str, int]:
    with connection():
        return {table: database.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
                for table in database.get_tables()}


def same_run(run: dict) -> dict:
    """A run without what differs between two traces of the same spans."""
    return {k: v for k, v in run.items() if k not in ("id", "url", "external_id")}


TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, FETCH, PARSE, POST, RETRY = ("a000000000000001", "a000000000000002", "a000000000000003",
                                   "a000000000000004", "a000000000000005")
STACK = 'Traceback (most recent call last):\n  File "sync.py", line 9\nHTTPError: 502'


def invoice_sync(trace: str = TRACE) -> list[Span]:
    """A failing workflow: a root with two children, one of which has a child of its own and
    records an exception; spans in the order the SDK ends them (children first)."""
    return [
        span(trace, PARSE, "Parse invoices", 300, 450, parent=FETCH,
             attributes={"rows": 3}, events=[("cache miss", 310, {"key": "inv-7"})]),
        span(trace, FETCH, "Fetch invoices", 100, 500, parent=ROOT,
             attributes={"runwatch.action": "http.get", "url": "https://erp.example.com",
                         "runwatch.output": '{"count": 3}'}),
        span(trace, POST, "Post to billing", 600, 900, parent=ROOT,
             attributes={"runwatch.input": '{"invoices": [1, 2, 3]}'},
             events=[("retry", 700, {"attempt": 1}),
                     ("exception", 880, {"exception.type": "HTTPError",
                                         "exception.message": "HTTP 502 from billing",
                                         "exception.stacktrace": STACK})],
             error="HTTP 502"),
        span(trace, ROOT, "invoice-sync", 0, 1000,
             attributes={"customer": 42, "dry_run": False, "tags": ["a", "b"]},
             error="a step failed"),
    ]


# --- The mapping ---------------------------------------------------------------------------

def test_a_trace_becomes_one_failed_run_with_its_steps_in_start_order(api):
    accepted(send(api, export(*invoice_sync())))
    run = run_of(api, TRACE)
    assert run["workflow"] == "invoice-sync"
    assert run["external_id"] == f"otel-{TRACE}"
    assert run["status"] == "failure"
    assert run["started_at"] == "2025-06-01T00:00:00Z"
    assert run["finished_at"] == "2025-06-01T00:00:01Z"
    assert run["duration_ms"] == 1000
    assert run["input"] == {"customer": 42, "dry_run": False, "tags": ["a", "b"]}
    # the root records no exception: the first failed step's error, stack trace and all
    assert run["error"] == {"message": "HTTP 502 from billing", "type": "HTTPError",
                            "stack": STACK}
    [group] = api.get("/api/automations/workflows/invoice-sync?from=2025-06-01&to=2025-06-01"
                      ).json["errors"]
    assert (group["type"], group["message"], group["count"]) == (
        "HTTPError", "HTTP 502 from billing", 1)
    assert [s["name"] for s in run["steps"]] == ["Fetch invoices", "Parse invoices",
                                                 "Post to billing"]
    fetch, parse, post = run["steps"]
    assert [s["position"] for s in run["steps"]] == [0, 1, 2]
    assert run["failed_step"] == 2
    assert (fetch["action"], fetch["status"], fetch["input"], fetch["output"]) == (
        "http.get", "success", {"url": "https://erp.example.com"}, {"count": 3})
    assert (parse["action"], parse["input"], parse["output"]) == ("billing.jobs", {"rows": 3},
                                                                  None)
    assert parse["logs"] == '2025-06-01T00:00:00.310000Z cache miss {"key":"inv-7"}'
    assert parse["started_at"] == "2025-06-01T00:00:00.300000Z"
    assert post["status"] == "failure"
    assert post["input"] == {"invoices": [1, 2, 3]}
    assert post["error"] == {"message": "HTTP 502 from billing", "type": "HTTPError",
                             "stack": STACK}
    assert post["logs"] == '2025-06-01T00:00:00.700000Z retry {"attempt":1}'


def test_the_roots_own_exception_and_runwatch_attributes_win(api):
    trace = "10000000000000000000000000000001"
    root = span(trace, ROOT, "GET /sync", 0, 100, error="boom",
                attributes={"runwatch.workflow": "nightly-sync",
                            "runwatch.input": '{"since": "2025-05-31"}',
                            "runwatch.output": "not JSON at all", "ignored": 1},
                events=[("exception", 10, {"exception.type": "KeyError",
                                           "exception.message": "first"}),
                        ("exception", 90, {"exception.type": "ValueError",
                                           "exception.message": "last"})])
    child = span(trace, FETCH, "fetch", 5, 50, parent=ROOT, error="timed out")
    accepted(send(api, export(root, child, scope="")))
    run = run_of(api, trace)
    assert run["workflow"] == "nightly-sync"
    assert run["input"] == {"since": "2025-05-31"}
    assert run["output"] == "not JSON at all"  # text that is not JSON stays text
    assert run["error"] == {"message": "last", "type": "ValueError"}
    [step] = run["steps"]
    # no exception event: the status message; no scope name: no action
    assert step["error"] == {"message": "timed out"}
    assert step["action"] is None and step["input"] == {}


def test_a_trace_without_errors_is_a_successful_run(api):
    trace = "20000000000000000000000000000002"
    accepted(send(api, export(span(trace, FETCH, "fetch", 1, 2, parent=ROOT),
                              span(trace, ROOT, "hourly", 0, 3))))
    run = run_of(api, trace)
    assert (run["status"], run["error"], run["failed_step"]) == ("success", None, None)
    assert run["input"] == {}


# --- Spans in several exports, in any order, sent again ------------------------------------

@both_backends
def test_children_first_and_the_root_later_make_the_same_run_as_one_export(api, backend):
    whole = "30000000000000000000000000000003"
    accepted(send(api, export(*invoice_sync(whole))))
    orders = {
        "children first": lambda spans: [spans[:3], spans[3:]],
        "root first": lambda spans: [spans[3:], spans[:3]],
        "one at a time, backwards": lambda spans: [[s] for s in reversed(spans)],
        "one at a time, root second": lambda spans: [[spans[0]], [spans[3]], spans[1:3]],
    }
    for number, (name, split) in enumerate(orders.items(), start=4):
        trace = f"{number}" * 32
        parts = split(invoice_sync(trace))
        root_sent = False
        for part in parts[:-1]:
            accepted(send(api, export(*part)))
            root_sent = root_sent or any(not s.parent_span_id for s in part)
            assert runs_stored() == number - 3 + root_sent, name  # no root yet: no run
        accepted(send(api, export(*parts[-1])))
        assert same_run(run_of(api, trace)) == same_run(run_of(api, whole)), name


@both_backends
def test_the_same_export_sent_twice_changes_nothing(api, backend):
    spans = invoice_sync()
    accepted(send(api, export(*spans)))
    before, run = row_counts(), run_of(api, TRACE)
    with connection():
        updated = Execution.get(Execution.external_id == f"otel-{TRACE}").updated_at
    accepted(send(api, export(*spans)))
    accepted(send(api, export(spans[0], spans[0], spans[3])))  # parts of it, twice over
    assert row_counts() == before
    assert run_of(api, TRACE) == run
    with connection():
        assert Execution.get(Execution.external_id == f"otel-{TRACE}").updated_at == updated


@both_backends
def test_a_late_child_that_started_earlier_takes_its_place_and_the_rest_move_down(api,
                                                                                 backend):
    early, late = "60000000000000000000000000000006", "70000000000000000000000000000007"
    spans = invoice_sync(late)
    fetch = spans.pop(1)  # Fetch invoices (starts first) comes after the root
    accepted(send(api, export(*spans)))
    run = run_of(api, late)
    assert [s["name"] for s in run["steps"]] == ["Parse invoices", "Post to billing"]
    assert run["failed_step"] == 1
    accepted(send(api, export(fetch)))
    after = run_of(api, late)
    assert after["id"] == run["id"]  # the same run, brought up to date
    assert [(s["position"], s["name"]) for s in after["steps"]] == [
        (0, "Fetch invoices"), (1, "Parse invoices"), (2, "Post to billing")]
    assert after["step_count"] == 3 and after["failed_step"] == 2
    accepted(send(api, export(*invoice_sync(early))))
    assert same_run(after) == same_run(run_of(api, early))


def test_several_traces_in_one_export_become_several_runs(api):
    traces = [f"{n:x}" * 32 for n in range(8, 12)]
    spans = [s for trace in traces for s in invoice_sync(trace)]
    accepted(send(api, export(*spans[::2]), coding="gzip"))  # every other span first
    accepted(send(api, export(*spans[1::2]), coding="gzip"))
    assert runs_stored() == 4
    assert {len(run_of(api, trace)["steps"]) for trace in traces} == {3}


# --- Encodings ------------------------------------------------------------------------

# The trace example of the OTLP specification (examples/trace.json, opentelemetry-proto):
# ids in upper-case hex, times as numbers, the span kind as an integer.
SPEC_EXAMPLE = """{"resourceSpans": [{
  "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "my.service"}}]},
  "scopeSpans": [{
    "scope": {"name": "my.library", "version": "1.0.0",
              "attributes": [{"key": "my.scope.attribute",
                              "value": {"stringValue": "some scope attribute"}}]},
    "spans": [{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
               "parentSpanId": "EEE19B7EC3C1B173", "name": "I'm a server span",
               "startTimeUnixNano": 1544712660000000000, "endTimeUnixNano": 1544712661000000000,
               "kind": 2,
               "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}]}]
  }]
}]}"""
ROOT_OF_THE_EXAMPLE = """{"resourceSpans": [{"scopeSpans": [{"scope": {"name": "my.library"},
  "spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b173",
             "name": "checkout", "startTimeUnixNano": "1544712659000000000",
             "endTimeUnixNano": "1544712662000000000", "kind": 2, "unknownField": true,
             "status": {"code": 2, "message": "payment declined"}}]}]}]}"""


@pytest.mark.parametrize("coding", [None, "gzip"])
def test_the_specifications_json_example_is_taken_as_it_is_written(api, coding):
    response = send(api, SPEC_EXAMPLE.encode(), JSON, coding)
    assert response.mimetype == JSON and response.json == {}  # full success, in JSON
    assert runs_stored() == 0  # its parent has not come
    accepted(send(api, ROOT_OF_THE_EXAMPLE.encode(), JSON, coding))
    run = run_of(api, TRACE)
    assert (run["workflow"], run["status"]) == ("checkout", "failure")
    assert (run["started_at"], run["finished_at"]) == ("2018-12-13T14:50:59Z",
                                                       "2018-12-13T14:51:02Z")
    [step] = run["steps"]
    assert (step["name"], step["action"], step["input"]) == (
        "I'm a server span", "my.library", {"my.span.attr": "some value"})
    assert step["started_at"] == "2018-12-13T14:51:00Z"


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
@pytest.mark.parametrize("coding", [None, "gzip", "deflate"])
def test_every_encoding_and_compression_gives_the_same_run(api, encoding, coding):
    reference = "c" * 32
    accepted(send(api, export(*invoice_sync(reference))))
    response = send(api, export(*invoice_sync()), encoding, coding)
    assert response.mimetype == encoding
    accepted(response)
    assert same_run(run_of(api, TRACE)) == same_run(run_of(api, reference))


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
def test_a_gzip_body_of_as_many_members_as_allowed_gives_the_same_run(api, encoding):
    reference = "c" * 32
    accepted(send(api, export(*invoice_sync(reference))))
    request = export(*invoice_sync())
    body = request.SerializeToString() if encoding == PROTOBUF else as_json(request)
    accepted(send(api, members(body, MAX_MEMBERS), encoding, **{"Content-Encoding": "gzip"}))
    assert same_run(run_of(api, TRACE)) == same_run(run_of(api, reference))


def test_an_empty_export_is_a_success(api):
    accepted(send(api, ExportTraceServiceRequest()))
    assert send(api, b"{}", JSON).json == {}
    assert send(api, b"", PROTOBUF).data == b""


# --- Bad input -------------------------------------------------------------------------

def _short_trace_id() -> ExportTraceServiceRequest:
    request = export(*invoice_sync())
    request.resource_spans[0].scope_spans[0].spans[1].trace_id = bytes(14) + b"\x01"
    return request


def _zero_span_id() -> ExportTraceServiceRequest:
    request = export(*invoice_sync())
    request.resource_spans[0].scope_spans[0].spans[3].span_id = bytes(8)
    return request


def _short_parent() -> ExportTraceServiceRequest:
    request = export(*invoice_sync())
    request.resource_spans[0].scope_spans[0].spans[0].parent_span_id = b"\x01\x02"
    return request


def _json_with(span_changes: dict) -> bytes:
    document = json.loads(as_json(export(*invoice_sync())))
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][2].update(span_changes)
    return json.dumps(document).encode()


BAD_BODIES = {
    "not protobuf": (b"\xff\xff\xff\xff", PROTOBUF, None, "not a protobuf"),
    "truncated protobuf": (export(*invoice_sync()).SerializeToString()[:-7], PROTOBUF, None,
                           "not a protobuf"),
    "not JSON": (b'{"resourceSpans": [', JSON, None, "not valid JSON"),
    "a JSON list": (b"[]", JSON, None, "must be a JSON object"),
    "JSON of the wrong shape": (b'{"resourceSpans": {"scopeSpans": 3}}', JSON, None,
                                "not an ExportTraceServiceRequest"),
    # A string where the export holds a message, at any depth: never read as an empty one.
    "JSON text for a ResourceSpans": (b'{"resourceSpans": ["text"]}', JSON, None,
                                      "resourceSpans[0] must be an object (ResourceSpans)"),
    "JSON text for a Span": (b'{"resourceSpans": [{"scopeSpans": [{"spans": ["x"]}]}]}', JSON,
                             None, "resourceSpans[0].scopeSpans[0].spans[0] must be an object"),
    "JSON text for a scope": (b'{"resourceSpans": [{"scopeSpans": [{"scope": "s"}]}]}', JSON,
                              None, "scopeSpans[0].scope must be an object"),
    "JSON text for an attribute's value": (_json_with({"attributes": [
        {"key": "k", "value": "v"}]}), JSON, None, "attributes[0].value must be an object"),
    "JSON text for a span's status": (_json_with({"status": "ERROR"}), JSON, None,
                                      "spans[2].status must be an object (Status)"),
    "JSON text for a list of events": (_json_with({"events": "none"}), JSON, None,
                                       "spans[2].events must be a list of Event objects"),
    "JSON ids in base64": (_json_with({"spanId": "7uGbfsPBsXQ="}), JSON, None, "hex"),
    "JSON ids of odd length": (_json_with({"traceId": "5b8efff798038103d269b633813fc60"}),
                               JSON, None, "hex"),
    "JSON ids too short": (_json_with({"traceId": "5b8efff798038103"}), JSON, None,
                           "traceId must be 16 bytes"),
    "a trace id of 15 bytes": (_short_trace_id().SerializeToString(), PROTOBUF, None,
                               "traceId must be 16 bytes"),
    "a span id of zeros": (_zero_span_id().SerializeToString(), PROTOBUF, None,
                           "spanId must be 8 bytes"),
    "a parent id of 2 bytes": (_short_parent().SerializeToString(), PROTOBUF, None,
                               "parentSpanId must be 8 bytes"),
    "not gzip": (b"plain text", PROTOBUF, "gzip", "not valid gzip"),
    "truncated gzip": (gzip.compress(export(*invoice_sync()).SerializeToString())[:-20],
                       PROTOBUF, "gzip", "ends too early"),
    "gzip of bad protobuf": (gzip.compress(b"\xff\xff\xff"), PROTOBUF, "gzip",
                             "not a protobuf"),
    "gzip then garbage": (gzip.compress(b"") + b"garbage", PROTOBUF, "gzip",
                          "not valid gzip"),
    "gzip of a member too many": (members(export(*invoice_sync()).SerializeToString(),
                                          MAX_MEMBERS + 1), PROTOBUF, "gzip",
                                  f"more than {MAX_MEMBERS} members"),
    "gzip of empty members, in JSON": (gzip.compress(b"{}") + gzip.compress(b"", 0) * 50_000,
                                       JSON, "gzip", f"more than {MAX_MEMBERS} members"),
    "deflate then more": (zlib.compress(b"{}") + zlib.compress(b"{}"), JSON, "deflate",
                          "data after its end"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_a_malformed_body_is_a_400_status_in_the_requests_encoding_and_stores_nothing(
        api, case):
    body, encoding, coding, message = BAD_BODIES[case]
    accepted(send(api, export(*invoice_sync("d" * 32)[:2])))  # something kept already
    before = row_counts()
    headers = {"Content-Encoding": coding} if coding else {}
    response = api.post(URL, data=body, content_type=encoding, headers=headers)
    assert response.status_code == 400, (case, response.data[:300])
    assert response.mimetype == encoding
    status = read_status(response.data, encoding)
    assert message in status.message, status.message
    assert status.code == 3  # INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert bad_request.field_violations[0].description == status.message
    assert row_counts() == before


@pytest.mark.parametrize("content_type, coding", [
    ("text/plain", None), ("application/xml", None), (None, None), (PROTOBUF, "br"),
])
def test_other_content_types_and_codings_get_415(api, content_type, coding):
    headers = {"Content-Encoding": coding} if coding else {}
    response = api.post(URL, data=export(*invoice_sync()).SerializeToString(),
                        content_type=content_type, headers=headers)
    assert response.status_code == 415
    encoding = PROTOBUF if content_type == PROTOBUF else JSON
    assert response.mimetype == encoding
    assert read_status(response.data, encoding).message
    assert runs_stored() == 0


def test_a_body_past_the_limit_is_413_before_and_after_decompression(app, api):
    app.config["MAX_PAYLOAD_BYTES"] = 64 * 1024
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    large = b"\x00" * (65 * 1024)
    response = send(api, large)
    assert response.status_code == 413
    assert "larger than 65536 bytes" in read_status(response.data, PROTOBUF).message
    # a gzip bomb: 32 MB of zeros in 32 KB, stopped once 64 KB are inflated
    bomb = gzip.compress(b"\x00" * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    response = api.post(URL, data=bomb, content_type=JSON,
                        headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.mimetype == JSON
    assert "once decompressed" in response.json["message"]
    assert runs_stored() == 0


def test_spans_that_break_runwatchs_rules_are_rejected_alone_with_partial_success(api):
    trace = "e" * 32
    spans = invoice_sync(trace)
    spans[0].name = "Parse\ninvoices"  # a control character in a name
    spans[1].end_time_unix_nano = spans[1].start_time_unix_nano - 1  # ends before it starts
    for encoding in (PROTOBUF, JSON):
        response = send(api, export(*spans), encoding)
        partial = answer(response).partial_success
        if encoding == PROTOBUF:
            assert partial.rejected_spans == 2
            assert "control characters" in partial.error_message
            assert "finished_at is before started_at" in partial.error_message
        else:  # what was kept is kept; the two bad spans are rejected again
            assert response.json["partialSuccess"]["rejectedSpans"] == "2"
    assert [s["name"] for s in run_of(api, trace)["steps"]] == ["Post to billing"]


def test_a_root_with_a_bad_workflow_name_rejects_the_root_and_keeps_the_children(api):
    trace = "f" * 32
    spans = invoice_sync(trace)
    spans[3].attributes.add(key="runwatch.workflow", value=any_value("x" * 201))
    response = send(api, export(*spans))
    assert answer(response).partial_success.rejected_spans == 1
    assert "at most 200 characters" in answer(response).partial_success.error_message
    assert runs_stored() == 0
    accepted(send(api, export(*invoice_sync(trace)[3:])))  # the root again, now valid
    assert len(run_of(api, trace)["steps"]) == 3


# --- Credentials ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
@pytest.mark.parametrize("authorization, status", [
    (None, 401), ("Bearer rw_not-a-real-token", 401), ("Basic dXNlcjpwYXNz", 401),
    ("read", 403), ("admin", 200), ("ingest", 200),
])
def test_credentials_and_scopes(client, user, encoding, authorization, status):
    headers = {}
    if authorization in ("read", "admin", "ingest"):
        with connection():
            secret = create_token(user, authorization, [authorization])[1]
        headers["Authorization"] = f"Bearer {secret}"
    elif authorization:
        headers["Authorization"] = authorization
    response = send(client, export(*invoice_sync()), encoding, **headers)
    assert response.status_code == status
    assert response.mimetype == encoding
    if status == 200:
        assert runs_stored() == 1
        return
    rpc = read_status(response.data, encoding)
    assert rpc.code == (16 if status == 401 else 7)  # UNAUTHENTICATED, PERMISSION_DENIED
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status == 403:
        assert "needs the ingest or admin scope" in rpc.message
    assert runs_stored() == 0


# --- What is kept for traces whose root has not come --------------------------------------

def kept() -> tuple[int, int]:
    """Traces and spans kept."""
    with connection():
        spans = OtelSpans.select(peewee.fn.SUM(OtelSpans.size)).scalar() or 0
        return OtelTrace.select().count(), spans


@both_backends
def test_kept_spans_go_after_the_pending_time_and_the_root_then_starts_afresh(app, api,
                                                                             backend):
    from otel.store import Limits, purge
    from models.db import to_micros
    spans = invoice_sync()
    accepted(send(api, export(*spans[:3])))
    assert kept() == (1, 3)
    later = to_micros(datetime.now(timezone.utc)) + 3601 * 1_000_000
    with connection():
        assert purge(later, Limits(pending_seconds=3600)) == 1
    assert kept() == (0, 0)
    accepted(send(api, export(spans[3])))
    assert run_of(api, TRACE)["steps"] == []  # its children were let go


@both_backends
def test_at_most_pending_spans_are_kept_the_oldest_traces_going_whole(app, api, backend):
    app.config["OTLP_PENDING_SPANS"] = 10
    traces = [f"{n:x}" * 32 for n in range(1, 6)]
    for trace in traces:  # 3 children each, roots never sent
        accepted(send(api, export(*invoice_sync(trace)[:3])))
        assert kept()[1] <= 10
    assert kept() == (3, 9)
    with connection():
        left = {t for (t,) in OtelTrace.select(OtelTrace.trace_id).tuples()}
    assert left == set(traces[2:])
    accepted(send(api, export(invoice_sync(traces[4])[3])))  # a kept trace still joins
    assert len(run_of(api, traces[4])["steps"]) == 3


def test_a_trace_keeps_at_most_max_steps_per_run_spans_besides_its_root(app, api):
    app.config["MAX_STEPS_PER_RUN"] = 2
    response = send(api, export(*invoice_sync()))
    partial = answer(response).partial_success
    assert partial.rejected_spans == 1
    assert "more than 2 spans besides its root" in partial.error_message
    assert len(run_of(api, TRACE)["steps"]) == 2


def test_an_export_carries_at_most_max_steps_per_request_spans(app, api):
    app.config["MAX_STEPS_PER_REQUEST"] = 3
    partial = answer(send(api, export(*invoice_sync()))).partial_success
    assert partial.rejected_spans == 1
    assert "at most 3 spans" in partial.error_message
    assert runs_stored() == 0  # the root was the fourth


# --- The real OpenTelemetry SDK and its OTLP/HTTP exporter, to a live server ---------------

def workflow(tracer, number: int) -> None:
    """An instrumented run: nested spans, attributes, an exception recorded on a child (the
    SDK records it as the span ends), ERROR status on the root."""
    from opentelemetry.trace import Status as SdkStatus, StatusCode

    with tracer.start_as_current_span("invoice-sync", attributes={
            "runwatch.input": json.dumps({"batch": number}), "host": "worker-1"}) as root:
        with tracer.start_as_current_span("fetch", attributes={
                "runwatch.action": "http.get"}) as fetch:
            with tracer.start_as_current_span("parse", attributes={"rows": 3}) as parse:
                parse.add_event("cache miss", {"key": f"inv-{number}"})
            fetch.set_attribute("runwatch.output", json.dumps({"count": 3}))
        try:
            with tracer.start_as_current_span("post"):
                raise ConnectionError(f"HTTP 502 from billing (batch {number})")
        except ConnectionError:
            root.set_status(SdkStatus(StatusCode.ERROR, "post failed"))


def tracer_provider(exporter, processor: str = "batch"):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "billing"}))
    provider.add_span_processor((BatchSpanProcessor if processor == "batch"
                                 else SimpleSpanProcessor)(exporter))
    return provider


def assert_failed_run(run: dict, number: int) -> None:
    assert (run["workflow"], run["status"]) == ("invoice-sync", "failure")
    assert run["input"] == {"batch": number}
    assert [(s["position"], s["name"]) for s in run["steps"]] == [
        (0, "fetch"), (1, "parse"), (2, "post")]
    fetch, parse, post = run["steps"]
    assert (fetch["action"], fetch["output"]) == ("http.get", {"count": 3})
    assert parse["action"] == "tests.otlp" and parse["input"] == {"rows": 3}
    assert parse["logs"].endswith(f'cache miss {{"key":"inv-{number}"}}')
    assert run["failed_step"] == 2 and post["status"] == "failure"
    message = f"HTTP 502 from billing (batch {number})"
    assert post["error"]["type"] == "ConnectionError" and post["error"]["message"] == message
    assert "Traceback (most recent call last)" in post["error"]["stack"]
    assert 'raise ConnectionError(f"HTTP 502 from billing' in post["error"]["stack"]
    assert run["error"] == post["error"]  # the root recorded none: the failed step's


@both_backends
def test_the_sdk_reports_failing_runs_and_the_alert_fires_after_n_of_them(
        app, api, backend, live_server, live_token, receiver):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    from alert_servers import make_rule
    from alerts.config import config_from
    from alerts.delivery import deliver_due
    from alerts.scheduler import scan

    app.config["WEBHOOK_ALLOW_PRIVATE"] = True  # the receiver listens on 127.0.0.1
    with connection():
        make_rule(3, [{"type": "webhook", "url": receiver.url}], workflow="invoice-sync")
    exporter = OTLPSpanExporter(endpoint=f"{live_server.url}{URL}", timeout=10,
                                headers={"Authorization": f"Bearer {live_token}"})
    provider = tracer_provider(exporter)
    tracer = provider.get_tracer("tests.otlp")

    def scan_and_deliver() -> None:
        settings = config_from(app)
        with connection():
            scan(settings)
            deliver_due(settings)

    for number in range(3):
        workflow(tracer, number)
        assert provider.force_flush(10_000)
        if number == 1:
            scan_and_deliver()
            assert receiver.requests == []  # two failures in a row: below the threshold
    provider.shutdown()
    with connection():
        ids = [e.id for e in Execution.select(Execution.id).order_by(Execution.started_at)]
    assert len(ids) == 3
    for number, execution_id in enumerate(ids):
        assert_failed_run(detail(api, execution_id), number)
    scan_and_deliver()
    [notice] = receiver.wait_for(1)
    body = notice.json()
    assert body["type"] == "workflow.failing"
    assert body["data"]["workflow"] == "invoice-sync"

@pytest.mark.long(6)

def test_the_exporter_as_configured_by_its_environment_sends_each_span_alone_and_again(
        api, live_server, live_token, monkeypatch):
    """SimpleSpanProcessor: every span is its own export as it ends, children before their
    root; gzip and the headers from OTEL_EXPORTER_OTLP_* as the docs give them. Then the
    same spans exported again change nothing, and a bad token is refused."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{live_server.url}{URL}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{live_token}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    sent = []

    class Counting(OTLPSpanExporter):
        def export(self, spans):
            result = super().export(spans)
            sent.append((len(spans), result))
            return result

    provider = tracer_provider(Counting(), processor="simple")
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    workflow(provider.get_tracer("tests.otlp"), 7)
    provider.shutdown()
    assert sent == [(1, SpanExportResult.SUCCESS)] * 4  # parse, fetch, post, then the root
    with connection():
        [execution] = Execution.select()
    assert_failed_run(detail(api, execution.id), 7)
    before = row_counts()
    again = OTLPSpanExporter()
    assert again.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    assert row_counts() == before
    refused = OTLPSpanExporter(headers={"Authorization": "Bearer rw_not-a-real-token"})
    assert refused.export(memory.get_finished_spans()) == SpanExportResult.FAILURE
    assert row_counts() == before


def test_the_other_otlp_signals_are_not_served_and_never_answer_with_a_page(client, api):
    for path in ("/v1/metrics", "/v1/logs"):
        response = client.post(path, data=b"", content_type=PROTOBUF)
        assert response.status_code == 401, path
        response = api.post(path, data=b"", content_type=PROTOBUF)
        assert response.status_code == 404, path
        assert response.mimetype == JSON


def test_a_database_that_does_not_answer_is_a_503_status_with_retry_after(api, monkeypatch):
    from otel import store

    def unavailable(*args, **kwargs):
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "store_executions", unavailable)
    response = send(api, export(*invoice_sync()))
    assert response.status_code == 503
    assert response.mimetype == PROTOBUF
    assert "does not answer" in read_status(response.data, PROTOBUF).message
    assert response.headers["Retry-After"] == "5"
    assert row_counts()["otel_spans"] == 0  # the whole export was rolled back


def test_attribute_values_json_cannot_hold_are_kept_as_text(api):
    deep = "[" * 300 + "]" * 300  # deeper than the API's JSON parser goes
    spans = [span(TRACE, FETCH, "fetch", 1, 2, parent=ROOT,
                  attributes={"runwatch.input": deep, "runwatch.output": '{"n": NaN}'}),
             span(TRACE, ROOT, "w", 0, 3, attributes={
                 "nan": float("nan"), "inf": float("-inf"), "big": 2 ** 62, "pi": 3.5})]
    spans[1].attributes.add(key="raw", value=AnyValue(bytes_value=b"\x00\xff"))
    accepted(send(api, export(*spans)))
    run = run_of(api, TRACE)
    assert run["input"] == {"nan": "NaN", "inf": "-Infinity", "big": 2 ** 62, "pi": 3.5,
                            "raw": "AP8="}
    assert run["steps"][0]["input"] == deep and run["steps"][0]["output"] == '{"n": NaN}'


# --- Exports of one trace at the same time ----------------------------------------------

@both_backends
def test_parts_of_the_same_traces_sent_at_once_from_several_threads_make_whole_runs(
        app, api, backend):
    import random
    import threading

    traces = [f"{n:032x}" for n in range(1, 13)]
    parts = []
    for trace in traces:
        spans = invoice_sync(trace)
        parts += [[spans[0]], [spans[1], spans[2]], [spans[3]], spans]  # the whole once more
    random.Random(7).shuffle(parts)
    failures = []

    def sender(mine: list) -> None:
        client = app.test_client()
        for part in mine:
            response = send(client, export(*part), **api.headers)
            if response.status_code != 200 or response.data:
                failures.append((response.status_code, response.data[:200]))

    threads = [threading.Thread(target=sender, args=(parts[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures
    reference = "f" * 32
    accepted(send(api, export(*invoice_sync(reference))))
    for trace in traces:
        assert same_run(run_of(api, trace)) == same_run(run_of(api, reference)), trace


def test_a_trace_kept_by_another_export_while_this_one_was_put_together_is_done_again(
        api, monkeypatch):
    from otel import store

    spans = invoice_sync()
    accepted(send(api, export(*spans[:2])))
    # As if the other export had come between this one's first reading and its lock.
    monkeypatch.setattr(store, "_kept_by_trace_id", lambda trace_ids: {})
    accepted(send(api, export(*spans[2:])))
    assert [s["name"] for s in run_of(api, TRACE)["steps"]] == [
        "Fetch invoices", "Parse invoices", "Post to billing"]


def test_a_trace_whose_root_starts_inside_a_maintenance_window_is_a_marked_run(app, api):
    answer = api.post("/api/automations/maintenance", json={
        "workflow": "nightly", "starts_at": "2025-05-31T23:00:00Z",
        "ends_at": "2025-06-01T01:00:00Z"})
    assert answer.status_code == 201, answer.json
    assert send(api, export(span(TRACE, "00f067aa0ba902b7", "nightly", 0, 1000))) \
        .status_code == 200
    assert run_of(api, TRACE)["maintenance"] is True
