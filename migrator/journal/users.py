"""Staged users: staging, reading them back in batches, their step outcomes, provenance, counts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypedDict, Unpack

from migrator.journal.repository import Repository, now_iso
from migrator.journal.rows import Problem, SharedIdentity, UserRow, typed, typed_all
from migrator.journal.sql import GONE, in_kinde_by_us, real_run, undo_of, user_deletion
from migrator.journal.states import (
    CARRIED_FLAGS,
    CARRIED_PASSWORD,
    NOT_CARRIED_ACCOUNT,
    STEP_COLUMNS,
    UNMAPPED_PROVIDER,
    Created,
    Lookup,
    MembershipState,
    PasswordStep,
    RunMode,
    RunStatus,
    Step,
    StepState,
    UserState,
)


class UserFields(TypedDict, total=False):
    """The columns a step may write on a staged user (``Users.update``), with their types."""

    plan: str | None
    phone_key: str | None
    state: UserState
    lookup: Lookup
    created: Created
    password: PasswordStep
    flags: Step
    identities: Step
    missing_identities: str | None
    properties: Step
    social: Step
    kinde_id: str | None
    skip_reason: str | None
    skip_detail: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_retryable: int | bool | None
    password_method: str | None
    password_problem: str | None
    carried: int
    password_settled_ms: int | None
    lazy: int


_USER_FIELDS = frozenset(UserFields.__annotations__)
# the steps of a row this run does nothing for (skipped, or left to the lazy workflow)
NOTHING_TO_DO: UserFields = {
    "lookup": Lookup.NA,
    "created": Created.NA,
    "password": PasswordStep.NA,
    "flags": Step.NA,
    "properties": Step.NA,
    "social": Step.NA,
}

_LOOKUP_WHERE = {
    "email": "email_key IS NOT NULL",
    "username": "email_key IS NULL AND username_key IS NOT NULL",
    "phone": "email_key IS NULL AND username_key IS NULL AND phone_key IS NOT NULL",
}


class Users(Repository):
    # -- staging -----------------------------------------------------------------------------------
    def stage(self, run_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Insert fetched users (``stages.staging.staged_row``); an id seen before (a page shifted) is
        ignored. Returns new rows."""
        before = self._journal._changes()
        self._many(
            "INSERT OR IGNORE INTO users(run_id, clerk_id, seq, plan, email_key, username_key, phone_key, hasher,"
            " password_method, password_problem, state, lookup, created, password, flags,"
            " skip_reason, skip_detail, updated_at, properties, social, mfa, lazy)"
            " VALUES (:run_id, :clerk_id, :seq, :plan, :email_key, :username_key, :phone_key, :hasher,"
            " :password_method, :password_problem, :state, :lookup, :created, :password, :flags,"
            " :skip_reason, :skip_detail, :updated_at, :properties, :social, :mfa, :lazy)",
            [
                {
                    "run_id": run_id,
                    "updated_at": now_iso(),
                    "properties": "n/a",
                    "social": "n/a",
                    "mfa": 0,
                    "lazy": 0,
                    **row,
                }
                for row in rows
            ],
        )
        return self._journal._changes() - before

    def staged_count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM users WHERE run_id = ?", (run_id,))

    def is_staged(self, run_id: int, clerk_id: str) -> bool:
        return self._scalar("SELECT 1 FROM users WHERE run_id = ? AND clerk_id = ?", (run_id, clerk_id)) is not None

    def last_staged(self, run_id: int) -> tuple[str | None, int]:
        """(clerk id of the last staged user, next seq): where a resumed fetch continues."""
        rows = self._rows("SELECT clerk_id, seq FROM users WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,))
        return (rows[0][0], rows[0][1] + 1) if rows else (None, 0)

    # -- reading -----------------------------------------------------------------------------------
    def _iter(self, run_id: int, where: str, params: Sequence[Any] = (), batch: int = 500) -> Iterator[UserRow]:
        """Users in fetch order, read in batches by seq so memory stays flat and updates are safe."""
        last = -1
        while True:
            rows = self._rows(
                f"SELECT * FROM users WHERE run_id = ? AND seq > ? AND ({where}) ORDER BY seq LIMIT ?",
                (run_id, last, *params, batch),
            )
            if not rows:
                return
            for row in rows:
                yield typed(UserRow, row)
            last = rows[-1]["seq"]

    def pending(self, run_id: int) -> Iterator[UserRow]:
        return self._iter(run_id, "state = ?", (UserState.PENDING,))

    def to_settle(self, run_id: int) -> Iterator[UserRow]:
        """Users whose shared identities the conflict rule settles: pending, and the lazy cohort (the workflow
        creates them later with the same identities)."""
        return self._iter(run_id, "state IN (?, ?)", (UserState.PENDING, UserState.LAZY))

    def lazy_cohort(self, run_id: int) -> Iterator[UserRow]:
        """The run's lazy cohort (not skipped since): left to Kinde's workflow, or created without a password."""
        return self._iter(run_id, "lazy = 1 AND state != ?", (UserState.SKIPPED,))

    def latest_lazy_run(self) -> int | None:
        """The latest real run with a lazy cohort (the run `migrator lazy status` and `lazy finish` default to);
        not a catch-up (its cohort is mostly its base's users, kept lazy: name it to mean its own)."""
        return self._scalar(
            f"SELECT MAX(r.id) FROM runs r WHERE {real_run()} AND r.mode NOT IN (?, ?)"
            " AND EXISTS (SELECT 1 FROM users u WHERE u.run_id = r.id AND u.lazy = 1)",
            (RunMode.LAZY_FINISH, RunMode.SYNC),
        )

    def open_lazy_windows(self) -> list[tuple[int, int]]:
        """(run id, cohort size) of each real run whose lazy window is open: users left to Kinde's workflow (or
        created without a password for it) and no finished `lazy finish` of that run yet. A catch-up's cohort is
        its base's, so only the base counts."""
        finished = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES)
        rows = self._rows(
            "SELECT r.id, COUNT(*) FROM runs r JOIN users u ON u.run_id = r.id AND u.lazy = 1 AND u.state != ?"
            f" WHERE {real_run()} AND r.mode NOT IN (?, ?) AND NOT EXISTS (SELECT 1 FROM runs f"
            " WHERE f.parent_run_id = r.id AND f.mode = ? AND f.status IN (?, ?)) GROUP BY r.id ORDER BY r.id",
            (UserState.SKIPPED, RunMode.LAZY_FINISH, RunMode.SYNC, RunMode.LAZY_FINISH, *finished),
        )
        return [(row[0], row[1]) for row in rows]

    def to_look_up(self, run_id: int, field: str) -> Iterator[UserRow]:
        """Pending users not yet looked up (or to look up again), whose lookup key is ``field``:
        email when they have one, else username, else phone."""
        return self._iter(
            run_id,
            f"state = ? AND lookup IN (?, ?) AND {_LOOKUP_WHERE[field]}",
            (UserState.PENDING, Lookup.PENDING, Lookup.RECHECK),
            batch=1000,
        )

    def skipped(self, run_id: int) -> Iterator[UserRow]:
        return self._iter(run_id, "state = ?", (UserState.SKIPPED,))

    def failed(self, run_id: int) -> Iterator[UserRow]:
        return self._iter(run_id, "state = ?", (UserState.FAILED,))

    def with_password_problem(self, run_id: int) -> Iterator[UserRow]:
        """Users who cannot sign in with their Clerk password (the lazy cohort of an open window can: lazy.csv;
        once `lazy finish` gave the fallback, they are listed again)."""
        return self._iter(run_id, "password_problem IS NOT NULL AND lazy != 1")

    def with_password_set(self, run_id: int) -> Iterator[UserRow]:
        return self._iter(run_id, "password = ?", (PasswordStep.SET,))

    def all(self, run_id: int, batch: int = 500) -> Iterator[UserRow]:
        return self._iter(run_id, "1", batch=batch)

    def for_mfa_report(self, run_id: int) -> Iterator[UserRow]:
        """Users enrolled in MFA in Clerk (a TOTP secret in the export, or the API's flags)."""
        return self._iter(run_id, "mfa = 1")

    def id_map(self, run_id: int) -> Iterator[tuple[str, str, str | None]]:
        """(clerk id, Kinde id, email) of every user this run placed in Kinde or found there."""
        for row in self._iter(run_id, "kinde_id IS NOT NULL AND state != ?", (UserState.SKIPPED,)):
            yield row.clerk_id, row.kinde_id or "", row.email_key

    def get(self, run_id: int, clerk_id: str) -> UserRow | None:
        rows = self._rows("SELECT * FROM users WHERE run_id = ? AND clerk_id = ?", (run_id, clerk_id))
        return typed(UserRow, rows[0]) if rows else None

    def sample_with_extras(self, run_id: int) -> UserRow | None:
        """A pending user whose plan carries properties or social identities (the dry run's example)."""
        rows = self._rows(
            "SELECT * FROM users WHERE run_id = ? AND state = ? AND (properties = ? OR social = ?) ORDER BY seq LIMIT 1",
            (run_id, UserState.PENDING, Step.PENDING, Step.PENDING),
        )
        return typed(UserRow, rows[0]) if rows else None

    def created_by_run(self, run_id: int) -> list[tuple[str, str]]:
        """(clerk id, kinde id) of the users this run created in Kinde (not found there, not adopted)."""
        rows = self._rows(
            "SELECT clerk_id, kinde_id FROM users WHERE run_id = ? AND created = ? AND kinde_id IS NOT NULL"
            " ORDER BY seq",
            (run_id, Created.CREATED),
        )
        return [(r[0], r[1]) for r in rows]

    # -- writing -----------------------------------------------------------------------------------
    def update(self, run_id: int, clerk_id: str, **fields: Unpack[UserFields]) -> None:
        """Write some of a user's columns (the names checked against :class:`UserFields`)."""
        unknown = fields.keys() - _USER_FIELDS
        if unknown:
            raise ValueError(f"not user fields: {sorted(unknown)}")
        values: dict[str, Any] = {**fields, "updated_at": now_iso()}
        assignments = ", ".join(f"{name} = ?" for name in values)
        params: list[Any] = list(values.values())
        if fields.get("created") == Created.CREATED:  # the pass whose create made it (run_passes.py)
            assignments += ", created_pass = COALESCE(created_pass, (SELECT MAX(number) FROM passes WHERE run_id = ?))"
            params.append(run_id)
        self._exec(f"UPDATE users SET {assignments} WHERE run_id = ? AND clerk_id = ?", (*params, run_id, clerk_id))

    def record_outcomes(self, run_id: int, updates: Sequence[tuple[str, UserFields]]) -> None:
        """Apply many per-user step results in one commit (the load stage batches its commits)."""
        with self.transaction():
            for clerk_id, fields in updates:
                self.update(run_id, clerk_id, **fields)

    def record_absent(self, run_id: int, clerk_id: str) -> None:
        self.update(run_id, clerk_id, lookup=Lookup.ABSENT)

    def skip(self, run_id: int, clerk_id: str, reason: str, detail: str) -> None:
        self.update(run_id, clerk_id, state=UserState.SKIPPED, skip_reason=reason, skip_detail=detail, **NOTHING_TO_DO)

    def mark_closing_cohort(self, run_id: int, base_run_id: int) -> None:
        """A `lazy finish` run's staged users are the cohort whose window it closes (``lazy = 2``); why each
        password could not travel is the base run's reason, its hasher the base run's export's (the finish reads
        no export)."""
        self._exec(
            "UPDATE users SET lazy = 2, password_problem = CASE WHEN password_problem IS NULL THEN NULL ELSE"
            " COALESCE((SELECT b.password_problem FROM users b WHERE b.run_id = ? AND b.clerk_id = users.clerk_id),"
            " password_problem) END,"
            " hasher = (SELECT b.hasher FROM users b WHERE b.run_id = ? AND b.clerk_id = users.clerk_id)"
            " WHERE run_id = ?",
            (base_run_id, base_run_id, run_id),
        )

    def not_found_in_kinde(self, run_id: int) -> Iterator[UserRow]:
        """Pending users the lookup did not find in Kinde and nobody created yet."""
        return self._iter(
            run_id, "state = ? AND created = ? AND lookup = ?", (UserState.PENDING, Created.PENDING, Lookup.ABSENT)
        )

    def mark_for_recheck(self, run_id: int) -> int:
        """Users whose create may have been in flight when the run died: look them up again."""
        return self._exec(
            "UPDATE users SET lookup = ? WHERE run_id = ? AND state = ? AND created = ? AND lookup = ?",
            (Lookup.RECHECK, run_id, UserState.PENDING, Created.PENDING, Lookup.ABSENT),
        ).rowcount

    def reset_failed(self, run_id: int) -> int:
        """Failed users back to pending (a create that may have happened is looked up first); returns how many."""
        return self._exec(
            "UPDATE users SET state = ?, error_code = NULL, error_message = NULL, error_retryable = NULL,"
            " lookup = CASE WHEN created = ? AND lookup = ? THEN ? ELSE lookup END WHERE run_id = ? AND state = ?",
            (UserState.PENDING, Created.PENDING, Lookup.ABSENT, Lookup.RECHECK, run_id, UserState.FAILED),
        ).rowcount

    # -- provenance (reconcile) --------------------------------------------------------------------
    def earlier_steps(self, run_id: int, clerk_id: str, kinde_id: str) -> UserRow | None:
        """The row of the latest other run of this journal that created this Kinde user (its steps)."""
        rows = self._rows(
            "SELECT * FROM users WHERE clerk_id = ? AND kinde_id = ? AND run_id != ? AND created IN (?, ?)"
            " ORDER BY run_id DESC LIMIT 1",
            (clerk_id, kinde_id, run_id, Created.CREATED, Created.EARLIER),
        )
        return typed(UserRow, rows[0]) if rows else None

    def earlier_run_meant_to_create(self, run_id: int, clerk_id: str) -> bool:
        """Another (real) run looked this user up, found nothing and may have died mid-create."""
        return (
            self._scalar(
                "SELECT 1 FROM users u JOIN runs r ON r.id = u.run_id WHERE u.clerk_id = ? AND u.run_id != ?"
                " AND r.mode = ? AND u.created = ? AND u.lookup IN (?, ?) LIMIT 1",
                (clerk_id, run_id, RunMode.RUN, Created.PENDING, Lookup.ABSENT, Lookup.RECHECK),
            )
            is not None
        )

    def earlier_skip(self, run_id: int, clerk_id: str) -> UserRow | None:
        """The latest other real run's row for this user, when that run skipped it (reason, detail, run)."""
        rows = self._rows(
            "SELECT u.* FROM runs r CROSS JOIN users u ON u.run_id = r.id AND u.clerk_id = ?"
            f" WHERE u.run_id != ? AND {real_run()} ORDER BY u.run_id DESC LIMIT 1",
            (clerk_id, run_id),
        )
        return typed(UserRow, rows[0]) if rows and rows[0]["state"] == UserState.SKIPPED else None

    def known(self, clerk_id: str) -> UserRow | None:
        """The latest finished row of a user this journal put in Kinde (or found ours there), unless an
        undo or a catch-up deleted it since: what Kinde holds for it now."""
        rows = self._rows(
            # runs first (a handful), then each run's row by primary key: no scan of every user
            f"SELECT u.* FROM runs r CROSS JOIN users u ON u.run_id = r.id AND u.clerk_id = ? WHERE {real_run()}"
            f" AND {in_kinde_by_us()} AND u.state = ? AND u.plan IS NOT NULL"
            f" AND NOT {user_deletion('u.clerk_id', *GONE)}"
            # a catch-up's row counts only once its update reached Kinde (not when it was declined or cut off)
            " AND NOT EXISTS (SELECT 1 FROM updates up WHERE up.run_id = u.run_id AND up.clerk_id = u.clerk_id"
            " AND up.state != ?)"
            # a catch-up being undone (or undone) no longer says what Kinde holds: its undo restores the row before
            f" AND NOT (r.mode = ? AND {undo_of('r.id', started=True)})"
            " ORDER BY u.run_id DESC LIMIT 1",
            (clerk_id, UserState.DONE, StepState.DONE, RunMode.SYNC),
        )
        return typed(UserRow, rows[0]) if rows else None

    def left_to_workflow(self, run_id: int, clerk_id: str) -> UserRow | None:
        """The row of another real run that left this user to Kinde's lazy workflow, while that window is open
        for it: no `lazy finish` has adopted, created or skipped it yet."""
        rows = self._rows(
            f"SELECT u.* FROM runs r CROSS JOIN users u ON u.run_id = r.id AND u.clerk_id = ? WHERE {real_run()}"
            " AND u.run_id != ? AND u.state = ? AND NOT EXISTS (SELECT 1 FROM users f JOIN runs fr ON fr.id = f.run_id"
            " WHERE f.clerk_id = u.clerk_id AND fr.mode = ? AND f.state IN (?, ?)) ORDER BY u.run_id DESC LIMIT 1",
            (clerk_id, run_id, UserState.LAZY, RunMode.LAZY_FINISH, UserState.DONE, UserState.SKIPPED),
        )
        return typed(UserRow, rows[0]) if rows else None

    def keep_lazy(self, run_id: int, clerk_id: str, password_problem: str | None) -> None:
        """A catch-up's row of a user left to the workflow: it stays so (nothing of it is created or written)."""
        self.update(run_id, clerk_id, state=UserState.LAZY, password_problem=password_problem, lazy=1, **NOTHING_TO_DO)

    # -- shared identities (conflicts) -------------------------------------------------------------
    def shared_identities(self, run_id: int, keys: Iterable[tuple[str, str, int, bool]]) -> list[SharedIdentity]:
        """Among ``keys`` (identity key, clerk id, seq, essential), those held by more than one user.

        Counted in a temporary table, not in memory: a million users' keys do not fit in a dict cheaply.
        """
        self._exec("CREATE TEMP TABLE IF NOT EXISTS keys(key TEXT, clerk_id TEXT, seq INTEGER, essential INTEGER)")
        self._exec("DELETE FROM temp.keys")
        batch: list[tuple[str, str, int, int]] = []
        for key, clerk_id, seq, essential in keys:  # ``keys`` may read this database: insert in batches
            batch.append((key, clerk_id, seq, int(essential)))
            if len(batch) >= 1000:
                self._many("INSERT INTO temp.keys VALUES (?, ?, ?, ?)", batch)
                batch.clear()
        self._many("INSERT INTO temp.keys VALUES (?, ?, ?, ?)", batch)
        rows = self._rows(
            "SELECT key, GROUP_CONCAT(clerk_id || ' ' || essential, ',') FROM"
            " (SELECT * FROM temp.keys ORDER BY essential DESC, seq) GROUP BY key HAVING COUNT(DISTINCT clerk_id) > 1"
        )
        self._exec("DELETE FROM temp.keys")
        return [
            SharedIdentity(key, tuple((h.split(" ")[0], h.split(" ")[1] == "1") for h in holders.split(",")))
            for key, holders in rows
        ]

    # -- problems ----------------------------------------------------------------------------------
    def add_problems(self, run_id: int, problems: Iterable[tuple[str, str, str]]) -> None:
        self._many(
            "INSERT INTO problems(run_id, clerk_id, kind, message) VALUES (?, ?, ?, ?)",
            ((run_id, cid, kind, msg) for cid, kind, msg in problems),
        )

    def problems(self, run_id: int, limit: int | None = None) -> list[Problem]:
        sql = "SELECT clerk_id, kind, message FROM problems WHERE run_id = ? ORDER BY rowid"
        if limit is None:
            return typed_all(Problem, self._rows(sql, (run_id,)))
        return typed_all(Problem, self._rows(sql + " LIMIT ?", (run_id, limit)))

    # -- counts for plans, summaries and status ----------------------------------------------------
    def pending_count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM users WHERE run_id = ? AND state = ?", (run_id, UserState.PENDING))

    def to_look_up_count(self, run_id: int) -> int:
        return self._scalar(
            "SELECT COUNT(*) FROM users WHERE run_id = ? AND state = ? AND lookup IN (?, ?)",
            (run_id, UserState.PENDING, Lookup.PENDING, Lookup.RECHECK),
        )

    def expected_count(self, run_id: int) -> int:
        return self.count(run_id, "state != ?", (UserState.SKIPPED,))

    def created_in_pass(self, run_id: int, number: int) -> int:
        """Users this pass created in Kinde and finished (a user an earlier, killed pass created is not one)."""
        return self.count(
            run_id, "created = ? AND state = ? AND created_pass = ?", (Created.CREATED, UserState.DONE, number)
        )

    def count(self, run_id: int, where: str, params: Sequence[Any] = ()) -> int:
        """Users of the run matching ``where`` (SQL of this package's repositories only)."""
        return self._scalar(f"SELECT COUNT(*) FROM users WHERE run_id = ? AND ({where})", (run_id, *params))

    def step_counts(self, run_id: int) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for column in ("state", *STEP_COLUMNS):
            rows = self._rows(
                f"SELECT {column}, COUNT(*) FROM users WHERE run_id = ? GROUP BY {column} ORDER BY {column}", (run_id,)
            )
            counts[column] = {r[0]: r[1] for r in rows}
        return counts

    def skip_counts(self, run_id: int) -> dict[str, int]:
        rows = self._rows(
            "SELECT skip_reason, COUNT(*) FROM users WHERE run_id = ? AND state = ? GROUP BY skip_reason",
            (run_id, UserState.SKIPPED),
        )
        return {r[0]: r[1] for r in rows}

    def failure_groups(self, run_id: int) -> list[tuple[str, str, int]]:
        """Failed users grouped by error code, with one example message, commonest first.

        Not by message: messages name the user's own details (a Kinde id, a username), so grouping
        by them would list every failed user on a line of its own.
        """
        rows = self._rows(
            "SELECT COALESCE(error_code, ''), MIN(COALESCE(error_message, '')), COUNT(*) AS n FROM users"
            " WHERE run_id = ? AND state = ? GROUP BY 1 ORDER BY n DESC, 1",
            (run_id, UserState.FAILED),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def failure_messages(self, run_id: int, per_code: int) -> list[tuple[str, str, int, int]]:
        """For each error code of the failed users: up to ``per_code`` distinct messages (commonest first),
        each with its users, and how many distinct messages the code has in all (``status`` lists them)."""
        rows = self._rows(
            "SELECT code, message, n, kinds FROM (SELECT code, message, n,"
            " COUNT(*) OVER (PARTITION BY code) AS kinds,"
            " ROW_NUMBER() OVER (PARTITION BY code ORDER BY n DESC, message) AS rank FROM ("
            "SELECT COALESCE(error_code, '') AS code, COALESCE(error_message, '') AS message, COUNT(*) AS n"
            " FROM users WHERE run_id = ? AND state = ? GROUP BY 1, 2)) WHERE rank <= ? ORDER BY code, rank",
            (run_id, UserState.FAILED, per_code),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def plan_counts(self, run_id: int) -> dict[str, Any]:
        """What remains to be done after the lookup, before any write (``reports.Plan``)."""
        p, s = UserState.PENDING, PasswordStep
        count = self.count
        return {
            "staged": self.staged_count(run_id),
            "to_create": count(run_id, "state = ? AND created = ?", (p, Created.PENDING)),
            "already_present": count(
                run_id, "created IN (?, ?) AND state = ?", (Created.EXISTED, Created.EARLIER, UserState.DONE)
            ),
            "to_finish": count(
                run_id, "state = ? AND created IN (?, ?, ?)", (p, Created.CREATED, Created.EARLIER, Created.WORKFLOW)
            ),
            "failed": count(run_id, "state = ?", (UserState.FAILED,)),
            "password_imports": dict(
                self._rows(
                    "SELECT password_method, COUNT(*) FROM users WHERE run_id = ? AND state = ? AND password = ?"
                    " AND password_method IS NOT NULL GROUP BY password_method",
                    (run_id, p, s.PENDING),
                )
            ),
            "password_resets": count(run_id, "state = ? AND password = ? AND flags = ?", (p, s.RESET, Step.PENDING)),
            "without_password": count(run_id, "state = ? AND password_problem IS NOT NULL AND password = ?", (p, s.NA)),
            "password_missing": count(run_id, "password_problem IS NOT NULL AND hasher IS NULL"),
            "password_problems": dict(
                self._rows(
                    "SELECT password_problem, COUNT(*) FROM users WHERE run_id = ? AND password_problem IS NOT NULL"
                    " GROUP BY 1 ORDER BY 2 DESC, 1",
                    (run_id,),
                )
            ),
            "export_only": self._scalar(
                "SELECT COUNT(*) FROM export_index e LEFT JOIN users u ON u.run_id = e.run_id"
                " AND u.clerk_id = e.user_id WHERE e.run_id = ? AND u.clerk_id IS NULL",
                (run_id,),
            ),
            "api_only": self._scalar(
                "SELECT COUNT(*) FROM users u LEFT JOIN export_index e ON e.run_id = u.run_id"
                " AND e.user_id = u.clerk_id WHERE u.run_id = ? AND e.user_id IS NULL",
                (run_id,),
            ),
            "organizations": self._scalar("SELECT COUNT(*) FROM organizations WHERE run_id = ?", (run_id,)),
            "memberships": self._scalar("SELECT COUNT(*) FROM memberships WHERE run_id = ?", (run_id,)),
            "memberships_pending": self._scalar(
                "SELECT COUNT(*) FROM memberships m JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id"
                " WHERE m.run_id = ? AND m.state IN (?, ?) AND u.state != ? AND u.created != ?",
                (run_id, MembershipState.PENDING, MembershipState.FAILED, UserState.SKIPPED, Created.EXISTED),
            ),
        }

    def outcome_counts(self, run_id: int) -> dict[str, Any]:
        """What a run did (``reports.Summary``)."""
        count = self.count
        return {
            "created": count(run_id, "created = ? AND state = ?", (Created.CREATED, UserState.DONE)),
            "already_present": count(run_id, "created IN (?, ?)", (Created.EXISTED, Created.EARLIER)),
            "failed": count(run_id, "state = ?", (UserState.FAILED,)),
            "pending": count(run_id, "state = ?", (UserState.PENDING,)),
            "passwords_set": dict(
                self._rows(
                    "SELECT password_method, COUNT(*) FROM users WHERE run_id = ? AND password = ?"
                    " AND (carried & ?) = 0 GROUP BY 1",
                    (run_id, PasswordStep.SET, CARRIED_PASSWORD),
                )
            ),
            "password_resets": count(
                run_id,
                "password = ? AND flags = ? AND (carried & ?) = 0",
                (PasswordStep.RESET, Step.DONE, CARRIED_FLAGS),
            ),
            "done_earlier": count(run_id, "carried != 0 AND state = ?", (UserState.DONE,)),
        }

    def lazy_counts(self, run_id: int) -> dict[str, int]:
        """The run's lazy cohort by outcome (only the non-zero ones; empty without a cohort): ``cohort``,
        ``awaiting_sign_in`` (left to the workflow), ``moved`` (the workflow created it, adopted by `lazy
        finish`), ``created`` (by the run: without a password, or the fallback), ``skipped``, ``failed``."""
        rows = self._rows(
            "SELECT COUNT(*), SUM(state = ?), SUM(created = ? OR (lazy = 2 AND created = ? AND password_problem IS NULL)),"
            " SUM(created = ?), SUM(state = ?), SUM(state = ?) FROM users WHERE run_id = ? AND lazy > 0",
            # moved: adopted from the workflow, or (the users-in-Kinde reading) signed in to the user the run made
            (
                UserState.LAZY,
                Created.WORKFLOW,
                Created.EARLIER,
                Created.CREATED,
                UserState.SKIPPED,
                UserState.FAILED,
                run_id,
            ),
        )
        names = ("cohort", "awaiting_sign_in", "moved", "created", "skipped", "failed")
        return {name: int(value) for name, value in zip(names, rows[0], strict=True) if value}

    def extras_counts(self, run_id: int) -> dict[str, Any]:
        """The plan's view of the extra steps: what remains to write, who must re-enrol MFA."""
        pending = UserState.PENDING
        return {
            "properties_to_write": self.count(run_id, "state = ? AND properties = ?", (pending, Step.PENDING)),
            "social_to_link": self.count(run_id, "state = ? AND social = ?", (pending, Step.PENDING)),
            "mfa_reenrol": self.count(run_id, "mfa = 1"),
            "social_unmapped": dict(
                self._rows(
                    "SELECT message, COUNT(DISTINCT clerk_id) FROM problems WHERE run_id = ? AND kind = ?"
                    " GROUP BY message ORDER BY 2 DESC, 1",
                    (run_id, UNMAPPED_PROVIDER),
                )
            ),
            "social_not_carried": dict(
                self._rows(
                    "SELECT message, COUNT(DISTINCT clerk_id) FROM problems WHERE run_id = ? AND kind = ?"
                    " GROUP BY message ORDER BY 2 DESC, 1",
                    (run_id, NOT_CARRIED_ACCOUNT),
                )
            ),
            "roles_permissions_pending": self._scalar(
                "SELECT COUNT(*) FROM roles WHERE run_id = ? AND permissions = ?", (run_id, Step.PENDING)
            ),
        }

    def written_extras(self, run_id: int, *, imported: bool = False) -> set[str]:
        """Which extra steps the run wrote ('properties', 'social', 'permissions'): what verify reads back.
        ``imported``: an export run, whose files carried the users' pending properties and social identities."""
        found = set()
        for step in ("properties", "social"):
            states = (Step.DONE, Step.PENDING) if imported else (Step.DONE, Step.DONE)
            if self._scalar(f"SELECT 1 FROM users WHERE run_id = ? AND {step} IN (?, ?) LIMIT 1", (run_id, *states)):
                found.add(step)
        if self._scalar("SELECT 1 FROM roles WHERE run_id = ? AND permissions = ? LIMIT 1", (run_id, Step.DONE)):
            found.add("permissions")
        return found
