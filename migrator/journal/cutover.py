"""The cutover's records: catch-ups' sweeps and updates, deletions (users gone from Clerk, what an undo
removes), and what an undo restores: definitions a run created or attached, organization values it wrote,
and a catch-up's writes to users already in Kinde with what Kinde held before."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from migrator.journal.repository import Repository, Statements
from migrator.journal.rows import Deletion, PropertyWrite, Update, UserWrite, typed_all
from migrator.journal.sql import in_kinde_by_us, real_run, user_deletion
from migrator.journal.states import (
    UPDATE_FAILED,
    DefinitionKind,
    DeletionState,
    RunMode,
    StepState,
    UserState,
    UserWriteKind,
)
from migrator.journal.users import Users

# users a catch-up found gone from Clerk (listed or deleted) or Kinde proved gone
_FOUND_GONE = (DeletionState.LISTED, DeletionState.DELETED, DeletionState.GONE)


class Cutover(Repository):
    def __init__(self, journal: Statements, users: Users) -> None:
        super().__init__(journal)
        self._users = users  # a catch-up's update settles its user's row

    def start_sweep(self) -> int:
        """Gather once (one scan) the users this journal put in Kinde and no catch-up found gone yet, so
        that ``sweep_batch`` pages them by clerk id through an index: a catch-up sweeps them for deletions."""
        self._exec("DROP TABLE IF EXISTS temp.sweep")
        self._exec("CREATE TEMP TABLE sweep(clerk_id TEXT PRIMARY KEY, kinde_id TEXT NOT NULL) WITHOUT ROWID")
        return self._exec(
            "INSERT INTO temp.sweep SELECT u.clerk_id, MAX(u.kinde_id) FROM users u JOIN runs r ON r.id = u.run_id"
            f" WHERE {real_run()} AND {in_kinde_by_us()}"
            " AND u.clerk_id NOT IN (SELECT key FROM deletions WHERE kind = 'user' AND state IN (?, ?, ?, ?))"
            " GROUP BY u.clerk_id",
            (*_FOUND_GONE, DeletionState.PENDING),
        ).rowcount

    def sweep_batch(self, after: str, limit: int) -> list[tuple[str, str]]:
        """(clerk id, kinde id) of the next ``limit`` users of the sweep (``start_sweep``) after ``after``."""
        rows = self._rows(
            "SELECT clerk_id, kinde_id FROM temp.sweep WHERE clerk_id > ? ORDER BY clerk_id LIMIT ?", (after, limit)
        )
        return [(r[0], r[1]) for r in rows]

    def seen_count(self) -> int:
        """Distinct Clerk users any full run, export or catch-up of this journal fetched, less those found gone."""
        return self._scalar(
            "SELECT COUNT(DISTINCT u.clerk_id) FROM users u JOIN runs r ON r.id = u.run_id"
            " WHERE r.mode IN (?, ?, ?) AND NOT"
            f" {user_deletion('u.clerk_id', *_FOUND_GONE, DeletionState.PENDING, DeletionState.NOT_IN_KINDE)}",
            (RunMode.RUN, RunMode.SYNC, RunMode.EXPORT),
        )

    def removals_still_listed(self) -> list[tuple[str, str]]:
        """(clerk id, kinde id) of users a catch-up found gone from Clerk and only listed (not deleted)."""
        rows = self._rows(
            "SELECT d.key, d.kinde_ref FROM deletions d WHERE d.kind = 'user' AND d.state = ? AND NOT EXISTS"
            " (SELECT 1 FROM deletions e WHERE e.kind = 'user' AND e.key = d.key AND e.state != ?) GROUP BY d.key",
            (DeletionState.LISTED, DeletionState.LISTED),
        )
        return [(r[0], r[1]) for r in rows]

    def add_update(
        self, run_id: int, clerk_id: str, kinde_id: str, patch: dict[str, Any], identities: list[Any], password: bool
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO updates(run_id, clerk_id, kinde_id, patch, identities, password)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, clerk_id, kinde_id, json.dumps(patch), json.dumps(identities), int(password)),
        )

    def drop_update(self, run_id: int, clerk_id: str) -> None:
        """A catch-up's update with nothing left to write (its one change was settled away before any write)."""
        self._exec(
            "DELETE FROM updates WHERE run_id = ? AND clerk_id = ? AND state != ?", (run_id, clerk_id, StepState.DONE)
        )

    def updates_to_apply(self, run_id: int) -> list[Update]:
        """Pending updates, and failed ones again (a resume retries them)."""
        return typed_all(
            Update,
            self._rows("SELECT * FROM updates WHERE run_id = ? AND state != ? ORDER BY clerk_id", (run_id, StepState.DONE)),
        )

    def record_update(self, run_id: int, clerk_id: str, *, error: str | None = None) -> None:
        """An update applied (or failed: the user's row fails with it, so the run does not exit 0)."""
        with self.transaction():
            self._exec(
                "UPDATE updates SET state = ?, error = ? WHERE run_id = ? AND clerk_id = ?",
                (UPDATE_FAILED if error else StepState.DONE, error, run_id, clerk_id),
            )
            if error:
                self._users.update(
                    run_id, clerk_id, state=UserState.FAILED, error_code="UPDATE_FAILED", error_message=error
                )
            else:
                self._users.update(run_id, clerk_id, state=UserState.DONE, error_code=None, error_message=None)

    def update_counts(self, run_id: int) -> dict[str, int]:
        return dict(self._rows("SELECT state, COUNT(*) FROM updates WHERE run_id = ? GROUP BY state", (run_id,)))

    def add_deletions(self, run_id: int, kind: str, items: Sequence[tuple[str, str]], state: DeletionState) -> None:
        """(key, kinde ref) pairs to delete or to list; an item already recorded keeps its state."""
        self._many(
            "INSERT OR IGNORE INTO deletions(run_id, kind, key, kinde_ref, state) VALUES (?, ?, ?, ?, ?)",
            [(run_id, kind, key, ref, state) for key, ref in items],
        )

    def deletions(self, run_id: int, kind: str, states: Sequence[DeletionState] | None = None) -> list[Deletion]:
        rows = self._rows("SELECT * FROM deletions WHERE run_id = ? AND kind = ? ORDER BY key", (run_id, kind))
        return [row for row in typed_all(Deletion, rows) if states is None or row.state in states]

    def record_deletion(
        self, run_id: int, kind: str, key: str, state: DeletionState, detail: str | None = None
    ) -> None:
        self._exec(
            "UPDATE deletions SET state = ?, detail = ? WHERE run_id = ? AND kind = ? AND key = ?",
            (state, detail, run_id, kind, key),
        )

    def deletion_counts(self, run_id: int) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for kind, state, n in self._rows(
            "SELECT kind, state, COUNT(*) FROM deletions WHERE run_id = ? GROUP BY kind, state", (run_id,)
        ):
            counts.setdefault(kind, {})[state] = n
        return counts

    def record_definition(self, run_id: int, kind: DefinitionKind, scope: str, key: str, *, created: bool) -> None:
        """``created``: this run is about to create (or attach) it, a read having just found it missing;
        otherwise it was found. Once created, a later "found" (a resume sees its own creation) keeps it so."""
        self._exec(
            "INSERT INTO definitions(run_id, kind, scope, key, created) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(run_id, kind, scope, key) DO UPDATE SET created = MAX(created, excluded.created)",
            (run_id, kind, scope, key, int(created)),
        )

    def created_definitions(self, run_id: int, kind: DefinitionKind) -> list[tuple[str, str]]:
        """(scope, key) of the definitions of ``kind`` this run created."""
        rows = self._rows(
            "SELECT scope, key FROM definitions WHERE run_id = ? AND kind = ? AND created = 1 ORDER BY scope, key",
            (run_id, kind),
        )
        return [(r[0], r[1]) for r in rows]

    def attachments_to_found_roles(self, run_id: int) -> list[tuple[str, str]]:
        """(role key, permission key) this run attached to roles it did not create (a role it created goes
        with its attachments)."""
        rows = self._rows(
            "SELECT d.scope, d.key FROM definitions d JOIN roles r ON r.run_id = d.run_id AND r.key = d.scope"
            " WHERE d.run_id = ? AND d.kind = ? AND d.created = 1 AND r.created_here = 0 AND r.create_intent = 0"
            " ORDER BY d.scope, d.key",
            (run_id, DefinitionKind.ROLE_PERMISSION),
        )
        return [(r[0], r[1]) for r in rows]

    def record_property_write(
        self, run_id: int, clerk_org_id: str, kinde_code: str, key: str, previous: str | None, written: str
    ) -> None:
        """Before an organization's value is sent: the first ``previous`` of the run is kept (a resume
        reads back its own write)."""
        self._exec(
            "INSERT INTO property_writes(run_id, clerk_org_id, kinde_code, key, previous, written)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(run_id, clerk_org_id, key) DO UPDATE SET written = excluded.written",
            (run_id, clerk_org_id, kinde_code, key, previous, written),
        )

    def property_writes_on_found_organizations(self, run_id: int) -> list[PropertyWrite]:
        """Values this run wrote on organizations it did not create (an undo restores the previous value)."""
        return typed_all(PropertyWrite, self._rows(
            "SELECT w.clerk_org_id, w.kinde_code, w.key, w.previous, w.written FROM property_writes w"
            " JOIN organizations o ON o.run_id = w.run_id AND o.clerk_org_id = w.clerk_org_id"
            " WHERE w.run_id = ? AND o.created_here = 0 ORDER BY w.clerk_org_id, w.key",
            (run_id,),
        ))

    # -- undo of a catch-up's updates: what Kinde held before each write ----------------------------
    def record_user_write(
        self, run_id: int, clerk_id: str, kind: UserWriteKind, key: str, kinde_id: str, previous: Any, written: Any
    ) -> None:
        """Before a catch-up's write to a user is sent. The run's first ``previous`` is kept (a resume that
        reads Kinde again sees its own write)."""
        self._exec(
            "INSERT INTO user_writes(run_id, clerk_id, kind, key, kinde_id, previous, written)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id, clerk_id, kind, key) DO UPDATE SET written = excluded.written",
            (run_id, clerk_id, kind, key, kinde_id, json.dumps(previous), json.dumps(written)),
        )

    def record_added_identity_id(self, run_id: int, clerk_id: str, key: str, identity_id: str) -> None:
        """Kinde's id of an identity a catch-up added (its undo deletes exactly that one)."""
        self._exec(
            "UPDATE user_writes SET identity_id = ? WHERE run_id = ? AND clerk_id = ? AND kind = ? AND key = ?",
            (identity_id, run_id, clerk_id, UserWriteKind.IDENTITY_ADDED, key),
        )

    def user_writes(self, run_id: int) -> list[UserWrite]:
        """Every write a catch-up recorded, by user then kind and key (an undo plans from them)."""
        return typed_all(
            UserWrite, self._rows("SELECT * FROM user_writes WHERE run_id = ? ORDER BY clerk_id, kind, key", (run_id,))
        )
