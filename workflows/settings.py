"""Changing a workflow's settings (the API's PATCH and the page's form share this)."""
from __future__ import annotations

from flask import current_app, has_app_context
from pydantic import ValidationError

from models.db import write_transaction
from models.times import utcnow
from models.executions import Workflow
from models.ingest import workflow_ids
from models.schemas import InputError, input_error
from alerts.config import ALLOW_PRIVATE
from alerts.quiet import quiet_ended
from reruns.settings import save_hook

from . import summary
from .schemas import SettingsIn

FIELDS = tuple(SettingsIn.model_fields)


def validation_context() -> dict:
    """What validating settings needs of the app: whether a re-run hook's URL may name a
    private address (not outside an app)."""
    return {ALLOW_PRIVATE: has_app_context()
            and bool(current_app.config["WEBHOOK_ALLOW_PRIVATE"])}


def validate(values: dict, strict: bool = True) -> dict:
    """The settings in `values` (only those given), validated; InputError names the first
    bad one. Forms send texts: `strict=False` reads numbers from them."""
    try:
        parsed = SettingsIn.model_validate(values, strict=strict, context=validation_context())
    except ValidationError as exc:
        raise input_error(exc) from None
    return {name: getattr(parsed, name) for name in parsed.model_fields_set}


def form_errors(values: dict) -> dict[str, str]:
    """Every bad field of a form's settings, by name (a re-run hook's by `rerun.<field>`;
    empty when all are good)."""
    try:
        SettingsIn.model_validate(values, strict=False, context=validation_context())
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            name = ".".join(map(str, error["loc"][:2])) if error["loc"] else "schedule"
            message = error["msg"].removeprefix("Value error, ")
            errors.setdefault(name, message)
        return errors
    return {}


def update(name: str, changes: dict) -> tuple[Workflow, bool]:
    """Apply validated settings to the workflow called `name`, creating it if it has not
    reported yet; returns it and whether it was created. Setting or changing the schedule
    (or its zone) starts the wait for its first expected run now."""
    if set(changes) - set(FIELDS):
        raise InputError(f"unknown setting {sorted(set(changes) - set(FIELDS))[0]}")
    changes = dict(changes)
    with write_transaction():
        existed = Workflow.select().where(Workflow.name == name).exists()
        workflow_id = workflow_ids([name])[name]
        workflow = Workflow.get_by_id(workflow_id)
        if "rerun" in changes:
            save_hook(workflow_id, changes.pop("rerun"))
        values = {key: value for key, value in changes.items()
                  if getattr(workflow, key) != value}
        if "schedule" in values or ("timezone" in values and workflow.schedule):
            values["schedule_set_at"] = utcnow()
        if values:
            Workflow.update(values).where(Workflow.id == workflow_id).execute()
        if "muted_until" in values:
            # Notices the mute held are looked at again by the next scan: released if it
            # has ended, held until its new end if not.
            quiet_ended(utcnow(), workflow_id=workflow_id)
        summary.settings_changed(workflow_id)
    return Workflow.get_by_id(workflow_id), not existed


# Settings of the sample workflows of `flask --app app demo`: schedules that its runs keep,
# one whose hourly run has stopped coming (late after the next scan), limits, descriptions.
DEMO_SETTINGS = {
    "nightly-backup": {"schedule": "0 2 * * *", "timezone": "Europe/Berlin",
                       "grace_seconds": 1800, "max_duration_seconds": 3600,
                       "description": "pg_dump of the main database, compressed, to S3"},
    "slack-digest": {"schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin",
                     "description": "The morning metrics digest in #ops"},
    "warehouse-export": {"schedule": "0 * * * *", "grace_seconds": 600,
                         "description": "Hourly export to the warehouse"},
    "invoice-sync": {"max_duration_seconds": 900},
}


def apply_demo_settings(since) -> None:
    """Give the demo's workflows their settings, as if set at `since` (a datetime)."""
    from models.times import to_micros

    for name, values in DEMO_SETTINGS.items():
        update(name, validate(values))
        with write_transaction():
            Workflow.update(schedule_set_at=to_micros(since)).where(
                Workflow.name == name, Workflow.schedule.is_null(False)).execute()
            summary.settings_changed(Workflow.get(Workflow.name == name).id)
