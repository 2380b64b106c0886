"""Rows written in bulk land on their own run, whatever order the database returns new ids in.

Neither SQLite nor PostgreSQL promises that `INSERT … RETURNING` gives rows back in the order
of the VALUES. These tests make the returned order differ from the input order (reversed,
and shuffled) and check that every run keeps its own steps and payloads, and that the ids
the API answers name the run that was sent.
"""
from __future__ import annotations

import random

import pytest

import models.bulk
from models.bulk import COPY_ROWS
import models.run_rows
from helpers import URL, detail


def _runs() -> list[dict]:
    """A batch whose runs differ in what they carry; two share every column of the run's
    row (no external id, same status and times) and differ only in input and steps."""
    runs = []
    for index in range(12):
        run = {"workflow": f"wf-{index % 3}", "status": ("success", "failure")[index % 2],
               "started_at": f"2026-11-24T10:{index:02d}:00Z",
               "finished_at": f"2026-11-24T10:{index:02d}:30Z",
               "input": {"mine": index},
               "steps": [{"name": f"step {index}.{position}", "status": "success",
                          "output": {"mine": [index, position]}}
                         for position in range(index % 4 + 1)]}
        if index % 3:
            run["external_id"] = f"ext-{index}"
        runs.append(run)
    twin = {"workflow": "wf-twin", "status": "success", "started_at": "2026-11-24T11:00:00Z",
            "finished_at": "2026-11-24T11:00:05Z"}
    runs.append({**twin, "input": {"mine": "twin a"},
                 "steps": [{"name": "twin a", "status": "success"}]})
    runs.append({**twin, "input": {"mine": "twin b"},
                 "steps": [{"name": "twin b.0", "status": "success"},
                           {"name": "twin b.1", "status": "success"}]})
    return runs


@pytest.fixture(params=["reversed", "shuffled"])
def returned_out_of_order(request, monkeypatch):
    """The database's freedom, taken: every RETURNING answer comes back out of order."""
    real = models.bulk.insert_rows
    rng = random.Random(7)

    def insert_rows(*args, **kwargs):
        rows = real(*args, **kwargs)
        if request.param == "reversed":
            return rows[::-1]
        rows = list(rows)
        rng.shuffle(rows)
        return rows

    monkeypatch.setattr(models.run_rows, "insert_rows", insert_rows)
    return request.param


def test_every_step_and_payload_lands_on_its_own_run(api, db, returned_out_of_order):
    runs = _runs()
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 201, response.text
    ids = [item["id"] for item in response.json["data"]]
    assert len(set(ids)) == len(runs)
    for run_id, sent in zip(ids, runs, strict=True):
        stored = detail(api, run_id)
        assert stored["workflow"] == sent["workflow"]
        assert stored.get("external_id") == sent.get("external_id")
        assert stored["input"] == sent["input"]
        assert [step["name"] for step in stored["steps"]] == [s["name"] for s in sent["steps"]]
        for step, sent_step in zip(stored["steps"], sent["steps"], strict=True):
            assert step.get("output") == sent_step.get("output")


def test_steps_added_to_a_run_land_on_their_positions(api, db, returned_out_of_order):
    run_id = api.post(URL, json={"workflow": "wf", "status": "running"}).json["id"]
    steps = [{"position": position, "name": f"step {position}", "status": "success",
              "output": {"mine": position}} for position in range(6)]
    response = api.post(f"{URL}/{run_id}/steps", json={"steps": steps})
    assert response.status_code in (200, 201), response.text
    stored = detail(api, run_id)["steps"]
    assert [(s["name"], s["output"]) for s in stored] == [
        (s["name"], s["output"]) for s in steps]


def test_text_that_bulk_writing_escapes_comes_back_as_sent(api, db):
    """PostgreSQL takes many new rows by COPY, whose text format gives a backslash, tab,
    newline and carriage return a meaning of their own (and `\\N` stands for NULL): each is
    stored as sent, in every kind of column."""
    awkward = "a\\b\tc\nd\re \\N \\. end\\"

    def run(number: int) -> dict:
        return {"workflow": "wf \\ slash", "external_id": f"ext\\N{number}", "status": "failure",
                "input": {"text": awkward, awkward: [awkward]},
                "error": {"message": awkward, "type": "\\N", "stack": awkward},
                "steps": [{"name": "\\N", "action": "\\", "status": "failure", "logs": awkward,
                           "output": awkward, "error": {"message": awkward}},
                          {"name": "step", "logs": "\\N", "input": "\\N"}]}

    runs = [run(number) for number in range(COPY_ROWS)]  # enough rows to be copied
    response = api.post(f"{URL}/batch", json={"executions": runs})
    assert response.status_code == 201, response.text
    for item, sent in zip(response.json["data"][::7], runs[::7]):
        stored = detail(api, item["id"])
        assert (stored["workflow"], stored["external_id"]) == (sent["workflow"],
                                                               sent["external_id"])
        assert (stored["input"], stored["error"]) == (sent["input"], sent["error"])
        assert stored["error_message"] == awkward
        first, second = stored["steps"]
        assert (first["name"], first["action"], first["logs"], first["output"]) == (
            "\\N", "\\", awkward, awkward)
        assert first["error"] == {"message": awkward}
        assert (second["name"], second["logs"], second["input"]) == ("step", "\\N", "\\N")
