"""What every table builds on: the base model, bound to the database proxy, and the field
that stores a UTC time as integer microseconds."""
from __future__ import annotations

import peewee

from .db import database
from .times import from_micros, to_micros


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class UTCMicros(peewee.BigIntegerField):
    """A UTC timestamp stored as integer microseconds: compact, exact, fast to compare."""

    def db_value(self, value):
        if value is None or isinstance(value, int):
            return value
        return to_micros(value)

    def python_value(self, value):
        if value is None:
            return None
        return from_micros(value)
