"""OTLP/HTTP as its specification says: reading a trace export and writing the answers.

Bodies are binary protobuf (`application/x-protobuf`) or the protobuf JSON mapping
(`application/json`, with trace and span ids as hex strings), gzip-compressed or not
(deflate too, which the Python SDK can send), decoded with the `opentelemetry-proto` message classes. Answers use the request's encoding:
an `ExportTraceServiceResponse`, or a `google.rpc.Status` for every error.
"""
from __future__ import annotations

import base64
import functools
import json
import zlib
from dataclasses import dataclass

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = (PROTOBUF, JSON)
CHUNK = 64 * 1024  # gzip is inflated this many bytes at a time, so a bomb stops at the limit
# A gzip body may be several members one after the other (`cat a.gz b.gz`); exporters send
# one. Each costs a decompressor of its own, so a body of tiny members is refused past this.
MAX_MEMBERS = 1000
# Compressed bytes handed to a member's decompressor at first, doubled up to CHUNK while it
# lasts: what zlib copies from past a member's end stays in proportion to the member.
FIRST_FEED = 1024

# The google.rpc code that goes with each HTTP status Runwatch answers with.
RPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED,
             403: code_pb2.PERMISSION_DENIED, 404: code_pb2.NOT_FOUND,
             405: code_pb2.UNIMPLEMENTED, 413: code_pb2.RESOURCE_EXHAUSTED,
             415: code_pb2.UNIMPLEMENTED, 429: code_pb2.RESOURCE_EXHAUSTED,
             503: code_pb2.UNAVAILABLE}


class BadRequest(ValueError):
    """A body that cannot be read (400), too large (413) or of an unknown type (415);
    `field` names where in the body, when known."""

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message, self.status, self.field = message, status, field


def encoding_of(mimetype: str) -> str:
    """The encoding of the answers: protobuf when the request was protobuf, else JSON."""
    return PROTOBUF if mimetype == PROTOBUF else JSON


def inflate(body: bytes, content_encoding: str, limit: int) -> bytes:
    """The body without its content coding (gzip, deflate or none), refused past `limit`
    bytes once decompressed (413) and past MAX_MEMBERS gzip members (400).

    The members are walked by their offset in the body, never by copying what follows
    each (zlib's `unused_data`), so the time grows with the body's size, not its square.
    """
    coding = content_encoding.strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "x-gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {content_encoding!r} is not supported: send gzip, "
                         "deflate or nothing.", 415)
    wbits = zlib.MAX_WBITS if coding == "deflate" else 16 + zlib.MAX_WBITS
    view = memoryview(body)
    parts, size, offset, members = [], 0, 0, 0
    try:
        while True:  # a gzip body may hold several members, one after the other
            members += 1
            if members > MAX_MEMBERS:
                raise BadRequest(f"The {coding} body holds more than {MAX_MEMBERS} members.")
            stream = zlib.decompressobj(wbits=wbits)
            feed = FIRST_FEED
            while not stream.eof:
                given = view[offset:offset + feed]
                piece = stream.decompress(given, CHUNK)
                # What zlib did not take waits in unconsumed_tail (output full) or, past the
                # member's end, in unused_data: both at most `feed` bytes.
                taken = len(given) - len(stream.unconsumed_tail) - len(stream.unused_data)
                offset += taken
                if not piece and not taken and not stream.eof:
                    raise BadRequest(f"The {coding} body ends too early.")
                size += len(piece)
                if size > limit:
                    raise BadRequest(f"The request body is larger than {limit} bytes once "
                                     "decompressed.", 413)
                parts.append(piece)
                feed = min(2 * feed, CHUNK)
            if offset == len(view):
                return b"".join(parts)
            if coding == "deflate":
                raise BadRequest("The deflate body has data after its end.")
    except zlib.error as exc:
        raise BadRequest(f"The body is not valid {coding}: {exc}.") from None


def parse(body: bytes, encoding: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from its binary or JSON encoding, ids checked."""
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise BadRequest(f"The body is not a protobuf ExportTraceServiceRequest: {exc}")
    else:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("The body is not valid JSON.") from None
        if not isinstance(document, dict):
            raise BadRequest("The body must be a JSON object (an ExportTraceServiceRequest).")
        try:
            _check_shapes(document, request.DESCRIPTOR, "")
            _ids_from_hex(document)
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except BadRequest:
            raise
        except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
            raise BadRequest(f"{_NOT_AN_EXPORT}: {exc}") from None
    check_ids(request)
    return request


_NOT_AN_EXPORT = "The body is not an ExportTraceServiceRequest"


def _check_shapes(value: dict, descriptor, where: str) -> None:
    """Refuse anything but an object where the message holds a message, at any depth: the
    protobuf parser, told to skip unknown fields, reads a string there as names of fields
    it does not know, so `"resourceSpans": ["text"]` would pass as one empty message."""
    fields = _message_fields(descriptor)
    for name, item in value.items():
        if item is None or name not in fields:
            continue  # null, a scalar or an unknown (skipped) field: the parser's own checks
        kind, repeated, is_map = fields[name]
        path = f"{where}.{name}" if where else name
        elements = [(path, item)]
        if repeated:
            if not isinstance(item, list):
                raise BadRequest(f"{_NOT_AN_EXPORT}: {path} must be a list of {kind.name} "
                                 "objects.", field=path)
            elements = [(f"{path}[{n}]", each) for n, each in enumerate(item)
                        if each is not None]  # null in a list: the parser names it
        for at, element in elements:
            if not isinstance(element, dict):
                raise BadRequest(f"{_NOT_AN_EXPORT}: {at} must be an object ({kind.name}), "
                                 f"not {json.dumps(element)[:80]}.", field=at)
            if not is_map:
                _check_shapes(element, kind, at)


@functools.cache
def _message_fields(descriptor) -> dict[str, tuple]:
    """A message's fields that hold messages, by both their JSON and .proto names: (the
    message type, whether a list, whether a map)."""
    found = {}
    for field in descriptor.fields:
        kind = field.message_type
        if kind is not None:
            is_map = kind.GetOptions().map_entry
            found[field.json_name] = found[field.name] = (kind, field.is_repeated and not is_map,
                                                          is_map)
    return found


# Where OTLP JSON holds ids, by message: field names as the JSON mapping writes them, and as
# the .proto does (which the protobuf JSON parser also takes).
_SPAN_IDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_IDS = ("traceId", "trace_id", "spanId", "span_id")


def _items(container, *names: str) -> list:
    """The list under the first of `names` that `container` holds (nothing if not a list)."""
    if isinstance(container, dict):
        for name in names:
            if name in container:
                found = container[name]
                return found if isinstance(found, list) else []
    return []


def _ids_from_hex(document: dict) -> None:
    """OTLP JSON writes trace and span ids in hex, where the protobuf JSON mapping expects
    base64: rewrite them in place so the standard parser reads them."""
    for r, resource_spans in enumerate(_items(document, "resourceSpans", "resource_spans")):
        for s, scope_spans in enumerate(_items(resource_spans, "scopeSpans", "scope_spans")):
            for n, span in enumerate(_items(scope_spans, "spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                _rewrite(span, _SPAN_IDS, where)
                for k, link in enumerate(_items(span, "links")):
                    _rewrite(link, _LINK_IDS, f"{where}.links[{k}]")


def _rewrite(message, names: tuple[str, ...], where: str) -> None:
    if not isinstance(message, dict):
        return
    for name in names:
        text = message.get(name)
        if not isinstance(text, str):
            continue  # absent, or a type the parser will refuse
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise BadRequest(f"{where}.{name} must be a hex string, not {text[:80]!r}.",
                             field=f"{where}.{name}") from None
        message[name] = base64.b64encode(raw).decode("ascii")


_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def check_ids(request: ExportTraceServiceRequest) -> None:
    """Refuse ids that are not what the trace data model says: a 16-byte trace id and an
    8-byte span id, neither all zeros; a parent span id of 8 bytes or none."""
    for r, resource_spans in enumerate(request.resource_spans):
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for n, span in enumerate(scope_spans.spans):
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    problem = "traceId must be 16 bytes (32 hex digits), not all zero"
                elif len(span_id) != 8 or span_id == _ZERO_SPAN:
                    problem = "spanId must be 8 bytes (16 hex digits), not all zero"
                elif parent and (len(parent) != 8 or parent == _ZERO_SPAN):
                    problem = "parentSpanId must be 8 bytes (16 hex digits) or empty"
                else:
                    continue
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{n}]"
                raise BadRequest(f"{where}.{problem}.", field=f"{where}.{problem.split()[0]}")


def encode(message: Message, encoding: str) -> bytes:
    """A message in the answer's encoding."""
    if encoding == PROTOBUF:
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


@dataclass(frozen=True)
class Answer:
    """What the view sends: status, body and its content type."""

    status: int
    body: bytes
    mimetype: str


def export_answer(rejected: int, message: str, encoding: str) -> Answer:
    """200 with an ExportTraceServiceResponse; `partial_success` only when spans were
    rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return Answer(200, encode(response, encoding), encoding)


def status_answer(status: int, message: str, encoding: str, field: str | None = None) -> Answer:
    """An error as a google.rpc.Status; bad data carries a google.rpc.BadRequest naming
    where in the body."""
    rpc = status_pb2.Status(code=RPC_CODES.get(status, code_pb2.UNKNOWN), message=message)
    if status == 400:
        detail = error_details_pb2.BadRequest()
        detail.field_violations.add(field=field or "body", description=message)
        rpc.details.add().Pack(detail)
    return Answer(status, encode(rpc, encoding), encoding)


def read_status(body: bytes, encoding: str) -> status_pb2.Status:
    """A google.rpc.Status answer read back (for tests and clients)."""
    status = status_pb2.Status()
    if encoding == PROTOBUF:
        status.ParseFromString(body)
    else:
        json_format.Parse(body, status, ignore_unknown_fields=True)
    return status


__all__ = ["PROTOBUF", "JSON", "BadRequest", "Answer", "inflate", "parse", "check_ids",
           "encoding_of", "export_answer", "status_answer", "read_status"]


# --- What the API document says of POST /v1/traces -------------------------------------------
# The JSON encoding's shapes, loosely (the .proto files are the reference); the protobuf
# encoding is bytes.

_PROTOBUF_BODY = {"schema": {"type": "string", "contentMediaType": PROTOBUF}}
REQUEST_CONTENT = {
    PROTOBUF: _PROTOBUF_BODY,
    JSON: {"schema": {
        "type": "object", "description": "An ExportTraceServiceRequest in the OTLP JSON "
        "encoding (trace and span ids in hex, enums as integers).",
        "properties": {"resourceSpans": {"type": ["array", "null"],  # null: none, as in JSON
                                         "items": {"type": "object"}}}}},  # for protobuf
}
RESPONSE_CONTENT = {
    PROTOBUF: _PROTOBUF_BODY,
    JSON: {"schema": {
        "type": "object", "description": "An ExportTraceServiceResponse; `partialSuccess` "
        "only when spans were rejected.",
        "properties": {"partialSuccess": {"type": "object", "properties": {
            "rejectedSpans": {"type": ["string", "integer"]},
            "errorMessage": {"type": "string"}}}}}},
}
STATUS_CONTENT = {
    PROTOBUF: _PROTOBUF_BODY,
    JSON: {"schema": {
        "type": "object", "description": "A google.rpc.Status: `message` says what is wrong; "
        "a 400 carries a google.rpc.BadRequest in `details`.",
        "required": ["message"],
        "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                       "details": {"type": "array", "items": {"type": "object"}}}}},
}
