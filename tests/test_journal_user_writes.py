"""The journal's record of a catch-up's writes to users already in Kinde (what its undo restores): the first
value Kinde held survives a resume that reads back its own write, and an undo plans every kind from it."""

from __future__ import annotations

from pathlib import Path

from migrator.journal import DeletionState, Journal, RunMode, UserWriteKind
from migrator.stages.undo_updates import PASSWORD_KEPT, RESET_KEPT, kept_updates, update_counts
from tests.journal_rows import new_run


def test_the_first_previous_value_survives_a_resume(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal, RunMode.SYNC)
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.PROFILE, "given_name", "kp_a", "Ann", "Anna")
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.PROFILE, "given_name", "kp_a", "Anna", "Anna")
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.IDENTITY_ADDED, "email:a@x.test", "kp_a", None, {})
    journal.cutover.record_added_identity_id(run.id, "user_a", "email:a@x.test", "identity_1")
    rows = {(r.kind, r.key): r for r in journal.cutover.user_writes(run.id)}
    assert rows[("profile", "given_name")].previous == '"Ann"'
    assert rows[("profile", "given_name")].written == '"Anna"'
    assert rows[("identity_added", "email:a@x.test")].identity_id == "identity_1"
    assert journal.cutover.user_writes(new_run(journal, RunMode.SYNC).id) == []  # per run


def test_an_undo_plans_restores_and_keeps_passwords_and_deleted_users(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    run = new_run(journal, RunMode.SYNC)
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.PROFILE, "is_suspended", "kp_a", False, True)
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.PASSWORD, "", "kp_a", None, None)
    journal.cutover.record_user_write(run.id, "user_a", UserWriteKind.PASSWORD_RESET, "", "kp_a", None, True)
    journal.cutover.record_user_write(run.id, "user_b", UserWriteKind.PASSWORD_RESET, "", "kp_b", None, True)
    journal.cutover.record_user_write(
        run.id, "user_b", UserWriteKind.IDENTITY_REMOVED, "username:bee", "kp_b",
        {"type": "username", "value": "Bee", "is_primary": True}, None,
    )  # fmt: skip
    journal.cutover.add_deletions(run.id, "user", [("user_gone", "kp_gone")], DeletionState.DELETED)
    journal.cutover.add_deletions(run.id, "user", [("user_listed", "kp_listed")], DeletionState.LISTED)
    counts = update_counts(journal, run.id)
    assert counts == {"identity_removed": 1, "identity_added": 0, "user_profile": 1, "password": 2, "user_deleted": 1}
    kept = kept_updates(journal, run.id)
    assert kept[:2] == [f"password user_a: {PASSWORD_KEPT}", f"password user_b: {RESET_KEPT}"]
    assert kept[2].startswith("user_deleted user_gone: deleted from Kinde by the catch-up")
    assert "migrator run --only user_gone" in kept[2]
