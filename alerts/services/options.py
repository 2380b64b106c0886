"""What the services' options share: strict models, the URL type, and secrets marked.

A value marked `SECRET` is hidden on pages and from `read` tokens (`masked`): the path and
query of a Slack, Teams or Discord webhook URL are what lets anyone post to it, as a
PagerDuty routing key lets anyone open incidents.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from models.payloads import MASK, mask_url

from ..config import ALLOW_PRIVATE
from ..outbound import checked_url

SECRET = {"x-secret": True}  # the JSON-schema mark of a secret option


def _service_url(value: str, info: ValidationInfo) -> str:
    return checked_url(value, bool((info.context or {}).get(ALLOW_PRIVATE)))


# A URL a service gave the user; its host passes the private-address rule of §10 on save
# (literal addresses and localhost) and again before every send (every address of a name).
ServiceUrl = Annotated[str, Field(max_length=2000, json_schema_extra={
    **SECRET, "description": "http(s); a host that is localhost or a private address only "
                             "with RUNWATCH_WEBHOOK_ALLOW_PRIVATE=true"}),
                       AfterValidator(_service_url)]


class ServiceOptions(BaseModel):
    """A channel's options: nothing but the fields declared, each of its declared type."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=True)

    @classmethod
    def secret_fields(cls) -> list[str]:
        """The names of the options that are secrets."""
        return [name for name, field in cls.model_fields.items()
                if isinstance(field.json_schema_extra, dict)
                and field.json_schema_extra.get("x-secret")]

    @classmethod
    def masked(cls, options: dict) -> dict:
        """The options as pages and `read` tokens see them: a URL by its scheme and host
        alone, any other secret not at all."""
        secret = cls.secret_fields()
        return {key: (cls.mask(key, value) if key in secret and isinstance(value, str)
                      else value) for key, value in options.items()}

    @classmethod
    def mask(cls, key: str, value: str) -> str:
        """One secret as shown."""
        return mask_url(value) if key == "url" else MASK

