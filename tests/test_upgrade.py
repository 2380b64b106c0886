"""A database made and used by a previous release opens whole under this one.

Each release's code comes from this repository's history; it builds a database (an account
signed in with "Keep me signed in", a token, runs with steps and payloads, an alert rule,
decided notices with their attempts), and then this release opens it and carries on.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app import create_app
from helpers import EMAIL, PASSWORD, ROOT, close_admin_connections, csrf_from, missing, parse
from models import database

# Releases that people run (the first, the one before accounts had scopes, and the last),
# each with the script that builds a database with its code
# (run with that release's packages first on the path). The build script differs where
# the release's own names do: alerts.settings.settings_from became alerts.config.config_from,
# and since 738fe6d a rule whose webhook names a private address is validated with the
# configuration that allows it (the build's rule posts to 127.0.0.1).
BUILD = """
import json, re, sys
from app import create_app
from models.db import connection
from models.users import create_token, create_user
from models.ingest import store_executions
from models.schemas import ExecutionIn
from alerts.delivery import deliver_due
from alerts.rules import create_rule
from alerts.scheduler import scan
from alerts.schemas import RuleIn
from {config_module} import {config_from} as config_from

url, email, password = sys.argv[1:4]
app = create_app({{"DATABASE_URL": url, "SECRET_KEY": "previous", "SCHEDULER": False,
                  "BASE_URL": "http://runwatch.test", "DELIVERY_MAX_ATTEMPTS": 1}})
runs = [{{"workflow": "billing", "status": "failure", "external_id": f"b{{i}}",
         "started_at": f"2026-11-20T10:0{{i}}:00Z", "finished_at": f"2026-11-20T10:0{{i}}:05Z",
         "input": {{"invoice": i, "password": "hunter2"}},
         "error": {{"message": f"HTTP 502 (try {{i}})", "type": "HTTPError"}},
         "steps": [{{"name": "fetch", "status": "success", "output": {{"rows": i}}}},
                   {{"name": "post", "status": "failure", "error": {{"message": "HTTP 502"}}}}]}}
        for i in range(3)]
runs += [{{"workflow": "etl", "status": "success", "started_at": f"2026-11-21T0{{i}}:00:00Z",
          "finished_at": f"2026-11-21T0{{i}}:01:00Z"}} for i in range(2)]
with app.app_context(), connection():
    user = create_user(email, password)
    token = create_token(user, "kept")[1]
    ids = [i for i, _ in store_executions([ExecutionIn.model_validate_json(json.dumps(r)) for r in runs])]
    rule = create_rule({rule_from}(json.dumps({{
        "workflow": "billing", "threshold": 2,
        "channels": [{{"type": "webhook", "url": "http://127.0.0.1:9/closed"}},
                     {{"type": "email", "to": ["ops@example.com"]}}]}})))
    config = config_from(app)
    scan(config)
    deliver_due(config)
# A browser signed in with "Keep me signed in": its cookies, as the release made them.
client = app.test_client()
page = client.get("/login").get_data(as_text=True)
csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
signed_in = client.post("/login", data={{"csrf_token": csrf, "email": email,
                                        "password": password, "remember": "y"}})
assert signed_in.status_code == 302, signed_in.status_code
cookies = {{name: client.get_cookie(name).value for name in ("session", "remember_token")}}
print(json.dumps({{"token": token, "ids": ids, "rule": rule.id, "cookies": cookies}}))
"""

OPEN_RULE = "RuleIn.model_validate_json"
PRIVATE_RULE = ("(lambda text: __import__('alerts.schemas').schemas.parse_rule("
                "RuleIn, text.encode(), {'webhook_allow_private': True}))")

# Each pytest-xdist worker would build every release again: one worker runs them all.
pytestmark = pytest.mark.xdist_group("upgrade")

def _release(commit: str, config_module: str = "alerts.config",
             config_from: str = "config_from", rule_from: str = PRIVATE_RULE):
    """A release's commit and its build script, named by the commit's first seven digits."""
    script = BUILD.format(config_module=config_module, config_from=config_from,
                          rule_from=rule_from)
    return pytest.param((commit, script), id=commit[:7])


RELEASES = [
    _release("721c6862c9f92d8b0add57a98cfc1a037de12596", "alerts.settings", "settings_from",
             OPEN_RULE),
    _release("738fe6d464ad0672eac99b54974d5b75c37a6dfd"),
    # The release before workflows (schema version 3: accounts, scopes, alert positions).
    _release("9828e86e52cb776dbd2cd51151af0d8e4db2163c"),
    # The release before error fingerprints (schema version 4: workflows, error types).
    _release("8f266a26087883aef57402ce3195e6307cd3bd45"),
    # The release before error counts (schema version 5: error fingerprints).
    _release("1af43d5f484315f7c571d949fd6837156d3e5bde"),
    # The release before quiet (schema version 6: error counts, the new channel kinds).
    _release("4efbba02264f3f81d4855ed86fe5076596dfd613"),
    # The release before accounts' themes and zones (schema version 7: quiet alerts).
    _release("e42a8b55b9b68c919aec67035585b07d94dedf89"),
    # The release before sources and metrics (schema version 8: search indexes, re-runs,
    # accounts' themes and zones).
    _release("dc939f3e28d4947f9d4bc08f64feab0246db38b6"),
    # The release before the rollups' indexes of days (schema version 9: sources, metrics).
    _release("0fa8d983b635c52d72b5609bfe5498e38acbc309"),
]


@pytest.fixture(params=RELEASES)
def release(request) -> tuple[str, str]:
    """A release people run: its commit and the script that builds a database with it."""
    return request.param


# What each release built, kept for the session: building takes a process of that
# release's code, and every test starts from a copy of the same database.
_UNPACKED: dict[str, Path] = {}
_BUILT: dict[tuple[str, str], tuple[dict, str]] = {}


@pytest.fixture
def previous_release(release, tmp_path_factory):
    """The release's code, unpacked from this repository's history (once a session)."""
    if release[0] in _UNPACKED:
        return _UNPACKED[release[0]]
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", release[0]],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        missing("the previous release is not in this checkout's git history "
                f"({archive.stderr.decode(errors='replace').strip()})")
    target = tmp_path_factory.mktemp("previous")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True,
                   timeout=60)
    _UNPACKED[release[0]] = target
    return target


def _as_admin(url: str, *statements: str) -> None:
    """Run statements on the server's `postgres` database (copying whole databases)."""
    import psycopg2

    close_admin_connections()  # the test's database is copied as a template
    parts = urlsplit(url)
    conn = psycopg2.connect(host=parts.hostname, port=parts.port, user=parts.username,
                            dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def _keep(url: str, release_id: str, tmp_path_factory) -> str:
    """A copy of the database the release just built: a file, or a template database."""
    if url.startswith("sqlite"):
        copy = tmp_path_factory.mktemp("kept") / "kept.db"
        _copy_sqlite(url.removeprefix("sqlite:///"), str(copy))
        return str(copy)
    # Named after the test's database: each pytest-xdist worker has one of its own.
    name = f"{urlsplit(url).path[1:]}_kept_{release_id[:12]}"
    source = urlsplit(url).path[1:]
    _as_admin(url, f'DROP DATABASE IF EXISTS "{name}"',
              # A copy needs its source to itself: connections left over end.
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              f"WHERE datname = '{source}' AND pid <> pg_backend_pid()",
              f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    return name


def _copy_sqlite(source: str, target: str) -> None:
    """Copy a SQLite file with its write-ahead log: a release that keeps its connections
    pooled leaves its last writes there when its process ends."""
    for suffix in ("-wal", "-shm"):
        Path(target + suffix).unlink(missing_ok=True)
    shutil.copy(source, target)
    if Path(source + "-wal").exists():
        shutil.copy(source + "-wal", target + "-wal")


def _restore(url: str, copy: str) -> None:
    """The test's database made a copy of the one the release built."""
    if url.startswith("sqlite"):
        _copy_sqlite(copy, url.removeprefix("sqlite:///"))
        return
    target = urlsplit(url).path[1:]
    _as_admin(url, f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)',
              f'CREATE DATABASE "{target}" TEMPLATE "{copy}"')


@pytest.fixture
def kept(release, previous_release, database_url, backend, tmp_path_factory):
    """A database built and used by the release: what it printed about it. The release
    builds it once per backend; each test gets its own copy: of the database as the
    release left it, until this release has opened one (`upgraded`), then of that."""
    key = (release[0], backend)
    if key in _BUILT:
        printed, copy = _BUILT[key]
        _restore(database_url, _UPGRADED.get(key, copy))
        return printed
    built = subprocess.run([sys.executable, "-c", release[1], database_url, EMAIL, PASSWORD],
                           cwd=previous_release, capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    printed = json.loads(built.stdout.strip().splitlines()[-1])
    _BUILT[key] = (printed, _keep(database_url, release[0], tmp_path_factory))
    return printed


# The upgraded database, kept once this release has opened a copy of the release's:
# the first test of each release and backend sees its migrations run, and the others start
# from what they made (the same database) without running them again.
_UPGRADED: dict[tuple[str, str], str] = {}


def _close_app_connections() -> None:
    if not database.is_closed():
        database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


@pytest.fixture
def upgraded(kept, release, backend, database_url, tmp_path_factory):
    """This release's app on the kept database."""
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "previous",
                      "SCHEDULER": False, "BASE_URL": "http://runwatch.test"})
    key = (release[0], backend)
    if key not in _UPGRADED:
        _close_app_connections()  # PostgreSQL copies a database no one is connected to
        _UPGRADED[key] = _keep(database_url, f"up_{release[0][:9]}", tmp_path_factory)
    yield app
    _close_app_connections()


def test_a_database_of_the_previous_release_opens_whole(kept, upgraded):
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    assert client.get("/api/ping", headers=headers).json["user"] == EMAIL

    history = client.get("/api/automations/executions", headers=headers).json
    assert sorted(r["id"] for r in history["data"]) == sorted(kept["ids"])
    assert history["counts"] == {"pending": 0, "running": 0, "success": 2, "failure": 3}
    failures = client.get("/api/automations/executions?workflow=billing&status=failure"
                          "&from=2026-11-20&to=2026-11-20", headers=headers).json
    assert len(failures["data"]) == 3 and failures["counts"]["failure"] == 3

    first = client.get(f"/api/automations/executions/{kept['ids'][0]}", headers=headers).json
    assert first["input"] == {"invoice": 0, "password": "hunter2"}
    assert [s["name"] for s in first["steps"]] == ["fetch", "post"]
    assert first["failed_step"] == 1 and first["error"]["type"] == "HTTPError"

    [rule] = client.get("/api/automations/alerts", headers=headers).json["data"]
    assert rule["id"] == kept["rule"] and rule["threshold"] == 2
    assert [c["type"] for c in rule["channels"]] == ["webhook", "email"]
    assert rule["channels"][1]["to"] == ["ops@example.com"]
    assert rule["states"][0]["status"] == "failing"

    log = client.get("/api/automations/alerts/notices", headers=headers).json["data"]
    assert sorted(n["channel"]["type"] for n in log) == ["email", "webhook"]
    assert all(n["status"] == "failed" and len(n["attempts"]) == 1 for n in log)
    for notice in log:  # made before attempts were written ahead of sending: answers known
        [attempt] = notice["attempts"]
        assert attempt["outcome"] == "failed" and attempt["ok"] is False
        assert attempt["latency_ms"] >= 0 and attempt["error"]
        assert notice["payload"]["data"]["workflow"] == "billing"
        assert notice["payload"]["data"]["failure_count"] == 3


def test_the_previous_releases_account_signs_in_and_sees_its_pages(kept, upgraded):
    client = upgraded.test_client()
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                            "password": PASSWORD})
    assert response.status_code == 302
    for url in ("/executions", f"/executions/{kept['ids'][0]}", "/alerts", "/settings"):
        assert client.get(url).status_code == 200, url
    assert "kept" in client.get("/settings").text
    with upgraded.app_context():  # accounts made before themes and zones keep the old look
        from models.db import connection
        from models.users import User
        with connection():
            assert [(u.theme, u.time_zone) for u in User.select()] == [("system", "UTC")]


def test_work_goes_on_after_the_upgrade(kept, upgraded):
    from alerts.config import config_from
    from alerts.scheduler import scan

    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    response = client.post("/api/automations/executions", headers=headers, json={
        "workflow": "billing", "status": "success", "started_at": "2026-11-22T10:00:00Z",
        "finished_at": "2026-11-22T10:00:01Z"})
    assert response.status_code == 201
    counts = client.get("/api/automations/executions", headers=headers).json["counts"]
    assert counts["success"] == 3 and counts["failure"] == 3
    with upgraded.app_context():
        database.connect(reuse_if_open=True)
        scan(config_from(upgraded))
        database.close()
    log = client.get("/api/automations/alerts/notices?type=recovered", headers=headers).json
    assert len(log["data"]) == 2  # the streak the previous release alerted has recovered
    # Its runs can be re-run: a hook set, a run reported as a re-run of one kept.
    origin = kept["ids"][0]
    hook = client.patch("/api/automations/workflows/billing", headers=headers,
                        json={"rerun": {"url": "https://ci.example.com/hooks/rerun"}})
    assert hook.status_code == 200 and hook.json["rerun"]["url"].startswith("https://ci.")
    again = client.post("/api/automations/executions", headers=headers, json={
        "workflow": "billing", "status": "success", "rerun_of": origin})
    assert again.status_code == 201 and again.json["rerun_of"] == origin
    shown = client.get(f"/api/automations/executions/{origin}", headers=headers).json
    assert [r["id"] for r in shown["rerun_runs"]] == [again.json["id"]]
    assert shown["rerun_of"] is None and shown["reruns"] == []


def test_the_schema_is_brought_to_the_current_version(kept, upgraded):
    from models.db import connection
    from alerts.migrations import REDUNDANT_V9
    from models.migrations import SCHEMA_VERSION, SchemaVersion, _catalog
    with connection():
        assert [row.version for row in SchemaVersion.select()] == [SCHEMA_VERSION]
    # A second start finds the schema current and leaves it alone.
    create_app({"TESTING": True, "DATABASE_URL": upgraded.config["DATABASE_URL"],
                "SECRET_KEY": "previous", "SCHEDULER": False})
    with connection():
        assert [row.version for row in SchemaVersion.select()] == [SCHEMA_VERSION]
        # Indexes on a rule alone, which the unique indexes beginning with it made
        # redundant, are gone (version 9); the unique ones are there.
        indexes = _catalog()[1]
        assert not indexes & set(REDUNDANT_V9), sorted(indexes & set(REDUNDANT_V9))
        assert {"alert_channel_rule_id_position", "alert_state_rule_id_workflow_id"} <= indexes
        # The workflows' days of the rollups, by day first (version 10: /metrics reads them).
        assert {"run_rollup_days", "duration_rollup_days"} <= indexes


def test_tokens_of_the_previous_release_keep_every_scope(kept, upgraded):
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    reported = client.post("/api/automations/executions", headers=headers,
                           json={"workflow": "etl", "status": "success"})
    assert reported.status_code == 201  # ingest
    assert client.get(f"/api/automations/executions/{kept['ids'][0]}",
                      headers=headers).status_code == 200  # read
    rule = client.get(f"/api/automations/alerts/{kept['rule']}", headers=headers).json
    assert rule["channels"][0]["secret"].startswith("whsec_")  # admin sees secrets
    changed = client.patch(f"/api/automations/alerts/{kept['rule']}", headers=headers,
                           json={"threshold": 3})
    assert changed.status_code == 200 and changed.json["threshold"] == 3  # admin

    page = upgraded.test_client()
    login = page.get("/login")
    page.post("/login", data={"csrf_token": csrf_from(login.text), "email": EMAIL,
                              "password": PASSWORD})
    tree = parse(page.get("/settings"))
    assert [cell.text for cell in tree.find("td", class_="token-scopes")] == [
        "ingest, read, admin"]


def test_accounts_of_the_previous_release_are_enabled(kept, upgraded):
    from models.db import connection
    from models.users import User
    with connection():
        [account] = User.select()
        assert account.email == EMAIL and account.is_active and account.disabled_at is None
    client = upgraded.test_client()
    login = client.get("/login")
    client.post("/login", data={"csrf_token": csrf_from(login.text), "email": EMAIL,
                                "password": PASSWORD})
    rows = parse(client.get("/settings")).find("tr", class_="account")
    assert [[cell.text for cell in row.find("td")][:2] for row in rows] == [[EMAIL, "enabled"]]


# Releases whose cookies held the bare account id (before schema version 2).
BARE_ID_COOKIES = {"721c6862c9f92d8b0add57a98cfc1a037de12596",
                   "a1ae0a2906ca5db0c7b5c9371dcf552dd32bf21d"}


def test_sessions_carry_on_unless_their_cookies_held_the_bare_account_id(release, kept,
                                                                      upgraded):
    if release[0] not in BARE_ID_COOKIES:  # cookies with a session generation stay valid
        client = upgraded.test_client()
        client.set_cookie("session", kept["cookies"]["session"])
        assert client.get("/settings").status_code == 200
        return
    # Its cookies held the bare account id, alike on every sign-in and valid for a year:
    # they are not accepted; the person signs in once more.
    for names in (("session", "remember_token"), ("session",), ("remember_token",)):
        client = upgraded.test_client()
        for name in names:
            client.set_cookie(name, kept["cookies"][name])
        page = client.get("/settings")
        assert page.status_code == 302 and page.headers["Location"].startswith("/login"), names
        assert client.get("/api/ping").status_code == 401, names


def test_the_previous_releases_workflows_are_summarised_with_their_error_types(kept, upgraded):
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    workflows = client.get("/api/automations/workflows", headers=headers).json["data"]
    assert [(w["name"], w["state"], w["streak"]) for w in workflows] == [
        ("billing", "failing", 3), ("etl", "ok", 0)]
    assert all(w["schedule"] is None and w["grace_seconds"] == 300 for w in workflows)
    billing = client.get("/api/automations/workflows/billing?from=2026-11-19&to=2026-11-22",
                         headers=headers).json
    [group] = billing["errors"]  # "HTTP 502 (try 0)" … "(try 2)": one group, its type read back
    assert (group["type"], group["count"]) == ("HTTPError", 3)
    assert [d["failure"] for d in billing["metrics"]["days"]] == [0, 3, 0, 0]
    assert billing["metrics"]["days"][1]["duration_p50_ms"] == pytest.approx(5000, rel=0.045)
    changed = client.patch("/api/automations/workflows/etl", headers=headers,
                           json={"schedule": "0 * * * *"})
    assert changed.status_code == 200 and changed.json["next_expected_at"]


def test_the_previous_releases_failures_are_grouped_with_those_reported_after(kept, upgraded):
    from models.db import connection
    from models.executions import Execution
    from models.fingerprints import fingerprint

    with connection():
        kept_rows = list(Execution.select(Execution.error_type, Execution.error_message,
                                          Execution.error_fingerprint)
                         .where(Execution.status == "failure").tuples())
    assert len(kept_rows) == 3
    assert all(key == fingerprint(kind, message) is not None
               for kind, message, key in kept_rows)  # computed by the upgrade
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    for message, kind in (("HTTP 502 (try 7)", "HTTPError"), ("'customer_id'", "KeyError")):
        reported = client.post("/api/automations/executions", headers=headers, json={
            "workflow": "billing", "status": "failure", "started_at": "2026-11-21T10:00:00Z",
            "error": {"message": message, "type": kind}})
        assert reported.status_code == 201
    billing = client.get("/api/automations/workflows/billing?from=2026-11-19&to=2026-11-22",
                         headers=headers).json
    assert [(g["type"], g["count"], g["message"]) for g in billing["errors"]] == [
        ("HTTPError", 4, "HTTP 502 (try 7)"), ("KeyError", 1, "'customer_id'")]


def test_the_previous_releases_runs_are_found_by_external_id_and_error_text(kept, upgraded):
    client = upgraded.test_client()
    headers = {"Authorization": f"Bearer {kept['token']}"}
    ids = kept["ids"]

    def found(query: str) -> list[int]:
        response = client.get(f"/api/automations/executions?{query}", headers=headers)
        assert response.status_code == 200, response.text
        return [row["id"] for row in response.json["data"]]

    assert found("q=b1") == found("external_id=b1") == [ids[1]]
    assert found("q=http+502+(TRY+2)") == [ids[2]]  # indexed by the upgrade
    assert sorted(found("q=try")) == sorted(ids[:3])
    reported = client.post("/api/automations/executions", headers=headers, json={
        "workflow": "billing", "status": "failure", "started_at": "2026-11-22T10:00:00Z",
        "error": {"message": "Disk quota exceeded"}})
    assert found("q=quota") == [reported.json["id"]]
    patched = client.patch(f"/api/automations/executions/{ids[0]}", headers=headers,
                           json={"status": "success"})
    assert patched.status_code == 200
    assert sorted(found("q=try")) == sorted(ids[1:3])
