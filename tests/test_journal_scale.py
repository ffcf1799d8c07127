"""The journal's lookups of deletions by Clerk id stay linear in the users (100k+ users, as many deletions).

Work is counted in SQLite virtual-machine steps (a progress handler), not time: a lookup that scans
``deletions`` for every user grows with users x deletions, one that uses an index with users alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from migrator.journal import DeletionState, Journal, RunMode
from tests.journal_rows import new_run, row

STEP = 100  # VM instructions per progress callback


def _journal_with(tmp_path: Path, users: int) -> tuple[Journal, int]:
    """An export run of ``users`` users none of which Kinde holds yet, and an undo of another run that
    recorded as many user deletions (the ``deletions`` table as large as the run)."""
    journal = Journal(tmp_path / str(users))
    export = new_run(journal, mode=RunMode.EXPORT)
    journal.users.stage(export.id, [row(f"user_{n:07d}", n) for n in range(users)])
    undo = new_run(journal, mode=RunMode.UNDO)
    journal.cutover.add_deletions(undo.id, "user", [(f"user_{n:07d}", f"kp_{n}") for n in range(users)], DeletionState.DELETED)
    return journal, export.id


def _steps(journal: Journal, call: Callable[[], object]) -> int:
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    journal._db.set_progress_handler(tick, STEP)
    try:
        call()
    finally:
        journal._db.set_progress_handler(None, STEP)
    return counted[0]


def _growth(tmp_path: Path, call: Callable[[Journal, int], object]) -> float:
    small, small_run = _journal_with(tmp_path, 500)
    large, large_run = _journal_with(tmp_path, 2000)
    return _steps(large, lambda: call(large, large_run)) / _steps(small, lambda: call(small, small_run))


def test_export_lookups_grow_linearly_with_deletions_present(tmp_path: Path) -> None:
    # 4x the users (and 4x the deletions): linear work grows ~4x, a scan of deletions per user ~16x
    assert _growth(tmp_path, lambda j, run_id: j.exports.imported_to_adopt(run_id)) < 8
    assert _growth(tmp_path, lambda j, run_id: list(j.exports.not_in_kinde(run_id))) < 8
    assert _growth(tmp_path, lambda j, run_id: j.cutover.seen_count()) < 8
