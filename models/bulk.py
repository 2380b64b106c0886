"""Bulk writes in SQL written by hand: the one module that builds the text of INSERT,
upsert, UPDATE and DELETE statements over many rows (chunked under the bound-value limit,
with the placeholders of the database in use).

Written by hand: peewee's generation of SQL value by value costs more than the database's
own work on a batch of runs. Rows hold ready-to-store values (timestamps as microseconds,
foreign keys as ids).
"""
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


def _names(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{c}"' for c in columns)


def _values(width: int, count: int) -> str:
    one = f"({placeholders(width)})"
    return ", ".join([one] * count)


def _flat(rows: Sequence[Sequence]) -> list:
    return [value for row in rows for value in row]


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence], *,
                returning: Sequence[str] = ()) -> list[tuple]:
    """INSERT many rows in few statements; the `returning` columns of each row inserted
    (in no promised order: match them to the rows by a key, never by position)."""
    return _insert(table, columns, rows, "", returning)


def _insert(table: str, columns: Sequence[str], rows: Sequence[Sequence], conflict: str,
            returning: Sequence[str]) -> list[tuple]:
    found: list[tuple] = []
    if not rows:
        return found
    head = f'INSERT INTO "{table}" ({_names(columns)}) VALUES '
    tail = conflict + (f" RETURNING {_names(returning)}" if returning else "")
    for chunk in chunks(rows, max(1, BOUND_VALUES // len(columns))):
        cursor = database.execute_sql(head + _values(len(columns), len(chunk)) + tail,
                                      _flat(chunk))
        if returning:
            found.extend(cursor.fetchall())
    return found


def upsert_rows(table: str, columns: Sequence[str], conflict: Sequence[str],
                rows: Sequence[Sequence], *, replace: Sequence[str] = (),
                add: Sequence[str] = (), bump: Sequence[str] = (),
                returning: Sequence[str] = ()) -> list[tuple]:
    """INSERT … ON CONFLICT (`conflict`) DO UPDATE of many rows: each column of `replace`
    takes the new row's value, each of `add` grows by it (counts), each of `bump` grows by
    one. Give the rows in key order: PostgreSQL then locks them in one order, and two
    writers never wait for each other in a circle."""
    update = ([f'"{c}" = EXCLUDED."{c}"' for c in replace]
              + [f'"{c}" = "{table}"."{c}" + EXCLUDED."{c}"' for c in add]
              + [f'"{c}" = "{table}"."{c}" + 1' for c in bump])
    return _insert(table, columns, rows,
                   f" ON CONFLICT ({_names(conflict)}) DO UPDATE SET {', '.join(update)}",
                   returning)


def update_rows(table: str, key: str, columns: Sequence[str],
                rows: Sequence[Sequence]) -> None:
    """Set `columns` of many rows, each row (key value, *column values), by one UPDATE per
    chunk joined to a VALUES list."""
    width = 1 + len(columns)
    sets = ", ".join(f'"{c}" = "given"."column{i + 2}"' for i, c in enumerate(columns))
    for chunk in chunks(rows, max(1, BOUND_VALUES // width)):
        database.execute_sql(
            f'UPDATE "{table}" SET {sets} FROM (VALUES {_values(width, len(chunk))}) AS "given" '
            f'WHERE "{table}"."{key}" = "given"."column1"', _flat(chunk))


def update_where_in(table: str, values: dict[str, object], column: str,
                    keys: Sequence) -> None:
    """Set the same `values` on every row whose `column` is one of `keys`."""
    sets = ", ".join(f'"{name}" = {database.param}' for name in values)
    for chunk in chunks(keys, BOUND_VALUES):
        database.execute_sql(f'UPDATE "{table}" SET {sets} WHERE "{column}" IN '
                             f'({placeholders(len(chunk))})', [*values.values(), *chunk])


def delete_where_in(table: str, column: str, keys: Sequence) -> None:
    """Delete every row whose `column` is one of `keys`."""
    for chunk in chunks(keys, BOUND_VALUES):
        database.execute_sql(f'DELETE FROM "{table}" WHERE "{column}" IN '
                             f'({placeholders(len(chunk))})', list(chunk))


def delete_emptied(table: str, columns: Sequence[str], keys: Sequence[Sequence],
                   count: str = "n", below_zero: bool = True) -> None:
    """Delete the rows of these keys (values of `columns`) whose `count` is down to zero
    (or below, unless `below_zero` is False: a count kept in parts may be negative)."""
    test = "<=" if below_zero else "="
    for chunk in chunks(keys, max(1, BOUND_VALUES // len(columns))):
        database.execute_sql(
            f'DELETE FROM "{table}" WHERE "{count}" {test} 0 AND ({_names(columns)}) IN '
            f'(VALUES {_values(len(columns), len(chunk))})', _flat(chunk))


__all__ = ["BOUND_VALUES", "placeholders", "chunks", "insert_rows", "upsert_rows",
           "update_rows", "update_where_in", "delete_where_in", "delete_emptied"]
