"""``migrator run --only-file``: the Clerk ids a run is limited to (api-users.csv from ``migrator export``)."""

from __future__ import annotations

import csv
from pathlib import Path

from migrator.errors import InputError


def read_only_ids(path: Path | None) -> frozenset[str] | None:
    """The ids in the CSV's ``clerk_id`` column (or its first column); None when no file is given."""
    if path is None:
        return None
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the --only-file list ({exc.__class__.__name__})") from None
    if not rows:
        raise InputError(f"{path}: the --only-file list is empty (it needs a clerk_id header)")
    header = [cell.strip() for cell in rows[0]]
    column = header.index("clerk_id") if "clerk_id" in header else 0
    ids = {row[column].strip() for row in rows[1:] if len(row) > column and row[column].strip()}
    bad = next((i for i in ids if not i.startswith("user_")), None)
    if bad is not None:
        raise InputError(f"{path}: {bad[:40]!r} is not a Clerk user id (user_...); is this the api-users.csv list?")
    return frozenset(ids)
