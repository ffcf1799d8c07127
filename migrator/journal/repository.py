"""What every repository shares: the journal's statement helpers (where sqlite3 errors are mapped)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def now_ms() -> int:
    """The current instant as Unix ms, the precision of Clerk's timestamps."""
    return int(datetime.now(UTC).timestamp() * 1000)


class Statements(Protocol):
    """The journal as its repositories use it: its file, its statements, its transactions."""

    path: Path

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor: ...

    def _many(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> sqlite3.Cursor: ...

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]: ...

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def _changes(self) -> int: ...

    def transaction(self) -> AbstractContextManager[None]: ...


class Repository:
    """One concern's queries over the journal's connection."""

    def __init__(self, journal: Statements) -> None:
        self._journal = journal
        self._exec = journal._exec
        self._many = journal._many
        self._rows = journal._rows
        self._scalar = journal._scalar

    def transaction(self) -> AbstractContextManager[None]:
        return self._journal.transaction()
