"""Organizations, roles and memberships: staged from Clerk, created (or found) in Kinde, and which of
them a run created (an undo's provenance)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from migrator.journal.repository import Repository
from migrator.journal.rows import FailedMembership, Organization, PendingMembership, Role, typed_all
from migrator.journal.sql import real_run, undo_of
from migrator.journal.states import Created, MembershipState, Step, StepState, UserState


class Organizations(Repository):
    # -- organizations -----------------------------------------------------------------------------
    def stage(self, run_id: int, clerk_org_id: str, body: dict[str, Any]) -> None:
        self._exec(
            "INSERT OR IGNORE INTO organizations(run_id, clerk_org_id, body) VALUES (?, ?, ?)",
            (run_id, clerk_org_id, json.dumps(body)),
        )

    def all(self, run_id: int) -> list[Organization]:
        return typed_all(
            Organization, self._rows("SELECT * FROM organizations WHERE run_id = ? ORDER BY clerk_org_id", (run_id,))
        )

    def record(self, run_id: int, clerk_org_id: str, kinde_code: str, *, created: bool = False) -> None:
        """``created``: this run created it (an undo may delete it), rather than finding it there. Settles
        the create's intent, if one was open."""
        self._exec(
            "UPDATE organizations SET kinde_code = ?, state = ?, created_here = MAX(created_here, ?), create_intent = 0"
            " WHERE run_id = ? AND clerk_org_id = ?",
            (kinde_code, StepState.DONE, int(created), run_id, clerk_org_id),
        )

    def record_intent(self, run_id: int, clerk_org_id: str) -> bool:
        """Like ``record_role_intent``, for the organization of ``clerk_org_id`` (its external_id in Kinde)."""
        return self._open_intent("organizations", "clerk_org_id", run_id, clerk_org_id)

    def stage_properties(self, run_id: int, clerk_org_id: str, values: dict[str, str]) -> None:
        self._exec(
            "UPDATE organizations SET property_values = ?, properties = ? WHERE run_id = ? AND clerk_org_id = ?",
            (json.dumps(values), Step.PENDING if values else Step.NA, run_id, clerk_org_id),
        )

    def record_properties(self, run_id: int, clerk_org_id: str) -> None:
        self._exec(
            "UPDATE organizations SET properties = ? WHERE run_id = ? AND clerk_org_id = ?",
            (Step.DONE, run_id, clerk_org_id),
        )

    def drop_unselected(self, run_id: int) -> int:
        """A canary: organizations none of its users belongs to are not created."""
        return self._exec(
            "DELETE FROM organizations WHERE run_id = ? AND clerk_org_id NOT IN (SELECT m.clerk_org_id FROM"
            " memberships m JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id WHERE m.run_id = ?)",
            (run_id, run_id),
        ).rowcount

    def created_by_run(self, run_id: int) -> list[tuple[str, str]]:
        """(clerk org id, Kinde code) of the organizations this run created, and of those whose create it
        sent without recording the outcome (code '': the run stopped first; Kinde is asked by external_id)."""
        rows = self._rows(
            "SELECT clerk_org_id, COALESCE(kinde_code, '') FROM organizations WHERE run_id = ?"
            " AND ((created_here = 1 AND kinde_code IS NOT NULL) OR create_intent = 1) ORDER BY clerk_org_id",
            (run_id,),
        )
        return [(r[0], r[1]) for r in rows]

    # -- roles -------------------------------------------------------------------------------------
    def stage_role(self, run_id: int, key: str, body: dict[str, Any]) -> None:
        self._exec("INSERT OR IGNORE INTO roles(run_id, key, body) VALUES (?, ?, ?)", (run_id, key, json.dumps(body)))

    def roles(self, run_id: int) -> list[Role]:
        return typed_all(Role, self._rows("SELECT * FROM roles WHERE run_id = ? ORDER BY key", (run_id,)))

    def record_role(self, run_id: int, key: str, *, created: bool = False) -> None:
        self._exec(
            "UPDATE roles SET state = ?, created_here = MAX(created_here, ?), create_intent = 0"
            " WHERE run_id = ? AND key = ?",
            (StepState.DONE, int(created), run_id, key),
        )

    def record_role_intent(self, run_id: int, key: str) -> bool:
        """Just before this run sends the create of role ``key`` (a read found it missing): a crash before
        ``record_role`` cannot lose it. True when an earlier attempt's intent was still open (its create
        may have landed)."""
        return self._open_intent("roles", "key", run_id, key)

    def _open_intent(self, table: str, key_column: str, run_id: int, key: str) -> bool:
        with self.transaction():
            earlier = self._scalar(
                f"SELECT create_intent FROM {table} WHERE run_id = ? AND {key_column} = ?", (run_id, key)
            )
            self._exec(f"UPDATE {table} SET create_intent = 1 WHERE run_id = ? AND {key_column} = ?", (run_id, key))
        return bool(earlier)

    def stage_role_permissions(self, run_id: int, key: str, permissions: list[dict[str, Any]]) -> None:
        """The Kinde permission bodies a staged role should carry ('pending' until attached)."""
        self._exec(
            "UPDATE roles SET permission_bodies = ?, permissions = ? WHERE run_id = ? AND key = ?",
            (json.dumps(permissions), Step.PENDING if permissions else Step.NA, run_id, key),
        )

    def record_role_permissions(self, run_id: int, key: str) -> None:
        self._exec("UPDATE roles SET permissions = ? WHERE run_id = ? AND key = ?", (Step.DONE, run_id, key))

    def roles_created_by_run(self, run_id: int) -> list[str]:
        """Roles this run created, and those whose create it sent without recording the outcome."""
        return [
            r[0]
            for r in self._rows(
                "SELECT key FROM roles WHERE run_id = ? AND (created_here = 1 OR create_intent = 1) ORDER BY key",
                (run_id,),
            )
        ]

    def role_used_elsewhere(self, run_id: int, key: str) -> bool:
        """Does a membership of another run (not undone) give this role? Then it is not only this run's."""
        return (
            self._scalar(
                "SELECT 1 FROM memberships m JOIN runs r ON r.id = m.run_id WHERE m.run_id != ? AND m.role_key = ?"
                f" AND {real_run()} AND m.state IN (?, ?) AND NOT {undo_of('m.run_id')} LIMIT 1",
                (run_id, key, MembershipState.DONE, MembershipState.EARLIER),
            )
            is not None
        )

    # -- memberships -------------------------------------------------------------------------------
    def stage_membership(self, run_id: int, clerk_user_id: str, clerk_org_id: str, role_key: str) -> None:
        self._exec(
            "INSERT OR IGNORE INTO memberships(run_id, clerk_user_id, clerk_org_id, role_key) VALUES (?, ?, ?, ?)",
            (run_id, clerk_user_id, clerk_org_id, role_key),
        )

    def pending_memberships(self, run_id: int) -> list[PendingMembership]:
        """Memberships still to add whose user and organization both exist in Kinde."""
        return typed_all(
            PendingMembership,
            self._rows(
                "SELECT m.clerk_user_id, m.clerk_org_id, m.role_key, u.kinde_id, o.kinde_code FROM memberships m"
                " JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id AND u.kinde_id IS NOT NULL"
                " AND u.created IN (?, ?, ?)"
                " JOIN organizations o ON o.run_id = m.run_id AND o.clerk_org_id = m.clerk_org_id"
                " AND o.kinde_code IS NOT NULL"
                " WHERE m.run_id = ? AND m.state = ? ORDER BY m.clerk_org_id, m.clerk_user_id",
                (Created.CREATED, Created.EARLIER, Created.WORKFLOW, run_id, MembershipState.PENDING),
            ),
        )

    def record_memberships(
        self, run_id: int, members: Sequence[tuple[str, str]], state: MembershipState, error: str | None = None
    ) -> None:
        """The outcome of adding ``members`` ((clerk user id, clerk org id) pairs), in one commit."""
        with self.transaction():
            self._many(
                "UPDATE memberships SET state = ?, error = ? WHERE run_id = ? AND clerk_user_id = ? AND clerk_org_id = ?",
                [(state, error, run_id, user_id, org_id) for user_id, org_id in members],
            )

    def reset_failed_memberships(self, run_id: int) -> int:
        return self._exec(
            "UPDATE memberships SET state = ?, error = NULL WHERE run_id = ? AND state = ?",
            (MembershipState.PENDING, run_id, MembershipState.FAILED),
        ).rowcount

    def mark_memberships_done_earlier(self, run_id: int) -> int:
        """Memberships an earlier run of this journal already added for the same Kinde user."""
        return self._exec(
            "UPDATE memberships SET state = ? WHERE run_id = ? AND state = ? AND EXISTS ("
            " SELECT 1 FROM memberships m2"
            " JOIN users u2 ON u2.run_id = m2.run_id AND u2.clerk_id = m2.clerk_user_id"
            " JOIN users u ON u.run_id = memberships.run_id AND u.clerk_id = memberships.clerk_user_id"
            " WHERE m2.run_id < memberships.run_id AND m2.clerk_user_id = memberships.clerk_user_id"
            " AND m2.clerk_org_id = memberships.clerk_org_id AND m2.role_key = memberships.role_key"
            " AND m2.state IN (?, ?) AND u2.kinde_id = u.kinde_id)",
            (MembershipState.EARLIER, run_id, MembershipState.PENDING, MembershipState.DONE, MembershipState.EARLIER),
        ).rowcount

    def settle_unmigrated_memberships(self, run_id: int) -> int:
        """Memberships of users this run will not migrate (skipped, not ours, never fetched, lazy): 'n/a'."""
        return self._exec(
            "UPDATE memberships SET state = ? WHERE run_id = ? AND state = ? AND clerk_user_id NOT IN"
            " (SELECT clerk_id FROM users WHERE run_id = ? AND state NOT IN (?, ?) AND created != ?)",
            # the lazy cohort's: `lazy finish` adds them once the user is in Kinde
            (MembershipState.NA, run_id, MembershipState.PENDING, run_id, UserState.SKIPPED, UserState.LAZY, Created.EXISTED),
        ).rowcount

    def memberships_of(self, run_id: int, clerk_id: str) -> list[tuple[str, str]]:
        """(clerk org id, role key) of one staged user, by the memberships primary key (no scan)."""
        rows = self._rows(
            "SELECT clerk_org_id, role_key FROM memberships WHERE run_id = ? AND clerk_user_id = ? ORDER BY clerk_org_id",
            (run_id, clerk_id),
        )
        return [(row[0], row[1]) for row in rows]

    def membership_counts(self, run_id: int) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) FROM memberships WHERE run_id = ? GROUP BY state", (run_id,))
        return {r[0]: r[1] for r in rows}

    def failed_memberships(self, run_id: int) -> list[FailedMembership]:
        return typed_all(
            FailedMembership,
            self._rows(
                "SELECT clerk_user_id, clerk_org_id, role_key, error FROM memberships WHERE run_id = ? AND state = ?"
                " ORDER BY clerk_org_id, clerk_user_id",
                (run_id, MembershipState.FAILED),
            ),
        )
