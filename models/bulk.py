"""Bulk writes in SQL written by hand: the one module that builds the text of INSERT,
upsert, UPDATE and DELETE statements over many rows (chunked under the bound-value limit,
with the placeholders of the database in use)."""
from __future__ import annotations

from typing import Iterator, Sequence

from .db import database

BOUND_VALUES = 30000  # values bound in one statement: under SQLite's limit of 32,766


def placeholders(count: int) -> str:
    """`count` query parameters of the database in use, comma-separated (for IN and VALUES
    lists written by hand)."""
    return ", ".join([database.param] * count)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in slices of at most `size` (statements stay under the bound-value limit)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence],
                tail: str = "", returning: bool = False) -> list[tuple]:
    """INSERT many rows of ready-to-store values (timestamps as microseconds, foreign keys
    as ids) in few statements, `tail` after the VALUES (an ON CONFLICT or RETURNING clause);
    the rows RETURNING gives when `returning`.

    Written by hand: peewee's generation of SQL value by value costs more than the
    database's own work on a batch of runs.
    """
    found: list[tuple] = []
    if not rows:
        return found
    one = f"({placeholders(len(columns))})"
    head = f'INSERT INTO "{table}" (' + ", ".join(f'"{c}"' for c in columns) + ") VALUES "
    for chunk in chunks(rows, max(1, BOUND_VALUES // len(columns))):
        cursor = database.execute_sql(head + ", ".join([one] * len(chunk)) + tail,
                                      [value for row in chunk for value in row])
        if returning:
            found.extend(cursor.fetchall())
    return found


def upsert_rows(table: str, columns: Sequence[str], conflict: Sequence[str], update: str,
                rows: Sequence[Sequence]) -> None:
    """INSERT … ON CONFLICT (`conflict`) DO UPDATE SET `update` of many rows. Give the rows
    in key order: PostgreSQL then locks them in one order, and two writers never wait for
    each other in a circle."""
    target = ", ".join(f'"{c}"' for c in conflict)
    insert_rows(table, columns, rows, f" ON CONFLICT ({target}) DO UPDATE SET {update}")
