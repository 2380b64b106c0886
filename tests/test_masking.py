"""One masking rule wherever a payload or error text is shown or sent.

The detail page always masked; these are the places that did not: history rows, the alert
rules page, notices (webhook and e-mail), webhook URLs with credentials or a secret path,
and names of secrets that the free-text mask used to miss. What the masker itself hides
and leaves is in test_masking_rules.
"""
from __future__ import annotations

import re

import pytest

from alert_servers import alert_config, make_rule, notices, payload, report
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from helpers import form_fields
from models.payloads import MASK, mask_text

# Each line leaks "hunter2" unless masked; these names are the ones people really use.
LEAKS = [
    "DB_PASSWORD=hunter2",
    "client_secret=hunter2&grant_type=client_credentials",
    "access_token=hunter2",
    "refresh_token: hunter2",
    "GITHUB_TOKEN=hunter2",
    "AWS_SECRET_ACCESS_KEY=hunter2",
    "password=hunter2",
    '{"api_key": "hunter2"}',
    "Authorization: Bearer hunter2",
    "connect to postgres://bob:hunter2@db.internal/app failed",
    "curl -H 'X-Auth-Token: hunter2' https://api",
]
# Text that looks like pairs but holds nothing secret stays as it was.
KEPT = [
    "elapsed=12:00:01 status=ok",
    "max_tokens=512 tokens_used: 100",
    "HTTP 502 from billing at https://billing.example.com:8443/v1",
    "time: 12:00",
]
ERROR = "login failed for DB_PASSWORD=hunter2 (client_secret=hunter2)"


@pytest.mark.parametrize("text", LEAKS)
def test_free_text_masks_the_value_of_every_secret_name(text):
    shown = mask_text(text)
    assert "hunter2" not in shown
    assert MASK in shown


@pytest.mark.parametrize("text", KEPT)
def test_free_text_without_secrets_is_left_as_it_was(text):
    assert mask_text(text) == text


def test_masking_twice_changes_nothing():
    once = mask_text(" ".join(LEAKS))
    assert mask_text(once) == once


def test_history_rows_mask_the_error_message(client, logged_in, db):
    report("billing", "F", error=ERROR)
    for url in ("/", "/executions", "/executions?workflow=billing"):
        page = client.get(url).get_data(as_text=True)
        assert "login failed for DB_PASSWORD=" in page, url
        assert "hunter2" not in page, url


@pytest.fixture
def app_config(app_config, smtp_sink):
    return {**alert_config(app_config, smtp_sink), "WEBHOOK_ALLOW_PRIVATE": True}


def test_notices_and_the_rules_page_mask_the_last_error(app, client, logged_in, db,
                                                       smtp_sink, receiver):
    make_rule(2, [{"type": "webhook", "url": receiver.url},
                  {"type": "email", "to": ["ops@example.com"]}], workflow="billing")
    report("billing", "FF", error=ERROR)
    config = config_from(app)
    scan(config)
    deliver_due(config)

    [request] = receiver.wait_for(1)
    assert "hunter2" not in request.body.decode()
    assert MASK in request.json()["data"]["last_error"]
    [mail] = smtp_sink.wait_for(1)
    for part in mail.walk():
        if part.get_content_maintype() == "text":
            assert "hunter2" not in part.get_content()
    assert all("hunter2" not in payload(n)["data"]["last_error"] for n in notices())

    page = client.get("/alerts").get_data(as_text=True)
    assert "login failed for DB_PASSWORD=" in page
    assert "hunter2" not in page


def test_webhook_urls_with_credentials_are_masked_on_the_page_and_in_the_log(
        app, client, logged_in, db, receiver):
    url = receiver.url.replace("http://", "http://bob:hunter2@") + "?token=hunter2"
    make_rule(1, [{"type": "webhook", "url": url}], workflow="billing")
    report("billing", "F")
    config = config_from(app)
    scan(config)
    deliver_due(config)
    for page in ("/alerts", "/alerts/log", "/api/automations/alerts/notices"):
        text = client.get(page).get_data(as_text=True)
        assert "bob:" in text, page
        assert "hunter2" not in text, page


def test_the_api_document_masked_hides_every_secret_and_keeps_the_rest(db):
    import json

    from models.execution_detail import api_document
    from models.ingest import store_executions
    from models.schemas import ExecutionIn

    run = {"workflow": "billing", "status": "failure", "started_at": "2026-11-20T10:00:00Z",
           "finished_at": "2026-11-20T10:00:05Z",
           "input": {"invoice": 7, "password": "hunter2", "dsn": "postgres://a:hunter2@db/x"},
           "output": {"api_key": "hunter2", "rows": 3},
           "error": {"message": ERROR, "stack": "GITHUB_TOKEN=hunter2"},
           "steps": [{"name": "post", "status": "failure", "input": {"token": "hunter2"},
                      "error": {"message": "refresh_token: hunter2"},
                      "logs": "export AWS_SECRET_ACCESS_KEY=hunter2\nposting 3 rows"}]}
    [(execution_id, _)] = store_executions([ExecutionIn.model_validate_json(json.dumps(run))])
    whole = json.loads(api_document(execution_id, "http://x/1"))
    masked_text = api_document(execution_id, "http://x/1", masked=True)
    masked = json.loads(masked_text)
    assert "hunter2" in json.dumps(whole), "the whole document keeps everything"
    assert "hunter2" not in masked_text
    assert masked["input"]["invoice"] == 7 and masked["output"]["rows"] == 3
    assert masked["input"]["password"] == MASK
    assert masked["error_message"].startswith("login failed for DB_PASSWORD=")
    assert masked["steps"][0]["logs"].endswith("posting 3 rows")
    assert {k: v for k, v in masked.items() if k not in ("input", "output", "error",
                                                           "error_message", "steps")} == \
        {k: v for k, v in whole.items() if k not in ("input", "output", "error",
                                                      "error_message", "steps")}


def test_tokens_without_admin_read_the_api_masked_and_admin_tokens_read_it_whole(
        app, client, user, db, receiver):
    from models.db import connection
    from models.users import create_token

    with connection():
        read = create_token(user, "dashboard", ["read"])[1]
        ingest = create_token(user, "cron", ["ingest"])[1]
        admin = create_token(user, "ops", ["admin"])[1]

    def call(method, url, token, **kwargs):
        response = client.open(url, method=method,
                               headers={"Authorization": f"Bearer {token}"}, **kwargs)
        assert response.status_code < 300, response.get_data(as_text=True)
        return response.get_data(as_text=True)

    run = {"workflow": "billing", "status": "failure", "started_at": "2026-11-20T10:00:00Z",
           "finished_at": "2026-11-20T10:00:05Z", "input": {"password": "hunter2"},
           "error": {"message": ERROR}}
    posted = call("POST", "/api/automations/executions", ingest, json=run)
    assert "hunter2" not in posted, "an ingest token gets its answer masked"
    execution_id = __import__("json").loads(posted)["id"]
    url = receiver.url.replace("http://", "http://bob:hunter2@")
    call("POST", "/api/automations/alerts", admin,
         json={"workflow": "billing", "threshold": 1,
               "channels": [{"type": "webhook", "url": url, "secret": SECRET}]})
    urls = ["/api/automations/executions", f"/api/automations/executions/{execution_id}",
            "/api/automations/alerts"]
    for page in urls:
        assert "hunter2" not in call("GET", page, read), page
        assert SECRET not in call("GET", page, read), page
    whole = "".join(call("GET", page, admin) for page in urls)
    assert "password\": \"hunter2" in whole or "\"password\":\"hunter2" in whole
    assert SECRET in whole and "bob:hunter2@" in whole


SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# --- Webhook URLs: their path and query are the secret ---------------------------------------

SLACK = "https://hooks.slack.com/services/T0001/B0002/slackPathSecret"
DISCORD = "https://discord.com/api/webhooks/1234/discordPathSecret"


def _tokens(user) -> tuple[dict, dict]:
    from models.db import connection
    from models.users import create_token

    with connection():
        read = create_token(user, "dashboard", ["read"])[1]
        admin = create_token(user, "ops", ["admin"])[1]
    return ({"Authorization": f"Bearer {read}"}, {"Authorization": f"Bearer {admin}"})


def test_webhook_urls_show_their_host_alone_to_read_tokens_on_the_rules_page_and_in_the_log(
        app, client, logged_in, user, db, receiver):
    from urllib.parse import urlsplit

    read, admin = _tokens(user)
    origin = "http://" + urlsplit(receiver.url).netloc
    local = origin + "/hook/localPathSecret?sig=sigSecret&code=codeSecret"
    rule = client.post("/api/automations/alerts", headers=admin, json={
        "workflow": "billing", "threshold": 1, "channels": [
            {"type": "webhook", "url": url} for url in (SLACK, DISCORD, local)]}).json
    secrets = ["slackPathSecret", "discordPathSecret", "localPathSecret", "sigSecret",
               # The paths' first segments too (the forms' placeholders show their shape).
               "codeSecret", "/services/T0001", "/api/webhooks/1234"]
    answers = [client.get(url, headers=read).text
               for url in ("/api/automations/alerts", f"/api/automations/alerts/{rule['id']}")]
    shown = client.get(f"/api/automations/alerts/{rule['id']}", headers=read).json["channels"]
    assert [c["url"] for c in shown] == ["https://hooks.slack.com/" + MASK,
                                         "https://discord.com/" + MASK,
                                         origin + "/" + MASK]
    assert [c["url"] for c in rule["channels"]] == [SLACK, DISCORD, local], "admin: whole"

    report("billing", "F")
    config = config_from(app)
    scan(config)
    deliver_due(config)
    [request] = receiver.wait_for(1)
    assert request.path == "/hook/localPathSecret?sig=sigSecret&code=codeSecret"
    answers += [logged_in.get(page).text for page in ("/alerts", "/alerts/log")]
    answers += [client.get("/api/automations/alerts/notices", headers=token).text
                for token in (read, admin)]
    for answer in answers:
        assert "hooks.slack.com" in answer and origin in answer
        for secret in secrets:
            assert secret not in answer


@pytest.fixture
def slack_rule(client, user, db) -> tuple[str, dict, dict]:
    """A rule with a Slack webhook: its API URL, and read and admin token headers."""
    read, admin = _tokens(user)
    rule = client.post("/api/automations/alerts", headers=admin, json={
        "workflow": "billing", "threshold": 1,
        "channels": [{"type": "webhook", "url": SLACK, "secret": SECRET}]}).json
    return f"/api/automations/alerts/{rule['id']}", read, admin


def _stored_channels() -> list[dict]:
    from alerts.models import AlertChannel

    return [channel.options for channel in AlertChannel.select()]


def test_an_admin_round_trips_a_rule_through_the_api_and_the_edit_form_unchanged(
        client, logged_in, slack_rule):
    url, _, admin = slack_rule
    got = client.get(url, headers=admin).json
    assert client.patch(url, headers=admin, json={"threshold": 2, "channels": got["channels"]}
                        ).status_code == 200
    action = f"/alerts/rules/{got['id']}"
    page = logged_in.get(f"{action}/edit").text
    assert logged_in.post(action, data=form_fields(page, action)).status_code == 303
    assert _stored_channels() == [{"type": "webhook", "url": SLACK, "secret": SECRET}]


def test_a_masked_url_sent_back_is_refused_naming_the_field_and_changes_nothing(
        client, logged_in, slack_rule):
    url, read, admin = slack_rule
    [masked] = client.get(url, headers=read).json["channels"]
    for channel in (masked, {**masked, "secret": SECRET},
                    {"type": "webhook", "url": masked["url"]}):
        refused = client.patch(url, headers=admin, json={"threshold": 5, "channels": [channel]})
        assert refused.status_code == 400
        assert refused.json["error"]["field"] in ("channels.0.url", "channels.0.secret")
    created = client.post("/api/automations/alerts", headers=admin, json={
        "threshold": 1, "channels": [{"type": "webhook", "url": masked["url"]}]})
    assert created.status_code == 400 and created.json["error"]["field"] == "channels.0.url"

    action = url.replace("/api/automations/alerts", "/alerts/rules")
    fields = form_fields(logged_in.get(f"{action}/edit").text, action)
    fields["webhook_url"] = [masked["url"], ""]
    response = logged_in.post(action, data=fields)
    assert response.status_code == 400
    error = re.search(r'id="error-webhook_url_0"[^>]*>([^<]*)<', response.text).group(1)
    assert "the mask of a hidden value" in error
    assert client.get(url, headers=admin).json["threshold"] == 1
    assert _stored_channels() == [{"type": "webhook", "url": SLACK, "secret": SECRET}]
