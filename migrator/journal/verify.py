"""verify: Kinde read back into the journal and compared with the run in SQL (flat memory at a million
users), and the findings."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from migrator.journal.repository import Repository, now_iso
from migrator.journal.rows import Finding, MembershipComparison, ReadBack, typed, typed_all
from migrator.journal.sql import GONE
from migrator.journal.states import Created, RunMode, UserState

# users read back and compared with their plan: created by this journal, adopted from the lazy workflow, and
# the lazy cohort's users Kinde holds (the workflow created them with the identities the run planned)
_CHECKED_AS_OURS = (Created.CREATED, Created.EARLIER, Created.WORKFLOW, UserState.LAZY)
LAZY_PENDING = "lazy_pending"


class Verifications(Repository):
    def start(self, run_id: int) -> int:
        """A new verify of ``run_id``; the Kinde snapshots of earlier verifies are dropped (they are large)."""
        with self.transaction():
            for table in ("kinde_users", "kinde_members", "verify_matches", "verify_plans"):
                self._exec(f"DELETE FROM {table}")
            cursor = self._exec("INSERT INTO verifications(run_id, started_at) VALUES (?, ?)", (run_id, now_iso()))
        return int(cursor.lastrowid or 0)

    def end(self, verify_id: int, counts: dict[str, Any]) -> None:
        self._exec(
            "UPDATE verifications SET ended_at = ?, counts = ? WHERE id = ?",
            (now_iso(), json.dumps(counts, sort_keys=True), verify_id),
        )

    def last(self, run_id: int) -> dict[str, Any] | None:
        """The latest finished verify of a run: id, times and counts (``status`` shows its verdict)."""
        rows = self._rows(
            "SELECT id, started_at, ended_at, counts FROM verifications WHERE run_id = ? AND ended_at IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (run_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return {
            "id": row["id"],
            "started_at": row["started_at"],
            "ended_at": row["ended_at"],
            **json.loads(row["counts"]),
        }

    def store_kinde_users(
        self, verify_id: int, users: Sequence[tuple[str, Any, Any, Any, Any, Any, list[Any] | None]]
    ) -> None:
        """(kinde id, provided_id, email, first name, last name, suspended, identities) of one page of Kinde
        users; identities [(type, value, None)...] as the page listed them, None when it listed none."""
        with self.transaction():
            self._many(
                "INSERT OR REPLACE INTO kinde_users(verify_id, kinde_id, provided_id, email_key, first_name, last_name,"
                " is_suspended, identities) VALUES (?, ?, ?, LOWER(?), ?, ?, ?, ?)",
                [(verify_id, *user[:6], None if user[6] is None else json.dumps(user[6])) for user in users],
            )

    def store_kinde_members(
        self, verify_id: int, org_code: str, members: Sequence[tuple[str, list[str] | None]]
    ) -> None:
        """(kinde id, role keys) of members of one organization; roles None (JSON null): a membership the users
        pages listed, its roles not read (a member page's row replaces it)."""
        with self.transaction():
            self._many(
                "INSERT OR REPLACE INTO kinde_members(verify_id, kinde_id, org_code, roles) VALUES (?, ?, ?, ?)",
                [(verify_id, kinde_id, org_code, json.dumps(roles)) for kinde_id, roles in members],
            )

    def match_kinde_users(self, verify_id: int, run_id: int) -> None:
        """Which Kinde users answer for each Clerk user of the run: ``provided_id`` = Clerk id, or the Kinde
        id the journal recorded (a user found by email that was not ours)."""
        with self.transaction():
            self._exec(
                "INSERT OR IGNORE INTO verify_matches SELECT ?, u.clerk_id, k.kinde_id FROM users u"
                " JOIN kinde_users k ON k.verify_id = ? AND k.provided_id = u.clerk_id WHERE u.run_id = ? AND u.state != ?",
                (verify_id, verify_id, run_id, UserState.SKIPPED),
            )
            self._exec(
                "INSERT OR IGNORE INTO verify_matches SELECT ?, u.clerk_id, k.kinde_id FROM users u"
                " JOIN kinde_users k ON k.verify_id = ? AND k.kinde_id = u.kinde_id WHERE u.run_id = ? AND u.state != ?",
                (verify_id, verify_id, run_id, UserState.SKIPPED),
            )

    def record_findings(self, verify_id: int, findings: Iterable[tuple[str, Any, Any, Any, Any, Any]]) -> None:
        """(kind, clerk id, kinde id, field, expected, found) rows."""
        with self.transaction():
            self._many(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((verify_id, *finding) for finding in findings),
            )

    def find_missing_duplicated_unexpected(self, verify_id: int, run_id: int, *, unexpected: bool = True) -> None:
        """The three findings that need no per-user read, written by SQL alone (``unexpected``: look for those too)."""
        v, r = verify_id, run_id
        with self.transaction():
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " SELECT ?, 'missing', u.clerk_id, u.kinde_id, 'user', COALESCE(u.email_key, u.username_key,"
                " u.phone_key), NULL FROM users u WHERE u.run_id = ? AND u.state != ?"
                " AND u.export_target IS NOT 'api' AND NOT EXISTS"
                " (SELECT 1 FROM verify_matches m WHERE m.verify_id = ? AND m.clerk_id = u.clerk_id) ORDER BY u.seq",
                (v, r, UserState.SKIPPED, v),
            )
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " SELECT ?, 'duplicated', clerk_id, GROUP_CONCAT(kinde_id, ' '), 'clerk_id', 1, COUNT(*)"
                " FROM verify_matches WHERE verify_id = ? GROUP BY clerk_id HAVING COUNT(*) > 1",
                (v, v),
            )
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                # the shared emails first (a handful), then their users through the email index: never a
                # join of every Kinde user with every staged user
                " SELECT ?, 'duplicated', u.clerk_id, d.kinde_ids, 'email', 1, d.n FROM (SELECT email_key,"
                " GROUP_CONCAT(kinde_id, ' ') AS kinde_ids, COUNT(*) AS n FROM kinde_users WHERE verify_id = ?"
                " AND email_key IS NOT NULL GROUP BY email_key HAVING COUNT(*) > 1) d"
                " JOIN users u INDEXED BY users_email ON u.run_id = ? AND u.email_key = d.email_key AND u.state != ?",
                (v, v, r, UserState.SKIPPED),
            )
            if not unexpected:
                return
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " SELECT ?, 'unexpected', k.provided_id, k.kinde_id, 'provided_id', NULL, k.provided_id"
                " FROM kinde_users k WHERE k.verify_id = ? AND k.provided_id LIKE 'user\\_%' ESCAPE '\\'"
                " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.clerk_id = k.provided_id)",
                (v, v),
            )

    def find_undone_present(self, verify_id: int, undo_run_id: int) -> None:
        """An undo's claims checked: each user it counted deleted or already gone that Kinde still lists."""
        self._exec(
            "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
            " SELECT ?, 'not_gone', d.key, d.kinde_ref, 'user', 'absent', d.state FROM deletions d"
            " JOIN kinde_users k ON k.verify_id = ? AND k.kinde_id = d.kinde_ref"
            " WHERE d.run_id = ? AND d.kind = 'user' AND d.state IN (?, ?) ORDER BY d.key",
            (verify_id, verify_id, undo_run_id, *GONE),
        )

    def undone_user_count(self, undo_run_id: int) -> int:
        """Users an undo counted deleted or already gone (what its verify expects absent)."""
        return self._scalar(
            "SELECT COUNT(*) FROM deletions WHERE run_id = ? AND kind = 'user' AND state IN (?, ?)",
            (undo_run_id, *GONE),
        )

    def users_to_read_back(
        self, verify_id: int, run_id: int, after: tuple[str, str] = ("", ""), limit: int = 500, imported: bool = False
    ) -> list[ReadBack]:
        """The next matched users of this run (by Clerk id) created by this journal (``imported``: every matched
        user, an export run's files created them), with their plan, state and the Kinde record as listed: what
        per-user reads and the drift comparison need."""
        return typed_all(ReadBack, self._rows(
            "SELECT u.clerk_id, COALESCE(f.plan, u.plan) AS plan, u.state, u.created, u.flags, u.properties,"
            " u.social, k.kinde_id, k.first_name, k.last_name, k.is_suspended, k.identities FROM verify_matches m"
            " JOIN users u ON u.run_id = ? AND u.clerk_id = m.clerk_id"
            " LEFT JOIN verify_plans f ON f.verify_id = m.verify_id AND f.clerk_id = m.clerk_id"
            " JOIN kinde_users k ON k.verify_id = m.verify_id AND k.kinde_id = m.kinde_id"
            " WHERE m.verify_id = ? AND (? OR u.created IN (?, ?, ?) OR u.state = ?) AND (m.clerk_id, m.kinde_id) > (?, ?)"
            " ORDER BY m.clerk_id, m.kinde_id LIMIT ?",
            # the lazy cohort's users the workflow created are checked like the run's own
            (run_id, verify_id, imported, *_CHECKED_AS_OURS, *after, limit),
        ))

    def read_back_ids(self, verify_id: int, run_id: int, imported: bool = False) -> Iterator[str]:
        """The Clerk ids ``users_to_read_back`` walks (each once), a page at a time: what a sample is drawn from."""
        after = ""
        while rows := self._rows(
            "SELECT DISTINCT m.clerk_id FROM verify_matches m JOIN users u ON u.run_id = ? AND u.clerk_id = m.clerk_id"
            " WHERE m.verify_id = ? AND (? OR u.created IN (?, ?)) AND m.clerk_id > ? ORDER BY m.clerk_id LIMIT 10000",
            (run_id, verify_id, imported, Created.CREATED, Created.EARLIER, after),
        ):
            yield from (row[0] for row in rows)
            after = rows[-1][0]

    def store_identities(self, verify_id: int, identities: Sequence[tuple[str, list[Any] | None]]) -> None:
        """(kinde id, [(type, value, confirmed)...]); None: the user vanished between the list and the read."""
        with self.transaction():
            for kinde_id, found in identities:
                if found is None:
                    self._exec("DELETE FROM kinde_users WHERE verify_id = ? AND kinde_id = ?", (verify_id, kinde_id))
                    self._exec("DELETE FROM verify_matches WHERE verify_id = ? AND kinde_id = ?", (verify_id, kinde_id))
                else:
                    self._exec(
                        "UPDATE kinde_users SET identities = ? WHERE verify_id = ? AND kinde_id = ?",
                        (json.dumps(found), verify_id, kinde_id),
                    )

    def membership_comparison(
        self, verify_id: int, run_id: int, after: tuple[str, str] = ("", ""), limit: int = 1000, imported: bool = False
    ) -> list[MembershipComparison]:
        """Planned memberships of users this journal created (``imported``: of every matched user), beside what
        Kinde lists (roles NULL: absent; JSON null: a member, roles not read)."""
        return typed_all(MembershipComparison, self._rows(
            "SELECT m.clerk_user_id, m.clerk_org_id, m.role_key, m.state, o.kinde_code, vm.kinde_id, km.roles"
            " FROM memberships m JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id"
            " JOIN organizations o ON o.run_id = m.run_id AND o.clerk_org_id = m.clerk_org_id"
            # unary +: SQLite would otherwise carry the paging range onto vm.clerk_id and scan it per row
            " JOIN verify_matches vm ON vm.verify_id = ? AND vm.clerk_id = +m.clerk_user_id"
            " LEFT JOIN kinde_members km ON km.verify_id = vm.verify_id AND km.kinde_id = vm.kinde_id"
            " AND km.org_code = o.kinde_code"
            " WHERE m.run_id = ? AND (? OR u.created IN (?, ?, ?))"
            " AND (m.clerk_user_id, m.clerk_org_id) > (?, ?) ORDER BY m.clerk_user_id, m.clerk_org_id LIMIT ?",
            # a lazy user's memberships wait for `lazy finish`: compared once it is adopted (created = workflow)
            (verify_id, run_id, imported, *_CHECKED_AS_OURS[:3], *after, limit),
        ))

    def find_extra_memberships(self, verify_id: int, run_id: int) -> None:
        """Kinde memberships in the run's organizations that no plan of this run asked for: drift.

        Each member is looked up once: the run's organizations are materialized (SQLite indexes them by
        code), where a plain join walked every matched user against every organization (users x orgs)."""
        self._exec(
            "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
            " WITH o AS MATERIALIZED (SELECT kinde_code, clerk_org_id FROM organizations"
            " WHERE run_id = ? AND kinde_code IS NOT NULL)"
            " SELECT ?, 'drift', vm.clerk_id, km.kinde_id, 'membership', NULL, km.org_code FROM kinde_members km"
            " CROSS JOIN verify_matches vm ON vm.verify_id = km.verify_id AND vm.kinde_id = km.kinde_id"
            " CROSS JOIN o ON o.kinde_code = km.org_code"
            " WHERE km.verify_id = ? AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.run_id = ?"
            " AND m.clerk_user_id = vm.clerk_id AND m.clerk_org_id = o.clerk_org_id)",
            (run_id, verify_id, verify_id, run_id),
        )

    def store_fresh_plans(self, verify_id: int, plans: Sequence[tuple[str, str | None]]) -> None:
        """(clerk id, plan JSON or None when the mapping now skips the user) of one page re-read from Clerk."""
        with self.transaction():
            self._many(
                "INSERT OR REPLACE INTO verify_plans(verify_id, clerk_id, plan) VALUES (?, ?, ?)",
                [(verify_id, *plan) for plan in plans],
            )

    def find_clerk_changes(self, verify_id: int, run_id: int) -> None:
        """verify --fresh: users in Clerk now that the run never staged, and users of the run gone from Clerk
        (drift, field ``clerk_user``: a catch-up run migrates the difference)."""
        with self.transaction():
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " SELECT ?, 'drift', f.clerk_id, NULL, 'clerk_user', 'in Clerk', 'not in the run' FROM verify_plans f"
                " WHERE f.verify_id = ? AND f.plan IS NOT NULL AND NOT EXISTS"
                " (SELECT 1 FROM users u WHERE u.run_id = ? AND u.clerk_id = f.clerk_id)",
                (verify_id, verify_id, run_id),
            )
            self._exec(
                "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
                " SELECT ?, 'drift', u.clerk_id, u.kinde_id, 'clerk_user', 'in the run', 'deleted in Clerk'"
                " FROM users u WHERE u.run_id = ? AND u.state != ? AND NOT EXISTS"
                " (SELECT 1 FROM verify_plans f WHERE f.verify_id = ? AND f.clerk_id = u.clerk_id) ORDER BY u.seq",
                (verify_id, run_id, UserState.SKIPPED, verify_id),
            )

    def find_api_pending(self, verify_id: int, run_id: int) -> None:
        """Export runs: users listed for the API path and not in Kinde (``run --only-file`` migrates them)."""
        self._exec(
            "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
            " SELECT ?, 'api_pending', u.clerk_id, NULL, 'user', COALESCE(u.email_key, u.username_key, u.phone_key),"
            " 'listed in api-users.csv' FROM users u WHERE u.run_id = ? AND u.state != ? AND u.export_target = 'api'"
            " AND NOT EXISTS (SELECT 1 FROM verify_matches m WHERE m.verify_id = ? AND m.clerk_id = u.clerk_id)"
            " ORDER BY u.seq",
            (verify_id, run_id, UserState.SKIPPED, verify_id),
        )

    def finding_counts(self, verify_id: int) -> dict[str, int]:
        rows = self._rows("SELECT kind, COUNT(*) FROM verify_findings WHERE verify_id = ? GROUP BY kind", (verify_id,))
        return {r[0]: r[1] for r in rows}

    def findings(self, verify_id: int, kind: str | None = None, limit: int = -1) -> Iterator[Finding]:
        """Findings in the order they were found, read in batches (there may be a million)."""
        last = 0
        while True:
            rows = self._rows(
                "SELECT rowid, kind, clerk_id, kinde_id, field, expected, found FROM verify_findings"
                " WHERE verify_id = ? AND rowid > ? AND (? IS NULL OR kind = ?) ORDER BY rowid LIMIT ?",
                (verify_id, last, kind, kind, 1000 if limit < 0 else min(limit, 1000)),
            )
            if not rows:
                return
            for row in rows:
                yield typed(Finding, row)
            last = rows[-1]["rowid"]
            if limit >= 0:
                limit -= len(rows)
                if limit <= 0:
                    return

    def kinde_user_count(self, verify_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM kinde_users WHERE verify_id = ?", (verify_id,))

    def settle_lazy_cohort(self, verify_id: int, run_id: int) -> None:
        """The run's lazy cohort among the ``missing``: a user the workflow has not created yet is not missing but
        ``lazy_pending`` (not blocking), while the window is open or its `lazy finish` has not done it yet; one
        that finish skipped (fallback skip) is accounted for. Once finish created or adopted it (or failed to), absent
        is missing."""
        finish = (
            "SELECT f.state FROM runs r JOIN users f ON f.run_id = r.id AND f.clerk_id = verify_findings.clerk_id"
            " WHERE r.parent_run_id = ? AND r.mode = ? ORDER BY r.id DESC LIMIT 1"
        )
        lazy = (
            "verify_id = ? AND kind = 'missing' AND clerk_id IN"
            " (SELECT clerk_id FROM users WHERE run_id = ? AND state = ?)"
        )
        with self.transaction():
            self._exec(
                f"DELETE FROM verify_findings WHERE {lazy} AND ({finish}) = ?",
                (verify_id, run_id, UserState.LAZY, run_id, RunMode.LAZY_FINISH, UserState.SKIPPED),
            )
            self._exec(
                f"UPDATE verify_findings SET kind = ? WHERE {lazy} AND COALESCE(({finish}), ?) NOT IN (?, ?)",
                (LAZY_PENDING, verify_id, run_id, UserState.LAZY, run_id, RunMode.LAZY_FINISH, UserState.PENDING,
                 UserState.DONE, UserState.FAILED),
            )  # fmt: skip
