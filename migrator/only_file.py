"""``migrator run --only-file``: the Clerk ids a canary run is limited to.

Either a plain list (one id a line, ``#`` comments) or a CSV with a ``clerk_id`` column, such as
the ``api-users.csv`` that ``migrator export`` writes for the users no import file can carry, or a
report of a run (``not-in-kinde.csv``, ``failures.csv``): cells are read through ``people_csv``, which
strips the spreadsheet guard those files are written with.
"""

from __future__ import annotations

from pathlib import Path

from migrator.errors import InputError
from migrator.people_csv import read_csv


def read_only_ids(path: Path | None) -> frozenset[str] | None:
    """The ids in the CSV's ``clerk_id`` column (or its first column); None when no file is given."""
    if path is None:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in read_csv(handle) if row and not row[0].lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the --only-file list ({exc.__class__.__name__})") from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    column = header.index("clerk_id") if "clerk_id" in header else 0
    data = rows if header and header[0].startswith("user_") else rows[1:]  # a plain list has no header
    ids = {row[column].strip() for row in data if len(row) > column and row[column].strip()}
    if not ids:
        raise InputError(f"{path}: no Clerk ids in the --only-file list (one a line, or a clerk_id column)")
    bad = next((i for i in ids if not i.startswith("user_")), None)
    if bad is not None:
        raise InputError(f"{path}: {bad[:40]!r} is not a Clerk user id (user_...); is this the api-users.csv list?")
    return frozenset(ids)
