"""Webhooks reach only public addresses unless RUNWATCH_WEBHOOK_ALLOW_PRIVATE allows others;
every attempt ends by its deadline, however slowly a receiver answers; a slow receiver holds
back no other notice; and a claim's lease outlasts its send."""
from __future__ import annotations

import socket
import threading
import time
from datetime import timedelta

import pytest
import trustme

from alert_servers import (HttpReceiver, Trickler, alert_config, form_data, make_rule, notices,
                           report)
from alerts.config import config_from
from alerts.delivery import deliver_due, lease
from alerts.models import AlertRule, Attempt, Notice
from alerts.scheduler import scan
from helpers import Elements
from models.db import connection, utcnow

API = "/api/automations/alerts"
REFUSED = "refused: the address is private (set RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true to allow)"
NO_PUBLIC_ADDRESS = ("refused: the host name has no public address: it does not resolve, or "
                     "resolves to a private address (set RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true "
                     "to allow private ones)")
DEADLINE_MISSED = "no complete answer within {} s (the whole attempt's deadline)"


@pytest.fixture
def app_config(app_config, smtp_sink):
    """The alert test settings, with the default: webhooks to private addresses refused."""
    return {**alert_config(app_config, smtp_sink), "WEBHOOK_ALLOW_PRIVATE": False}


def allow_private(app, allowed: bool = True) -> None:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = allowed


class Background:
    """Run `fn` in a thread of its own (with its own database connection); `result()`
    waits for it and returns its value or raises what it raised."""

    def __init__(self, fn, *args):
        self.value, self.error, self.ended = None, None, None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        try:
            with connection():
                self.value = fn(*args)
        except BaseException as exc:  # handed to the test by result()
            self.error = exc
        finally:
            self.ended = time.monotonic()

    def result(self, timeout: float = 90):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value

    @property
    def took(self) -> float:
        return self.ended - self.started


# --- Refused when the rule is saved ------------------------------------------------------

PRIVATE_URLS = [
    "http://127.0.0.1:8080/hook", "http://127.1/hook", "http://2130706433/hook",
    "http://0x7f.0.0.1/hook", "http://localhost:5000/hook", "http://LOCALHOST./hook",
    "http://hooks.localhost/hook", "http://0.0.0.0/hook", "http://0/hook",
    "http://10.1.2.3/hook", "http://172.16.0.1/hook", "http://192.168.1.1/hook",
    "http://100.64.0.1/hook", "http://169.254.169.254/latest/meta-data/",
    "http://224.0.0.1/hook", "http://255.255.255.255/hook", "http://240.0.0.1/hook",
    "http://[::1]:8080/hook", "http://[::]/hook", "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook", "http://[fc00::1]/hook", "http://[fd12:3456::1]/hook",
    "http://[fe80::1]/hook", "http://[fe80::1%25eth0]/hook", "http://[ff02::1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook", "http://[2002:7f00:1::]/hook", "http://[::127.0.0.1]/hook",
]
# The same hosts in spellings that IDNA (NFKC, case folding, the ideographic full stops) or
# a resolver turns into one of them: refused at save, and refused when sending.
ODD_SPELLINGS = [
    "http://１２７.０.０.１/hook", "http://127。0。0。1/hook", "http://127．0．0．1/hook",
    "http://127｡0｡0｡1/hook", "http://１２７\u2024０\u2024０\u2024１/hook",
    "http://１２７。０。０。１:8080/hook", "http://①②⑦.0.0.1/hook",
    "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/hook", "http://ｌｏｃａｌｈｏｓｔ:5000/hook", "http://LocalHost/hook",
    "http://ＬＯＣＡＬＨＯＳＴ/hook", "http://localhost。/hook", "http://hooks.ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/hook",
    "http://127.0.0.1./hook", "http://０ｘ７ｆ.１/hook", "http://0x7f.1/hook",
    "http://0177.0.0.1/hook", "http://017700000001/hook", "http://0x7f000001/hook",
    "http://２１３０７０６４３３/hook", "http://１６９。２５４。１６９。２５４/latest/meta-data/",
    "http://10.1/hook", "http://0xa.0xb.0xc.0xd/hook", "http://192.168.257/hook",
    "http://3232235777/hook", "http://0x0/hook", "http://[::ffff:7f00:1]/hook",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/hook", "http://[0000::0001]/hook",
    "http://[::FFFF:A9FE:A9FE]/hook", "http://[FE80::1]/hook", "http://[::ffff:10.0.0.1]/hook",
]


@pytest.mark.parametrize("url", PRIVATE_URLS + ODD_SPELLINGS)
def test_a_rule_whose_webhook_names_a_private_address_or_localhost_is_refused_with_400(
        api, db, url):
    response = api.post(API, json={"threshold": 1, "channels": [
        {"type": "email", "to": ["ops@example.com"]}, {"type": "webhook", "url": url}]})
    assert response.status_code == 400, response.json
    error = response.json["error"]
    assert error["field"] == "channels.1.url"
    assert "RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true" in error["message"]
    assert AlertRule.select().count() == 0


@pytest.mark.parametrize("url", [
    "https://hooks.example.com/runwatch", "https://8.8.8.8/hook",
    "https://[2606:4700:4700::1111]/hook", "http://[::ffff:8.8.8.8]/hook",
    "https://internal-looking-name.corp/hook",  # names are checked when sending
    "https://Hooks.Example.COM./runwatch", "https://ｈｏｏｋｓ。example。com/runwatch",
    "https://bücher.example/hook", "https://xn--bcher-kva.example/hook", "http://8.8.8.8./hook",
    "http://８.８.８.８/hook", "http://134744072/hook", "http://0x8.0x8.0x8.0x8/hook",
    "https://[2606:4700:4700::1111]:8443/hook", "https://_hooks.example.com/hook",
])
def test_a_rule_whose_webhook_names_a_public_address_or_a_host_name_is_saved(api, db, url):
    response = api.post(API, json={"threshold": 1, "channels": [{"type": "webhook",
                                                                 "url": url}]})
    assert response.status_code == 201, response.json
    assert response.json["channels"][0]["url"] == url  # kept as written


@pytest.mark.parametrize("url", [
    "http://ex ample.com/hook", "http://hooks..example.com/hook", "http://hooks.example.com../",
    "http://hooks.example.com\uff0fx/hook", "http://a\uff0fb.example/hook",
    "http://" + "x" * 64 + "\u00e9.example/hook",
])
def test_a_webhook_whose_host_cannot_be_a_name_is_refused_with_400_naming_the_field(
        api, db, url):
    response = api.post(API, json={"threshold": 1, "channels": [{"type": "webhook",
                                                                 "url": url}]})
    assert response.status_code == 400, response.json
    assert response.json["error"]["field"] == "channels.0.url"
    assert AlertRule.select().count() == 0


def test_with_private_addresses_allowed_a_loopback_webhook_is_saved(app, api, db):
    allow_private(app)
    for url in ("http://127.0.0.1:8080/hook", "http://localhost:8080/hook"):
        response = api.post(API, json={"threshold": 1, "channels": [{"type": "webhook",
                                                                     "url": url}]})
        assert response.status_code == 201, response.json


def test_changing_a_rule_to_a_private_webhook_is_refused_and_changes_nothing(api, db):
    created = api.post(API, json={"threshold": 1, "channels": [
        {"type": "webhook", "url": "https://hooks.example.com/a"}]}).json
    response = api.patch(f"{API}/{created['id']}", json={"channels": [
        {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data/"}]})
    assert response.status_code == 400
    assert response.json["error"]["field"] == "channels.0.url"
    assert api.get(f"{API}/{created['id']}").json["channels"] == created["channels"]


def test_the_rule_form_refuses_a_private_webhook_beside_the_field(logged_in, db):
    page = logged_in.get("/alerts").text
    response = logged_in.post("/alerts/rules", data=form_data(
        page, webhook_url="http://169.254.169.254/latest/meta-data/"))
    assert response.status_code == 400
    message = Elements(response.text).text("error-webhook_url_0")
    assert "private address" in message and "RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true" in message
    assert AlertRule.select().count() == 0
    checked = logged_in.post("/alerts/rules/check", headers={"HX-Request": "true"},
                             data=form_data(page, webhook_url="http://localhost:9000/x"))
    assert "private address" in Elements(checked.text).text("error-webhook_url_0")


# --- Refused when sending: on the address connected to ----------------------------------

def _send_test(api, rule_id: int) -> dict:
    response = api.post(f"{API}/{rule_id}/test")
    assert response.status_code == 200, response.json
    [notice] = response.json["data"]
    return notice


@pytest.mark.parametrize("target", [
    "receiver", "localhost", "ipv6-loopback", "closed-port", "metadata"])
def test_send_test_to_a_private_address_is_refused_without_connecting_and_says_nothing_more(
        api, db, receiver, target):
    url = {"receiver": receiver.url,
           "localhost": f"http://localhost:{receiver.port}/hooks/runwatch",  # a host name
           "ipv6-loopback": f"http://[::1]:{receiver.port}/hooks/runwatch",
           "closed-port": "http://127.0.0.1:9/closed",
           "metadata": "http://169.254.169.254/latest/meta-data/"}[target]
    rule = make_rule(1, [{"type": "webhook", "url": url}])  # saved while it was allowed
    notice = _send_test(api, rule.id)
    # The same words whatever listens there: an open port, a closed one, no host at all.
    assert (notice["status"], notice["last_error"]) == ("failed", REFUSED)
    assert [(a["ok"], a["response"]) for a in notice["attempts"]] == [(False, None)]
    time.sleep(0.2)
    assert receiver.requests == []


def test_odd_spellings_of_private_hosts_saved_while_allowed_are_refused_when_sending(api, db):
    rules = {url: make_rule(1, [{"type": "webhook", "url": url}]) for url in ODD_SPELLINGS}
    outcomes = {url: _send_test(api, rule.id) for url, rule in rules.items()}
    assert {url: (notice["status"], notice["last_error"]) for url, notice in outcomes.items()} \
        == {url: ("failed", REFUSED) for url in ODD_SPELLINGS}


def test_with_private_addresses_allowed_the_loopback_receiver_gets_the_test(app, api, db,
                                                                            receiver):
    allow_private(app)
    rule = make_rule(1, [{"type": "webhook", "url": receiver.url}])
    assert _send_test(api, rule.id)["status"] == "delivered"
    assert receiver.wait_for(1)[0].json()["type"] == "test"


def test_a_redirect_is_not_followed(app, api, db, receiver):
    allow_private(app)
    elsewhere = HttpReceiver().start()
    try:
        receiver.status, receiver.headers = 302, {"Location": elsewhere.url}
        rule = make_rule(1, [{"type": "webhook", "url": receiver.url}])
        notice = _send_test(api, rule.id)
        assert notice["last_error"] == "the receiver answered HTTP 302 Found"
        assert notice["status"] == "pending"  # an answer that is not 2xx: tried again later
        time.sleep(0.2)
        assert len(receiver.requests) == 1 and elsewhere.requests == []
    finally:
        elsewhere.stop()


class Resolver:
    """Answers for host names ending in `.rebind.test`: `answers[n]` to the n-th look-up
    (the last one from then on); any other name goes to the real resolver. It stands in
    for a DNS server that the tests cannot run; connections still go to real sockets."""

    def __init__(self, monkeypatch, *answers: list[str]):
        self.answers, self.lookups = answers, []
        self.real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host, port, *args, **kwargs):
        if not str(host).endswith(".rebind.test"):
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(host)
        addresses = self.answers[min(len(self.lookups), len(self.answers)) - 1]
        if isinstance(addresses, Exception):
            raise addresses
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, int(port)) if ":" not in a else (a, int(port), 0, 0)) for a in addresses]


def test_a_name_is_looked_up_once_and_the_checked_address_is_the_one_connected_to(
        app, api, db, receiver, monkeypatch):
    allow_private(app)
    # The first answer is where the receiver listens; a second look-up would lead elsewhere.
    resolver = Resolver(monkeypatch, ["127.0.0.1"], ["127.0.0.2"])
    rule = make_rule(1, [{"type": "webhook",
                          "url": f"http://hooks.rebind.test:{receiver.port}/hooks/runwatch"}])
    assert _send_test(api, rule.id)["status"] == "delivered"
    assert resolver.lookups == ["hooks.rebind.test"]
    [request] = receiver.wait_for(1)
    assert request.headers["Host"] == f"hooks.rebind.test:{receiver.port}"


def test_an_international_host_name_is_looked_up_and_sent_in_its_ascii_form(
        app, api, db, receiver, monkeypatch):
    allow_private(app)
    resolver = Resolver(monkeypatch, ["127.0.0.1"])
    rule = make_rule(1, [{"type": "webhook",
                          "url": f"http://bücher.rebind.test:{receiver.port}/hooks/runwatch"}])
    assert _send_test(api, rule.id)["status"] == "delivered"
    assert resolver.lookups == ["xn--bcher-kva.rebind.test"]
    [request] = receiver.wait_for(1)
    assert request.headers["Host"] == f"xn--bcher-kva.rebind.test:{receiver.port}"


def test_a_name_that_does_not_resolve_reads_in_the_log_like_one_that_resolves_privately(
        api, db, receiver, monkeypatch):
    # No answer at all, a private one, a private one among public ones (refused before any
    # connection): the log must not tell which names the internal DNS knows.
    answers = {"nowhere": socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
               "internal": ["10.0.0.7"], "mixed": ["8.8.8.8", "127.0.0.1"],
               "internal-v6": ["fd00::7"],
               "no-address": socket.gaierror(socket.EAI_NODATA, "No address associated")}
    resolver = Resolver(monkeypatch, *answers.values())
    seen = {}
    for name in answers:
        rule = make_rule(1, [{"type": "webhook",
                              "url": f"http://{name}.rebind.test:{receiver.port}/hook"}])
        notice = _send_test(api, rule.id)
        seen[name] = (notice["status"], notice["last_error"],
                      tuple((a["ok"], a["response"], a["error"]) for a in notice["attempts"]))
    assert resolver.lookups == [f"{name}.rebind.test" for name in answers]
    # Tried again later, as a name that does not resolve yet may come to.
    assert set(seen.values()) == {
        ("pending", NO_PUBLIC_ADDRESS, ((False, None, NO_PUBLIC_ADDRESS),))}
    assert receiver.requests == []


@pytest.fixture
def certificate_authority(tmp_path, monkeypatch):
    """A certificate authority that this process's TLS clients trust."""
    authority = trustme.CA()
    path = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    return authority


def _tls_receiver(authority, *names: str) -> HttpReceiver:
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(*names).configure_cert(context)
    return HttpReceiver(tls=context).start()


def test_https_checks_the_certificate_against_the_host_name_and_sends_it_in_sni_and_host(
        app, api, db, certificate_authority):
    allow_private(app)
    good = _tls_receiver(certificate_authority, "localhost")
    wrong = _tls_receiver(certificate_authority, "hooks.example.com")
    try:
        rule = make_rule(1, [{"type": "webhook",
                              "url": f"https://localhost:{good.port}/hooks/runwatch"}])
        assert _send_test(api, rule.id)["status"] == "delivered"
        [request] = good.wait_for(1)
        assert request.headers["Host"] == f"localhost:{good.port}"
        assert good.server_names == ["localhost"]
        other = make_rule(1, [{"type": "webhook",
                               "url": f"https://localhost:{wrong.port}/hooks/runwatch"}])
        notice = _send_test(api, other.id)
        assert notice["status"] == "pending"
        assert "CERTIFICATE_VERIFY_FAILED" in notice["last_error"]
        assert wrong.requests == []
    finally:
        good.stop()
        wrong.stop()


# --- Every attempt ends by its deadline ---------------------------------------------------

def _config(app, **settings):
    """The alert configuration with private addresses allowed and `settings` changed."""
    allow_private(app)
    app.config.update(settings)
    return config_from(app)


@pytest.mark.parametrize("setting", ["WEBHOOK_TIMEOUT_SECONDS", "SMTP_TIMEOUT_SECONDS",
                                     "DELIVERY_LEASE_SECONDS"])
def test_a_delivery_time_that_is_not_a_whole_number_of_seconds_stops_the_start(app_config,
                                                                            setting):
    from app import create_app
    for value in ("soon", "0", "2.5"):
        with pytest.raises(SystemExit, match=f"RUNWATCH_{setting} must be"):
            create_app({**app_config, setting: value})


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline(app, db, receiver):
    config = _config(app, WEBHOOK_TIMEOUT_SECONDS=1)
    receiver.trickle = 0.1  # a byte every tenth of a second: no read ever waits 1 s
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    scan(config)
    started = time.monotonic()
    result = deliver_due(config)
    took = time.monotonic() - started
    assert took < 1 + 1.5, took
    assert result.retrying == 1
    [notice] = notices()
    [attempt] = Attempt.select().where(Attempt.notice == notice.id)
    assert notice.last_error == attempt.error == DEADLINE_MISSED.format(1)
    assert not attempt.ok and 950 <= attempt.latency_ms < 2500
    assert len(receiver.requests) == 1 and receiver.trickled > 3  # it was answering


def test_a_mail_server_that_trickles_its_greeting_is_cut_off_at_the_deadline(app, db):
    server = Trickler(b"220 mail.example.com ESMTP " + b"." * 1000 + b"\r\n", interval=0.1)
    try:
        app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=server.port)
        config = _config(app, SMTP_TIMEOUT_SECONDS=1)
        make_rule(1, [{"type": "email", "to": ["ops@example.com"]}], workflow="a")
        report("a", "F")
        scan(config)
        started = time.monotonic()
        assert deliver_due(config).retrying == 1
        assert time.monotonic() - started < 1 + 1.5
        assert notices()[0].last_error == "the mail server did not finish within 1 s"
    finally:
        server.stop()


# --- A slow receiver holds back no other notice --------------------------------------------

def test_a_hanging_receiver_does_not_hold_back_a_notice_to_a_fast_one(app, db, receiver):
    config = _config(app, WEBHOOK_TIMEOUT_SECONDS=1)
    hanging = HttpReceiver().start()
    hanging.delay = 30
    try:
        make_rule(1, [{"type": "webhook", "url": hanging.url}], workflow="slow")
        report("slow", "F")
        scan(config)  # the hanging receiver's notice is older: first in line
        make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="fast")
        report("fast", "F", first_minute=1)
        scan(config, utcnow() + timedelta(seconds=1))
        delivery = Background(deliver_due, config, utcnow() + timedelta(seconds=2))
        [arrived] = receiver.wait_for(1, timeout=6)
        # Before the slow send's deadline: it did not wait for the slow one to end.
        assert arrived.at - delivery.started < 1, "the fast receiver waited for the slow one"
        assert len(hanging.wait_for(1)) == 1 and delivery.thread.is_alive()  # still hanging
        result = delivery.result()
        assert delivery.took < 1 + 1.5
        assert (result.delivered, result.retrying) == (1, 1)
        slow = Notice.get(Notice.channel_options.contains(hanging.url))
        assert slow.last_error == DEADLINE_MISSED.format(1)
    finally:
        hanging.stop()


def test_send_test_sends_every_channel_at_once(app, api, db, receiver):
    _config(app, WEBHOOK_TIMEOUT_SECONDS=1)  # the hanging receiver's send is cut off then
    hanging = HttpReceiver().start()
    hanging.delay = 30
    try:
        rule = make_rule(1, [{"type": "webhook", "url": hanging.url},
                             {"type": "webhook", "url": receiver.url}])
        sent = Background(api.post, f"{API}/{rule.id}/test")
        [arrived] = receiver.wait_for(1, timeout=6)
        assert arrived.at - sent.started < 1  # before the hanging one's deadline
        statuses = [n["status"] for n in sent.result().json["data"]]
        assert statuses == ["pending", "delivered"]  # the hanging one: cut off at 1 s
        assert sent.took < 1 + 1.5
    finally:
        hanging.stop()


# --- A lease outlasts its send ------------------------------------------------------------

def test_the_lease_is_renewed_while_the_send_runs_so_no_other_process_claims_it_mid_send(
        app, db, receiver):
    # A short lease (1 s) and a receiver that takes 2 s: while the send runs, its heartbeat
    # keeps the lease ahead, so passes made meanwhile find the notice taken.
    config = _config(app, WEBHOOK_TIMEOUT_SECONDS=300, DELIVERY_LEASE_SECONDS=1)
    receiver.delay = 2
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    scan(config)
    first = Background(deliver_due, config)
    receiver.wait_for(1)
    for _ in range(3):  # 0.5 s apart: the last well past the first lease
        time.sleep(0.5)
        [notice] = notices()
        assert notice.status == "sending"
        assert notice.lease_until > utcnow()
        second = deliver_due(config)
        assert (second.delivered, second.retrying, second.failed) == (0, 0, 0)
    assert first.result().delivered == 1
    assert len(receiver.requests) == 1
    [notice] = notices()
    assert (notice.status, notice.attempts) == ("delivered", 1)
    assert lease(config) == timedelta(seconds=1)


def test_two_delivery_passes_racing_on_a_slow_receiver_send_one_request(app, db, receiver):
    config = _config(app, WEBHOOK_TIMEOUT_SECONDS=1)
    receiver.trickle = 0.1
    make_rule(1, [{"type": "webhook", "url": receiver.url}], workflow="a")
    report("a", "F")
    scan(config)
    passes = [Background(deliver_due, config) for _ in range(2)]
    results = [p.result() for p in passes]
    assert sorted(r.retrying for r in results) == [0, 1]
    assert max(p.took for p in passes) < 1 + 1.5
    time.sleep(0.3)
    assert len(receiver.requests) == 1
    [notice] = notices()
    assert (notice.attempts, notice.last_error) == (1, DEADLINE_MISSED.format(1))
