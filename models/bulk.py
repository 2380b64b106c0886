"""Bulk writes in SQL written by hand: the one module that builds the text of INSERT,
upsert, UPDATE and DELETE statements over many rows (chunked under the bound-value limit,
with the placeholders of the database in use).

Written by hand: peewee's generation of SQL value by value costs more than the database's
own work on a batch of runs. Rows hold ready-to-store values (timestamps as microseconds,
foreign keys as ids).
"""
from __future__ import annotations

import io
from typing import Iterator, Sequence

import peewee

from .db import database, is_sqlite

BOUND_VALUES = 30000  # values bound in one statement: under SQLite's limit of 32,766
# From this many rows on, PostgreSQL takes an INSERT by COPY (ids drawn first, where asked):
# fewer, and one more statement than an INSERT … VALUES costs more than COPY saves.
COPY_ROWS = 50


def copies(rows: Sequence) -> bool:
    """Whether these rows go in by COPY (`insert_numbered`), rather than an INSERT."""
    return len(rows) >= COPY_ROWS and not is_sqlite()


def placeholders(count: int) -> str:
    """`count` query parameters of the database in use, comma-separated (for IN and VALUES
    lists written by hand)."""
    return ", ".join([database.param] * count)


def id_list(ids: Sequence[int]) -> str:
    """Row ids written into a statement, comma-separated (for an IN list of a page of rows
    read on every request): psycopg2 fills in a parameter per id on the client, which for
    100 ids costs more than the query. Each id is made an int first, so nothing but digits
    and signs reaches the statement."""
    return ", ".join([str(int(i)) for i in ids])


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """`items` in slices of at most `size` (statements stay under the bound-value limit)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _names(columns: Sequence[str], prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{c}"' for c in columns)


def _values(width: int, count: int) -> str:
    one = f"({placeholders(width)})"
    return ", ".join([one] * count)


def flat(rows: Sequence[Sequence]) -> list:
    """The values of many rows in one list (the parameters of a VALUES list)."""
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
    if not (conflict or returning) and copies(rows):
        _copy(table, columns, rows)
        return found
    head = f'INSERT INTO "{table}" ({_names(columns)}) VALUES '
    tail = conflict + (f" RETURNING {_names(returning)}" if returning else "")
    for chunk in chunks(rows, max(1, BOUND_VALUES // len(columns))):
        cursor = database.execute_sql(head + _values(len(columns), len(chunk)) + tail,
                                      flat(chunk))
        if returning:
            found.extend(cursor.fetchall())
    return found


def insert_numbered(table: str, columns: Sequence[str], rows: Sequence[Sequence],
                    key: str = "id") -> list[int]:
    """INSERT many rows on PostgreSQL (see `copies`), each with a new id drawn from the
    sequence of the table's `key` first (one statement for them all): the ids, in the rows'
    order, are known without RETURNING, and the rows go in by COPY."""
    if not rows:
        return []
    # The sequence named once (MATERIALIZED): in the select list, pg_get_serial_sequence
    # would be called again for every row, ten times the cost of drawing the ids.
    cursor = database.execute_sql(
        "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) "
        "SELECT nextval(s.seq) FROM s CROSS JOIN generate_series(1, %s)",
        (f'"{table}"', key, len(rows)))
    ids = sorted(new_id for (new_id,) in cursor.fetchall())
    _copy(table, (key, *columns), [(new_id, *row) for new_id, row in zip(ids, rows)])
    return ids


# COPY's text format: a backslash, tab, newline or carriage return inside a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if type(value) is str:
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    return str(value)


def _copy(table: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """INSERT rows by PostgreSQL's COPY: no statement to parse and plan per row of VALUES,
    several times faster than a multi-row INSERT for a batch of runs."""
    text = "".join(["\t".join([_copy_value(value) for value in row]) + "\n" for row in rows])
    with peewee.__exception_wrapper__:  # constraint violations raise peewee's errors
        database.cursor().copy_expert(f'COPY "{table}" ({_names(columns)}) FROM STDIN',
                                      io.StringIO(text))


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
            f'WHERE "{table}"."{key}" = "given"."column1"', flat(chunk))


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
            f'(VALUES {_values(len(columns), len(chunk))})', flat(chunk))


__all__ = ["BOUND_VALUES", "COPY_ROWS", "copies", "placeholders", "id_list", "chunks", "flat",
           "insert_rows", "insert_numbered", "upsert_rows", "update_rows", "update_where_in",
           "delete_where_in", "delete_emptied"]
