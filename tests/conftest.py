"""Shared fixtures: an app on a fresh SQLite file or PostgreSQL database, clients, servers."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from _pytest.nodes import NodeId
import requests
from flask import Flask
from jinja2 import BytecodeCache

from app import create_app
from helpers import (CHROMIUM, EMAIL, PASSWORD, ROOT, TEST_PASSWORD_METHOD, LiveServer,
                     RedisServer, close_admin_connections, close_database, csrf_from, free_port,
                     make_token, missing, with_admin_cursor)
from models import database
from models.db import connection
from models.startup import restart
from models.users import create_user

# The SMTP sink and the webhook receiver, as fixtures for every test module.
pytest_plugins = ["alert_servers"]

# --- URL rules compiled once per process ---------------------------------------------------
# Nearly every test builds an app, and werkzeug compiles each URL rule's builder anew for each
# app, by generating Python source and compiling it: more than half of the app's build time.
# The code it generates depends only on the rule's parts, defaults and converters, so tests
# keep each compiled builder for the next app with the same rule.

def _cache_rule_builders() -> None:
    from werkzeug.routing.rules import Rule

    compile_builder = getattr(Rule, "_compile_builder", None)
    if compile_builder is None or getattr(compile_builder, "cached", False):
        return  # another werkzeug: every app compiles its own, as before
    builders: dict = {}

    def cached_builder(self, append_unknown: bool = True):
        try:
            key = (self.rule, tuple(self._trace), append_unknown,
                   tuple(sorted((self.defaults or {}).items())),
                   tuple((name, type(conv)) for name, conv in self._converters.items()))
            hash(key)
        except (AttributeError, TypeError):  # a default that cannot be a key
            return compile_builder(self, append_unknown)
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    cached_builder.cached = True
    Rule._compile_builder = cached_builder


_cache_rule_builders()


# --- Templates compiled once per process ---------------------------------------------------
# Likewise, each app's Jinja environment compiles every template it renders from its source
# to Python code: a tenth of a second for a page and the templates it includes, in every
# test that renders one. The compiled code depends only on the template's source and the
# environment's settings, which are the same in every test app (Jinja's bytecode caches
# share it between processes for the same reason), so tests keep it for the next app, by
# the template's name and a checksum of its source.

class _CompiledTemplates(BytecodeCache):
    def __init__(self):
        self.code: dict = {}

    def load_bytecode(self, bucket) -> None:
        bucket.code = self.code.get((bucket.key, bucket.checksum))

    def dump_bytecode(self, bucket) -> None:
        self.code[(bucket.key, bucket.checksum)] = bucket.code


Flask.jinja_options = {**Flask.jinja_options, "bytecode_cache": _CompiledTemplates()}


# --- PostgreSQL: one throwaway cluster per test session -------------------------------------

def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


def _as_postgres_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


def _worker_database(url: str) -> str:
    """`url` itself, or under pytest-xdist a database of this worker's own beside it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    import psycopg2

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}_{worker}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_url():
    """A URL of a fresh database on a PostgreSQL server started for this session (for each
    pytest-xdist worker, as each runs a session of its own)."""
    if os.environ.get("RUNWATCH_TEST_POSTGRES_URL"):
        yield _worker_database(os.environ["RUNWATCH_TEST_POSTGRES_URL"])
        return
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        missing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    base = Path(tempfile.mkdtemp(prefix="runwatch-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    os.chmod(base, 0o755)
    port = free_port()
    subprocess.run(_as_postgres_user([initdb, "-D", str(data), "-U", "runwatch",
                                      "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, timeout=120)
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-o", options, "-l",
                                      str(base / "log"), "-w", "-t", "60", "start"]),
                   check=True, capture_output=True, timeout=90)
    try:
        import psycopg2
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="runwatch", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE runwatch_test")
        conn.close()
        yield f"postgresql://runwatch@127.0.0.1:{port}/runwatch_test"
    finally:
        close_admin_connections()
        subprocess.run(_as_postgres_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A URL of a Redis server started for this session (for each pytest-xdist worker)."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


# --- The app on either backend ------------------------------------------------------------

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """Which database the test runs on."""
    return request.param


@pytest.hookimpl(tryfirst=True)  # before the fixture's own parameters
def pytest_generate_tests(metafunc):
    """Browser tests run on SQLite alone: they hold the pages to what a browser does with
    them (scripts, focus, axe-core), and the database under a page changes none of that;
    every page's queries run on both databases in the page tests of the test client.
    RUNWATCH_TEST_BROWSER_POSTGRES=true runs them on PostgreSQL too."""
    if ("browser" in metafunc.fixturenames and "backend" in metafunc.fixturenames
            and os.environ.get("RUNWATCH_TEST_BROWSER_POSTGRES", "").lower() != "true"):
        metafunc.parametrize("backend", ["sqlite"])


# Building the schema takes far longer than most tests. It is built once per session and
# backend, and each test that builds an app starts from it with no rows: a copy of a
# template file on SQLite, the tables emptied on PostgreSQL. Only the schema version row
# stays; the app's start makes the rest (the change counter gets a new random number).
# A test without the `app` fixture gets a database with no tables, as a new install has.

def _built_schema(url: str) -> None:
    """Let the app build its schema on the database at `url`."""
    create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "schema",
                "SCHEDULER": False})
    close_database()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file with the whole schema and only the schema version row."""
    path = tmp_path_factory.mktemp("schema") / "runwatch.db"
    _built_schema(f"sqlite:///{path}")
    conn = sqlite3.connect(path, isolation_level=None)
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'schema_version'")]
    # A virtual table (the error-text index) is emptied through its own table's triggers;
    # its shadow tables hold its structure, which a DELETE would break.
    virtual = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE sql LIKE 'CREATE VIRTUAL TABLE%'")]
    tables = [t for t in tables if not any(t == v or t.startswith(v + "_") for v in virtual)]
    for table in tables:
        conn.execute(f'DELETE FROM "{table}"')
    conn.execute("PRAGMA journal_mode = delete")  # one self-contained file to copy
    conn.close()
    return path


# A digest of the tables, columns, indexes and constraints: what a test that changes the
# schema (an upgrade, a dropped column) leaves different. Read from the system catalogs,
# which is many times faster than from information_schema's views.
_PG_SCHEMA = """SELECT md5(
    (SELECT coalesce(string_agg(concat_ws(':', c.relname, a.attname,
                                          format_type(a.atttypid, a.atttypmod), a.attnotnull,
                                          pg_get_expr(d.adbin, d.adrelid)),
                                ',' ORDER BY c.relname, a.attname), '')
       FROM pg_class c
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p'))
    || (SELECT coalesce(string_agg(pg_get_indexdef(i.indexrelid), ';'
                                   ORDER BY pg_get_indexdef(i.indexrelid)), '')
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relnamespace = 'public'::regnamespace)
    || (SELECT coalesce(string_agg(conname || pg_get_constraintdef(oid), ';' ORDER BY conname), '')
          FROM pg_constraint WHERE connamespace = 'public'::regnamespace)),
    to_regclass('public.schema_version') IS NOT NULL"""


# Every table emptied and every sequence but the schema version's back at its start, in one
# round trip. Only the tables with rows are emptied, with DELETE and foreign keys unchecked
# for it (the replication role): for the few rows a test leaves, many times cheaper than
# TRUNCATE, which makes new files for each table and index it empties. A server where the
# test's user may not take that role (RUNWATCH_TEST_POSTGRES_URL) truncates them instead.
_PG_EMPTY = """DO $$
DECLARE
    name text;
    found boolean;
    full_tables text[] := '{}';
BEGIN
    IF %(delete)s THEN
        SET LOCAL session_replication_role = replica;
    END IF;
    FOR name IN SELECT tablename FROM pg_tables
                 WHERE schemaname = 'public' AND tablename <> 'schema_version' LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %%I)', name) INTO found;
        IF found AND %(delete)s THEN
            EXECUTE format('DELETE FROM %%I', name);
        ELSIF found THEN
            full_tables := full_tables || format('%%I', name);
        END IF;
    END LOOP;
    IF cardinality(full_tables) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(full_tables, ', ') || ' CASCADE';
    END IF;
    PERFORM setval(format('%%I.%%I', schemaname, sequencename), start_value, false)
       FROM pg_sequences
      WHERE schemaname = 'public' AND sequencename NOT LIKE 'schema\\_version\\_%%';
END $$"""


def _pg_tables(cur) -> list[str]:
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return [row[0] for row in cur.fetchall()]


def drop_postgres_tables(url: str) -> None:
    """Drop every table of a PostgreSQL database."""
    def drop(cur):
        tables = _pg_tables(cur)
        if tables:
            cur.execute("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")

    with_admin_cursor(url, drop)


def _pg_fingerprint(cur) -> str:
    """A digest of the tables, columns, indexes, constraints and schema version there."""
    cur.execute(_PG_SCHEMA)
    schema, versioned = cur.fetchone()
    version = None
    if versioned:
        cur.execute("SELECT coalesce(string_agg(version::text, ','), '') FROM schema_version")
        version = cur.fetchone()[0]
    return f"{schema}/{version}"


@pytest.fixture(scope="session")
def postgres_schema(postgres_url) -> str:
    """The fingerprint of the schema the app builds on an empty PostgreSQL database."""
    drop_postgres_tables(postgres_url)
    _built_schema(postgres_url)
    return with_admin_cursor(postgres_url, _pg_fingerprint)


def _empty_postgres_schema(url: str, fingerprint: str) -> bool:
    """Empty every table but the schema version's, when the schema there is the one the app
    builds; else (an earlier test changed or dropped it) drop every table, for the app to
    build again. Whether the tables were kept."""
    def empty(cur) -> bool:
        if _pg_fingerprint(cur) == fingerprint:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            cur.execute(_PG_EMPTY, {"delete": bool(cur.fetchone()[0])})
            return True
        return False

    if with_admin_cursor(url, empty):
        return True
    drop_postgres_tables(url)
    return False


@pytest.fixture
def database_url(backend, tmp_path, request) -> str:
    """A URL of the test's database: with the app's schema and no rows for a test that
    builds the `app`, else empty."""
    wants_schema = "app" in request.fixturenames
    request.node.stash[NO_TABLES] = not wants_schema
    if backend == "sqlite":
        path = tmp_path / "runwatch.db"
        if wants_schema:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    if wants_schema:
        if not _empty_postgres_schema(url, request.getfixturevalue("postgres_schema")):
            request.node.stash[NO_TABLES] = True  # the app's start builds them
    else:
        drop_postgres_tables(url)
    return url


@pytest.fixture
def app_config(database_url, tmp_path) -> dict:
    """Settings for a test app; tests may change them before `app` is built."""
    return {"TESTING": True, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret",
            "SCHEDULER": False, "BASE_URL": "http://runwatch.test",
            "SERVER_NAME": None, "PASSWORD_HASH_METHOD": TEST_PASSWORD_METHOD}


# Building an app (its routes, its extensions, its features) costs more than most tests.
# An app is built once per worker and settings, and given each test's fresh database:
# `restart` points the database handle at it and redoes the start's work there (the
# database from `database_url` already has the current schema). Its settings are put back
# after each test, and so are the login limit's counts. A test that changes the app itself
# (adds a route) asks for an app of its own with `@pytest.mark.own_app`; so does, without
# asking, a test that takes the app only as it runs (its database has no tables yet).

_KEPT_APPS: dict[str, tuple[Flask, dict]] = {}
NO_TABLES = pytest.StashKey[bool]()
KEPT_APPS_MAX = 8


def _kept_app(app_config: dict) -> Flask:
    key = repr(sorted((name, value) for name, value in app_config.items()
                      if name != "DATABASE_URL"))
    kept = _KEPT_APPS.get(key)
    if kept is None:
        application = create_app(app_config)
        if len(_KEPT_APPS) >= KEPT_APPS_MAX:
            _KEPT_APPS.pop(next(iter(_KEPT_APPS)))
        _KEPT_APPS[key] = (application, dict(application.config))
        return application
    application, settings = kept
    application.config.clear()
    application.config.update(settings, DATABASE_URL=app_config["DATABASE_URL"])
    restart(application)
    return application


@pytest.fixture
def app(app_config, request):
    """A Runwatch app on a fresh database."""
    # A test that asks for the app only as it runs, or that follows one that changed the
    # schema, got a database without tables from `database_url`: the app's start builds them.
    if request.node.get_closest_marker("own_app") or request.node.stash.get(NO_TABLES, True):
        application = create_app(app_config)
    else:
        application = _kept_app(app_config)
    yield application
    close_database()
    limiter = application.extensions.get("limiter")
    for each in (limiter if isinstance(limiter, (set, list, tuple)) else [limiter]):
        if each is not None:
            each.reset()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def db(app):
    """An open connection for tests that read or write models directly."""
    database.connect(reuse_if_open=True)
    yield database
    database.close()


class AuthActions:
    """Create the test account and sign in or out with a test client."""

    def __init__(self, client):
        self.client = client

    def create_user(self, email: str = EMAIL, password: str = PASSWORD):
        with self.client.application.app_context(), connection():  # the app's hash method
            return create_user(email, password)

    def login(self, email: str = EMAIL, password: str = PASSWORD, next: str | None = None):
        page = self.client.get("/login")
        url = "/login" + (f"?next={next}" if next else "")
        return self.client.post(url, data={"csrf_token": csrf_from(page.text),
                                           "email": email, "password": password})

    def logout(self):
        page = self.client.get("/settings")
        return self.client.post("/logout", data={"csrf_token": csrf_from(page.text)})


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def user(auth):
    """The test account."""
    return auth.create_user()


@pytest.fixture
def logged_in(client, auth, user):
    """A test client signed in as the test account."""
    response = auth.login()
    assert response.status_code == 302, response.text
    return client


class ApiClient:
    """A test client that sends a bearer token on every call."""

    def __init__(self, client, token: str):
        self.client = client
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    def _call(self, method: str, url: str, **kwargs):
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(url, headers=headers, **kwargs)

    def get(self, url, **kwargs):
        return self._call("get", url, **kwargs)

    def post(self, url, **kwargs):
        return self._call("post", url, **kwargs)

    def patch(self, url, **kwargs):
        return self._call("patch", url, **kwargs)

    def delete(self, url, **kwargs):
        return self._call("delete", url, **kwargs)


@pytest.fixture
def token(user) -> str:
    """A live API token of the test account."""
    return make_token(user)


@pytest.fixture
def api(app, token) -> ApiClient:
    """A token-authenticated API client."""
    return ApiClient(app.test_client(), token)


# --- A real server process ------------------------------------------------------------

@pytest.fixture
def live_server(app, database_url, tmp_path, request):
    """A real server process on the test's database (the `app` fixture made the tables): two
    workers, so that requests meet in different processes; for a browser, which sends a
    request or a few at a time, one (each worker's start costs a second of processor time).
    `@pytest.mark.server_env(RUNWATCH_…="…")` gives it settings of the test's own."""
    database.close() if not database.is_closed() else None
    workers = 1 if "browser" in request.fixturenames else 2
    env = {"RUNWATCH_WEBHOOK_ALLOW_PRIVATE": "true"}  # webhooks: to 127.0.0.1
    marker = request.node.get_closest_marker("server_env")
    env.update(marker.kwargs if marker else {})
    server = LiveServer(database_url, tmp_path, workers=workers, env=env).start()
    yield server
    server.stop()


@pytest.fixture
def live_token(live_server, user) -> str:
    return make_token(user, "live")


@pytest.fixture
def live_session(live_server, user) -> requests.Session:
    """A requests session signed in to the live server."""
    session = requests.Session()
    page = session.get(f"{live_server.url}/login", timeout=10)
    response = session.post(f"{live_server.url}/login", timeout=10, allow_redirects=False,
                            data={"csrf_token": csrf_from(page.text), "email": EMAIL,
                                  "password": PASSWORD})
    assert response.status_code == 302
    return session


# --- Headless Chromium ------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        missing(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-quic", "--no-first-run",
                  "--disable-sync"])
        yield instance
        instance.close()


def _tab(browser, live_server, **options):
    """A new browser tab on the live server, in a context of its own."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400,
                                                                      "height": 900},
                                  **options)
    context.set_default_timeout(10_000)
    return context.new_page()


def sign_in(tab, email: str = EMAIL, password: str = PASSWORD) -> None:
    """Sign in through the login form and land on the history page."""
    tab.goto("/login")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", password)
    tab.click("button[type=submit]")
    tab.wait_for_url("**/executions")


@pytest.fixture
def page(browser, live_server, live_session):
    """A browser tab signed in to the live server, on no page yet. It carries the session
    cookie of a sign-in sent with requests: three page loads fewer than the form, which
    `form_page` and the tests of the login page drive."""
    tab = _tab(browser, live_server)
    tab.context.add_cookies([
        {"name": cookie.name, "value": cookie.value, "url": live_server.url,
         "httpOnly": cookie.has_nonstandard_attr("HttpOnly"), "sameSite": "Lax"}
        for cookie in live_session.cookies])
    yield tab
    tab.context.close()


@pytest.fixture
def form_page(browser, live_server, user):
    """A browser tab signed in through the login form, on the history page."""
    tab = _tab(browser, live_server)
    sign_in(tab)
    yield tab
    tab.context.close()


@pytest.fixture
def guest_page(browser, live_server):
    """A browser tab on the live server, signed out."""
    tab = _tab(browser, live_server)
    yield tab
    tab.context.close()


@pytest.fixture
def no_js_page(browser, live_server, user):
    """A browser tab signed in to the live server, with JavaScript turned off."""
    tab = _tab(browser, live_server, java_script_enabled=False)
    sign_in(tab)
    yield tab
    tab.context.close()


# --- Every page is checked with axe-core and holds no inline code -------------------------

AXE_JS = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]

# Violations alone: axe-core then describes one passing element of each rule, not every one
# (a CSS selector apiece, which on a page of 500 steps is a good part of its time).
_AXE_RUN = """tags => axe.run(document, {runOnly: {type: "tag", values: tags},
                                resultTypes: ["violations"]}).then(
    result => result.violations.map(v => ({
        id: v.id, impact: v.impact, help: v.help,
        targets: v.nodes.map(node => node.target.join(" "))})))"""

# Inline code that a strict Content-Security-Policy (no 'unsafe-inline') would block.
_INLINE_CODE = """() => {
    const found = [];
    for (const el of document.querySelectorAll("*")) {
        for (const attr of el.attributes) {
            const name = attr.name.toLowerCase();
            if (/^on/.test(name) || /^(data-)?hx-on/.test(name)) {
                found.push(`<${el.localName}> ${name}`);
            } else if (/^\\s*javascript:/i.test(attr.value)) {
                found.push(`<${el.localName}> ${name}="${attr.value}"`);
            }
        }
    }
    for (const script of document.scripts) {
        if (!script.src && script.textContent.trim()) {
            found.push("<script> with inline code");
        }
    }
    return found;
}"""


def describe_violations(violations: list[dict]) -> str:
    """One line per axe-core violation and one per element it concerns."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        lines.extend(f"    {target}" for target in v["targets"])
    return "\n".join(lines)


# The page as axe-core sees it: its markup and the window's size, without what changes from
# one test's server to the next's: the session's CSRF token, and numbers (times, durations,
# ports, ids), each run of digits read as one. axe-core's rules read the page's structure,
# names, roles and colours, not which digits a text holds.
_AXE_KEY = """() => {
    let html = document.documentElement.outerHTML;
    const token = document.querySelector('meta[name="csrf-token"]')?.content;
    if (token) {
        html = html.split(token).join("CSRF-TOKEN");
    }
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;  // the theme's colours
    return `${innerWidth}x${innerHeight} ${dark} ${html.replace(/[0-9]+/g, "0")}`;
}"""


class _AxeVerdicts:
    """axe-core's findings by the page they were made on, kept for the run.

    Tests show the same page more than once (after a step that changes nothing it checks,
    or on both databases with RUNWATCH_TEST_BROWSER_POSTGRES), the same markup with the
    same style sheets. axe-core's findings depend on nothing else, and take up to seconds
    of processor time on a long page, so a page audited once in a test process is not
    audited again.
    """

    def __init__(self):
        self.found: dict[str, list[dict]] = {}

    def __call__(self, tab, audit) -> list[dict]:
        key = hashlib.sha256(tab.evaluate(_AXE_KEY).encode()).hexdigest()
        if key not in self.found:
            self.found[key] = audit(tab)
        return self.found[key]


_AXE_VERDICTS = _AxeVerdicts()


class PageAudit:
    """Checks the page as a browser shows it now: axe-core (WCAG 2.1 A/AA and best
    practices) and no inline code. Call it after every state a person can reach.
    With RUNWATCH_AUDIT_SCREENSHOTS=<folder>, it also saves a full-page PNG of each state,
    to look at."""

    def __init__(self, script: Path, screenshots: Path | None = None):
        self.script = script
        self.screenshots = screenshots
        self.taken = 0

    def violations(self, tab) -> list[dict]:
        return _AXE_VERDICTS(tab, self._run_axe)

    def _run_axe(self, tab) -> list[dict]:
        if not tab.evaluate("() => typeof window.axe === 'object'"):
            # Evaluated by the browser's debugger, which the page's CSP does not govern
            # (a <script> tag added to the page would be refused, as it should be).
            tab.evaluate(self.script.read_text())
        return tab.evaluate(_AXE_RUN, AXE_TAGS)

    def __call__(self, tab, what: str) -> None:
        tab.wait_for_load_state()
        if self.screenshots:
            self.taken += 1
            name = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
            tab.screenshot(path=self.screenshots / f"{self.taken:02d}-{name}.png", full_page=True)
        violations = self.violations(tab)
        inline = tab.evaluate(_INLINE_CODE)
        problems = []
        if violations:
            problems.append(f"axe-core finds {len(violations)} violation(s) on {what} "
                            f"({tab.url}):\n{describe_violations(violations)}")
        if inline:
            problems.append(f"inline code on {what} ({tab.url}):\n    " + "\n    ".join(inline))
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core's browser build, installed from tests/browser/package-lock.json."""
    if not AXE_JS.is_file():
        missing(f"axe-core is not installed (no {AXE_JS.relative_to(ROOT)}): "
                "run `npm ci` in tests/browser")
    return AXE_JS


@pytest.fixture
def audit(axe_script, request) -> PageAudit:
    """`audit(tab, "what the page shows")`: fail on any axe-core violation or inline code."""
    folder = os.environ.get("RUNWATCH_AUDIT_SCREENSHOTS")
    if folder:
        folder = Path(folder) / re.sub(r"[^\w.-]+", "_", request.node.name)
        folder.mkdir(parents=True, exist_ok=True)
    return PageAudit(axe_script, folder)


# --- Two test processes per core --------------------------------------------------------
# A test often waits: for a server process to start, a browser to draw, a lease to lapse,
# PostgreSQL to answer. With one process per core those waits leave the core idle; with two
# (at most four in all: `--maxprocesses` in pyproject.toml) another test runs meanwhile.
# On two cores the suite took 11 minutes with four processes where two took 14.

def pytest_xdist_auto_num_workers(config) -> int:
    return 2 * (os.cpu_count() or 1)


# --- The longest tests first ---------------------------------------------------------------
# pytest-xdist hands tests out one by one, in the order they were collected. A test that
# takes a minute handed out last keeps one worker busy while the other has finished, so
# long tests go first, longest first: those marked `long(seconds)` (about how long they
# take), then those that start a server process or a browser. The rest keep their order.

SERVER_FIXTURES = {"live_server": 3.0, "browser": 3.0}


def expected_seconds(item) -> float:
    marker = item.get_closest_marker("long")
    if marker is not None:
        return float(marker.args[0])
    return max((SERVER_FIXTURES.get(name, 0.0) for name in item.fixturenames), default=0.0)


# The tests of one `xdist_group` stay on one worker (`--dist loadgroup`) by the group's name
# at the end of their ids, which pytest-xdist 3.8 writes into `item._nodeid`; pytest 9 reads
# ids from `item._id`, so the name never got there and a group's tests were spread over
# every worker, each building the group's costly fixtures again. The name is written here.

def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: -expected_seconds(item))
    if not getattr(config.option, "loadgroup", False):
        return  # not a worker of `--dist loadgroup`
    for item in items:
        names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                        for mark in item.iter_markers("xdist_group")})
        group = "_".join(names)
        if names and not item.nodeid.endswith(f"@{group}"):
            item._id = NodeId.parse(f"{item.nodeid}@{group}")


# --- A run in which nothing ran is a failed run -------------------------------------------

def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # a pytest-xdist worker: the controller counts every worker's tests
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or exitstatus != 0:
        return
    passed = len(reporter.stats.get("passed", []))
    if passed == 0:
        session.exitstatus = 1
