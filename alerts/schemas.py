"""Request schemas of alert rules; channel schemas come from the channel registry."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.inputs import Text, whole
from models.schemas import Answer, InputError, Name, left_out

from .channels import CHANNELS
from .models import KINDS, NOTICE_STATES

MAX_CHANNELS = 20
Threshold = whole(1, 1000)
MAX_REMIND_MINUTES = 10_080  # a week
RemindEvery = Annotated[whole(1, MAX_REMIND_MINUTES) | None, Field(description=(
    "While an alerted failing or late episode goes on unacknowledged, a reminder every this "
    "many minutes; null: none."))]
ChannelIn = Annotated[Union[tuple(kind.Options for kind in CHANNELS.values())],
                      Field(discriminator="type")]
Channels = Annotated[list[ChannelIn], Field(min_length=1, max_length=MAX_CHANNELS)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RuleIn(_Strict):
    """A new rule: `workflow` null means every workflow."""

    workflow: Name | None = None
    threshold: Threshold
    channels: Channels
    enabled: bool = True
    notify_recovery: bool = True
    remind_every_minutes: RemindEvery = None


class RulePatch(_Strict):
    """A change to a rule: only the fields sent change; `channels` replaces the list."""

    workflow: Name | None = None
    threshold: Threshold = left_out()
    channels: Channels = left_out()
    enabled: bool = left_out()
    notify_recovery: bool = left_out()
    remind_every_minutes: RemindEvery = None


MAX_NOTE = 2000


class AcknowledgeIn(_Strict):
    """An acknowledgement of a workflow's current failing or late episode; the body may be
    left out."""

    note: Annotated[Text, Field(max_length=MAX_NOTE)] | None = None


def field_of(loc: tuple) -> str | None:
    """The field a pydantic error is about, without the channel-kind tag in its path."""
    parts = [str(part) for part in loc]
    if len(parts) > 2 and parts[0] == "channels" and parts[2] in CHANNELS:
        del parts[2]
    return ".".join(parts) or None


def parse_rule(schema: type[BaseModel], body: bytes, context: dict | None = None) -> BaseModel:
    """Validate a JSON rule body, raising InputError that names the first bad field.

    `context` is `config.validation_context(...)`: without it, webhook URLs that name a
    private address are refused.
    """
    try:
        return schema.model_validate_json(body or b"", context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid" or (first["type"] == "model_type"
                                               and not first["loc"]):
            raise InputError("The request body must be a JSON object.", None,
                             "invalid_json") from None
        field = field_of(first["loc"])
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = f"{field}.type"
            first["msg"] = "must be one of " + ", ".join(CHANNELS)
        message = {"extra_forbidden": "unknown field",
                   "missing": "is required"}.get(first["type"], first["msg"])
        message = message.removeprefix("Value error, ")
        raise InputError(f"{field}: {message}" if field else message, field) from None


# --- Answers of the alerts API, as its document describes them ------------------------------

class RuleState(Answer):
    """One workflow's streak under a rule."""

    workflow: str
    status: Literal["late", "failing", "ok"]
    failure_count: int
    threshold: int
    failing_since: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    last_failed_execution_url: str | None
    checked_at: datetime | None


class RuleAnswer(Answer):
    """A rule with its channels (secrets included) and the state of its workflows."""

    id: int
    workflow: str | None
    threshold: int
    channels: list[ChannelIn]
    enabled: bool
    notify_recovery: bool
    remind_every_minutes: int | None
    created_at: datetime
    updated_at: datetime
    states: list[RuleState]


class RuleList(Answer):
    """Every rule, oldest first."""

    data: list[RuleAnswer]


class AcknowledgeAnswer(Answer):
    """The acknowledgement just recorded: the episode's kind, who, when and why."""

    workflow: str
    kind: Literal["failing", "late"]
    by: str
    at: datetime
    note: str | None


class NoticeChannel(Answer):
    """Where a notice goes."""

    id: int
    type: Literal[tuple(CHANNELS)]
    target: str


class AttemptAnswer(Answer):
    """One try to deliver a notice, recorded before it is sent: `ok` is null while no
    answer is known — `outcome` "sending", or "interrupted" when the process sending it
    stopped before the answer (the receiver may or may not have it)."""

    at: datetime
    outcome: Literal["ok", "failed", "sending", "interrupted"]
    ok: bool | None
    response: str | None
    latency_ms: int | None
    error: str | None


class NoticeData(BaseModel):
    """The facts of a notice (kinds of notice may add more). A failing notice of a streak
    that runs reported late completed after a success had ended it adds
    `already_recovered` (true) and `recovered_at` (the start of that success); a reminder
    adds `reminder_number` (1 for the first reminder of its episode)."""

    model_config = ConfigDict(extra="allow")

    workflow: str
    failure_count: int
    threshold: int
    first_failure_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    execution_url: str | None
    rule_id: int
    already_recovered: bool | None = None
    recovered_at: datetime | None = None
    reminder_number: int | None = None


class WebhookBody(Answer):
    """The JSON a webhook receives."""

    type: str
    timestamp: datetime
    data: NoticeData


class NoticeAnswer(Answer):
    """A notice of the delivery log, with its attempts, oldest first."""

    id: int
    rule_id: int | None
    type: Literal[KINDS]
    workflow: str
    channel: NoticeChannel
    status: Literal[NOTICE_STATES]
    attempt_count: int
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    attempts: list[AttemptAnswer]
    payload: WebhookBody


class SentNotices(Answer):
    """The test notices just sent, one per channel of the rule, and how each went."""

    data: list[NoticeAnswer]


class NoticeList(Answer):
    """One page of the delivery log, newest first; `next_cursor` is null on the last page."""

    data: list[NoticeAnswer]
    next_cursor: str | None
