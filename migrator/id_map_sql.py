"""SQL for the application team's cutover: rewrite Clerk user ids to Kinde ids in their own table.

One temporary mapping table, filled by multi-row INSERTs, then a single ``UPDATE ... FROM`` (``UPDATE
... JOIN`` for MySQL), all in one transaction: a million users are a few hundred statements, not a
million single-row UPDATEs. Identifiers are checked against a strict pattern and quoted for the
dialect; ids are checked against the shapes Clerk and Kinde give them, so nothing from outside can
inject SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from enum import StrEnum

from migrator.errors import ConfigError, JournalError

MAP_TABLE = "clerk_kinde_id_map"
ROWS_PER_INSERT = 500
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")
_ID = re.compile(r"^[A-Za-z0-9_:-]{1,128}$")


class Dialect(StrEnum):
    postgres = "postgres"
    mysql = "mysql"
    sqlite = "sqlite"


def parse_target(target: str) -> tuple[list[str], str]:
    """``TABLE.COLUMN`` or ``SCHEMA.TABLE.COLUMN`` -> (table parts, column)."""
    parts = target.split(".")
    if not 2 <= len(parts) <= 3 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ConfigError(
            f"--sql {target!r}: expected TABLE.COLUMN (or SCHEMA.TABLE.COLUMN) made of letters, digits and"
            " underscores, e.g. --sql accounts.clerk_user_id"
        )
    return parts[:-1], parts[-1]


def _quote(name: str, dialect: Dialect) -> str:
    return f"`{name}`" if dialect == Dialect.mysql else f'"{name}"'


def id_map_sql(target: str, dialect: Dialect, pairs: Iterable[tuple[str, str]]) -> Iterator[str]:
    """The statements, one string each, streamed (``pairs`` are (Clerk id, Kinde id))."""
    table_parts, column = parse_target(target)
    table = ".".join(_quote(part, dialect) for part in table_parts)
    col = _quote(column, dialect)
    mapping = _quote(MAP_TABLE, dialect)
    yield "START TRANSACTION;" if dialect == Dialect.mysql else "BEGIN;"
    yield f"CREATE TEMPORARY TABLE {mapping} (clerk_id VARCHAR(128) PRIMARY KEY, kinde_id VARCHAR(128) NOT NULL);"
    batch: list[str] = []
    for clerk_id, kinde_id in pairs:
        for value in (clerk_id, kinde_id):
            if not _ID.match(value):
                raise JournalError(f"the journal holds an id that is not Clerk's or Kinde's shape: {value[:40]!r}")
        batch.append(f"('{clerk_id}', '{kinde_id}')")
        if len(batch) >= ROWS_PER_INSERT:
            yield f"INSERT INTO {mapping} (clerk_id, kinde_id) VALUES\n  " + ",\n  ".join(batch) + ";"
            batch.clear()
    if batch:
        yield f"INSERT INTO {mapping} (clerk_id, kinde_id) VALUES\n  " + ",\n  ".join(batch) + ";"
    if dialect == Dialect.mysql:
        yield f"UPDATE {table} t JOIN {mapping} m ON t.{col} = m.clerk_id SET t.{col} = m.kinde_id;"
    else:
        yield f"UPDATE {table} SET {col} = m.kinde_id FROM {mapping} m WHERE {table}.{col} = m.clerk_id;"
    yield f"DROP TABLE {mapping};"
    yield "COMMIT;"
