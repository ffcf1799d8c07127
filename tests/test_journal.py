"""The journal on its own: durability settings, staging, transactions, conflict queries."""

from __future__ import annotations

import os
import stat

import pytest

from migrator.errors import JournalError
from migrator.journal import Journal, RunMode, RunStatus
from tests.journal_rows import row as staged


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state")
    yield j
    j.close()


def new_run(journal: Journal):
    return journal.runs.start(mode=RunMode.RUN, fingerprint="f", summary={"a": 1}, export_path=None, export_fingerprint=None)


def test_file_is_private_and_in_wal_mode(journal: Journal) -> None:
    assert stat.S_IMODE(os.stat(journal.path).st_mode) == 0o600
    assert journal.sqlite_mode() == "wal"


def test_runs_are_numbered_and_the_latest_is_the_default(journal: Journal) -> None:
    first, second = new_run(journal), new_run(journal)
    assert (first.id, second.id) == (1, 2)
    assert journal.runs.get().id == 2
    assert journal.runs.get(1).config_summary == {"a": 1}
    with pytest.raises(JournalError, match="no run 9"):
        journal.runs.get(9)


def test_empty_journal_says_how_to_start(tmp_path) -> None:
    journal = Journal(tmp_path / "empty")
    with pytest.raises(JournalError, match="migrator run"):
        journal.runs.get()


def test_staging_ignores_a_user_seen_twice(journal: Journal) -> None:
    run = new_run(journal)
    assert journal.users.stage(run.id, [staged("u1", 0), staged("u2", 1)]) == 2
    assert journal.users.stage(run.id, [staged("u2", 2), staged("u3", 3)]) == 1  # a shifted page
    assert journal.users.staged_count(run.id) == 3
    assert journal.users.last_staged(run.id) == ("u3", 4)


def test_a_failed_transaction_leaves_nothing_behind(journal: Journal) -> None:
    run = new_run(journal)
    with pytest.raises(RuntimeError), journal.transaction():
        journal.users.stage(run.id, [staged("u1", 0)])
        raise RuntimeError("crash mid-batch")
    assert journal.users.staged_count(run.id) == 0


def test_iter_users_streams_in_fetch_order_and_tolerates_updates(journal: Journal) -> None:
    run = new_run(journal)
    journal.users.stage(run.id, [staged(f"u{i}", i) for i in range(1200)])
    seen = []
    for row in journal.users.pending(run.id):
        seen.append(row.clerk_id)
        journal.users.update(run.id, row.clerk_id, state="done")
    assert seen == [f"u{i}" for i in range(1200)]
    assert journal.users.pending_count(run.id) == 0
    assert journal.users.step_counts(run.id)["state"] == {"done": 1200}


def test_step_counts_and_failure_groups(journal: Journal) -> None:
    run = new_run(journal)
    journal.users.stage(run.id, [staged(f"u{i}", i) for i in range(5)])
    journal.users.record_outcomes(
        run.id,
        [
            ("u0", {"state": "failed", "error_code": "E1", "error_message": "boom"}),
            ("u1", {"state": "failed", "error_code": "E1", "error_message": "boom"}),
            ("u2", {"state": "failed", "error_code": "E2", "error_message": "bang"}),
            ("u3", {"state": "done", "created": "created"}),
        ],
    )
    counts = journal.users.step_counts(run.id)
    assert counts["state"] == {"done": 1, "failed": 3, "pending": 1}
    assert counts["created"] == {"created": 1, "pending": 4}
    assert journal.users.failure_groups(run.id) == [("E1", "boom", 2), ("E2", "bang", 1)]


def test_runs_and_users_accept_only_known_fields(journal: Journal) -> None:
    run = new_run(journal)
    journal.runs.end(run.id, RunStatus.COMPLETED)
    journal.runs.record_fetch_done(run.id)
    assert journal.runs.get(run.id).status == "completed"
    assert journal.runs.get(run.id).fetch_done
    journal.users.stage(run.id, [staged("u1", 0)])
    with pytest.raises(ValueError):
        journal.users.update(run.id, "u1", seq=99)


def test_one_process_at_a_time_and_the_lock_dies_with_its_holder(tmp_path) -> None:
    first, second = Journal(tmp_path / "s"), Journal(tmp_path / "s")
    try:
        assert not second.in_use()
        first.acquire()
        assert second.in_use()
        with pytest.raises(JournalError, match=f"pid {os.getpid()}"):
            second.acquire()
        first.release()
        assert not second.in_use()
        second.acquire()  # free again
    finally:
        first.close()
        second.close()


def test_a_full_disk_mid_run_is_a_journal_error_that_stops_the_run(journal: Journal) -> None:
    """SQLITE_FULL (played with max_page_count) becomes JournalError, exit 3, naming the file."""
    run = new_run(journal)
    pages = journal._scalar("PRAGMA page_count")
    journal._exec(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(JournalError) as caught:
        for start in range(0, 20000, 500):
            journal.users.stage(run.id, [staged(f"u{i}", i, plan="x" * 500) for i in range(start, start + 500)])
    assert caught.value.exit_code == 3
    assert str(journal.path) in str(caught.value) and "full" in str(caught.value)
    assert "migrator resume" in str(caught.value)
