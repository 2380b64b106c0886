"""The API's OpenAPI 3.1 document, `GET /api/openapi.json`.

Built from what already exists, so it cannot drift: the routes from Flask's URL map, each
operation's summary from its view's docstring, request bodies from the pydantic schemas
that validate them, query parameters from the parsers' own declarations, and answers
from the response models. `OPERATIONS` (the core's) and the operations each feature
registers say, per endpoint, which of those it uses; a route under a documented prefix
without an entry fails the tests.
"""
from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema
from werkzeug.routing import AnyConverter, PathConverter, Rule, UUIDConverter
from werkzeug.routing.converters import NumberConverter

from models.schemas import (BatchAnswer, BatchIn, ErrorDocument, ExecutionAnswer, ExecutionIn,
                            ExecutionPatch, ExecutionSummary, Ping, QueryParam, StepsIn)

from .operations import Operation, operations_of

bp = Blueprint("openapi", __name__)

# Routes whose paths start with one of these are the API the document describes.
DOCUMENTED_PREFIXES = ("/api/", "/v1/")
REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerToken"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


STORED_START = ("`finished_at` is before the start of the run as stored (code `conflict`): "
                "a run reported again, or changed, by its `external_id` or id.")

# One entry per endpoint of the core under DOCUMENTED_PREFIXES; each feature registers its
# own (views/operations.py).
OPERATIONS: dict[str, Operation] = {
    "auth.ping": Operation({200: Ping}),
    "openapi.document": Operation({200: {"type": "object", "required": ["openapi", "paths"]}}),
    "ingest.create": Operation({201: ExecutionSummary, 200: ExecutionSummary}, ExecutionIn,
                               errors={409: STORED_START}),
    "ingest.create_batch": Operation({201: BatchAnswer}, BatchIn, errors={409: STORED_START}),
    "ingest.update": Operation({200: ExecutionSummary}, ExecutionPatch,
                               errors={409: STORED_START}),
    "ingest.steps": Operation({200: ExecutionSummary}, StepsIn),
    "executions.api_detail": Operation({200: ExecutionAnswer}),
}

ERROR_MEANINGS = {
    400: "Bad input: the message says what is wrong and `field` names it. A write made "
         "with a browser session also needs the `X-CSRFToken` header (code `csrf`).",
    401: "No valid credentials (also for ids that do not exist: 401 comes before 404).",
    403: "The token lacks the scope this operation needs (code `forbidden`).",
    404: "There is no such thing (code `not_found`).",
    413: "The request body is larger than `RUNWATCH_MAX_PAYLOAD_BYTES` allows, or carries "
         "more steps than `RUNWATCH_MAX_STEPS_PER_REQUEST` / `_PER_RUN` (code `too_many_steps`).",
    414: "The query string is longer than the HTTP server in front takes (gunicorn: a request "
         "line of 4094 bytes); its answer is its own.",
    503: "The database does not answer (code `unavailable`); try again after `Retry-After` "
         "seconds.",
}
ANSWER_MEANINGS = {200: "OK", 201: "Created", 204: "Done; no content"}


@bp.get("/api/openapi.json")
def document():
    """This API's OpenAPI 3.1 document."""
    app = current_app._get_current_object()
    if "openapi" not in app.extensions:  # the URL map is complete once the app serves
        app.extensions["openapi"] = build_document(app)
    return jsonify(app.extensions["openapi"])


def documented_rules(app: Flask) -> list[Rule]:
    """The URL map's rules that belong to the API, in path order."""
    return sorted((rule for rule in app.url_map.iter_rules()
                   if rule.rule.startswith(DOCUMENTED_PREFIXES)), key=lambda r: r.rule)


def methods_of(rule: Rule) -> list[str]:
    """The methods a rule answers, less the ones Flask adds by itself."""
    return sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})


def openapi_path(rule: Rule) -> str:
    """`/api/x/<int:id>` as OpenAPI writes it: `/api/x/{id}`."""
    return re.sub(r"<(?:[^<>]*:)?(\w+)>", r"{\1}", rule.rule)


def build_document(app: Flask) -> dict:
    """The OpenAPI 3.1 document of every documented route that has an entry in `OPERATIONS`
    or among the features' (`operations_of(app)`)."""
    operations = {**OPERATIONS, **operations_of(app)}
    found = [(rule, method, operations[rule.endpoint]) for rule in documented_rules(app)
             for method in methods_of(rule) if rule.endpoint in operations]
    refs, schemas = _model_schemas([op for _, _, op in found])
    paths: dict[str, dict] = {}
    for rule, method, operation in found:
        paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(
            app, rule, method, operation, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Runwatch API", "version": _version(),
                 "description": "Report the runs of your automations, read their history "
                                "and details, and manage failure alerts. Errors are always "
                                '`{"error": {"code", "message", "field"?}}`.'},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "An API token from Settings or `flask --app app tokens create "
                               "EMAIL`. A signed-in browser session is accepted too; its "
                               "writes need the `X-CSRFToken` header."}},
        },
        "security": [{SECURITY_SCHEME: []}],
    }


def _version() -> str:
    try:
        return metadata.version("runwatch")
    except metadata.PackageNotFoundError:
        return "unreleased"


def _model_schemas(operations: list[Operation]) -> tuple[dict, dict]:
    """JSON Schemas of every model, as components: request bodies as they are validated,
    answers as they are written."""
    wanted: dict[tuple, None] = {(ErrorDocument, "serialization"): None}
    for op in operations:
        if isinstance(op.body, type):
            wanted[(op.body, "validation")] = None
        for answer in op.answers.values():
            if isinstance(answer, type):
                wanted[(answer, "serialization")] = None
    refs, top = models_json_schema(list(wanted), ref_template=REF)
    return refs, top.get("$defs", {})


def _operation(app: Flask, rule: Rule, method: str, op: Operation, refs: dict) -> dict:
    view = app.view_functions[rule.endpoint]
    summary, _, description = (view.__doc__ or rule.endpoint).strip().partition("\n")
    out: dict[str, Any] = {
        "operationId": rule.endpoint if len(methods_of(rule)) == 1
        else f"{rule.endpoint}.{method.lower()}",
        "summary": summary.strip(),
        "tags": [rule.endpoint.partition(".")[0]],
    }
    if description.strip():
        out["description"] = description.strip()
    parameters = [_path_parameter(name, converter)
                  for name, converter in rule._converters.items()]
    parameters += [_query_parameter(param) for param in op.query]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content = op.body if isinstance(op.body, dict) else {
            "application/json": {"schema": refs[(op.body, "validation")]}}
        out["requestBody"] = {"required": op.body_required, "content": content}
    responses: dict[str, dict] = {}
    for status, answer in op.answers.items():
        responses[str(status)] = _answer(ANSWER_MEANINGS.get(status, "OK"), answer, refs)
        if op.answer_content is not None:
            responses[str(status)]["content"] = op.answer_content
    errors = dict(ERROR_MEANINGS)
    if not (op.body is not None or op.query or method not in SAFE_METHODS):
        errors.pop(400)
    if not rule.arguments:
        errors.pop(404)
    if op.body is None:
        errors.pop(413)
    if not op.query:
        errors.pop(414)
    errors.update(op.errors)
    for status, meaning in sorted(errors.items()):
        responses[str(status)] = _answer(meaning, None if status == 414 else ErrorDocument,
                                         refs)
        if op.error_content is not None:
            responses[str(status)]["content"] = op.error_content
    responses["401"]["headers"] = {"WWW-Authenticate": {
        "required": True, "description": "Bearer", "schema": {"type": "string"}}}
    responses["503"]["headers"] = {"Retry-After": {
        "required": True, "description": "Seconds to wait", "schema": {"type": "string"}}}
    out["responses"] = dict(sorted(responses.items()))
    return out


def _answer(description: str, answer, refs: dict) -> dict:
    if answer is None:
        return {"description": description}
    schema = refs[(answer, "serialization")] if isinstance(answer, type) else answer
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str, converter) -> dict:
    if isinstance(converter, AnyConverter):
        schema: dict = {"type": "string", "enum": sorted(converter.items)}
    elif isinstance(converter, NumberConverter):
        schema = {"type": "integer" if converter.num_convert is int else "number"}
        if not converter.signed:
            schema["minimum"] = 0
        if converter.min is not None:
            schema["minimum"] = converter.min
        if converter.max is not None:
            schema["maximum"] = converter.max
    elif isinstance(converter, UUIDConverter):
        schema = {"type": "string", "format": "uuid"}
    elif isinstance(converter, PathConverter):
        schema = {"type": "string", "minLength": 1}
    else:  # a plain string: one path segment
        schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query_parameter(param: QueryParam) -> dict:
    schema = _plain(TypeAdapter(param.type).json_schema(ref_template=REF, by_alias=True))
    if param.repeated:
        schema = {"type": "array", "items": schema}
    out = {"name": param.name, "in": "query", "required": False,
           "description": param.description}
    if param.group == "json":  # one JSON text
        return {**out, "content": {"application/json": {"schema": schema}}}
    # Every parser reads an empty value as none given (as an HTML form sends it).
    return {**out, "allowEmptyValue": True, "schema": schema,
            **({"style": "form", "explode": True} if param.repeated else {})}


def _plain(schema: Any) -> Any:
    """A schema without pydantic's titles."""
    if isinstance(schema, dict):
        return {key: _plain(value) for key, value in schema.items()
                if not (key == "title" and isinstance(value, str))}
    if isinstance(schema, list):
        return [_plain(value) for value in schema]
    return schema
