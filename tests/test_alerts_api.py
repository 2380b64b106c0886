"""The alerts API: rules, test notices and the delivery log; 400 naming the field; 401."""
from __future__ import annotations

import pytest

from alert_servers import alert_config, report
from alerts.models import AlertChannel, AlertRule, Notice
from alerts.scheduler import scan
from alerts.config import config_from

ALERT_003 = pytest.mark.spec("API-AUTO-EXEC-ALERT-003")
ALERT_004 = pytest.mark.spec("API-AUTO-EXEC-ALERT-004")
API = "/api/automations/alerts"
EMAIL = {"type": "email", "to": ["ops@example.com"]}


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def rule_count(db) -> tuple[int, int]:
    return AlertRule.select().count(), AlertChannel.select().count()


@ALERT_003
def test_a_rule_is_created_read_listed_changed_and_deleted(api, db):
    created = api.post(API, json={"workflow": "invoice-sync", "threshold": 3, "channels": [
        EMAIL, {"type": "webhook", "url": "https://hooks.example.com/x"}]})
    assert created.status_code == 201, created.json
    rule = created.json
    assert created.headers["Location"].endswith(f"{API}/{rule['id']}")
    assert (rule["workflow"], rule["threshold"], rule["enabled"], rule["notify_recovery"]) == \
        ("invoice-sync", 3, True, True)
    assert rule["channels"][0] == EMAIL
    assert rule["channels"][1]["secret"].startswith("whsec_")
    assert api.get(f"{API}/{rule['id']}").json == rule
    assert [r["id"] for r in api.get(API).json["data"]] == [rule["id"]]
    changed = api.patch(f"{API}/{rule['id']}", json={"threshold": 5, "workflow": None,
                                                     "enabled": False})
    assert changed.status_code == 200
    assert (changed.json["threshold"], changed.json["workflow"], changed.json["enabled"],
            changed.json["channels"]) == (5, None, False, rule["channels"])
    assert api.delete(f"{API}/{rule['id']}").status_code == 204
    assert api.get(f"{API}/{rule['id']}").status_code == 404
    assert api.get(API).json["data"] == []


@ALERT_003
@pytest.mark.parametrize("body, field", [
    ({"channels": [EMAIL]}, "threshold"),
    ({"threshold": 0, "channels": [EMAIL]}, "threshold"),
    ({"threshold": 1001, "channels": [EMAIL]}, "threshold"),
    ({"threshold": "3", "channels": [EMAIL]}, "threshold"),
    ({"threshold": 3}, "channels"),
    ({"threshold": 3, "channels": []}, "channels"),
    ({"threshold": 3, "channels": [{"type": "sms", "to": "+1"}]}, "channels.0.type"),
    ({"threshold": 3, "channels": [{"type": "email", "to": ["not-an-address"]}]},
     "channels.0.to.0"),
    ({"threshold": 3, "channels": [{"type": "email", "to": []}]}, "channels.0.to"),
    ({"threshold": 3, "channels": [EMAIL, {"type": "webhook", "url": "ftp://x.example"}]},
     "channels.1.url"),
    ({"threshold": 3, "channels": [{"type": "webhook", "url": "javascript:alert(1)"}]},
     "channels.0.url"),
    ({"threshold": 3, "channels": [{"type": "webhook", "url": "https://a.example",
                                    "secret": "hunter2"}]}, "channels.0.secret"),
    ({"threshold": 3, "channels": [EMAIL], "workflow": ""}, "workflow"),
    ({"threshold": 3, "channels": [EMAIL], "workflow": "x" * 201}, "workflow"),
    ({"threshold": 3, "channels": [EMAIL], "enabled": "yes"}, "enabled"),
    ({"threshold": 3, "channels": [EMAIL], "colour": "red"}, "colour"),
])
def test_a_bad_rule_is_refused_with_400_naming_the_field_and_nothing_is_stored(
        api, db, body, field):
    response = api.post(API, json=body)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field
    assert rule_count(db) == (0, 0)


@ALERT_003
@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'{"threshold": 3'])
def test_a_body_that_is_not_a_json_object_is_refused(api, db, body):
    response = api.post(API, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_json"


@ALERT_003
@pytest.mark.parametrize("body, field", [
    ({"threshold": None}, "threshold"), ({"threshold": 0}, "threshold"),
    ({"channels": []}, "channels"), ({"enabled": None}, "enabled"),
    ({"channels": None}, "channels"), ({"notify_recovery": None}, "notify_recovery"),
    ({"threshold": 2.5}, "threshold"),
])
def test_a_bad_change_is_refused_and_the_rule_stays_as_it_was(api, db, body, field):
    rule = api.post(API, json={"threshold": 3, "channels": [EMAIL]}).json
    response = api.patch(f"{API}/{rule['id']}", json=body)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field
    assert api.get(f"{API}/{rule['id']}").json == rule


def test_a_whole_number_written_with_a_fraction_of_zero_is_that_number(api, db):
    """JSON Schema, and so the API document, counts 3.0 as an integer."""
    rule = api.post(API, json={"threshold": 3.0, "channels": [EMAIL]})
    assert rule.status_code == 201, rule.text
    assert rule.json["threshold"] == 3
    changed = api.patch(f"{API}/{rule.json['id']}", json={"threshold": 4.0})
    assert changed.status_code == 200 and changed.json["threshold"] == 4


@ALERT_003
def test_send_test_goes_through_every_channel_and_lands_in_the_delivery_log(
        api, db, smtp_sink, receiver):
    rule = api.post(API, json={"workflow": "a", "threshold": 3, "channels": [
        EMAIL, {"type": "webhook", "url": receiver.url}]}).json
    response = api.post(f"{API}/{rule['id']}/test")
    assert response.status_code == 200
    assert [(n["type"], n["channel"]["type"], n["status"]) for n in response.json["data"]] == \
        [("test", "email", "delivered"), ("test", "webhook", "delivered")]
    assert smtp_sink.wait_for(1)[0]["Subject"].startswith("[Runwatch] Test notice")
    assert receiver.wait_for(1)[0].json()["type"] == "test"
    log = api.get(f"{API}/notices").json
    assert [n["type"] for n in log["data"]] == ["test", "test"]
    attempt = log["data"][0]["attempts"][0]
    assert attempt["ok"] is True and attempt["response"].startswith("HTTP 200")
    assert attempt["latency_ms"] >= 0 and attempt["at"].endswith("Z")


@ALERT_003
def test_a_failed_notice_can_be_redelivered_once_the_receiver_is_back(
        app, api, db, receiver):
    receiver.status = 500
    rule = api.post(API, json={"workflow": "a", "threshold": 1, "channels": [
        {"type": "webhook", "url": receiver.url}]}).json
    app.config["DELIVERY_MAX_ATTEMPTS"] = 1
    [sent] = api.post(f"{API}/{rule['id']}/test").json["data"]
    assert sent["status"] == "failed"
    assert sent["attempts"][0]["response"] == "HTTP 500 Internal Server Error"
    receiver.status = 200
    again = api.post(f"{API}/notices/{sent['id']}/redeliver")
    assert again.status_code == 200
    assert again.json["status"] == "delivered"
    assert [a["ok"] for a in again.json["attempts"]] == [False, True]
    assert api.post(f"{API}/notices/{sent['id']}/redeliver").status_code == 409


@ALERT_003
def test_the_delivery_log_filters_and_pages(app, api, db, receiver):
    api.post(API, json={"threshold": 1, "channels": [{"type": "webhook", "url": receiver.url}]})
    for name in "abcde":
        report(name, "F")
    scan(config_from(app))
    first = api.get(f"{API}/notices?limit=2&type=failing&status=pending").json
    assert len(first["data"]) == 2
    seen, cursor, guard = [n["id"] for n in first["data"]], first["next_cursor"], 0
    while cursor and guard < 10:
        page = api.get(f"{API}/notices?limit=2&cursor={cursor}").json
        seen += [n["id"] for n in page["data"]]
        cursor, guard = page["next_cursor"], guard + 1
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == 5
    assert api.get(f"{API}/notices?type=recovered").json["data"] == []


@pytest.mark.parametrize("query, field", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=x", "limit"),
    ("cursor=abc", "cursor"), ("status=lost", "status"), ("type=other", "type"),
    ("rule=-1", "rule"),
])
def test_bad_delivery_log_parameters_get_400_naming_the_field(api, query, field):
    response = api.get(f"{API}/notices?{query}")
    assert response.status_code == 400
    assert response.json["error"]["field"] == field


@pytest.mark.parametrize("method, url", [
    ("post", f"{API}/999/test"), ("get", f"{API}/999"), ("patch", f"{API}/999"),
    ("delete", f"{API}/999"), ("get", f"{API}/notices/999"),
    ("post", f"{API}/notices/999/redeliver"),
])
def test_unknown_ids_get_404(api, method, url):
    response = getattr(api, method)(url, json={"threshold": 2})
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


ROUTES = [("get", API), ("post", API), ("get", f"{API}/1"), ("patch", f"{API}/1"),
          ("delete", f"{API}/1"), ("post", f"{API}/1/test"), ("get", f"{API}/notices"),
          ("get", f"{API}/notices/1"), ("post", f"{API}/notices/1/redeliver")]


@ALERT_004
@pytest.mark.parametrize("method, url", ROUTES)
@pytest.mark.parametrize("credentials", [None, "Bearer rw_not-a-real-token", "Basic YTpi"])
def test_every_alerts_api_route_answers_401_without_valid_credentials(
        client, user, db, method, url, credentials):
    headers = {"Authorization": credentials} if credentials else {}
    response = getattr(client, method)(url, json={"threshold": 1, "channels": [EMAIL]},
                                       headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert Notice.select().count() == AlertRule.select().count() == 0


@ALERT_004
@pytest.mark.parametrize("method, url", [
    ("get", "/alerts"), ("get", "/alerts/health"), ("get", "/alerts/log"),
    ("post", "/alerts/rules"), ("post", "/alerts/rules/check"), ("get", "/alerts/rules/1/edit"),
    ("post", "/alerts/rules/1"), ("post", "/alerts/rules/1/delete"),
    ("post", "/alerts/rules/1/test"), ("post", "/alerts/notices/1/redeliver"),
])
def test_every_alerts_page_sends_a_visitor_without_a_session_to_sign_in(
        client, user, method, url):
    response = getattr(client, method)(url, data={"threshold": "1"})
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]
    htmx = getattr(client, method)(url, headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and "/login" in htmx.headers["HX-Redirect"]
