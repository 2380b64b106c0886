"""The README and docs/ stay true: the README's examples run against a live server as they
are written, the README stays an onboarding page, and every relative link leads somewhere."""
from __future__ import annotations

import base64
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
import requests

from alerts.channels import CHANNELS, Outgoing
from alerts.config import AlertConfig
from alerts.notices import notice_body
from app import DEFAULTS
from helpers import EMAIL, ROOT, console_script, free_port, missing, wait_for_port

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# The two copy-paste lines (.ci/run runs the second one).
START_LINE = "pip install -e . && flask --app app run"
TEST_LINE = 'pip install -e ".[test]" -e ./client && python -m pytest'
EXECUTIONS = "/api/automations/executions"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture
def backend() -> str:
    """The examples do not care about the database: SQLite alone."""
    return "sqlite"


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of `path` in `language`, in order."""
    return blocks_of(path.read_text(), language)


def blocks_of(text: str, language: str) -> list[str]:
    """The fenced code blocks of a Markdown `text` in `language`, in order."""
    return [body for lang, body in FENCE.findall(text) if lang == language]


def section(path: Path, heading: str) -> str:
    """The text under `## heading`, up to the next heading of that level."""
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def shell(script: str, server, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    """Run README shell lines with bash, against `server` instead of localhost:5000, with
    the test's Python first on PATH as `python` (as in the README's virtual environment)."""
    if not shutil.which("curl"):
        missing("curl is not installed")
    script = script.replace("http://localhost:5000", server.url)
    env = {**server.env, **env}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env=env)


def test_the_readme_is_an_onboarding_page_of_at_most_250_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference to docs/"


def test_the_readme_keeps_its_two_copy_paste_lines_and_ci_runs_the_test_line():
    shell_lines = [line for body in blocks(README, "sh") for line in body.splitlines()]
    assert START_LINE in shell_lines and TEST_LINE in shell_lines
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci[-1] == TEST_LINE


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = unicodedata.normalize("NFC", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@pytest.mark.parametrize("path", [README, ROOT / "client" / "README.md", *DOCS],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_a_heading_that_exist(path):
    broken = []
    for target in LINK.findall(FENCE.sub("", path.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    assert not broken, broken


def _documented_failing_notice() -> dict:
    """The webhook body of the failing notice docs/alerts.md shows every channel receiving."""
    at = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    return notice_body("failing", at.replace(second=31, microsecond=120000),
                       workflow="invoice-sync", failure_count=3, threshold=3,
                       first_failure_at=at.replace(minute=0) - timedelta(minutes=20),
                       last_failure_at=at, last_error="HTTP 502 from billing",
                       execution_url="https://runwatch.example.com/executions/8812", rule_id=1)


def test_what_alerts_md_shows_each_channel_receiving_is_what_it_receives(receiver, smtp_sink):
    payload = _documented_failing_notice()
    config = AlertConfig(execution_url=str, smtp_host="127.0.0.1", smtp_port=smtp_sink.port,
                         mail_from="runwatch@example.com", webhook_allow_private=True,
                         alerts_url="https://runwatch.example.com/alerts",
                         pagerduty_events_url=receiver.url)
    apprise_url = receiver.url.replace("http://", "json://")
    options = {"webhook": {"url": receiver.url, "secret": None},
               "slack": {"url": receiver.url}, "teams": {"url": receiver.url},
               "discord": {"url": receiver.url},
               "pagerduty": {"routing_key": "R0123456789abcdef0123456789ABCDE",
                             "severity": "error"},
               "apprise": {"url": apprise_url}}
    for kind, channel_options in options.items():
        CHANNELS[kind].send(Outgoing(notice_id=42, kind="failing", payload=payload,
                                     options=channel_options, episode=4), config)
    arrived = [request.json() for request in receiver.wait_for(len(options))]
    CHANNELS["email"].send(Outgoing(notice_id=42, kind="failing", payload=payload,
                                    options={"to": ["ops@example.com"]}), config)
    (mail,) = smtp_sink.wait_for(1)

    shown = section(ROOT / "docs" / "alerts.md", "What a notice holds")
    examples = [json.loads(body) for body in blocks_of(shown, "json")]
    (request,) = blocks_of(shown, "http")
    (message,) = blocks_of(shown, "text")
    headers, _, text = message.partition("\n\n")
    assert [json.loads(request.partition("\n\n")[2]), *examples[:4], examples[5]] == arrived
    assert examples[4]["event_action"] == "resolve" and examples[4]["dedup_key"] == arrived[4][
        "dedup_key"]
    assert mail.get_body(("plain",)).get_content().splitlines() == text.splitlines()
    for line in headers.splitlines():
        name, _, value = line.partition(": ")
        assert mail[name].split(";")[0] == value, name


def test_the_readme_first_report_changes_the_run_it_reported(live_server, user):
    token_line, report = [body for body in blocks(README, "sh")
                          if body.startswith(("export RUNWATCH_TOKEN=", "START="))]
    made = shell(token_line.replace("you@example.com", EMAIL) + 'echo "$RUNWATCH_TOKEN"',
                 live_server)
    assert made.returncode == 0, made.stderr
    token = made.stdout.split()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    # Other runs first, so that the run reported holds none of the small ids.
    for number in range(3):
        response = requests.post(live_server.url + EXECUTIONS, headers=headers, timeout=10,
                                 json={"workflow": "other", "status": "running",
                                       "external_id": f"other-{number}"})
        assert response.status_code == 201, response.text

    for _ in range(2):  # once more: the same external_id updates the run it made
        done = shell(report, live_server, RUNWATCH_TOKEN=token)
        assert done.returncode == 0, done.stderr

    runs = requests.get(live_server.url + EXECUTIONS, headers=headers, timeout=10).json()["data"]
    assert sorted((run["workflow"], run["status"]) for run in runs) == [
        ("hello-world", "success"), ("other", "running"), ("other", "running"),
        ("other", "running")]
    (hello,) = [run for run in runs if run["workflow"] == "hello-world"]
    assert hello["id"] > max(run["id"] for run in runs if run["workflow"] == "other")
    stored = requests.get(f"{live_server.url}{EXECUTIONS}/{hello['id']}", headers=headers,
                          timeout=10).json()
    assert stored["output"] == {"greeted": "world"} and stored["external_id"] == "hello-1"
    assert stored["duration_ms"] >= 1000
    assert json.loads(done.stdout)["url"] == f"{live_server.url}/executions/{hello['id']}"


def test_the_readme_runwatch_exec_example_reports_the_command_and_keeps_its_exit_code(
        live_server, live_token):
    script = console_script("runwatch", "pip install -e ./client")
    (example,) = [line for body in blocks(README, "sh") for line in body.splitlines()
                  if "runwatch exec" in line]
    headers = {"Authorization": f"Bearer {live_token}"}
    for _ in range(4):  # both workers past their first request: the client waits 3 s a call
        requests.get(live_server.url + "/api/ping", headers=headers, timeout=30)

    done = shell(example, live_server, RUNWATCH_TOKEN=live_token,
                 PATH=f"{Path(script).parent}{os.pathsep}{os.environ['PATH']}")

    assert done.returncode == 3 and done.stdout == "saving\n", done.stderr
    (run,) = requests.get(live_server.url + EXECUTIONS, headers=headers, timeout=10,
                          params={"workflow": "backup-test"}).json()["data"]
    assert run["status"] == "failure"


def test_the_opentelemetry_snippets_exit_cleanly_and_their_failed_runs_are_stored(
        live_server, live_token, tmp_path):
    (exports,) = [body for body in blocks(README, "sh") if "OTEL_EXPORTER_OTLP" in body]
    headers = {"Authorization": f"Bearer {live_token}"}
    for number, path in enumerate([README, ROOT / "docs" / "opentelemetry.md"], 1):
        (snippet,) = [body for body in blocks(path, "python") if "OTLPSpanExporter" in body]
        (tmp_path / "job.py").write_text(snippet)

        done = shell(f"{exports}\n{sys.executable} {tmp_path / 'job.py'}", live_server,
                     RUNWATCH_TOKEN=live_token)

        assert done.returncode == 0 and "Traceback" not in done.stderr, (path, done.stderr)
        assert done.stdout == "invoice-sync failed: HTTP 502 from billing\n"
        runs = requests.get(live_server.url + EXECUTIONS, headers=headers, timeout=10,
                            params={"workflow": "invoice-sync"}).json()["data"]
        assert len(runs) == number, path  # stored before the script ended
        run = requests.get(f"{live_server.url}{EXECUTIONS}/{runs[0]['id']}", headers=headers,
                           timeout=10).json()
        assert run["status"] == "failure" and run["input"] == {"customer": 42}
        assert (run["error"]["type"], run["error"]["message"]) == (
            "RuntimeError", "HTTP 502 from billing")
        assert [(s["name"], s["action"], s["status"], s["output"]) for s in run["steps"]] == [
            ("Fetch invoices", "http.get", "success", {"count": 3}),
            ("Post to billing", "billing.jobs", "failure", None)]


def test_the_script_recipe_of_rerun_md_starts_the_script_with_the_runs_input(
        live_server, live_token, tmp_path):
    """docs/rerun.md's receiver, run as written (its port and script put in): a re-run
    request reaches it signed, and the script's run is reported as a re-run of its origin."""
    (recipe,) = [body for body in blocks(ROOT / "docs" / "rerun.md", "python")
                 if "standardwebhooks" in body]
    port, job = free_port(), tmp_path / "job.py"
    job.write_text("import os\nprint(os.environ['RUN_INPUT'])\n")
    code = recipe.replace('SCRIPT = ["/opt/jobs/invoice-sync.sh"]',
                          f"SCRIPT = [{sys.executable!r}, {str(job)!r}]") \
        .replace('("0.0.0.0", 8099)', f'("127.0.0.1", {port})')
    assert code.count(str(job)) == 1 and f"{port})" in code, "the recipe changed: update this"
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    script = console_script("runwatch", "pip install -e ./client")
    receiver = subprocess.Popen([sys.executable, "-c", code], env={
        **os.environ, "RERUN_SECRET": secret, "RUNWATCH_URL": live_server.url,
        "RUNWATCH_TOKEN": live_token, "PYTHONPATH": str(ROOT / "client"),
        "PATH": f"{Path(script).parent}{os.pathsep}{os.environ['PATH']}"})
    headers = {"Authorization": f"Bearer {live_token}"}
    try:
        wait_for_port(port)
        origin = requests.post(live_server.url + EXECUTIONS, headers=headers, timeout=10, json={
            "workflow": "invoice-sync", "status": "failure", "input": {"customer": 42}}).json()
        hook = requests.patch(f"{live_server.url}/api/automations/workflows/invoice-sync",
                              headers=headers, timeout=10, json={"rerun": {
                                  "url": f"http://127.0.0.1:{port}/", "secret": secret}})
        assert hook.status_code == 200, hook.text
        sent = requests.post(f"{live_server.url}{EXECUTIONS}/{origin['id']}/rerun",
                             headers=headers, timeout=30).json()
        assert (sent["status"], sent["answer"]) == (202, '{"started": true}'), sent
        deadline = time.monotonic() + 30
        while True:  # the script runs after the receiver has answered
            runs = requests.get(live_server.url + EXECUTIONS, headers=headers, timeout=10,
                                params={"workflow": "invoice-sync", "status": "success"})
            if runs.json()["data"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        (again,) = runs.json()["data"]
        run = requests.get(f"{live_server.url}{EXECUTIONS}/{again['id']}", headers=headers,
                           timeout=10).json()
        assert run["rerun_of"] == origin["id"]
        assert run["output"]["stdout_tail"] == '{"customer": 42}\n'
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


# Backticked names in the docs that point into the code: paths, and dotted names that start
# with one of the app's packages or modules.
CODE_PATH = re.compile(r"`((?:[\w.-]+/)+(?:[\w.-]+\.\w+)?|[\w-]+\.(?:py|toml))`")
CODE_NAME = re.compile(r"`((?:app|cli|scheduling|models|views|alerts|history|workflows|otel|"
                       r"runwatch_client)(?:\.\w+)+)`")
# Flask's instance folder, made by the first start; Prefect's venv, made by .ci/prefect-venv
MADE_AT_START = {"instance/", ".venv-prefect/"}


def _resolves(dotted: str) -> bool:
    """Whether `dotted` names a module, or an attribute reached from one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


@pytest.fixture(scope="module")
def tree() -> set[str]:
    """Every file and folder of the checkout (folders with a trailing /), from the root."""
    skipped = {".git", "node_modules", "__pycache__", "instance", ".venv"}
    found = set()
    for folder, folders, files in os.walk(ROOT):
        folders[:] = [name for name in folders if name not in skipped]
        here = Path(folder).relative_to(ROOT).as_posix()
        prefix = "" if here == "." else here + "/"
        found |= {prefix + name + "/" for name in folders} | {prefix + name for name in files}
    return found


@pytest.mark.parametrize("path", [README, ROOT / "client" / "README.md", *DOCS],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_file_and_module_the_docs_name_exists(path, tree):
    text = path.read_text()
    # A name is a path from the root, or the end of one (`views.py` of a feature, `vendor/`
    # in a table row about static/).
    gone = [name for name in CODE_PATH.findall(text) if name not in MADE_AT_START
            and not (path.parent / name).exists()
            and not any(("/" + known).endswith("/" + name) for known in tree)]
    gone += [name for name in CODE_NAME.findall(text)
             if not name.endswith((".py", ".toml")) and not _resolves(name)]
    assert not gone, gone


def test_every_curl_example_of_the_reference_pages_is_answered_with_success(
        live_server, live_token, tmp_path):
    # The id of the run api.md's first example reports (`ID=2041` in the text).
    found = ("ID=$(command curl -sS -H \"Authorization: Bearer $RUNWATCH_TOKEN\" "
             "'http://localhost:5000/api/automations/executions?workflow=invoice-sync' | "
             "python -c 'import json, sys; print(json.load(sys.stdin)[\"data\"][0][\"id\"])')")
    for page in ("api.md", "history.md", "workflows.md", "opentelemetry.md"):
        examples = [body for body in blocks(ROOT / "docs" / page, "sh")
                    if "curl " in body and "$ curl" not in body]
        # curl fails on any 4xx or 5xx.
        script = "curl() { command curl -sS --fail-with-body \"$@\"; echo; }\n" + "\n".join(
            examples).replace("ID=2041", found)

        done = shell(script, live_server, cwd=tmp_path, RUNWATCH_TOKEN=live_token,
                     NEXT_CURSOR="")

        assert examples and done.returncode == 0, (page, done.stdout + done.stderr)


def test_the_configuration_page_lists_every_setting_with_its_default():
    rows = re.findall(r"^\| `RUNWATCH_(\w+)`(?:, `RUNWATCH_(\w+)`)? \| ([^|]+) \|",
                      section(ROOT / "docs" / "configuration.md", "The server"), re.M)
    documented = {name: default.strip() for first, second, default in rows
                  for name in (first, second) if name}
    # ...and RUNWATCH_INSTANCE_PATH, read before the settings (it holds their defaults' files)
    made_at_start = {"DATABASE_URL", "SECRET_KEY", "WTF_CSRF_TIME_LIMIT", "INSTANCE_PATH"}
    assert set(documented) == set(DEFAULTS) | made_at_start
    for name, value in DEFAULTS.items():
        said = documented[name]
        if value is None:
            assert said.startswith("unset"), (name, said)
        else:
            expected = str(value).lower() if isinstance(value, bool) else str(value)
            assert said.startswith(f"`{expected}`"), (name, said, expected)


def test_the_api_reference_lists_every_api_route(app):
    cells = re.findall(r"^\| ([^|]+) \|", section(ROOT / "docs" / "api.md", "Routes"), re.M)
    listed = {(method, cell.rsplit(" ", 1)[-1].strip("`"))
              for cell in cells for method in re.findall(r"`([A-Z]+)[ `]", cell)}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/", "/v1/")):
            # <int:rule_id> is written <id>, <path:name> <name>
            path = re.sub(r"<(?:\w+:)?(\w+)>",
                          lambda m: "<id>" if m[1].endswith("id") else f"<{m[1]}>", rule.rule)
            served |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served == listed, (sorted(served - listed), sorted(listed - served))


def _commands(command: click.Command, words: tuple[str, ...] = ()):
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*words, name))
    else:
        yield " ".join(words)


def test_the_operations_page_lists_every_command(app):
    table = section(ROOT / "docs" / "operations.md", "Commands")
    listed = set(re.findall(r"^\| `flask --app app ((?:[a-z]+ ?)+)", table, re.M))
    assert {name.strip() for name in listed} == set(_commands(app.cli))


def test_the_readme_links_every_page_of_docs():
    linked = set(LINK.findall(README.read_text()))
    assert {f"docs/{page.name}" for page in DOCS} <= linked
