"""The export index (where each user's row sits in Clerk's export), and what export runs record: users
listed for the API path, and the Kinde ids of the users the dashboard import created."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from migrator.journal.repository import Repository, Statements, now_iso
from migrator.journal.rows import ExportEntry, UserRow, typed
from migrator.journal.sql import CREATED_ELSEWHERE, in_kinde_by_us, real_run, user_deletion
from migrator.journal.states import Created, DeletionState, Lookup, PasswordStep, UserState
from migrator.journal.users import Users


class DuplicateExportRow(Exception):
    """The same user id twice in the export: the caller names the file (``InputError``)."""

    def __init__(self, user_id: str, row_number: int, first_row: int | None) -> None:
        super().__init__(user_id)
        self.user_id = user_id
        self.row_number = row_number
        self.first_row = first_row


_NOT_IN_KINDE = user_deletion("users.clerk_id", DeletionState.NOT_IN_KINDE)


class Exports(Repository):
    def __init__(self, journal: Statements, users: Users) -> None:
        super().__init__(journal)
        self._users = users  # export runs' users are staged users

    # -- the export index --------------------------------------------------------------------------
    def add_entries(self, run_id: int, entries: Sequence[tuple[str, int, int, str | None, bool]]) -> None:
        """Index export rows; a user id already indexed raises ``DuplicateExportRow`` (the export is corrupt)."""
        sql = "INSERT INTO export_index(run_id, user_id, offset, row_number, hasher, has_digest) VALUES (?, ?, ?, ?, ?, ?)"
        rows = [(run_id, uid, off, row, hasher, int(has)) for uid, off, row, hasher, has in entries]
        self._exec("SAVEPOINT export_batch")
        try:
            self._many(sql, rows)
        except sqlite3.IntegrityError:
            self._exec("ROLLBACK TO export_batch")
            for row in rows:  # find which one, to name both rows
                try:
                    self._exec(sql, row)
                except sqlite3.IntegrityError:
                    first = self.entry(run_id, row[1])
                    raise DuplicateExportRow(row[1], row[3], first.row_number if first else None) from None
        finally:
            self._exec("RELEASE export_batch")

    def entry(self, run_id: int, user_id: str) -> ExportEntry | None:
        rows = self._rows("SELECT * FROM export_index WHERE run_id = ? AND user_id = ?", (run_id, user_id))
        return typed(ExportEntry, rows[0]) if rows else None

    def count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM export_index WHERE run_id = ?", (run_id,))

    def only_in_export(self, run_id: int, limit: int = 1000) -> list[str]:
        """Ids in the CSV export that the API did not return (deleted since the export?)."""
        rows = self._rows(
            "SELECT e.user_id FROM export_index e LEFT JOIN users u ON u.run_id = e.run_id AND u.clerk_id = e.user_id"
            " WHERE e.run_id = ? AND u.clerk_id IS NULL ORDER BY e.row_number LIMIT ?",
            (run_id, limit),
        )
        return [r[0] for r in rows]

    # -- export runs -------------------------------------------------------------------------------
    def mark_api_path(self, run_id: int, clerk_ids: Sequence[str]) -> None:
        """Export runs: these users are listed in api-users.csv (no import file carries them)."""
        self._many(
            "UPDATE users SET export_target = 'api' WHERE run_id = ? AND clerk_id = ?",
            [(run_id, clerk_id) for clerk_id in clerk_ids],
        )

    def imported_to_adopt(self, run_id: int) -> int:
        """Users of an export run written to an import file whose Kinde id is not known yet (less those a
        catch-up found deleted from Clerk before they reached Kinde)."""
        return self._users.count(
            run_id,
            f"state != ? AND export_target IS NULL AND kinde_id IS NULL AND NOT {_NOT_IN_KINDE}"
            f" AND NOT {CREATED_ELSEWHERE}",
            (UserState.SKIPPED,),
        )

    def record_imported(self, run_id: int, found: Sequence[tuple[str, str]]) -> int:
        """(clerk id, kinde id) of Kinde users whose provided_id names a user this export run put in an import
        file: recorded as created by the run (its files did it), done, the password the file carried as set.
        Users listed in api-users.csv, skipped users and users already recorded are left as they are, and so is
        a user another run of this journal created (``run --only-file not-in-kinde.csv``): it has one owner."""
        with self.transaction():
            return self._many(
                "UPDATE users SET kinde_id = ?, state = ?, lookup = ?, created = ?,"
                " password = CASE WHEN password = ? THEN ? ELSE password END, updated_at = ?"
                " WHERE run_id = ? AND clerk_id = ? AND state != ? AND export_target IS NULL AND kinde_id IS NULL"
                f" AND NOT {CREATED_ELSEWHERE}",
                [
                    (kinde_id, UserState.DONE, Lookup.FOUND, Created.CREATED, PasswordStep.PENDING, PasswordStep.SET,
                     now_iso(), run_id, clerk_id, UserState.SKIPPED)
                    for clerk_id, kinde_id in found
                ],
            ).rowcount  # fmt: skip

    def not_in_kinde(self, run_id: int) -> Iterator[UserRow]:
        """The export run's users Kinde does not hold for this journal: not found by a read of Kinde (import
        files), not created since by another run (``run --only-file``), and not found deleted from Clerk by a
        catch-up (``DeletionState.NOT_IN_KINDE``). By Clerk id, in batches."""
        last = ""
        while rows := self._rows(
            "SELECT * FROM users WHERE run_id = ? AND clerk_id > ? AND state != ? AND kinde_id IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM users o JOIN runs r ON r.id = o.run_id WHERE o.clerk_id = users.clerk_id"
            f" AND o.run_id != users.run_id AND {real_run()} AND {in_kinde_by_us('o')})"
            f" AND NOT {_NOT_IN_KINDE} ORDER BY clerk_id LIMIT 1000",
            (run_id, last, UserState.SKIPPED),
        ):
            for row in rows:
                yield typed(UserRow, row)
            last = rows[-1]["clerk_id"]
