"""The API document `/api/openapi.json`, and the API held to it by schemathesis."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from schemathesis.config import SchemathesisConfig
from schemathesis.core import hooks
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from alerts import notices
from alerts.channels import URL_PATTERN
from alerts.schemas import RuleIn
from helpers import URL, LiveServer, add_steps, report
from history import filters
from models import database
from models.schemas import ExecutionIn
from otel import otlp
from views.openapi import OPERATIONS, REF, documented_rules, methods_of, openapi_path
from views.operations import operations_of

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
        "routes without an entry in views.openapi.OPERATIONS or a feature's OPERATIONS: "
        f"{sorted(in_url_map - in_document)}")
    assert not in_document - in_url_map, f"documented but not served: " \
                                         f"{sorted(in_document - in_url_map)}"
    assert ("GET", "/api/openapi.json") in in_document


def test_every_declared_operation_is_a_route(app):
    served = {rule.endpoint for rule in documented_rules(app)}
    declared = {*OPERATIONS, *operations_of(app)}
    assert declared <= served, sorted(declared - served)


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
        "email", "webhook", "slack", "teams", "discord", "pagerduty", "apprise"}


def test_the_document_refuses_a_nul_in_texts_as_validation_does(document):
    """Free texts (error messages, logs) hold anything but NUL, at any length allowed."""
    error = _validator(document, "ErrorIn")
    assert error.is_valid({"message": "line 1\nline 2", "stack": "é\t", "type": "E"})
    for bad in ({"message": "a\x00b"}, {"message": "m", "stack": "\x00"}):
        assert not error.is_valid(bad), bad
    assert not error.is_valid({"message": "m" * 100_001})


def _query(document: dict, path: str) -> dict:
    return {p["name"]: p for p in document["paths"][path]["get"]["parameters"]
            if p["in"] == "query"}


def test_the_history_parameters_are_the_ones_its_parser_declares(document):
    params = _query(document, "/api/automations/executions")
    assert list(params) == [p.name for p in filters.PARAMETERS]
    assert list(params) == ["workflow", "status", "external_id", "q", "from", "to", "tz",
                            "sort", "limit", "cursor", "filter"]
    assert params["status"]["schema"] == {"type": "array", "items": {
        "type": "string", "enum": ["pending", "running", "success", "failure"]}}
    assert params["status"]["explode"] is True
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert params["sort"]["schema"]["enum"] == list(filters.SORTS)


def test_a_patch_documents_which_fields_may_be_null(document):
    """A client built from the document never sends the null the server refuses: a field
    that may be left out but not be null has neither null nor a null default."""
    schemas = document["components"]["schemas"]

    def admits_null(schema: dict) -> bool:
        return {"type": "null"} in schema.get("anyOf", []) or not (
            {"type", "anyOf", "$ref", "enum"} & set(schema))  # any JSON value

    nullable = {name: {prop for prop, schema in schemas[name]["properties"].items()
                       if admits_null(schema)}
                for name in ("ExecutionPatch", "RulePatch", "SettingsIn")}
    assert nullable == {"ExecutionPatch": {"finished_at", "error", "output"},
                        "RulePatch": {"workflow", "remind_every_minutes"},
                        "SettingsIn": {"schedule", "max_duration_seconds", "description",
                                       "muted_until", "rerun"}}
    for name in ("ExecutionPatch", "RulePatch"):
        for prop, schema in schemas[name]["properties"].items():
            assert prop in nullable[name] or "default" not in schema, (name, prop)


def test_an_empty_query_parameter_is_documented_and_read_as_none_given(document, api):
    for method, path, op in _operations(document):
        if method != "GET" or "{" in path:
            continue
        for param in op.get("parameters", []):
            if param["in"] != "query" or "content" in param:
                continue
            assert param["allowEmptyValue"] is True, (path, param["name"])
            response = api.get(f"{path}?{param['name']}=")
            assert response.status_code == 200, (path, param["name"], response.text)


def test_the_zone_pattern_is_exactly_the_zones_taken(document):
    from models.inputs import zone_names
    params = _query(document, "/api/automations/executions")
    pattern = re.compile(params["tz"]["schema"]["pattern"])
    assert all(pattern.match(zone) for zone in zone_names())
    for other in ("posix/Europe/Berlin", "Europe", "europe/berlin", "Europe/Berlin/", ""):
        assert not pattern.match(other), other
    settings = document["components"]["schemas"]["SettingsIn"]["properties"]["timezone"]
    assert settings["pattern"] == params["tz"]["schema"]["pattern"]


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
        "rule", "workflow", "status", "type", "limit", "cursor"]
    assert params["type"]["schema"]["enum"] == ["failing", "recovered", "missed", "resumed",
                                                "reminder", "test"]
    for name, param in params.items():
        nonsense = "a%01b" if name == "workflow" else "nonsense"  # any other name is a name
        response = api.get(f"/api/automations/alerts/notices?{name}={nonsense}")
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
# schemathesis' engine, as `schemathesis run` drives it, with every check (`--checks all`:
# answers as documented, good input accepted and bad refused, an unsupported method 405 with
# `Allow`, no answer without credentials, deleted things gone, created ones there) and the
# settings of tests/schemathesis.toml, against a server process on the test's database.
# `python -m benchmarks.fuzz` runs this same test with RUNWATCH_FUZZ_EXAMPLES examples per
# operation and RUNWATCH_FUZZ_REPORT naming a file where every example is written down.

CONFIG = Path(__file__).with_name("schemathesis.toml")
# Random examples per operation: few in the suite (the coverage phase's boundary values and
# wrong types, some 1,700 requests, already make most of its time), many in the benchmark.
EXAMPLES = int(os.environ.get("RUNWATCH_FUZZ_EXAMPLES", "5"))
REPORT = os.environ.get("RUNWATCH_FUZZ_REPORT")


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


@pytest.fixture
def live_server(app, database_url, tmp_path, receiver):
    """The server process of conftest's `live_server`, its PagerDuty events sent to the
    receiver too: nothing it sends may leave the machine."""
    database.close() if not database.is_closed() else None
    server = LiveServer(database_url, tmp_path, env={
        "RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true",
        "RUNWATCH_PAGERDUTY_EVENTS_URL": receiver.url}).start()
    yield server
    server.stop()


@pytest.fixture
def local_webhooks(receiver):
    """A `before_call` hook, while the test runs, that points every webhook and re-run hook
    the fuzzer made up at the receiver on 127.0.0.1: the server sends test notices to a
    rule's webhooks and re-run requests to a workflow's hook, and nothing it sends may
    leave the machine."""
    def point_at_receiver(context, case, kwargs) -> None:
        body = case.body
        if case.path.startswith("/api/automations/alerts") and isinstance(body, dict) \
                and isinstance(body.get("channels"), list):
            for channel in body["channels"]:
                if isinstance(channel, dict) and "url" in channel:
                    channel["url"] = (receiver.url.replace("http://", "json://", 1)
                                      if channel.get("type") == "apprise" else receiver.url)
        hook = body.get("rerun") if isinstance(body, dict) else None
        if isinstance(hook, dict) and isinstance(hook.get("url"), str) \
                and re.fullmatch(URL_PATTERN, hook["url"]):  # a good one: still good after
            hook["url"] = receiver.url

    schemathesis.hook("before_call")(point_at_receiver)
    yield receiver
    GLOBAL_HOOK_DISPATCHER.unregister(point_at_receiver)


# Each backend runs the examples of the document and the stateful sequences (which use what
# one answer gives in the next request). The coverage phase's boundary values and wrong
# types are refused by validation before any query, alike on both databases: they run
# against PostgreSQL, the stricter of the two (NUL bytes, integer and text ranges), and the
# random examples against SQLite, each phase once in the suite. The fuzz benchmark, which
# writes every example down, runs every phase on both.
PHASES = {"sqlite": ("examples", "fuzzing", "stateful"),
          "postgresql": ("examples", "coverage", "stateful")}


def contract_schema(url: str, token: str, backend: str | None = None):
    """The API document of the server at `url`, with tests/schemathesis.toml's settings and
    hooks, the token, and the send and redeliver operations let in (`local_webhooks`)."""
    config = SchemathesisConfig.from_path(CONFIG)
    operations = config.projects.default.operations.operations
    operations[:] = [op for op in operations if op.enabled]  # the send operations too
    hooks.load_from_path(str(CONFIG.with_name("schemathesis_hooks.py")))
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{url}{DOCUMENT}", headers=headers, config=config)
    schema.config.update(headers=headers, continue_on_failure=REPORT is not None)
    schema.config.generation.update(max_examples=EXAMPLES)
    if backend is not None and REPORT is None:
        for phase in ("examples", "coverage", "fuzzing", "stateful"):
            getattr(schema.config.phases, phase).enabled = phase in PHASES[backend]
    return schema

@pytest.mark.long(60)

def test_the_api_keeps_to_its_document(app, api, live_server, live_token, local_webhooks,
                                       backend):
    """Every operation, with made-up input (explicit examples, boundary values or random
    ones, see PHASES, then sequences that use what one answer gives in the next request):
    every check of schemathesis passes."""
    seed(api, local_webhooks.url)
    schema = contract_schema(live_server.url, live_token, backend)
    failures: dict[tuple, str] = {}
    errors, operations, cases = [], set(), 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for case_id, node in recorder.cases.items():
                cases += 1
                operations.add(node.value.operation.label)
                failed = [check for check in recorder.checks.get(case_id, [])
                          if check.status == Status.FAILURE]
                _write_down(backend, node.value, failed)
                for check in failed:
                    title = check.failure_info.failure.title if check.failure_info else ""
                    failures.setdefault((node.value.operation.label, check.name, title),
                                        _example(node.value, recorder, case_id))
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            error = getattr(event, "value", None) or getattr(event, "exception", None)
            errors.append(f"{getattr(event, 'label', '')}: {type(error).__name__}: {error}")
    served = {f"{method} {openapi_path(rule)}" for rule in documented_rules(app)
              for method in methods_of(rule)} - {f"GET {DOCUMENT}"}
    assert operations >= served, sorted(served - operations)
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} kinds of failure in {cases} cases on {backend}:\n\n" \
        + "\n\n".join(f"{op}: {check} ({title})\n    {example}"
                       for (op, check, title), example in sorted(failures.items()))
    assert live_server.process.poll() is None, live_server.output()[-3000:]


def _example(case, recorder, case_id: str) -> str:
    """The failing request as a curl command, and what the server answered."""
    interaction = recorder.interactions.get(case_id)
    answer = ""
    if interaction is not None and interaction.response is not None:
        response = interaction.response
        answer = f"\n    → {response.status_code} {(response.content or b'')[:300]!r}"
    return case.as_curl_command(headers=dict(case.headers or {}))[:1500] + answer


def _write_down(backend: str, case, failed: list) -> None:
    """One line per example in the report file (when the fuzz benchmark asks for one)."""
    if REPORT is None:
        return
    line = {"backend": backend, "operation": case.operation.label,
            "failures": sorted({check.name for check in failed})}
    if failed:
        line["example"] = case.as_curl_command(headers=dict(case.headers or {}))[:2000]
    with open(REPORT, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
