"""Request schemas of alert rules; channel schemas come from the channel registry."""
from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.schemas import InputError, Name

from .channels import CHANNELS

MAX_CHANNELS = 20
Threshold = Annotated[int, Field(ge=1, le=1000)]
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


class RulePatch(_Strict):
    """A change to a rule: only the fields sent change; `channels` replaces the list."""

    workflow: Name | None = None
    threshold: Threshold | None = None
    channels: Channels | None = None
    enabled: bool | None = None
    notify_recovery: bool | None = None


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
