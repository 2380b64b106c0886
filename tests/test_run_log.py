"""The run page of a command (`runwatch exec`'s output shown as a log), a run without
steps, and the comparison offered only when there is a success to compare with."""
from __future__ import annotations

import json

import pytest

from models.payloads import MASK
from views.command_log import command_log, to_html
from helpers import parse, report

ESC = "\x1b"


def exec_run(api, status: str = "failure", **output) -> int:
    """A run reported in the shape `runwatch exec` gives it."""
    body = {"exit_code": 3, "stdout_tail": "saving\n", "stderr_tail": "disk full\n", **output}
    return report(api, {"workflow": "backup", "status": status, "output": body,
                        **({"error": {"type": "ExitCode", "message": f"{ESC}[31mdisk full{ESC}[0m"}}
                           if status == "failure" else {})})


def test_a_failed_command_shows_its_output_as_a_log_open_with_the_exit_code(api, logged_in):
    run_id = exec_run(api, stdout_tail="line 1\nline 2\n<b>bold</b> & co\n",
                      stderr_tail="warning: low disk\nerror: disk full\n")
    response = logged_in.get(f"/executions/{run_id}")
    page = parse(response)

    assert page.by_id("exit-code").text == "3"
    assert page.find("p", class_="error-message")[0].text == "disk full", "no colour codes"
    log = page.find("section", class_="command-log")[0]
    assert "open" in log.find("details")[0].attrs
    stdout, stderr = page.by_id("run-stdout-text"), page.by_id("run-stderr-text")
    assert stdout.tag == stderr.tag == "pre"
    assert stdout.text == "line 1\nline 2\n<b>bold</b> & co\n", "line breaks kept, text whole"
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in response.get_data(as_text=True)
    assert stderr.text == "warning: low disk\nerror: disk full\n"
    streams = [div.attrs["class"] for div in log.find("div", class_="log-stream")]
    assert streams == ["log-stream log-stdout", "log-stream log-stderr"]


def test_a_successful_command_shows_its_log_folded_and_an_empty_stream_says_so(api, logged_in):
    run_id = exec_run(api, status="success", exit_code=0, stderr_tail="")
    page = parse(logged_in.get(f"/executions/{run_id}"))

    log = page.find("section", class_="command-log")[0]
    assert "open" not in log.find("details")[0].attrs
    assert page.by_id("exit-code").text == "0"
    assert "Nothing on stderr." in log.text
    assert not page.find(id="run-stderr-text")


def test_ansi_colours_become_classes_and_other_escape_sequences_go(api, logged_in):
    colourful = (f"{ESC}[1;32mPASS{ESC}[0m test_one\n{ESC}[31mFAIL{ESC}[0m test_two\n"
                 f"{ESC}]8;;javascript:alert(1){ESC}\\here{ESC}]8;;{ESC}\\ {ESC}[2K{ESC}[?25ldone\n"
                 "10%\r50%\r100%\n")
    run_id = exec_run(api, stdout_tail=colourful)
    response = logged_in.get(f"/executions/{run_id}")
    stdout = parse(response).by_id("run-stdout-text")

    assert stdout.text == "PASS test_one\nFAIL test_two\nhere done\n100%\n"
    spans = {span.text: span.attrs["class"] for span in stdout.find("span")}
    assert spans == {"PASS": "ansi1 ansi32", "FAIL": "ansi31"}
    assert not stdout.find("a") and ESC not in stdout.text
    assert not [e for e in parse(response).walk() if "style" in e.attrs], "the CSP allows none"


@pytest.mark.parametrize("text, shown", [
    ("DB_PASSWORD=hunter2\nok\n", f"DB_PASSWORD={MASK}\nok\n"),
    # A colour code inside the name or the value hides nothing.
    (f"pass{ESC}[1mword{ESC}[0m=hunter2\n", f"password={MASK}\n"),
    (f"token: {ESC}[33mabc{ESC}[0m def\nnext\n", f"token: {MASK}\nnext\n"),
    ("postgres://app:s3cret@db/app\n", f"postgres://app:{MASK}@db/app\n"),
])
def test_secrets_in_a_log_are_masked_whatever_colours_run_through_them(text, shown):
    html = str(to_html(text))
    assert "hunter2" not in html and "abc" not in html and "s3cret" not in html
    assert parse_text(html) == shown


def parse_text(html: str) -> str:
    from helpers import Tree
    return Tree(html).root.text


def test_a_log_longer_than_the_cut_shows_its_last_whole_lines(api, logged_in):
    lines = "".join(f"line {n}\n" for n in range(20_000))  # about 200 KB
    log = command_log(json.dumps({"exit_code": 1, "stdout_tail": lines}), limit=1000)
    stdout = log.streams[0]
    assert stdout.cut == "1000 bytes"
    shown = parse_text(str(stdout.html))
    assert shown.endswith("line 19999\n") and shown.startswith("line ")
    assert len(shown) <= 1000 and shown.splitlines()[0] in lines.splitlines()


@pytest.mark.parametrize("output", [
    {"result": "fine"}, {"stdout_tail": 5}, ["stdout_tail"], "stdout_tail", None,
])
def test_only_an_output_with_a_text_tail_is_a_log(api, logged_in, output):
    run_id = report(api, {"workflow": "job", "status": "failure", "output": output})
    page = parse(logged_in.get(f"/executions/{run_id}"))
    assert not page.find("section", class_="command-log")
    assert not page.find(id="exit-code")


def test_a_run_without_steps_shows_no_trace(api, logged_in):
    bare = report(api, {"workflow": "job", "status": "success"})
    stepped = report(api, {"workflow": "job", "status": "success",
                           "steps": [{"name": "only", "status": "success"}]})
    assert not parse(logged_in.get(f"/executions/{bare}")).find("section", class_="trace")
    assert parse(logged_in.get(f"/executions/{stepped}")).find("section", class_="trace")


def compare_links(client, run_id: int) -> list:
    return [a for a in parse(client.get(f"/executions/{run_id}")).find("a")
            if a.text == "Compare with last success"]


def test_compare_is_offered_only_when_an_earlier_success_of_the_workflow_exists(api, logged_in):
    first = report(api, {"workflow": "job", "status": "failure",
                         "started_at": "2026-11-24T10:00:00Z"})
    elsewhere = report(api, {"workflow": "other", "status": "success",
                             "started_at": "2026-11-24T09:00:00Z"})
    success = report(api, {"workflow": "job", "status": "success",
                           "started_at": "2026-11-24T11:00:00Z"})
    later = report(api, {"workflow": "job", "status": "failure",
                         "started_at": "2026-11-24T12:00:00Z"})

    assert not compare_links(logged_in, first), "the success of another workflow counts not"
    assert not compare_links(logged_in, elsewhere)
    assert not compare_links(logged_in, success), "a success is no earlier than itself"
    [link] = compare_links(logged_in, later)
    assert link.attrs["href"] == f"/executions/{later}/compare"


def test_a_log_with_more_colour_codes_than_drawn_shows_its_text_without_them(monkeypatch):
    import views.command_log
    monkeypatch.setattr(views.command_log, "MAX_COLOUR_CODES", 4)
    assert str(to_html(f"{ESC}[31ma{ESC}[0m" * 2)) == '<span class="ansi31">a</span>' * 2
    assert str(to_html(f"{ESC}[31m<a>{ESC}[0m" * 3)) == "&lt;a&gt;" * 3
