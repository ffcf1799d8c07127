"""What every repository shares: the journal's statement helpers (where sqlite3 errors are mapped)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrator.journal import Journal, _Transaction


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def now_ms() -> int:
    """The current instant as Unix ms, the precision of Clerk's timestamps."""
    return int(datetime.now(UTC).timestamp() * 1000)


class Repository:
    """One concern's queries over the journal's connection."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._exec = journal._exec
        self._many = journal._many
        self._rows = journal._rows
        self._scalar = journal._scalar

    def transaction(self) -> _Transaction:
        return self._journal.transaction()
