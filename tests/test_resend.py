"""Re-sending stored runs (what a client does after an outage): a run reported again as
stored, or with changes, ends up exactly as if each report had been applied in turn, and
the counts, rollups and summaries kept at ingestion agree with a recount from the runs."""
from __future__ import annotations

import copy
import json
import random
import threading
from datetime import datetime, timedelta

import pytest
import requests

import models.bulk
from helpers import URL, rollups_as_read
from history.rollups import rebuild_rollups
from models import Execution, database
from models.bulk import COPY_ROWS
from models.db import connection, iso, utcnow, write_transaction
from models.ingest import store_executions
from models.schemas import BatchIn, StepBudget, parse
from workflows.models import DurationRollup, WorkflowSummary
from workflows.durations import count_all_durations
from workflows.summary import recount

BATCH = f"{URL}/batch"
STATUSES = ("success", "failure", "running", "pending")


def _step(rng: random.Random, position: int) -> dict:
    status = rng.choice(("success", "success", "failure", "running"))
    step = {"position": position, "name": f"step {position}", "status": status,
            "output": {"n": rng.randrange(3)}}
    if status == "failure":
        step["error"] = {"message": f"step {position} failed", "type": "StepError"}
    return step


def _new_run(rng: random.Random, key: str, now: datetime) -> dict:
    status = rng.choice(STATUSES)
    started = now - timedelta(minutes=rng.randrange(1, 5000))
    body = {"workflow": f"wf-{rng.randrange(3)}", "external_id": key, "status": status,
            "started_at": iso(started), "input": {"key": key},
            "steps": [_step(rng, p) for p in range(rng.randrange(4))]}
    if status in ("success", "failure"):
        body["finished_at"] = iso(started + timedelta(seconds=rng.randrange(1, 900)))
    if status == "failure":
        body["error"] = {"message": f"{key} failed", "type": rng.choice(("A", "B"))}
    return body


def _changed(rng: random.Random, body: dict, now: datetime) -> dict:
    """The run reported again with some of its fields changed, some left out."""
    body = copy.deepcopy(body)
    for _ in range(rng.randrange(1, 4)):
        change = rng.randrange(7)
        if change == 0:  # a new status, finished or reopened
            body["status"] = rng.choice(STATUSES)
            if body["status"] in ("success", "failure"):
                body["finished_at"] = iso(now - timedelta(seconds=rng.randrange(60)))
            else:
                body["finished_at"] = None
            body["error"] = ({"message": "failed again", "type": "C"}
                             if body["status"] == "failure" else None)
        elif change == 1:
            body["output"] = {"done": rng.randrange(3)}
        elif change == 2:  # one step changed, or one more
            steps = body.setdefault("steps", [])
            position = rng.randrange(len(steps) + 1)
            step = _step(rng, position)
            body["steps"] = [s for s in steps if s["position"] != position] + [step]
        elif change == 3:
            body.pop("steps", None)  # steps not sent: the stored ones stay
        elif change == 4:
            body.pop("input", None)
            body.pop("started_at", None)  # the stored start stays
        elif change == 5:
            body["started_at"] = iso(now - timedelta(minutes=rng.randrange(1, 5000)))
            body["finished_at"] = iso(now) if body["status"] in ("success", "failure") else None
        else:
            body.pop("error", None)
    return body


def _apply(expected: dict | None, body: dict) -> dict:
    """What the stored run says after `body` is reported (sent fields overwrite)."""
    run = copy.deepcopy(expected) or {"input": None, "output": None, "error": None,
                                      "finished_at": None, "steps": {}}
    run["status"] = body["status"]
    if body.get("started_at"):
        run["started_at"] = body["started_at"]
    for name in ("finished_at", "input", "output", "error"):
        if name in body:
            run[name] = body[name]
    if body["status"] != "failure" and "error" not in body:
        run["error"] = None  # a report of anything but a failure without an error clears it
    for step in body.get("steps", []):
        run["steps"][step["position"]] = step
    return run


def _check_stored(api, ids: dict[str, int], expected: dict[str, dict]) -> None:
    def instant(text):
        return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))

    for key, run in expected.items():
        answer = api.get(f"{URL}/{ids[key]}").json
        assert answer["status"] == run["status"], key
        assert instant(answer["started_at"]) == instant(run["started_at"]), key
        assert instant(answer["finished_at"]) == instant(run["finished_at"]), key
        for name in ("input", "output", "error"):
            assert answer[name] == run[name], (key, name)
        assert answer["error_message"] == (run["error"] or {}).get("message"), key
        steps = [run["steps"][p] for p in sorted(run["steps"])]
        assert [(s["position"], s["name"], s["status"], s["output"], s["error"])
                for s in answer["steps"]] == [
            (s["position"], s["name"], s["status"], s["output"], s.get("error"))
            for s in steps], key
        assert answer["step_count"] == len(steps), key
        failed = [s["position"] for s in steps if s["status"] == "failure"]
        assert answer["failed_step"] == (min(failed) if failed else None), key


def _derived() -> tuple:
    summaries = sorted(tuple(row) for row in WorkflowSummary.select().tuples())
    rollups = sorted((*key, n) for key, n in rollups_as_read().items())
    durations = sorted((d.grain, d.workflow_id, d.bucket, d.bin, d.n)
                       for d in DurationRollup.select() if d.n)
    return summaries, rollups, durations


def _recounted() -> tuple:
    rebuild_rollups()
    with write_transaction():
        recount([row.workflow_id for row in WorkflowSummary.select()])
        DurationRollup.delete().execute()
    count_all_durations()
    return _derived()


@pytest.mark.parametrize("seed", [1, 2])
def test_new_runs_and_re_sent_ones_identical_or_changed_agree_with_a_recount(api, seed):
    rng = random.Random(seed)
    now = utcnow().replace(microsecond=0)
    sent: dict[str, dict] = {}  # the last body reported per external id
    expected: dict[str, dict] = {}
    ids: dict[str, int] = {}
    for round_ in range(8):
        batch = []
        for n in range(rng.randrange(4, 12)):
            kind = rng.random()
            if kind < 0.4 or not sent:
                body = _new_run(rng, f"r{round_}-{n}", now)
            elif kind < 0.7:  # re-sent exactly as before
                body = sent[rng.choice(sorted(sent))]
            else:
                body = _changed(rng, sent[rng.choice(sorted(sent))], now)
            batch.append(body)
            if rng.random() < 0.1:  # the same run twice in one batch: the later one wins
                batch.append(_changed(rng, body, now))
        response = api.post(BATCH, json={"executions": batch})
        assert response.status_code == 201, response.text
        for body, answer in zip(batch, response.json["data"]):
            key = body["external_id"]
            assert ids.setdefault(key, answer["id"]) == answer["id"]
            sent[key] = body
            expected[key] = _apply(expected.get(key), body)
    _check_stored(api, ids, expected)
    with connection():
        assert Execution.select().count() == len(expected)
        kept = _derived()
        assert kept == _recounted()


def _statements(monkeypatch, post) -> int:
    """How many SQL statements `post()` has the database run (a COPY is one)."""
    count = [0]
    real, real_copy = database.obj.execute_sql, models.bulk._copy

    def counting(sql, params=None, *args, **kwargs):
        count[0] += 1
        return real(sql, params, *args, **kwargs)

    def counting_copy(*args, **kwargs):
        count[0] += 1
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(database.obj, "execute_sql", counting)
    monkeypatch.setattr(models.bulk, "_copy", counting_copy)
    try:
        post()
    finally:
        monkeypatch.undo()
    return count[0]


def test_re_sending_a_batch_takes_a_few_statements_whatever_its_size(api, monkeypatch):
    """A re-sent batch, unchanged or changed, is written in bulk: as many statements for
    240 runs as for 60 (not a few per run), so the write lock is held about as long as for
    storing the runs the first time. (Both sizes are past COPY_ROWS: PostgreSQL takes
    fewer rows by INSERT, in one statement fewer.)"""
    rng = random.Random(9)
    now = utcnow().replace(microsecond=0)
    counts = {}
    for size in (COPY_ROWS + 10, 4 * (COPY_ROWS + 10)):
        batch = [_new_run(rng, f"s{size}-{n}", now) for n in range(size)]
        for run in batch:
            run["steps"] = [_step(rng, p) for p in range(3)]
        changed = [{**run, "output": {"changed": True},
                    "steps": [*run["steps"][:2], {**run["steps"][2], "output": {"n": 9}}]}
                   for run in batch]

        def post(body):
            return lambda: api.post(BATCH, json={"executions": body})

        counts[size] = [_statements(monkeypatch, post(body))
                        for body in (batch, batch, changed)]
    # (A first send may take a statement more for a larger batch: runs that land behind
    # others in their workflow are marked for the alert scan.)
    small, large = counts.values()
    assert large[1:] == small[1:], counts
    new, again, changed = large
    assert again <= new + 10 and changed <= new + 10, counts


def test_a_run_re_sent_as_stored_keeps_its_steps_and_counts_as_reported(api, db):
    """Nothing of the run is rewritten but its last report: its steps keep their rows,
    and an open run re-sent is still reported on (retention keeps it)."""
    body = {"workflow": "etl", "external_id": "a", "status": "running",
            "started_at": "2026-01-01T00:00:00Z", "input": {"x": 1},
            "steps": [{"name": "one", "status": "success"}, {"name": "two"}]}
    first = api.post(URL, json=body)
    assert first.status_code == 201
    run_id = first.json["id"]
    steps = api.get(f"{URL}/{run_id}").json["steps"]
    reported = Execution.get_by_id(run_id).updated_at
    again = api.post(URL, json=body)
    assert again.status_code == 200 and again.json["id"] == run_id
    assert api.get(f"{URL}/{run_id}").json["steps"] == steps
    assert Execution.get_by_id(run_id).updated_at > reported

@pytest.mark.long(8)

def test_clients_re_sending_their_runs_at_once_all_get_answers(app, live_server, live_token,
                                                               db):
    """Eight clients re-send stored batches at the same time (after an outage): every
    batch is answered 2xx (none waits past the database's busy timeout) and no run is
    stored twice."""
    headers = {"Authorization": f"Bearer {live_token}"}
    rng = random.Random(5)
    now = utcnow().replace(microsecond=0)
    batches = [[_new_run(rng, f"c{c}-{n}", now) for n in range(250)] for c in range(8)]
    # Stored before the outage by the write path the batch route takes, in this process:
    # what the test is about is sending them again, to the server.
    with app.app_context():
        for batch in batches:
            body = json.dumps({"executions": batch}).encode()
            store_executions(parse(BatchIn, body, StepBudget()).executions)
    answers: list[int] = []

    def resend(client: int):
        session = requests.Session()
        for round_ in range(3):
            batch = batches[(client + round_) % len(batches)]
            response = session.post(live_server.url + BATCH, json={"executions": batch},
                                    headers=headers, timeout=60)
            answers.append(response.status_code)

    threads = [threading.Thread(target=resend, args=(c,)) for c in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(answers) == [201] * 24
    database.connect(reuse_if_open=True)
    assert Execution.select().count() == 8 * 250
