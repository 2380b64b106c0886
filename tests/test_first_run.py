"""The first-run page creates exactly one account, however many people submit it at once."""
from __future__ import annotations

import threading

import pytest
import requests

from helpers import PASSWORD, csrf_from
from models.db import connection

pytestmark = pytest.mark.long(8)

CONTENDERS = 6


def test_concurrent_first_run_forms_create_exactly_one_account(live_server):
    sessions, tokens = [], []
    for _ in range(CONTENDERS):
        session = requests.Session()
        page = session.get(f"{live_server.url}/setup", timeout=10)
        assert page.status_code == 200
        sessions.append(session)
        tokens.append(csrf_from(page.text))
    start = threading.Barrier(CONTENDERS)
    answers: list[requests.Response | Exception] = [None] * CONTENDERS

    def submit(number: int) -> None:
        start.wait(timeout=10)
        try:
            answers[number] = sessions[number].post(
                f"{live_server.url}/setup", timeout=30, allow_redirects=False,
                data={"csrf_token": tokens[number], "email": f"first{number}@example.com",
                      "password": PASSWORD, "confirm": PASSWORD})
        except requests.RequestException as exc:
            answers[number] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(a, requests.Response) for a in answers), answers
    assert all(a.status_code == 302 for a in answers), [a.status_code for a in answers]
    places = sorted(a.headers["Location"] for a in answers)
    assert places == ["/login"] * (CONTENDERS - 1) + ["/settings"], places

    from models.users import User
    with connection():
        accounts = [u.email for u in User.select()]
    assert len(accounts) == 1, accounts
    winner = answers[[a.headers["Location"] for a in answers].index("/settings")]
    assert accounts == [f"first{answers.index(winner)}@example.com"]
    # The winner is signed in; everyone else is sent to sign in.
    assert sessions[answers.index(winner)].get(f"{live_server.url}/settings",
                                               timeout=10).status_code == 200
    assert "Traceback" not in live_server.output()
