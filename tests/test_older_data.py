"""What an older release accepted and this one refuses is still served and sent whole:
NaN in a payload, a line break in a workflow name."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from alert_servers import alert_config, make_rule
from alerts.config import config_from
from alerts.delivery import deliver_due
from alerts.scheduler import scan
from models.executions import ExecutionPayload
from models.ingest import store_executions
from models.schemas import ExecutionIn

AT = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def _stored_directly(workflow: str, status: str = "failure") -> int:
    """A run written without validation, as an older release did."""
    item = ExecutionIn.model_construct(
        workflow=workflow, external_id=None, status=status, started_at=AT, finished_at=AT,
        input=None, output=None, error=None, steps=[])
    [(execution_id, _)] = store_executions([item])
    return execution_id


def test_nan_and_infinity_stored_before_are_answered_as_valid_json(api, db):
    execution_id = _stored_directly("legacy")
    ExecutionPayload.insert(execution=execution_id, input='{"ratio": NaN, "note": "NaN"}',
                            output='[Infinity, -Infinity, 1.5]').execute()
    response = api.get(f"/api/automations/executions/{execution_id}")
    assert response.status_code == 200
    body = json.loads(response.text, parse_constant=pytest.fail)  # strict JSON
    assert body["input"] == {"ratio": None, "note": "NaN"}
    assert body["output"] == [None, None, 1.5]


@pytest.fixture
def app_config(app_config, smtp_sink):
    return alert_config(app_config, smtp_sink)


def test_a_workflow_name_with_a_line_break_stored_before_still_gets_its_email(
        app, db, smtp_sink):
    make_rule(1, [{"type": "email", "to": ["ops@example.com"]}])
    _stored_directly("nightly\nbackup")
    config = config_from(app)
    scan(config)
    assert deliver_due(config).delivered == 1
    [mail] = smtp_sink.wait_for(1)
    assert mail["Subject"] == "[Runwatch] nightly backup is failing: 1 failures in a row"
