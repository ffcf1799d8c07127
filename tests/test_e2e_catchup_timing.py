"""A catch-up's changed-password check, end to end: a change handled once is never news again.

Clerk gives ``password_last_updated_at`` to the ms; a catch-up that requested a reset for a change
records that change as settled (``users.password_settled_ms``), so a catch-up begun in the same second
as the change, or any later one, does not request it again.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from migrator.journal import JOURNAL_FILE, Journal
from tests.test_e2e_cutover import change_clerk, importable_bcrypt_users, migrator


def _start_in_the_second_of(workdir: Path, run_id: int, moment_ms: int) -> None:
    """Journal rows as a catch-up begun in the same second as ``moment_ms`` leaves them (started_at is to the
    second): no clock to inject into the CLI, so the run's recorded start is set to that second."""
    second = datetime.fromtimestamp(moment_ms // 1000, UTC).isoformat(timespec="seconds")
    with sqlite3.connect(workdir / ".migrator" / JOURNAL_FILE) as db:
        db.execute("UPDATE runs SET started_at = ?, started_ms = NULL WHERE id = ?", (second, run_id))


def test_a_catch_up_after_one_begun_in_the_second_of_a_password_change_writes_nothing(
    sandbox_factory, tmp_path: Path
) -> None:
    sandbox = sandbox_factory(users=120)
    sandbox.write_export(tmp_path / "users.csv")
    full = migrator(sandbox, tmp_path, "run", "--clerk-export", "users.csv", "--yes", "--json")
    assert full.result.returncode == 0, full.result.stderr[-3000:]
    index = importable_bcrypt_users(sandbox.dataset)[0]
    change_clerk(sandbox, {"password": [sandbox.dataset.user_id(index)]})
    changed_ms = sandbox.dataset.changes.password_changed[index]

    first = migrator(sandbox, tmp_path, "sync", "--yes", "--json")  # no fresh export: a reset is requested
    assert first.result.returncode == 0, first.result.stderr[-3000:]
    assert first.writes >= 1 and first.output["plan"]["users_to_update"] == 1
    _start_in_the_second_of(tmp_path, first.output["run_id"], changed_ms)

    again = migrator(sandbox, tmp_path, "sync", "--yes", "--json")
    assert again.result.returncode == 0, again.result.stderr[-3000:]
    assert again.writes == 0 and again.output["plan"]["users_to_update"] == 0
    third = migrator(sandbox, tmp_path, "sync", "--yes", "--json")  # n/a rows keep the settled time
    assert third.result.returncode == 0 and third.writes == 0, third.result.stderr[-3000:]
    journal = Journal(tmp_path / ".migrator")
    try:
        row = journal.users.get(again.output["run_id"], sandbox.dataset.user_id(index))
        assert row.password == "n/a" and row.password_settled_ms == changed_ms + 1
    finally:
        journal.close()
