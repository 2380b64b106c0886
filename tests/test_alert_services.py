"""Slack, Teams, Discord, PagerDuty and Apprise: each message in the shape its service
documents, sent by the outbound rules to real receivers on 127.0.0.1; every bad option
named; and a service's answer read as delivered, retried later, or refused for good."""
from __future__ import annotations

import json
import socket
from datetime import datetime, timezone

import pytest

from alerts.config import ALLOW_PRIVATE, PAGERDUTY_EVENTS_URL, AlertConfig, config_from
from alerts.notices import notice_body
from alerts.outbound import NO_PUBLIC_ADDRESS, REFUSED_PRIVATE, TransportError
from alerts.schemas import parse_rule
from alerts.services import apprise, discord, pagerduty, slack, teams
from alerts.services.facts import KINDS, Facts
from app import create_app
from alert_servers import HttpReceiver
from helpers import close_database
from models.schemas import InputError

NOW = datetime(2026, 11, 1, 9, 30, tzinfo=timezone.utc)
RUN_URL = "http://runwatch.test/executions/42"
ROUTING_KEY = "R0123456789abcdef0123456789ABCDE"
SENDERS = {"slack": slack, "teams": teams, "discord": discord}


@pytest.fixture(scope="module")
def listening():
    """One receiver for the module: stopping one takes half a second."""
    server = HttpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def receiver(listening):
    """The module's receiver, answering 200 with nothing received yet."""
    listening.requests.clear()
    listening.status, listening.headers, listening.answer = 200, {}, b"ok"
    return listening


def facts(kind: str, episode: int = 3, workflow: str = "invoice-sync", **extra) -> Facts:
    """The facts of a notice of `kind`, as the scan writes its webhook body."""
    late = kind in ("missed", "resumed") or extra.pop("late", False)
    schedule = ({"expected_at": "2026-11-01T09:00:00Z", "grace_seconds": 300,
                 "last_run_at": "2026-11-01T08:00:05Z"} if late else {})
    body = notice_body("failing" if kind == "reminder" else kind, NOW, workflow=workflow,
                       failure_count=0 if late else 3, threshold=3,
                       first_failure_at=None if late else datetime(2026, 11, 1, 9, 0,
                                                                   tzinfo=timezone.utc),
                       last_failure_at=None if late else NOW,
                       last_error=None if late else "HTTP 502 from billing <gateway> & co",
                       execution_url=RUN_URL, rule_id=7, **schedule)
    body["data"].update(extra)
    return Facts.of(kind, body, episode=episode)


def settings(receiver=None, **changes) -> AlertConfig:
    """Delivery settings that reach the receiver on 127.0.0.1."""
    return AlertConfig(execution_url=lambda run_id: f"http://runwatch.test/executions/{run_id}",
                       webhook_allow_private=True, webhook_timeout=5.0,
                       pagerduty_events_url=receiver.url if receiver else PAGERDUTY_EVENTS_URL,
                       **changes)


def sent(receiver, module, kind: str, **facts_changes) -> dict:
    """Send a notice of `kind` through `module` to the receiver; the JSON that arrived."""
    before = len(receiver.requests)
    answer = module.send(facts(kind, **facts_changes), {"url": receiver.url}, settings(receiver))
    assert answer == "HTTP 200 OK"
    arrived = receiver.wait_for(before + 1)[before]
    assert arrived.headers["Content-Type"] == "application/json"
    return arrived.json()


# --- Slack ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_slack_message_has_a_header_the_facts_as_fields_and_a_button_to_the_run(
        receiver, kind):
    message = sent(receiver, slack, kind)
    blocks = {block["type"]: block for block in message["blocks"]}
    assert blocks["header"]["text"]["type"] == "plain_text"
    assert "invoice-sync" in blocks["header"]["text"]["text"]
    assert message["text"] == blocks["header"]["text"]["text"]  # what notifications show
    labels = [field["text"].split("\n")[0] for field in message["blocks"][1]["fields"]]
    assert labels[0] == "*Workflow*"
    assert ("*Expected at*" in labels) == (kind in ("missed", "resumed"))
    assert ("*Failures in a row*" in labels) == (kind not in ("missed", "resumed"))
    [button] = blocks["actions"]["elements"]
    assert button["type"] == "button" and button["url"] == RUN_URL


def test_a_slack_message_escapes_what_slack_reads_as_markup_and_shows_the_last_error(receiver):
    message = sent(receiver, slack, "failing", workflow="a<b>&c")
    texts = [block["text"]["text"] for block in message["blocks"]
             if block["type"] == "section" and "text" in block]
    assert texts == ["*Last error*\n```HTTP 502 from billing &lt;gateway&gt; &amp; co```"]
    workflow = message["blocks"][1]["fields"][0]["text"]
    assert workflow == "*Workflow*\na&lt;b&gt;&amp;c"


def test_a_slack_header_stays_within_block_kits_150_characters(receiver):
    message = sent(receiver, slack, "failing", workflow="w" * 200)
    assert len(message["blocks"][0]["text"]["text"]) == 150


def test_a_reminder_of_a_late_workflow_says_when_its_run_was_expected(receiver):
    message = sent(receiver, slack, "reminder", late=True, reminder_number=2)
    assert message["text"] == ("Reminder #2: invoice-sync is still late "
                               "(expected at 2026-11-01T09:00:00Z)")
    labels = [field["text"] for field in message["blocks"][1]["fields"]]
    assert "*Expected at*\n2026-11-01T09:00:00Z" in labels and "*Reminder*\n#2" in labels


# --- Teams ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_teams_message_carries_an_adaptive_card_as_its_attachment(receiver, kind):
    message = sent(receiver, teams, kind)
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    heading, fact_set = card["body"][:2]
    assert heading["type"] == "TextBlock" and "invoice-sync" in heading["text"]
    assert fact_set["type"] == "FactSet"
    assert fact_set["facts"][0] == {"title": "Workflow", "value": "invoice-sync"}
    assert card["actions"] == [{"type": "Action.OpenUrl", "url": RUN_URL,
                                "title": card["actions"][0]["title"]}]


def test_a_teams_card_shows_the_last_error_of_a_failing_streak(receiver):
    card = sent(receiver, teams, "failing")["attachments"][0]["content"]
    assert card["body"][-1]["text"] == "HTTP 502 from billing <gateway> & co"
    assert card["body"][0]["color"] == "Attention"


# --- Discord ----------------------------------------------------------------------------------

def test_a_discord_embed_is_coloured_by_kind(receiver):
    colours = {kind: sent(receiver, discord, kind)["embeds"][0]["color"] for kind in KINDS}
    assert colours["failing"] == 0xD32F2F
    assert colours["recovered"] == colours["resumed"] == 0x2E7D32
    assert len({colours[kind] for kind in ("failing", "recovered", "missed", "reminder",
                                           "test")}) == 5


@pytest.mark.parametrize("kind", KINDS)
def test_a_discord_embed_links_to_the_run_and_pings_no_one(receiver, kind):
    message = sent(receiver, discord, kind, workflow="@everyone")
    [embed] = message["embeds"]
    assert embed["url"] == RUN_URL and embed["title"].startswith(
        "Reminder" if kind == "reminder" else "Test" if kind == "test" else "@everyone")
    assert embed["fields"][0] == {"name": "Workflow", "value": "@everyone", "inline": True}
    assert message["allowed_mentions"] == {"parse": []}


# --- PagerDuty --------------------------------------------------------------------------------

def event_sent(receiver, kind: str, severity: str = "error", **facts_changes) -> dict:
    before = len(receiver.requests)
    answer = pagerduty.send(facts(kind, **facts_changes),
                            {"routing_key": ROUTING_KEY, "severity": severity},
                            settings(receiver))
    assert answer == "HTTP 200 OK"
    return receiver.wait_for(before + 1)[before].json()


def test_a_failing_streak_triggers_an_incident_that_its_recovery_resolves(receiver):
    trigger = event_sent(receiver, "failing", severity="critical")
    assert trigger["routing_key"] == ROUTING_KEY and trigger["event_action"] == "trigger"
    assert trigger["payload"]["summary"] == "invoice-sync is failing: 3 failures in a row"
    assert trigger["payload"]["source"] == "invoice-sync"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"]["Last error"].startswith("HTTP 502")
    assert trigger["links"] == [{"href": RUN_URL, "text": "Open the last failed run"}]
    resolve = event_sent(receiver, "recovered")
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                       "dedup_key": trigger["dedup_key"]}


def test_a_missed_run_triggers_an_incident_that_the_next_run_resolves(receiver):
    trigger = event_sent(receiver, "missed")
    assert trigger["event_action"] == "trigger" and trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["summary"] == ("invoice-sync missed a run expected at "
                                             "2026-11-01T09:00:00Z")
    resolve = event_sent(receiver, "resumed")
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]


def test_each_episode_has_its_own_incident(receiver):
    keys = {pagerduty.dedup_key(facts(kind, episode=episode, workflow=workflow))
            for kind in ("failing", "missed") for episode in (1, 2)
            for workflow in ("invoice-sync", "payroll")}
    assert len(keys) == 8


def test_a_reminder_sends_no_second_trigger(receiver):
    answer = pagerduty.send(facts("reminder", reminder_number=2),
                            {"routing_key": ROUTING_KEY}, settings(receiver))
    assert answer.startswith("not sent")
    assert receiver.requests == []


def test_a_test_notice_triggers_an_incident_of_severity_info(receiver):
    event = event_sent(receiver, "test")
    assert event["event_action"] == "trigger" and event["payload"]["severity"] == "info"
    assert event["payload"]["summary"] == "Test notice for invoice-sync (rule #7)"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_pagerduty_events_go_where_runwatch_pagerduty_events_url_says(
        app_config, receiver, monkeypatch):
    assert config_from(create_app(app_config)).pagerduty_events_url == PAGERDUTY_EVENTS_URL
    close_database()
    monkeypatch.setenv("RUNWATCH_PAGERDUTY_EVENTS_URL", receiver.url)
    config = config_from(create_app({**app_config, "WEBHOOK_ALLOW_PRIVATE": True}))
    close_database()
    pagerduty.send(facts("failing"), {"routing_key": ROUTING_KEY}, config)
    assert receiver.wait_for(1)[0].json()["routing_key"] == ROUTING_KEY


# --- Apprise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, notify_type", [
    ("failing", "failure"), ("recovered", "success"), ("missed", "warning"),
    ("resumed", "success"), ("reminder", "warning"), ("test", "info")])
def test_apprise_delivers_through_its_json_url(receiver, kind, notify_type):
    url = receiver.url.replace("http://", "json://")
    answer = apprise.send(facts(kind), {"url": url}, settings())
    assert answer == "sent through Apprise to JSON"
    message = receiver.wait_for(1)[0].json()
    assert message["type"] == notify_type
    assert "invoice-sync" in message["title"]
    assert message["message"].startswith("Workflow: invoice-sync\n")
    assert message["message"].endswith(f": {RUN_URL}")


def test_apprise_says_what_went_wrong_when_the_service_refuses(receiver):
    receiver.status = 500
    with pytest.raises(TransportError) as refused:
        apprise.send(facts("failing"), {"url": receiver.url.replace("http://", "json://")},
                     settings())
    assert refused.value.message.startswith("JSON did not take the message")
    assert not refused.value.permanent


# --- Options ----------------------------------------------------------------------------------

OPTIONS = {"slack": slack.SlackOptions, "teams": teams.TeamsOptions,
           "discord": discord.DiscordOptions, "pagerduty": pagerduty.PagerDutyOptions,
           "apprise": apprise.AppriseOptions}
GOOD = {"slack": {"type": "slack", "url": "https://hooks.slack.com/services/T0/B0/xyz"},
        "teams": {"type": "teams", "url": "https://prod.westeurope.logic.azure.com/wf/1?sig=s"},
        "discord": {"type": "discord", "url": "https://discord.com/api/webhooks/1/tok"},
        "pagerduty": {"type": "pagerduty", "routing_key": ROUTING_KEY},
        "apprise": {"type": "apprise", "url": "ntfys://ntfy.sh/runwatch-alerts"}}


def problem(kind: str, options: dict, context: dict | None = None) -> InputError:
    with pytest.raises(InputError) as refused:
        parse_rule(OPTIONS[kind], json.dumps(options).encode(), context)
    return refused.value


@pytest.mark.parametrize("kind", GOOD)
def test_good_options_are_taken(kind):
    assert parse_rule(OPTIONS[kind], json.dumps(GOOD[kind]).encode()).type == kind


@pytest.mark.parametrize("kind, changes, field, words", [
    ("slack", {"url": None}, "url", "is required"),
    ("slack", {"url": "ftp://hooks.slack.com/x"}, "url", "http:// or https://"),
    ("slack", {"url": "https://127.0.0.1/hook"}, "url", "private address"),
    ("slack", {"url": "https://localhost:8080/hook"}, "url", "private address"),
    ("slack", {"url": "https://[::1]/hook"}, "url", "private address"),
    ("slack", {"url": 7}, "url", "string"),
    ("slack", {"channel": "#ops"}, "channel", "unknown field"),
    ("teams", {"url": "https://h.example:0/x"}, "url", "port"),
    ("teams", {"url": "https://10.0.0.8/x"}, "url", "private address"),
    ("teams", {"url": "https://example.com/\x07"}, "url", "control characters"),
    ("discord", {"url": "discord.com/api/webhooks/1/tok"}, "url", "http:// or https://"),
    ("discord", {"url": "https://169.254.169.254/latest"}, "url", "private address"),
    ("discord", {"url": "https://x.example/" + "a" * 2000}, "url", "at most 2000"),
    ("pagerduty", {"routing_key": None}, "routing_key", "is required"),
    ("pagerduty", {"routing_key": "short"}, "routing_key", "pattern"),
    ("pagerduty", {"routing_key": ROUTING_KEY + "x"}, "routing_key", "pattern"),
    ("pagerduty", {"routing_key": "R0123456789abcdef0123456789ABC-E"}, "routing_key",
     "pattern"),
    ("pagerduty", {"severity": "high"}, "severity", "'critical', 'error', 'warning'"),
    ("pagerduty", {"url": "https://events.pagerduty.com/v2/enqueue"}, "url", "unknown field"),
    ("apprise", {"url": None}, "url", "is required"),
    ("apprise", {"url": ""}, "url", "at least 1"),
    ("apprise", {"url": "nosuchservice://x"}, "url", "Apprise knows"),
    ("apprise", {"url": "json://127.0.0.1:8080/"}, "url", "private address"),
    ("apprise", {"url": "ntfy://192.168.1.2/topic"}, "url", "private address"),
    ("apprise", {"url": "mmosts://[fd00::1]/token"}, "url", "private address"),
])
def test_a_bad_option_is_refused_naming_its_field(kind, changes, field, words):
    options = {key: value for key, value in {**GOOD[kind], **changes}.items()
               if value is not None}
    error = problem(kind, options)
    assert error.field == field
    assert error.message.startswith(f"{field}: ") and words in error.message


@pytest.mark.parametrize("kind", GOOD)
def test_the_wrong_type_is_refused_naming_the_type(kind):
    assert problem(kind, {**GOOD[kind], "type": "webhook"}).field == "type"


@pytest.mark.parametrize("kind, url", [("slack", "http://127.0.0.1:9/hook"),
                                       ("apprise", "json://127.0.0.1:9/")])
def test_private_hosts_are_taken_where_the_configuration_allows_them(kind, url):
    options = parse_rule(OPTIONS[kind], json.dumps({"type": kind, "url": url}).encode(),
                         {ALLOW_PRIVATE: True})
    assert options.url == url


@pytest.mark.parametrize("kind, masked", [
    ("slack", {"type": "slack", "url": "https://hooks.slack.com/••••••"}),
    ("teams", {"type": "teams", "url": "https://prod.westeurope.logic.azure.com/••••••"}),
    ("discord", {"type": "discord", "url": "https://discord.com/••••••"}),
    ("pagerduty", {"type": "pagerduty", "routing_key": "••••••"}),
    ("apprise", {"type": "apprise", "url": "ntfys://ntfy.sh/••••••"}),
])
def test_secrets_are_masked(kind, masked):
    assert OPTIONS[kind].masked(GOOD[kind]) == masked


def test_an_apprise_url_whose_host_is_a_token_is_masked_but_for_its_scheme():
    masked = apprise.AppriseOptions.masked({"type": "apprise",
                                            "url": "tgram://123456789:AAbbCC/-100123/"})
    assert masked == {"type": "apprise", "url": "tgram://••••••"}


# --- Answers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["slack", "teams", "discord", "pagerduty"])
@pytest.mark.parametrize("status, delivered, permanent", [
    (200, True, None), (202, True, None), (204, True, None),
    (400, False, True), (401, False, True), (403, False, True), (404, False, True),
    (410, False, True), (301, False, True),
    (429, False, False), (408, False, False), (500, False, False), (502, False, False),
    (503, False, False),
])
def test_an_answer_is_delivered_retried_or_refused_for_good(receiver, kind, status, delivered,
                                                            permanent):
    receiver.status = status
    if status == 301:
        receiver.headers = {"Location": "https://hooks.slack.com/elsewhere"}
    module = SENDERS.get(kind, pagerduty)
    options = {"url": receiver.url, "routing_key": ROUTING_KEY}
    if delivered:
        assert module.send(facts("failing"), options, settings(receiver)).startswith(
            f"HTTP {status}")
        return
    with pytest.raises(TransportError) as failed:
        module.send(facts("failing"), options, settings(receiver))
    assert failed.value.permanent is permanent
    assert failed.value.response.startswith(f"HTTP {status}")
    assert ("not retried" in failed.value.message) == permanent
    assert ("retried later" in failed.value.message) == (not permanent)


@pytest.mark.parametrize("retry_after, said", [
    ("30", "(it asks to wait 30 s)"),
    ("Sun, 01 Nov 2026 09:31:00 GMT", "(it asks to wait until Sun, 01 Nov 2026 09:31:00 GMT)")])
def test_a_rate_limit_says_how_long_the_service_asks_to_wait(receiver, retry_after, said):
    receiver.status, receiver.headers = 429, {"Retry-After": retry_after}
    with pytest.raises(TransportError) as limited:
        slack.send(facts("failing"), {"url": receiver.url}, settings(receiver))
    assert said in limited.value.message


def test_a_revoked_webhook_says_what_to_fix_in_the_services_own_words(receiver):
    receiver.status, receiver.answer = 404, b"no_service"
    with pytest.raises(TransportError) as refused:
        slack.send(facts("failing"), {"url": receiver.url}, settings(receiver))
    assert refused.value.message == (
        "Slack refused for good: the URL or key does not exist (wrong, or the webhook was "
        "removed); fix the channel, it is not retried (HTTP 404 Not Found: no_service)")


def test_an_error_page_is_logged_on_one_line_and_cut_short(receiver):
    receiver.status = 502
    receiver.answer = b"<html>\n<body>\n  <h1>Bad gateway</h1>\n" + b"x" * 5000 + b"</body>"
    with pytest.raises(TransportError) as failed:
        teams.send(facts("failing"), {"url": receiver.url}, settings(receiver))
    said = failed.value.message.split("retried later: ", 1)[1]
    assert said.startswith("HTTP 502 Bad Gateway: <html> <body> <h1>Bad gateway</h1> xxx")
    assert len(said) < 350 and said.endswith("…")


@pytest.mark.parametrize("module, options", [
    (slack, {"url": "http://127.0.0.1:9/hook"}),
    (apprise, {"url": "json://127.0.0.1:9/"}),
    (pagerduty, {"routing_key": ROUTING_KEY}),
])
def test_a_private_address_is_refused_before_sending_unless_allowed(module, options):
    config = AlertConfig(execution_url=str, pagerduty_events_url="http://127.0.0.1:9/v2/enqueue")
    with pytest.raises(TransportError) as refused:
        module.send(facts("failing"), options, config)
    assert refused.value.message == REFUSED_PRIVATE and refused.value.permanent


def test_an_apprise_host_whose_name_resolves_privately_is_not_connected_to(receiver,
                                                                          monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *args, **kwargs: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]
        if host == "hooks.rebind.test" else real(host, port, *args, **kwargs)))
    config = AlertConfig(execution_url=str)
    with pytest.raises(TransportError) as refused:
        apprise.send(facts("failing"), {"url": f"json://hooks.rebind.test:{receiver.port}/"},
                     config)
    assert refused.value.message == NO_PUBLIC_ADDRESS and not refused.value.permanent
    assert receiver.requests == []
