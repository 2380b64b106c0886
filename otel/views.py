"""OpenTelemetry intake: `POST /v1/traces` takes OTLP/HTTP trace exports.

Every answer is in the request's encoding (protobuf, or JSON): an
`ExportTraceServiceResponse` on success, a `google.rpc.Status` on any error, including the
guard's 401 and 403 and a 503 while the database is away.
"""
from __future__ import annotations

from flask import Blueprint, Response, current_app, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from otel.mapping import Outcome, map_export
from otel.otlp import (ENCODINGS, REQUEST_CONTENT, RESPONSE_CONTENT, STATUS_CONTENT, Answer,
                       BadRequest, encoding_of, export_answer, inflate, parse, status_answer)
from otel.store import Limits, ingest

from views.common import with_headers_of
from views.operations import Operation

bp = Blueprint("otlp", __name__)
# What the API document says of `POST /v1/traces`: OTLP's own content types and answers.
OPERATIONS = {
    "otlp.traces": Operation({200: None}, REQUEST_CONTENT,
                             errors={415: "Neither protobuf nor JSON, or a Content-Encoding "
                                          "other than gzip."},
                             answer_content=RESPONSE_CONTENT, error_content=STATUS_CONTENT),
}


def limits() -> Limits:
    """The limits the settings give."""
    config = current_app.config
    return Limits(pending_spans=config["OTLP_PENDING_SPANS"],
                  pending_seconds=config["OTLP_PENDING_SECONDS"],
                  steps_per_run=config["MAX_STEPS_PER_RUN"],
                  spans_per_export=config["MAX_STEPS_PER_REQUEST"])


def _send(answer: Answer) -> Response:
    g.otlp_answered = True
    return Response(answer.body, status=answer.status, mimetype=answer.mimetype)


def _encoding() -> str:
    return encoding_of(request.mimetype)


@bp.post("/v1/traces")
def traces():
    """Take an OTLP/HTTP trace export: one run per trace, its root span the run and the
    other spans its steps.

    The body is an `ExportTraceServiceRequest`, binary protobuf (`application/x-protobuf`)
    or JSON (`application/json`, ids in hex), gzip-compressed (`Content-Encoding: gzip`) or
    not. The answer is an `ExportTraceServiceResponse` in the same encoding, with
    `partial_success` when some spans were rejected; errors are a `google.rpc.Status`.
    """
    if request.mimetype not in ENCODINGS:
        raise BadRequest(f"Content-Type {request.mimetype or '(none)'!r} is not supported: "
                         "send application/x-protobuf or application/json.", 415)
    config = current_app.config
    body = inflate(request.get_data(cache=False), request.headers.get("Content-Encoding", ""),
                   config["MAX_PAYLOAD_BYTES"])
    export = parse(body, _encoding())
    settings = limits()
    outcome = Outcome()
    spans = map_export(export, settings.spans_per_export, outcome)
    ingest(spans, settings, outcome)
    return _send(export_answer(outcome.rejected, outcome.message() if outcome.rejected else "",
                               _encoding()))


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return _send(status_answer(exc.status, exc.message, _encoding(), exc.field))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    message = exc.description or exc.name
    if exc.code == 413:
        message = (f"The request body is larger than {current_app.config['MAX_PAYLOAD_BYTES']} "
                   "bytes.")
    return with_headers_of(exc, _send(status_answer(exc.code or 500, message, _encoding())))


@bp.after_request
def _as_status(response: Response) -> Response:
    """Answers made elsewhere (the guard's 401 and 403, the 503 of a database that does not
    answer) become a google.rpc.Status too, their headers kept."""
    if response.status_code < 400 or g.get("otlp_answered"):
        return response
    message = HTTP_STATUS_CODES.get(response.status_code, "Error")
    if response.is_json:
        error = (response.get_json(silent=True) or {}).get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            message = error["message"]
    answer = status_answer(response.status_code, message, _encoding())
    response.set_data(answer.body)
    response.mimetype = answer.mimetype
    return response
