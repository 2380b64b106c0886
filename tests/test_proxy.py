"""Behind reverse proxies: RUNWATCH_PROXY_COUNT trusts that many proxies' X-Forwarded-*
headers for the client's address (the login limit's key), the scheme and the host."""
from __future__ import annotations

import pytest

from app import create_app
from helpers import URL, csrf_from

# What a request looks like once it has passed one proxy (the last values are the proxy's).
BEHIND = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "runwatch.example.com"}

sqlite_only = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no query differs


@pytest.fixture
def proxy_count(request) -> int:
    return getattr(request, "param", 1)


@pytest.fixture
def app_config(app_config, proxy_count):
    return {**app_config, "PROXY_COUNT": proxy_count, "LOGIN_RATE_LIMIT": "2 per minute"}


def failed_sign_in(client, forwarded_for: str, email: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    page = client.get("/login", headers=headers)
    return client.post("/login", headers=headers, data={
        "csrf_token": csrf_from(page.text), "email": email, "password": "wrong"}).status_code


@sqlite_only
def test_behind_a_proxy_the_login_limit_counts_each_client_by_the_address_it_saw(app, client,
                                                                                 user):
    # What a client wrote into the header itself comes before the proxy's value: not believed.
    assert failed_sign_in(client, "198.51.100.1, 203.0.113.5", "a@example.com") == 401
    assert failed_sign_in(client, "198.51.100.2, 203.0.113.5", "b@example.com") == 401
    assert failed_sign_in(client, "198.51.100.3, 203.0.113.5", "c@example.com") == 429
    assert failed_sign_in(client, "203.0.113.6", "d@example.com") == 401  # another client


@sqlite_only
@pytest.mark.parametrize("proxy_count", [0], indirect=True)
def test_without_proxies_forwarded_headers_change_nothing(app, client, user, api):
    assert failed_sign_in(client, "203.0.113.5", "a@example.com") == 401
    assert failed_sign_in(client, "203.0.113.6", "b@example.com") == 401
    assert failed_sign_in(client, "203.0.113.7", "c@example.com") == 429  # one address: ours
    answer = api.post(URL, json={"workflow": "w", "status": "success"}, headers=BEHIND)
    assert answer.json["url"].startswith("http://localhost/executions/")


@sqlite_only
def test_behind_a_proxy_links_use_the_scheme_and_host_the_client_asked_for(app, api):
    answer = api.post(URL, json={"workflow": "w", "status": "success"}, headers=BEHIND)
    assert answer.status_code == 201
    assert answer.json["url"] == f"https://runwatch.example.com/executions/{answer.json['id']}"


@pytest.mark.parametrize("value", ["two", -1, 6, "1.5", True, ""])
def test_a_proxy_count_that_is_not_a_whole_number_from_0_to_5_stops_the_start(value, tmp_path):
    with pytest.raises(SystemExit, match="RUNWATCH_PROXY_COUNT must be a whole number from 0"):
        create_app({"PROXY_COUNT": value, "SECRET_KEY": "x", "SCHEDULER": False,
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"})
