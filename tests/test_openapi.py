"""The API document `/api/openapi.json`, and the API held to it by schemathesis."""
from __future__ import annotations

import json
import os
import socket
import traceback

import hypothesis
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from alerts import notices
from alerts.schemas import RuleIn
from helpers import URL, add_steps, report
from history import filters
from models.schemas import ExecutionIn
from otel import otlp
from views.openapi import OPERATIONS, REF, documented_rules, methods_of, openapi_path

DOCUMENT = "/api/openapi.json"


@pytest.fixture
def app_config(app_config):
    # The seeded rules send to a receiver on 127.0.0.1; the fuzzer's own webhook
    # addresses are redirected there too (see `local_webhooks`).
    return {**app_config, "WEBHOOK_ALLOW_PRIVATE": True}


@pytest.fixture
def document(api) -> dict:
    response = api.get(DOCUMENT)
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/json"
    return response.json


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


# --- The document ---------------------------------------------------------------------------

def test_the_document_needs_credentials_like_every_api_route(client, user):
    response = client.get(DOCUMENT)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_signed_in_session_reads_the_document_too(logged_in):
    response = logged_in.get(DOCUMENT)
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.1")


def test_the_document_is_valid_openapi_3_1(document):
    validate_openapi(document)
    assert document["openapi"] == "3.1.0"


def test_every_api_route_of_the_url_map_is_in_the_document_and_nothing_else(app, document):
    in_url_map = {(method, openapi_path(rule)) for rule in documented_rules(app)
                  for method in methods_of(rule)}
    in_document = {(method, path) for method, path, _ in _operations(document)}
    assert in_url_map, "the URL map has no API routes"
    assert not in_url_map - in_document, (
        "routes without an entry in views.openapi.OPERATIONS: "
        f"{sorted(in_url_map - in_document)}")
    assert not in_document - in_url_map, f"documented but not served: " \
                                         f"{sorted(in_document - in_url_map)}"
    assert ("GET", "/api/openapi.json") in in_document


def test_every_declared_operation_is_a_route(app):
    served = {rule.endpoint for rule in documented_rules(app)}
    assert set(OPERATIONS) <= served, sorted(set(OPERATIONS) - served)


def test_every_route_outside_the_api_is_left_out(app, document):
    pages = {openapi_path(rule) for rule in app.url_map.iter_rules()
             if not rule.rule.startswith(("/api/", "/v1/"))}
    assert "/executions" in pages
    assert not pages & set(document["paths"])


def test_operations_say_what_their_views_say(document, app):
    found = {op["operationId"]: op for _, _, op in _operations(document)}
    assert found["ingest.create"]["summary"] == app.view_functions["ingest.create"] \
        .__doc__.strip()
    assert len(found) == sum(1 for _ in _operations(document))  # operation ids are unique


def test_request_bodies_are_the_schemas_that_validate_them(document):
    components = document["components"]["schemas"]
    schema = ExecutionIn.model_json_schema(ref_template=REF)
    schema.pop("$defs", None)
    assert components["ExecutionIn"] == schema
    body = document["paths"]["/api/automations/executions"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExecutionIn"}
    rule = components["RuleIn"]
    assert rule["required"] == [name for name, f in RuleIn.model_fields.items()
                                if f.is_required()]
    assert rule["properties"]["threshold"]["maximum"] == 1000
    assert set(rule["properties"]["channels"]["items"]["discriminator"]["mapping"]) == {
        "email", "webhook"}


def _query(document: dict, path: str) -> dict:
    return {p["name"]: p for p in document["paths"][path]["get"]["parameters"]
            if p["in"] == "query"}


def test_the_history_parameters_are_the_ones_its_parser_declares(document):
    params = _query(document, "/api/automations/executions")
    assert list(params) == [p.name for p in filters.PARAMETERS]
    assert list(params) == ["workflow", "status", "from", "to", "tz", "sort", "limit",
                            "cursor", "filter"]
    assert params["status"]["schema"] == {"type": "array", "items": {
        "type": "string", "enum": ["pending", "running", "success", "failure"]}}
    assert params["status"]["explode"] is True
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert params["sort"]["schema"]["enum"] == list(filters.SORTS)


def test_the_parser_reads_the_names_it_declares(api):
    """Each declared single-valued parameter given twice is refused by name."""
    for name in filters.SINGLE_VALUED:
        response = api.get(f"{URL}?{name}=1&{name}=2")
        assert response.status_code == 400, name
        assert response.json["error"]["field"] == name
    clash = api.get(URL + '?filter={}&status=failure')
    assert clash.status_code == 400 and clash.json["error"]["field"] == "filter"


def test_the_notice_log_parameters_are_the_ones_its_parser_declares(document, api):
    params = _query(document, "/api/automations/alerts/notices")
    assert list(params) == [p.name for p in notices.PARAMETERS] == [
        "rule", "status", "type", "limit", "cursor"]
    assert params["type"]["schema"]["enum"] == ["failing", "recovered", "missed", "resumed", "test"]
    for name, param in params.items():
        response = api.get(f"/api/automations/alerts/notices?{name}=nonsense")
        assert response.status_code == 400, name
        assert response.json["error"]["field"] == name
        if "maximum" in param["schema"]:
            too_big = param["schema"]["maximum"] + 1
            response = api.get(f"/api/automations/alerts/notices?{name}={too_big}")
            assert response.status_code == 400, name


def test_every_operation_documents_its_errors(document):
    for method, path, op in _operations(document):
        responses = op["responses"]
        error = {"$ref": "#/components/schemas/ErrorDocument"}
        if path.startswith("/v1/"):  # OTLP: a google.rpc.Status in the request's encoding
            error = otlp.STATUS_CONTENT["application/json"]["schema"]
            assert responses["401"]["content"] == otlp.STATUS_CONTENT
        for status in ("401", "403"):
            assert responses[status]["content"]["application/json"]["schema"] == error
        assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        assert ("404" in responses) == ("{" in path), (method, path)
        assert ("413" in responses) == ("requestBody" in op), (method, path)
        if "requestBody" in op or method != "GET":
            assert "400" in responses, (method, path)
    delete = document["paths"]["/api/automations/alerts/{rule_id}"]["delete"]
    assert "content" not in delete["responses"]["204"]
    assert "409" in document["paths"][
        "/api/automations/alerts/notices/{notice_id}/redeliver"]["post"]["responses"]


def test_path_parameters_follow_the_url_converters(document):
    params = document["paths"]["/api/automations/executions/{execution_id}"]["get"][
        "parameters"]
    assert params == [{"name": "execution_id", "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 0}}]


def test_the_bearer_scheme_covers_every_operation(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"bearerToken": {"type": "http", "scheme": "bearer",
                                       "description": schemes["bearerToken"]["description"]}}
    assert document["security"] == [{"bearerToken": []}]
    assert not any("security" in op for _, _, op in _operations(document))


def _validator(document: dict, name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_real_answers_match_their_schemas(document, api):
    run = report(api, {"workflow": "w", "status": "failure", "input": {"a": [1, None]},
                       "error": {"message": "boom", "type": "E"},
                       "steps": [{"name": "s", "output": {"n": 2}}]})
    add_steps(api, run, [{"name": "t", "status": "failure", "error": {"message": "x"}}])
    _validator(document, "ExecutionAnswer").validate(api.get(f"{URL}/{run}").json)
    _validator(document, "HistoryPage").validate(api.get(URL).json)
    bad = api.post(URL, json={"workflow": "w", "status": "broken"})
    assert bad.status_code == 400
    _validator(document, "ErrorDocument").validate(bad.json)
    rule = api.post("/api/automations/alerts", json={
        "threshold": 2, "channels": [{"type": "email", "to": ["a@example.com"]}]})
    assert rule.status_code == 201, rule.text
    _validator(document, "RuleAnswer").validate(rule.json)
    sent = api.post(f"/api/automations/alerts/{rule.json['id']}/test")
    _validator(document, "SentNotices").validate(sent.json)
    _validator(document, "NoticeList").validate(
        api.get("/api/automations/alerts/notices").json)


# --- Fuzzing: the API held to its document ---------------------------------------------------
# A short run is part of the suite; `python -m benchmarks.fuzz` runs this same test with
# RUNWATCH_FUZZ_EXAMPLES examples per operation and RUNWATCH_FUZZ_REPORT naming a file,
# where every example is written down and a failure does not stop the run.

EXAMPLES = int(os.environ.get("RUNWATCH_FUZZ_EXAMPLES", "20"))
REPORT = os.environ.get("RUNWATCH_FUZZ_REPORT")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse, inside this process, any connection or name lookup beyond 127.0.0.1: the
    fuzzer makes up webhook addresses, and nothing it makes up may leave the machine."""
    lookup, connect = socket.getaddrinfo, socket.socket.connect

    def local_lookup(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: not looked up in tests")
        return lookup(host, *args, **kwargs)

    def local_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
                "127.0.0.1", "::1"):
            raise ConnectionRefusedError(f"{address[0]}: tests connect to 127.0.0.1 only")
        return connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", local_lookup)
    monkeypatch.setattr(socket.socket, "connect", local_connect)


def seed(api, hook_url: str) -> None:
    """A few runs, rules and notices, so that the small ids the fuzzer tries often exist."""
    for n in range(3):
        run = report(api, {"workflow": f"w{n}", "external_id": f"e{n}", "status": "failure",
                           "started_at": "2026-01-01T10:00:00Z", "input": {"n": n},
                           "error": {"message": "boom", "type": "E", "stack": "line"}})
        add_steps(api, run, [{"name": "fetch", "status": "success"},
                             {"name": "post", "error": {"message": "HTTP 502"}}])
    for workflow in ("w0", None):
        rule = api.post("/api/automations/alerts", json={
            "workflow": workflow, "threshold": 2, "channels": [
                {"type": "webhook", "url": hook_url},
                {"type": "email", "to": ["ops@example.com"]}]})  # no mail server: fails
        assert rule.status_code == 201, rule.text
        assert api.post(f"/api/automations/alerts/{rule.json['id']}/test").status_code == 200


def local_webhooks(case, hook_url: str) -> None:
    """Point every webhook the fuzzer made up at the receiver on 127.0.0.1."""
    body = case.body
    if case.path.startswith("/api/automations/alerts") and isinstance(body, dict) \
            and isinstance(body.get("channels"), list):
        for channel in body["channels"]:
            if isinstance(channel, dict) and "url" in channel:
                channel["url"] = hook_url


def test_the_api_keeps_to_its_document(app, api, receiver, backend, loopback_only):
    """Every operation, with made-up input (schemathesis: explicit examples, boundary
    values, then random ones): never a 5xx, and each answer's status, content type,
    headers and body are the ones the document gives."""
    seed(api, receiver.url)
    schema = schemathesis.openapi.from_wsgi(DOCUMENT, app, headers=api.headers)
    schema.config.update(headers=api.headers)
    schema.config.generation.update(max_examples=EXAMPLES, with_security_parameters=False,
                                    deterministic=REPORT is None, database="none")
    app.logger.disabled = True  # an exception is told with its failing example instead

    def check(case) -> None:
        local_webhooks(case, receiver.url)
        try:
            # In process, an exception the app raises (a 500 behind a server) comes back
            # raised, with the example that caused it.
            response = case.call(headers=api.headers)
            case.validate_response(response, checks=CHECKS, headers=api.headers)
        except (Exception, BaseExceptionGroup) as exc:  # a FailureGroup is the latter
            _write_down(case, backend, exc)
            if REPORT is None:
                raise
            failing.append(case.operation.label)  # a long run goes on, and fails at the end
        else:
            _write_down(case, backend, None)

    settings = hypothesis.settings(deadline=None, database=None,
                                   suppress_health_check=list(hypothesis.HealthCheck))
    failed, failing, operations = [], [], 0
    for result in get_all_tests(schema=schema, test_func=check, settings=settings,
                                given_kwargs={}):
        operation, run = result.ok()  # an operation schemathesis cannot read raises here
        operations += 1
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation runs; all fail
            told = str(exc) if isinstance(exc, FailureGroup) else _described(exc)
            failed.append(f"{operation.label}: {told}\n"
                          + "\n".join(getattr(exc, "__notes__", [])))
    # schemathesis leaves out the document's own route; every other one runs
    assert operations == sum(len(methods_of(r)) for r in documented_rules(app)) - 1
    assert not failed, f"{len(failed)} of {operations} operations break their document " \
                       f"on {backend}:\n\n" + "\n\n".join(failed)
    assert not failing, f"{len(failing)} failing examples on {backend} (see the report)"


def _write_down(case, backend: str, failure: BaseException | None) -> None:
    """One line per example in the report file (when the fuzz benchmark asks for one)."""
    if REPORT is None:
        return
    line = {"backend": backend, "operation": case.operation.label, "failures": []}
    if isinstance(failure, FailureGroup):
        line["failures"] = sorted({each.title for each in failure.exceptions})
    elif failure is not None:
        line["failures"] = ["Server error (exception)"]
        line["exception"] = _described(failure)
    if failure is not None:
        line["example"] = case.as_curl_command(headers=dict(case.headers or {}))[:2000]
    with open(REPORT, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")


def _described(exc: BaseException) -> str:
    """An exception and the line of Runwatch's own code it came through last."""
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__)
              if "site-packages" not in frame.filename]
    where = f" at {os.path.relpath(frames[-1].filename)}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"
