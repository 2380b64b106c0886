"""No input breaks it: a table of bad inputs tried on every route, on SQLite and PostgreSQL.

Every one answers a 4xx (a JSON error naming the field on the API, an error page or a form
error on the pages), never a 500, and changes nothing that is stored.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field as dataclass_field
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, urlencode

import pytest

from alerts.models import AlertChannel, AlertRule, Notice
from helpers import csrf_from
from models import Execution, ExecutionPayload, Step, StepPayload, Workflow, database

RUNS = "/api/automations/executions"
ALERTS = "/api/automations/alerts"
WORKFLOWS = "/api/automations/workflows"
FILTER_NAMES = ("workflow", "status", "from", "to", "tz")
HUGE = "99999999999999999999"  # above 2**63: no database integer holds it
LONG = "1" * 5000  # more digits than Python turns into an int by default
SUPERSCRIPT = "²"  # passes str.isdigit(), fails int()
ARABIC = "٣"  # an Arabic-Indic digit: int() reads it, a query parameter should not
ARABIC_ONE = "١"  # the id of the seeded run, in Arabic-Indic digits

# Characters a name may not hold: C0 (NUL, tab, line feed, carriage return, escape), DEL,
# C1 (next line, control sequence introducer) and the Unicode line and paragraph separators.
NAME_BREAKERS = ["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u2028",
                 "\u2029"]
NON_FINITE = ["NaN", "Infinity", "-Infinity", '[1, {"deep": NaN}]', "1e400"]


def far_ahead() -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=25)).isoformat()


BAD_TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z",
             "1969-12-31T23:59:59Z", far_ahead]


@dataclass
class Case:
    """One bad request: who sends it, where, with what, and the field it must name."""

    name: str
    method: str
    url: str
    json: object = None  # a body to send as JSON
    raw: str | bytes | None = None  # a body sent as it is (NaN is not JSON)
    form: dict | None = None  # a form post of the pages
    field: str | None = None  # the field the API error names (None: not checked)
    status: int | None = None  # an exact status (else any 4xx)
    page: bool = False  # sent by the signed-in browser, not with a token
    headers: dict = dataclass_field(default_factory=dict)


def _set(body: dict, path: str, value) -> dict:
    """A copy of `body` with the value at a dotted path (list indexes as numbers) replaced."""
    body = json.loads(json.dumps(body))
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    target = body
    for part in parents:
        target = target[part]
    target[last] = value
    return body


RUN = {"workflow": "sync", "external_id": "run-1", "status": "failure",
       "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:04Z",
       "input": {"n": 1}, "output": {"ok": False},
       "error": {"message": "boom", "type": "HTTPError", "stack": "Traceback"},
       "steps": [{"name": "fetch", "action": "http.get", "status": "failure",
                  "started_at": "2026-11-24T10:00:00Z", "finished_at": "2026-11-24T10:00:01Z",
                  "input": {}, "output": {}, "error": {"message": "502"}, "logs": "line"}]}
NAMES = ["workflow", "external_id", "steps.0.name"]
TEXTS = ["error.message", "error.type", "error.stack", "steps.0.action", "steps.0.logs",
         "steps.0.error.message", "steps.0.error.type", "steps.0.error.stack"]
PAYLOADS = ["input", "output", "steps.0.input", "steps.0.output"]
TIMES = ["started_at", "finished_at", "steps.0.started_at", "steps.0.finished_at"]


def _with_raw(body: dict, path: str, token: str) -> str:
    """`body` as JSON text with a bare token (NaN, Infinity) at `path`."""
    marker = "__RAW__"
    return json.dumps(_set(body, path, marker)).replace(f'"{marker}"', token)


def ingestion_cases() -> list[Case]:
    """Bad run bodies on the four ingestion routes, each naming its field."""
    cases: list[Case] = []

    def each_route(name: str, path: str, value=None, raw_token: str | None = None):
        if raw_token is None:
            single = dict(json=_set(RUN, path, value))
            batch = dict(json={"executions": [RUN, _set(RUN, path, value)]})
        else:
            single = dict(raw=_with_raw(RUN, path, raw_token))
            batch = dict(raw='{"executions": [%s, %s]}' % (json.dumps(RUN),
                                                           _with_raw(RUN, path, raw_token)))
        cases.append(Case(f"POST run: {name}", "post", RUNS, field=path, **single))
        cases.append(Case(f"POST batch: {name}", "post", f"{RUNS}/batch",
                          field=f"executions.1.{path}", **batch))
        if path.startswith("steps.0."):
            step = RUN["steps"][0]
            inner = path.removeprefix("steps.0.")
            body = ({"json": {"steps": [_set(step, inner, value)]}} if raw_token is None else
                    {"raw": '{"steps": [%s]}' % _with_raw(step, inner, raw_token)})
            cases.append(Case(f"POST steps: {name}", "post", RUNS + "/{run}/steps",
                              field=path, **body))
        elif path in ("finished_at", "output") or path.startswith("error."):
            patch = {"status": "failure", "finished_at": "2026-11-24T10:00:05Z",
                     "output": {}, "error": {"message": "x"}}
            body = ({"json": _set(patch, path, value)} if raw_token is None else
                    {"raw": _with_raw(patch, path, raw_token)})
            cases.append(Case(f"PATCH run: {name}", "patch", RUNS + "/{run}", field=path,
                              **body))

    for path in NAMES:
        for char in NAME_BREAKERS:
            each_route(f"{path} holding U+{ord(char):04X}", path, f"bad{char}name")
    for path in TEXTS:
        each_route(f"{path} holding NUL", path, "bad\x00text")
    for path in PAYLOADS:
        for token in NON_FINITE:
            each_route(f"{path} = {token}", path, raw_token=token)
    for path in TIMES:
        for when in BAD_TIMES:
            value = when() if callable(when) else when
            each_route(f"{path} = {value}", path, value)
    cases += [
        Case("POST run: body not UTF-8", "post", RUNS, raw=b'{"workflow": "w\xff"}',
             status=400),
        Case("POST run: a lone surrogate", "post", RUNS,
             raw='{"workflow": "\\ud800", "status": "success"}', status=400),
        Case("POST run: input nested 5,000 deep", "post", RUNS,
             raw='{"workflow": "w", "status": "success", "input": %s}' % ("[" * 5000 + "]" * 5000),
             status=400),
        Case("POST run: a 5,000-digit number", "post", RUNS,
             raw='{"workflow": "w", "status": "success", "input": %s}' % LONG, status=400),
        Case("POST run: position above the highest", "post", RUNS,
             json=_set(RUN, "steps.0.position", 2**63), field="steps.0.position"),
    ]
    return cases


def query_cases() -> list[Case]:
    """Bad query parameters of every page and API route that reads one."""
    history = [
        ({"from": SUPERSCRIPT}, "from"), ({"to": f"{SUPERSCRIPT}026-01-01"}, "to"),
        ({"from": f"{ARABIC}{ARABIC}{ARABIC}{ARABIC}-01-01"}, "from"),
        ({"limit": SUPERSCRIPT}, "limit"), ({"limit": ARABIC}, "limit"),
        ({"limit": HUGE}, "limit"), ({"limit": LONG}, "limit"), ({"limit": "-5"}, "limit"),
        ({"to": "9999-12-31T23:59:59.999999Z"}, "to"),
        ({"from": "0001-01-01", "tz": "America/Adak"}, "from"),
        ({"from": "1969-12-31"}, "from"), ({"to": "2100-01-02"}, "to"),
        ({"from": "2026-11-24T10:00:00+99:00"}, "from"),
        ({"tz": "Europe/Ber\x00lin"}, "tz"), ({"tz": "../../etc/passwd"}, "tz"),
        ({"tz": "Europe"}, "tz"), ({"tz": "zone.tab"}, "tz"), ({"tz": "x" * 5000}, "tz"),
        ({"workflow": "a\x00b"}, "workflow"), ({"workflow": "x" * 201}, "workflow"),
        ({"status": "done\x00"}, "status"), ({"sort": "\x00"}, "sort"),
        ({"cursor": "\x00"}, "cursor"), ({"cursor": LONG}, "cursor"),
        ({"filter": "NaN"}, "filter"), ({"filter": '{"from": "0001-01-01", "tz": "America/Adak"}'},
                                         "from"),
        ({"filter": '{"to": "9999-12-31"}'}, "to"), ({"filter": '{"workflow": "a\\u0000b"}'},
                                                      "workflow"),
        ({"filter": "[" * 5000}, "filter"),
        # A JSON escape can hold a lone surrogate, which no database stores and no page shows.
        *[({"filter": '{"%s": "\\ud800"}' % name}, name) for name in FILTER_NAMES],
        ({"filter": '{"workflow": ["sync", "a\\udfffb"]}'}, "workflow"),
        ({"filter": '{"\\ud800": "x"}'}, "filter"),
    ]
    cases = []
    for query, name in history:
        qs = urlencode(query)
        cases.append(Case(f"GET history API ?{qs[:50]}", "get", f"{RUNS}?{qs}", field=name,
                          status=400))
        cases.append(Case(f"GET history page ?{qs[:50]}", "get", f"/executions?{qs}",
                          status=400, page=True))
        cases.append(Case(f"GET start page ?{qs[:50]}", "get", f"/?{qs}", status=400, page=True))
    for name in ("from", "to", "tz"):  # a surrogate's UTF-8 bytes, percent-encoded
        cases.append(Case(f"GET history API ?{name}=%ED%A0%80", "get",
                          f"{RUNS}?{name}=%ED%A0%80", field=name, status=400))
        cases.append(Case(f"GET history page ?{name}=%ED%A0%80", "get",
                          f"/executions?{name}=%ED%A0%80", status=400, page=True))
    # 2100-01-01 at -14:00 is 2100-01-02 in UTC, past the last day a period may end.
    for bound in ("2100-01-01T10:00:00-14:00", "2100-01-01T23:59:59-14:00"):
        qs = urlencode({"from": bound})
        cases.append(Case(f"GET workflow API ?{qs}", "get", f"{WORKFLOWS}/sync?{qs}",
                          field="from", status=400))
        cases.append(Case(f"GET workflow page ?{qs}", "get", f"/workflows/sync?{qs}",
                          status=400, page=True))
    surrogate_cursor = base64.urlsafe_b64encode(b'[0, "\\ud800"]').decode().rstrip("=")
    cases.append(Case("GET workflows API: a cursor naming a lone surrogate", "get",
                      f"{WORKFLOWS}?cursor={surrogate_cursor}", field="cursor", status=400))
    cases.append(Case("GET workflows page: a cursor naming a lone surrogate", "get",
                      f"/workflows?cursor={surrogate_cursor}", status=400, page=True))
    for after in (SUPERSCRIPT, ARABIC, HUGE, "-1", "a\x00"):
        cases.append(Case(f"GET new runs ?after={after}", "get",
                          f"/executions/new?after={quote(after)}", status=400, page=True))
    for value in (SUPERSCRIPT, ARABIC, HUGE, LONG, "-1", "\x00"):
        cases.append(Case(f"GET run page ?since={value[:20]}", "get",
                          "/executions/{run}?since=" + quote(value), status=400, page=True,
                          headers={"HX-Request": "true"}))
        cases.append(Case(f"GET step slice ?from={value[:20]}", "get",
                          "/executions/{run}/steps?from=" + quote(value), status=400, page=True))
    for name in ("rule", "limit", "cursor"):
        for value in (SUPERSCRIPT, ARABIC, HUGE, LONG, "0", "\x00"):
            qs = urlencode({name: value})
            cases.append(Case(f"GET delivery log API ?{qs[:40]}", "get",
                              f"{ALERTS}/notices?{qs}", field=name, status=400))
            cases.append(Case(f"GET delivery log page ?{qs[:40]}", "get", f"/alerts/log?{qs}",
                              status=400, page=True))
    for name in ("status", "type"):
        qs = urlencode({name: "x\x00"})
        cases.append(Case(f"GET delivery log API ?{qs}", "get", f"{ALERTS}/notices?{qs}",
                          field=name, status=400))
        cases.append(Case(f"GET delivery log page ?{qs}", "get", f"/alerts/log?{qs}",
                          status=400, page=True))
    return cases


def path_cases() -> list[Case]:
    """Ids in paths that no database integer holds: 404, never an error in the driver."""
    cases = []
    for number in (HUGE, LONG, str(2**63)):
        short = number[:24]
        api_routes = [("get", f"{RUNS}/{number}"), ("patch", f"{RUNS}/{number}"),
                      ("post", f"{RUNS}/{number}/steps"),
                      ("get", f"{ALERTS}/{number}"), ("patch", f"{ALERTS}/{number}"),
                      ("delete", f"{ALERTS}/{number}"), ("post", f"{ALERTS}/{number}/test"),
                      ("get", f"{ALERTS}/notices/{number}"),
                      ("post", f"{ALERTS}/notices/{number}/redeliver")]
        for method, url in api_routes:
            body = {"steps": [{"name": "a"}]} if url.endswith("/steps") else {"status": "success"}
            cases.append(Case(f"{method.upper()} {url.replace(number, short)}", method, url,
                              json=body if method in ("post", "patch") else None, status=404))
        page_routes = [("get", f"/executions/{number}"), ("get", f"/executions/{number}/steps"),
                       ("get", f"/executions/{number}/compare"),
                       ("get", f"/executions/{number}/payloads/input"),
                       ("get", "/executions/{run}/steps/" + number),
                       ("get", "/executions/{run}/steps/%s/payloads/logs" % number),
                       ("get", f"/alerts/rules/{number}/edit"),
                       ("post", f"/alerts/rules/{number}"),
                       ("post", f"/alerts/rules/{number}/delete"),
                       ("post", f"/alerts/rules/{number}/test"),
                       ("post", f"/alerts/notices/{number}/redeliver"),
                       ("post", f"/settings/tokens/{number}/revoke")]
        for method, url in page_routes:
            cases.append(Case(f"{method.upper()} {url.replace(number, short)}", method, url,
                              form={} if method == "post" else None, status=404, page=True))
    for url in (f"{RUNS}/{ARABIC_ONE}", f"{ALERTS}/{ARABIC_ONE}", f"{ALERTS}/{SUPERSCRIPT}"):
        cases.append(Case(f"GET {url}", "get", url, status=404))  # digits, but not 0-9
    cases.append(Case(f"GET /executions/{ARABIC_ONE}", "get", f"/executions/{ARABIC_ONE}",
                      status=404, page=True))
    return cases


RULE = {"workflow": "sync", "threshold": 3,
        "channels": [{"type": "email", "to": ["ops@example.com"]}]}


def rule_cases() -> list[Case]:
    """Bad alert rules, through the API and through the page's form."""
    cases = []
    for char in NAME_BREAKERS:
        label = f"U+{ord(char):04X}"
        cases.append(Case(f"POST rule: workflow holding {label}", "post", ALERTS,
                          json={**RULE, "workflow": f"sync{char}x"}, field="workflow"))
        cases.append(Case(f"PATCH rule: workflow holding {label}", "patch", ALERTS + "/{rule}",
                          json={"workflow": f"sync{char}x"}, field="workflow"))
        cases.append(Case(f"POST rule form: workflow holding {label}", "post", "/alerts/rules",
                          form={"workflow": f"sync{char}x"}, status=400, page=True))
        cases.append(Case(f"POST rule edit form: workflow holding {label}", "post",
                          "/alerts/rules/{rule}", form={"workflow": f"sync{char}x"},
                          status=400, page=True))
    for address in ("ops\x00@example.com", "ops@exa\x00mple.com", "ops@exam\x85ple.com"):
        cases.append(Case(f"POST rule: e-mail address {address!r}", "post", ALERTS, json={
            **RULE, "channels": [{"type": "email", "to": [address]}]},
            field="channels.0.to.0"))
        cases.append(Case(f"POST rule form: e-mail address {address!r}", "post",
                          "/alerts/rules", form={"email_to": address}, status=400, page=True))
    for url in ("https://hooks.example.com/\x00", "https://hooks.exa\x00mple.com/",
                "https://hooks.example.com/\u2028x"):
        cases.append(Case(f"POST rule: webhook URL {url!r}", "post", ALERTS, json={
            **RULE, "channels": [{"type": "webhook", "url": url}]}, field="channels.0.url"))
        cases.append(Case(f"POST rule form: webhook URL {url!r}", "post", "/alerts/rules",
                          form={"email_to": "", "webhook_url": url}, status=400, page=True))
    cases.append(Case("POST rule: webhook secret holding NUL", "post", ALERTS, json={
        **RULE, "channels": [{"type": "webhook", "url": "https://h.example.com/",
                              "secret": "whsec_\x00AAAAAAAAAAAAAAAAAAAAAA=="}]},
        field="channels.0.secret"))
    for threshold in (SUPERSCRIPT, ARABIC, HUGE, "1e3", "\x00"):
        cases.append(Case(f"POST rule form: threshold {threshold!r}", "post", "/alerts/rules",
                          form={"threshold": threshold}, status=400, page=True))
    cases.append(Case("POST rule: threshold NaN", "post", ALERTS,
                      raw=json.dumps(RULE).replace('"threshold": 3', '"threshold": NaN'),
                      field="threshold"))
    return cases


CASES = {"ingestion": ingestion_cases(), "query": query_cases(), "path": path_cases(),
         "rule": rule_cases()}


COUNTED = (Workflow, Execution, ExecutionPayload, Step, StepPayload, AlertRule, AlertChannel,
           Notice)
# Each table's rows counted in one statement: a snapshot is taken after every case.
COUNT_ALL = "SELECT " + ", ".join(f'(SELECT COUNT(*) FROM "{model._meta.table_name}")'
                                  for model in COUNTED)


def snapshot() -> dict:
    """Everything a bad request could have changed."""
    with database.connection_context():
        counts = dict(zip([model.__name__ for model in COUNTED],
                          database.execute_sql(COUNT_ALL).fetchone(), strict=True))
        runs = list(Execution.select(Execution.id, Execution.status, Execution.finished_at,
                                     Execution.updated_at).order_by(Execution.id).tuples())
        rules = list(AlertRule.select(AlertRule.id, AlertRule.workflow_name,
                                      AlertRule.threshold, AlertRule.updated_at)
                     .order_by(AlertRule.id).tuples())
        channels = list(AlertChannel.select(AlertChannel.id, AlertChannel.options_json)
                        .order_by(AlertChannel.id).tuples())
    return {"counts": counts, "runs": runs, "rules": rules, "channels": channels}


@pytest.fixture
def seeded(api, logged_in) -> dict:
    """A run with a step, a rule with a channel, and a notice in the delivery log."""
    run = api.post(RUNS, json=RUN)
    assert run.status_code == 201, run.text
    rule = api.post(ALERTS, json=RULE)
    assert rule.status_code == 201, rule.text
    sent = api.post(f"{ALERTS}/{rule.json['id']}/test")  # no mail server: a failed notice
    assert sent.status_code == 200, sent.text
    return {"run": run.json["id"], "rule": rule.json["id"],
            "csrf": csrf_from(logged_in.get("/alerts").text)}


def _send(case: Case, api, logged_in, seeded: dict):
    url = case.url.replace("{run}", str(seeded["run"])).replace("{rule}", str(seeded["rule"]))
    client = logged_in if case.page else api
    kwargs: dict = {"headers": dict(case.headers)}
    if case.form is not None:
        kwargs["data"] = {"csrf_token": seeded["csrf"], "workflow": "", "threshold": "3",
                          "email_to": "ops@example.com", "enabled": "on", **case.form}
    elif case.raw is not None:
        kwargs.update(data=case.raw, content_type="application/json")
    elif case.json is not None:
        kwargs["json"] = case.json
    return getattr(client, case.method)(url, **kwargs)


@pytest.mark.long(6)
@pytest.mark.parametrize("group", CASES)
def test_every_bad_input_is_a_4xx_that_changes_nothing(api, logged_in, seeded, subtests,
                                                       group):
    # What is stored after one case is what the next one starts from: one snapshot a case.
    after = snapshot()
    for case in CASES[group]:
        with subtests.test(msg=case.name):
            before = after
            try:
                response = _send(case, api, logged_in, seeded)
            finally:
                after = snapshot()
            if case.status is not None:
                assert response.status_code == case.status, response.text[:300]
            else:
                assert 400 <= response.status_code < 500, response.text[:300]
            if not case.page:
                error = response.json["error"]
                assert error["code"] and error["message"]
                if case.field is not None:
                    assert error.get("field") == case.field, error
            assert after == before


def test_the_rule_form_check_shows_a_bad_workflow_name_beside_its_field(logged_in, seeded):
    response = logged_in.post("/alerts/rules/check", data={
        "csrf_token": seeded["csrf"], "workflow": "sync\nx", "threshold": "3",
        "email_to": "ops@example.com"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "control characters" in response.text


def test_every_case_of_the_table_is_named_once():
    names = [case.name for cases in CASES.values() for case in cases]
    assert len(names) == len(set(names))
