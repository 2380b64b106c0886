"""What the tests share besides fixtures: constants, servers, HTML parsing, reporting runs."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from models import database
from models.db import connection
from models.users import create_token
from spawner import ForkedProcess

ROOT = Path(__file__).resolve().parent.parent

IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct horse battery"
EMAIL = "dev@example.com"
CHROMIUM = "/usr/bin/chromium"
# Test apps hash new passwords with one round of PBKDF2 (scrypt costs a tenth of a second
# per account); an app that is not TESTING always uses scrypt (see test_auth.py).
TEST_PASSWORD_METHOD = "pbkdf2:sha256:1"
# Servers are forked from a process that has imported the app (tests/spawner.py); "false"
# starts each as a new Python, as a deployment does.
FORK_SERVER = os.environ.get("RUNWATCH_TEST_FORK_SERVER", "true").lower() != "false"


def missing(reason: str):
    """Skip for a missing part on a developer's machine; under CI, fail instead."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be installed by .ci/run)")
    pytest.skip(reason)


def console_script(name: str, install: str) -> str:
    """The path of an installed console script (beside this Python first, then on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        missing(f"the `{name}` command is not installed ({install})")
    return found


def client_env(url: str | None = None, token: str | None = None) -> dict:
    """The environment of a `runwatch` process: this checkout's client, this Runwatch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWATCH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "client"),
                                                      env.get("PYTHONPATH")]))
    if url:
        env["RUNWATCH_URL"] = url
    if token:
        env["RUNWATCH_TOKEN"] = token
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def csrf_from(html: str) -> str:
    """The CSRF token of the first form in a page."""
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def routes(app, integer: int = 999999, text: str = "x"):
    """(rule, path) of every route of the URL map, with sample values for its arguments:
    `integer` for numbers, the first choice of an `any`, `text` for the rest."""
    from werkzeug.routing import AnyConverter, IntegerConverter

    def sample(converter):
        if isinstance(converter, IntegerConverter):
            return integer
        if isinstance(converter, AnyConverter):
            return sorted(converter.items)[0]
        return text

    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values = {name: sample(conv) for name, conv in rule._converters.items()}
        yield rule, adapter.build(rule.endpoint, values)


def close_database() -> None:
    """Close the connections of the app built last (its pool too): the next test's
    database reset must not wait for them."""
    if not database.is_closed():
        database.close()
    if hasattr(database.obj, "close_all"):
        database.obj.close_all()


# One connection per database for the resets between tests, kept for the session: a new
# connection costs a PostgreSQL server process, more than the reset itself.
_admin_connections: dict = {}


def _admin_cursor(url: str):
    import psycopg2

    conn = _admin_connections.get(url)
    if conn is None or conn.closed:
        conn = _admin_connections[url] = psycopg2.connect(url)
        conn.autocommit = True
    return conn.cursor()


def close_admin_connections() -> None:
    """Close the kept connections (a database copied as a template must have no other)."""
    while _admin_connections:
        _admin_connections.popitem()[1].close()


def with_admin_cursor(url: str, work):
    """`work(cursor)` on the kept connection to `url`; once more on a new one if the kept one
    was lost (a test restarted the server)."""
    import psycopg2

    try:
        with _admin_cursor(url) as cur:
            return work(cur)
    except (psycopg2.OperationalError, psycopg2.InterfaceError):
        lost = _admin_connections.pop(url, None)
        if lost is not None:
            lost.close()
        with _admin_cursor(url) as cur:
            return work(cur)


def make_token(user, name: str = "tests") -> str:
    with connection():
        return create_token(user, name)[1]


# --- A real server process ------------------------------------------------------------

class LiveServer:
    """A Runwatch server process on 127.0.0.1 (gunicorn, several workers and threads)."""

    def __init__(self, database_url: str, tmp_path: Path, env: dict | None = None,
                 workers: int = 2, threads: int = 4):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RUNWATCH_DATABASE_URL": database_url,
                    "RUNWATCH_SECRET_KEY": "live-secret", "RUNWATCH_SCHEDULER": "false",
                    "RUNWATCH_BASE_URL": self.url, **(env or {})}
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.log = open(self.log_path, "w+")
        self.args = [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads",
                     str(threads), "-b", f"127.0.0.1:{self.port}", "--timeout", "60",
                     "app:create_app()"]
        self.process = None

    def start(self) -> "LiveServer":
        """Fork the server from this test process's spawner (tests/spawner.py: gunicorn and
        the app already imported), or with RUNWATCH_TEST_FORK_SERVER=false start a new
        Python. Either way in a session of its own, for `crash()` to kill it whole."""
        if FORK_SERVER:
            self.process = ForkedProcess(self.args, self.env, ROOT, self.log_path)
        else:
            self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=self.log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        self._wait_for_a_worker()
        return self

    def _wait_for_a_worker(self, timeout: float = 90.0) -> None:
        """Until a worker answers. gunicorn listens before its workers have loaded the app;
        on a busy machine that takes seconds, which a test's first request would otherwise
        spend inside its own deadline (the client's 3 s, say)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(5) == b"HTTP/":
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"no worker answered within {timeout} s:\n{self.output()[-2000:]}")

    def crash(self) -> None:
        """kill -9 of the server and its workers at once (its own process group)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


class AppCommand:
    """`flask --app app <args>` as a process of its own (forked like the servers), e.g. the
    scheduler; `kill()` is kill -9."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.args = [sys.executable, "-m", "flask", "--app", "app", *args]
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process = None

    def start(self) -> "AppCommand":
        if FORK_SERVER:
            self.process = ForkedProcess(self.args, self.env, ROOT, self.log_path)
        else:
            with open(self.log_path, "a") as log:
                self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


REDIS_SERVER = "/usr/bin/redis-server"


class RedisServer:
    """Debian's redis-server on 127.0.0.1 and a free port, its files in `folder`, nothing
    saved to disk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server") or REDIS_SERVER
        if not os.path.exists(binary):
            missing(f"redis-server is not installed (looked on PATH and at {REDIS_SERVER})")
        with open(self.folder / "redis.log", "w") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                 str(self.folder), "--save", "", "--appendonly", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


# --- Parsing our own HTML -------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Element:
    """A parsed element: tag, attributes, children and text."""

    def __init__(self, tag: str, attrs: dict):
        self.tag, self.attrs, self.children, self.parts = tag, attrs, [], []

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, tag: str | None = None, **attrs) -> list["Element"]:
        """Descendants with this tag and attributes (`class_` matches one class)."""
        wanted_class = attrs.pop("class_", None)
        return [e for e in self.walk()
                if (tag is None or e.tag == tag)
                and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
                and (wanted_class is None or wanted_class in e.attrs.get("class", "").split())]

    def by_id(self, element_id: str) -> "Element":
        found = self.find(id=element_id)
        assert found, f"no element #{element_id}"
        return found[0]


class Tree(HTMLParser):
    """HTML to a tree of Elements (enough for our own templates)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        self.stack[-1].parts.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data):
        self.stack[-1].parts.append(data)


class Elements(HTMLParser):
    """Every element's attributes and text, by id (a flat view, where `Tree` keeps the
    nesting)."""

    def __init__(self, html: str):
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.text_by_id: dict[str, list[str]] = {}
        self.open_ids: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.by_id[attrs["id"]] = {"tag": tag, **attrs}
            self.text_by_id[attrs["id"]] = []
            if tag not in ("input", "img", "br"):
                self.open_ids.append((tag, attrs["id"]))

    def handle_endtag(self, tag):
        if self.open_ids and self.open_ids[-1][0] == tag:
            self.open_ids.pop()

    def handle_data(self, data):
        for _, ident in self.open_ids:
            self.text_by_id[ident].append(data)

    def text(self, ident: str) -> str:
        return " ".join("".join(self.text_by_id[ident]).split())


def parse(response) -> Element:
    return Tree(response.get_data(as_text=True)).root


def htmx(client, url: str, **headers):
    return client.get(url, headers={"HX-Request": "true", **headers})


# --- Reporting executions through the API --------------------------------------------

URL = "/api/automations/executions"

# Everything JSON can carry that a lossy store would bend: big integers, float edge cases,
# Unicode, control characters, nulls, empty containers, and markup that must stay text.
TRICKY = {
    "big": 2 ** 64 + 1,
    "bigger": -(10 ** 40),
    "floats": [0.1, 1e300, -2.5e-7, 3.0, 1.7976931348623157e308],
    "unicode": "zürich ☃ 東京 🚀 مرحبا",
    "control": "tab\tnew\nline\u0000nul",
    "null": None,
    "empty_object": {},
    "empty_array": [],
    "nested": {"list": [1, [2, [3, {"deep": True}]]], "false": False},
    "script": "</script><script>alert(1)</script>",
    "html": "<b>bold</b> & <i>it's \"quoted\"</i>",
    "zeta_before_alpha": {"z": 1, "a": 2},
}


def rollups_as_read() -> dict[tuple, int]:
    """The run rollups as readers see them, by (grain, workflow, bucket, status): the
    shards of every workflow (PostgreSQL) summed as workflow 0, empty buckets left out."""
    from history.rollups import ALL_WORKFLOWS, RunRollup

    table: dict[tuple, int] = {}
    for r in RunRollup.select():
        key = (r.grain, max(r.workflow_id, ALL_WORKFLOWS), r.bucket, r.status)
        table[key] = table.get(key, 0) + r.n
    return {key: n for key, n in table.items() if n}


def report(api, body: dict | str) -> int:
    """Report one run (a dict, or raw JSON text) and return its id."""
    data = body if isinstance(body, str) else json.dumps(body)
    response = api.post(URL, data=data, content_type="application/json")
    assert response.status_code in (200, 201), response.text
    return response.json["id"]


def add_steps(api, run_id: int, steps: list[dict]) -> None:
    """Append (or replace) steps of a run through the ingestion API."""
    response = api.post(f"{URL}/{run_id}/steps", json={"steps": steps})
    assert response.status_code == 200, response.text


def detail(api, run_id: int) -> dict:
    """The API's answer for one run, parsed with the standard library (order kept)."""
    response = api.get(f"{URL}/{run_id}")
    assert response.status_code == 200, response.text
    assert response.mimetype == "application/json"
    return json.loads(response.data)


class _FormFields(HTMLParser):
    """The fields of the form posting to `action` as a browser would send them."""

    def __init__(self, html: str, action: str):
        super().__init__()
        self.action = action
        self.fields: dict[str, list[str]] = {}
        self._state = "before"  # before, in, after that form
        self._textarea: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self._state == "before" and attrs.get("action") == self.action:
            self._state = "in"
        elif self._state == "in" and tag == "input" and "name" in attrs:
            if attrs.get("type") != "checkbox" or "checked" in attrs:
                self.fields.setdefault(attrs["name"], []).append(
                    attrs.get("value", "on" if attrs.get("type") == "checkbox" else ""))
        elif self._state == "in" and tag == "textarea":
            self._textarea = attrs["name"]
            self.fields.setdefault(self._textarea, []).append("")

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea][-1] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "form" and self._state == "in":
            self._state = "after"


def form_fields(html: str, action: str) -> dict[str, str | list[str]]:
    """The fields of the form posting to `action`, filled as shown (to post it back as is)."""
    fields = _FormFields(html, action).fields
    assert fields, f"the page has no form posting to {action}"
    return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}


# --- Rows built once per process and copied into each test's database ------------------
# A module whose tests only read the same large set of runs builds it once per backend
# through the app, keeps a copy of the rows it wrote, and copies them into each later
# test's emptied database before that test's app starts (as a restart finds them). The
# tables the app's start fills itself, and the accounts, are not copied.

_KEPT: dict[tuple[str, str], list[str]] = {}  # (name, backend) -> the tables kept, in order
_KEPT_FILES: dict[tuple[str, str], Path] = {}  # (name, "sqlite") -> the copy of the file
# (name, "postgresql") -> the rows of each kept table: a database made anew from a copy of
# another (an upgrade test's) holds that one's kept tables, which may differ.
_KEPT_COUNTS: dict[tuple[str, str], list[int]] = {}


def _kept_counts(cur, schema: str, tables: list[str]) -> list[int]:
    counts = []
    for table in tables:
        cur.execute(f'SELECT COUNT(*) FROM "{schema}"."{table}"')
        counts.append(cur.fetchone()[0])
    return counts

# Each kept table's columns that take their values from a sequence.
_PG_SERIALS = """SELECT attname, seq FROM (
    SELECT a.attname, pg_get_serial_sequence(format('public.%%I', c.relname), a.attname) AS seq
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
     WHERE c.relnamespace = 'public'::regnamespace AND c.relname = %s
       AND a.attnum > 0 AND NOT a.attisdropped) AS found WHERE seq IS NOT NULL"""


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _tables_with_rows(url: str) -> set[str]:
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(_sqlite_path(url))
        try:
            names = [n for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                " AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
            return {n for n in names if conn.execute(f'SELECT 1 FROM "{n}" LIMIT 1').fetchone()}
        finally:
            conn.close()

    def full(cur) -> set[str]:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        names = [row[0] for row in cur.fetchall()]
        found = set()
        for name in names:
            cur.execute(f'SELECT 1 FROM public."{name}" LIMIT 1')
            if cur.fetchone():
                found.add(name)
        return found

    return with_admin_cursor(url, full)


def _parents_first(cur, tables: set[str]) -> list[str]:
    """`tables` ordered so that each comes after those its foreign keys name."""
    cur.execute("""SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
                     FROM pg_constraint c
                    WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace""")
    parents: dict[str, set[str]] = {t: set() for t in tables}
    for child, parent in cur.fetchall():
        child, parent = child.strip('"'), parent.strip('"')
        if child in tables and parent in tables and child != parent:
            parents[child].add(parent)
    ordered: list[str] = []
    while parents:
        ready = sorted(t for t, p in parents.items() if not p - set(ordered))
        assert ready, f"foreign keys in a cycle among {sorted(parents)}"
        ordered += ready
        for t in ready:
            del parents[t]
    return ordered


class KeptRows:
    """`before(url)` when the test's app has started and before it writes the data;
    `keep(url)` after; a later test calls `restore(url)` on its emptied database, before
    its app starts, when `available(url)` says so."""

    def __init__(self, name: str, backend: str):
        self.key = (name, backend)
        self.name = name
        self._before: set[str] = set()

    def available(self, url: str) -> bool:
        """Kept by a test before, and still there (an upgrade test makes its database anew
        from another, without the kept tables)."""
        if self.key not in _KEPT:
            return False
        if url.startswith("sqlite"):
            return _KEPT_FILES[self.key].is_file()

        def as_kept(cur) -> bool:
            cur.execute("SELECT to_regnamespace(%s) IS NOT NULL", (f'"kept_{self.name}"',))
            return cur.fetchone()[0] and _kept_counts(cur, f"kept_{self.name}",
                                                       _KEPT[self.key]) == _KEPT_COUNTS[self.key]

        return with_admin_cursor(url, as_kept)

    def before(self, url: str) -> None:
        self._before = _tables_with_rows(url)

    def keep(self, url: str) -> None:
        tables = _tables_with_rows(url) - self._before
        if url.startswith("sqlite"):
            import sqlite3

            copy = Path(_sqlite_path(url)).with_name(f"kept-{self.name}.db")
            copy.unlink(missing_ok=True)
            conn = sqlite3.connect(_sqlite_path(url))
            try:
                conn.execute("VACUUM INTO ?", (str(copy),))
            finally:
                conn.close()
            _KEPT_FILES[self.key] = copy
            _KEPT[self.key] = sorted(tables)
            return
        schema = f"kept_{self.name}"

        def copy(cur) -> list[str]:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            cur.execute(f'CREATE SCHEMA "{schema}"')
            ordered = _parents_first(cur, tables)
            for table in ordered:
                cur.execute(f'CREATE TABLE "{schema}"."{table}" AS TABLE public."{table}"')
            _KEPT_COUNTS[self.key] = _kept_counts(cur, schema, ordered)
            return ordered

        _KEPT[self.key] = with_admin_cursor(url, copy)

    def restore(self, url: str) -> None:
        tables = _KEPT[self.key]
        if url.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
            try:
                conn.execute("ATTACH DATABASE ? AS kept", (str(_KEPT_FILES[self.key]),))
                conn.execute("BEGIN")
                for table in tables:
                    columns = ", ".join(f'"{c}"' for (_, c, *_) in conn.execute(
                        f'PRAGMA kept.table_info("{table}")'))
                    conn.execute(f'INSERT INTO main."{table}" ({columns})'
                                 f' SELECT {columns} FROM kept."{table}"')
                conn.execute("COMMIT")
                conn.execute("DETACH DATABASE kept")
            finally:
                conn.close()
            return
        schema = f"kept_{self.name}"

        def copy(cur) -> None:
            for table in tables:
                # By name: an upgraded database's tables may have their columns in another
                # order than a new one's (the schema check compares them by name).
                cur.execute("SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)"
                            "  FROM pg_attribute WHERE attrelid = %s::regclass"
                            "   AND attnum > 0 AND NOT attisdropped",
                            (f'"{schema}"."{table}"',))
                columns = cur.fetchone()[0]
                cur.execute(f'INSERT INTO public."{table}" ({columns})'
                            f' SELECT {columns} FROM "{schema}"."{table}"')
                cur.execute(_PG_SERIALS, (table,))
                for column, sequence in cur.fetchall():  # on past the copied rows' ids
                    cur.execute(f'SELECT setval(%s, max("{column}")) FROM public."{table}"',
                                (sequence,))

        with_admin_cursor(url, copy)


_COPIED: set[tuple[str, str]] = set()  # (test, fixture name): rows copied in for it


def kept_rows_copied_in(app_config: dict, backend: str, request, name: str) -> dict:
    """`app_config` after copying the rows that the fixture `name` keeps into the test's
    database, when the test uses that fixture and a test before it kept them (for a module's
    own `app_config` fixture)."""
    if name in request.fixturenames:
        kept = KeptRows(name, backend)
        if kept.available(app_config["DATABASE_URL"]):
            kept.restore(app_config["DATABASE_URL"])
            _COPIED.add((request.node.nodeid, name))
    return app_config


def kept_rows_were_copied(request, name: str) -> bool:
    """Whether `kept_rows_copied_in` copied the rows of fixture `name` in for this test."""
    return (request.node.nodeid, name) in _COPIED
