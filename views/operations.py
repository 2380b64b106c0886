"""What each API endpoint takes and answers, for the API document (views/openapi.py).

The core lists its endpoints in views/openapi.py; each feature lists its own beside its
routes and registers them in `init_app`, so the document needs to know no feature.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Flask
from pydantic import BaseModel

from models.schemas import QueryParam

KEY = "runwatch.operations"


@dataclass(frozen=True)
class Operation:
    """What one endpoint takes and answers, besides what every operation shares.

    Every operation may answer 401 and 403; 400 is added when it takes a body or query
    parameters or changes something (a session's write without its CSRF header), 404 when
    its path has parameters, 413 when it takes a body.
    """

    answers: dict[int, type[BaseModel] | dict | None]  # status → model, raw schema, or no body
    body: type[BaseModel] | dict | None = None  # a JSON model, or raw content per media type
    query: tuple[QueryParam, ...] = ()
    errors: dict[int, str] = field(default_factory=dict)  # further error statuses → meaning
    # Raw content per media type of every answer (`answers`) or error, instead of JSON
    # bodies and the ErrorDocument (OTLP answers in the request's encoding).
    answer_content: dict | None = None
    error_content: dict | None = None
    body_required: bool = True  # False: the body may be left out


def register_operations(app: Flask, operations: dict[str, Operation]) -> None:
    """Add a feature's endpoints (by endpoint name) to `app`'s API document."""
    app.extensions.setdefault(KEY, {}).update(operations)


def operations_of(app: Flask) -> dict[str, Operation]:
    """The endpoints the features of `app` registered."""
    return dict(app.extensions.get(KEY, {}))


__all__ = ["Operation", "register_operations", "operations_of"]
