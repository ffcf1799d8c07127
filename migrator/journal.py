"""The run journal: one SQLite database that records every step of every user, durably.

Why SQLite: a migration of 500,000 users runs for hours; the process may be killed at any point.
WAL mode lets a commit be one fsync'd append, so we can commit small batches of completed steps
often; a crash loses only steps in flight, and those are recovered by looking users up in Kinde
(never by creating again). The journal is also the staging area between the stages, which is what
keeps memory flat: fetched users are written here, not held in lists.

This is the only module that holds SQL. Every other module calls a method named for what it does
(``mark_for_recheck``, ``reset_failed``, ``record_outcomes``), and every ``sqlite3`` error becomes a
:class:`~migrator.errors.JournalError` here, so a full disk or a locked file gives a message and an
exit code, never a traceback.

It never holds a secret or a password digest: digests are re-read from the Clerk CSV export by byte
offset when a password is about to be set. File mode 0600: it does hold emails.

Schema (``SCHEMA_VERSION`` 2; version 1 journals gain the ``identities`` columns on open)::

    runs(id, started_at, ended_at, mode 'run'|'dry-run', status RunStatus, config_fingerprint,
         config_summary JSON, export_path, export_fingerprint, source_count, fetch_done, fetch_cursor,
         fetch_cursor_at)
    export_index(run_id, user_id, offset, row_number, hasher, has_digest)      -- CSV row locations
    users(run_id, clerk_id, seq, plan JSON (no password material), email_key, username_key,
          phone_key, hasher, password_method, password_problem,
          state UserState, lookup Lookup, created Created, password PasswordStep, flags FlagsStep,
          identities IdentitiesStep, missing_identities JSON,   -- identities Kinde refused in a create
          properties PropertiesStep, social SocialStep, mfa 0|1,  -- property values, social identities
          kinde_id, skip_reason, skip_detail, attempts,
          error_code, error_message, error_retryable, updated_at,
          created_pass)                                -- the pass (passes.number) whose create made the user
    problems(run_id, clerk_id, kind, message)                 -- per-user warnings for the report
    organizations(run_id, clerk_org_id, body JSON, kinde_code, state, property_values JSON, properties)
    roles(run_id, key, body JSON, state, permission_bodies JSON, permissions PermissionsStep)
    memberships(run_id, clerk_user_id, clerk_org_id, role_key, state MembershipState, error)
    updates(run_id, clerk_id, kinde_id, patch JSON, identities JSON, password, state StepState|'failed', error)
                                                  -- a catch-up's changes to users already in Kinde
    deletions(run_id, kind 'user'|'organization'|'role', key, kinde_ref, state DeletionState, detail)
                                                  -- users gone from Clerk (sync), what an undo removes
    definitions(run_id, kind DefinitionKind, scope, key, created 0|1)   -- undo provenance of definitions
    property_writes(run_id, clerk_org_id, kinde_code, key, previous, written)  -- organization values written
    user_writes(run_id, clerk_id, kind UserWriteKind, key, kinde_id, previous JSON, written JSON, identity_id)
                                                  -- a catch-up's writes to users in Kinde, with what Kinde held
                                                  -- before (recorded before each request): its undo restores
    passes(run_id, number, kind 'start'|'resume'|'retry-failed', started_at, counts_before JSON)
                                                  -- each pass over a run: what the run had done before it
    runs also carry parent_run_id (a catch-up's or undo's base run) and run_options JSON (since,
    canary selection, delete_removed); organizations and roles carry created_here (undo provenance).
    users.password_settled_ms: from when a password change in Clerk is news (catch-ups); runs.started_ms:
    the start to the ms (both NULL in older journals: derived from the run, started_at to the second).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from migrator.errors import JournalError

SCHEMA_VERSION = 2
JOURNAL_FILE = "journal.sqlite3"
LOCK_FILE = "lock"


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed-with-failures"
    FAILED = "failed"  # stopped by an error; `resume` continues
    INTERRUPTED = "interrupted"  # Ctrl-C; `resume` continues
    CANCELLED = "cancelled"  # the operator declined to write; `resume` asks again
    ABORTED = "aborted"  # the credential check failed: nothing of the run happened


class UserState(StrEnum):
    """A user's overall state in a run."""

    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


class Lookup(StrEnum):
    PENDING = "pending"
    RECHECK = "recheck"  # absent before, maybe created since by this run (a crash, a timeout)
    FOUND = "found"
    ABSENT = "absent"
    NA = "n/a"


class Created(StrEnum):
    PENDING = "pending"
    CREATED = "created"  # by this run
    EARLIER = "earlier"  # by an earlier run of this journal
    EXISTED = "existed"  # in Kinde, not ours: left untouched
    NA = "n/a"


class PasswordStep(StrEnum):
    PENDING = "pending"
    SET = "set"
    RESET = "reset"  # no importable password: a reset is requested (flags step)
    NA = "n/a"


class FlagsStep(StrEnum):
    """Password-reset request and suspension."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class IdentitiesStep(StrEnum):
    """Identities Kinde did not create inside a successful create, added again one by one."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class PropertiesStep(StrEnum):
    """Mapped metadata written as Kinde properties (``PATCH /users/{id}/properties``); also organizations'."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class SocialStep(StrEnum):
    """Clerk external accounts linked as Kinde social identities on their mapped connections."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class PermissionsStep(StrEnum):
    """A role's Clerk permissions attached to the Kinde role (``PATCH /roles/{id}/permissions``)."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class MembershipState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    EARLIER = "earlier"  # added by an earlier run for the same Kinde user
    FAILED = "failed"
    NA = "n/a"  # the user is not migrated by this run


class DeletionState(StrEnum):
    """A deletion a catch-up found (a user gone from Clerk) or an undo planned."""

    PENDING = "pending"  # to delete
    LISTED = "listed"  # gone from Clerk, reported only (no --delete-removed)
    DELETED = "deleted"  # a DELETE Kinde confirmed
    GONE = "already-gone"  # already gone: Kinde proved it absent (its not-found answer, or a list without it); nothing sent
    KEPT = "kept"  # not ours after all (provenance), or still in use: left in Kinde
    FAILED = "failed"
    # an exported user deleted from Clerk before its import reached Kinde: nothing to delete or create
    NOT_IN_KINDE = "not-in-kinde"


class DefinitionKind(StrEnum):
    """What ``definitions`` records for an undo: Kinde definitions a run created, and its attachments."""

    PERMISSION = "permission"
    PROPERTY = "property"  # scope: its context, 'usr' or 'org'
    PROPERTY_CATEGORY = "property_category"  # scope: its context; Kinde's API cannot delete one
    ROLE_PERMISSION = "role_permission"  # scope: the role key; key: the permission key


class UserWriteKind(StrEnum):
    """What ``user_writes`` records of a catch-up's update to a user already in Kinde (its undo's material)."""

    PROFILE = "profile"  # key: the PATCH field (given_name, family_name, is_suspended); previous: Kinde's value
    IDENTITY_ADDED = "identity_added"  # key: type:value; identity_id once Kinde answered
    IDENTITY_REMOVED = "identity_removed"  # key: type:value; previous: type, value, is_confirmed, is_primary
    PASSWORD = "password"  # a password set from the fresh export (key ''): never restorable, no digest kept
    PASSWORD_RESET = "password_reset"  # a reset requested (key '')


class StepState(StrEnum):
    """Organizations and roles: created (or found) in Kinde, or not yet."""

    PENDING = "pending"
    DONE = "done"


# ``users.carried`` bits: steps an earlier run of this journal finished for the same Kinde user
CARRIED_PASSWORD = 1
CARRIED_FLAGS = 2

STEP_COLUMNS = ("lookup", "created", "password", "flags", "identities", "properties", "social")
UNMAPPED_PROVIDER = "social_unmapped"  # problems.kind of a user's external account with no Kinde connection
NOT_CARRIED_ACCOUNT = "social_not_carried"  # problems.kind of an external account no Kinde identity can carry
LOOKUP_FIELDS = ("email", "username", "phone")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    config_summary TEXT NOT NULL,
    export_path TEXT,
    export_fingerprint TEXT,
    source_count INTEGER,
    fetch_done INTEGER NOT NULL DEFAULT 0,
    fetch_cursor TEXT,
    fetch_cursor_at INTEGER,
    started_ms INTEGER
);
CREATE TABLE IF NOT EXISTS export_index(
    run_id INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    offset INTEGER NOT NULL,
    row_number INTEGER NOT NULL,
    hasher TEXT,
    has_digest INTEGER NOT NULL,
    PRIMARY KEY (run_id, user_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users(
    run_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    plan TEXT,
    email_key TEXT,
    username_key TEXT,
    phone_key TEXT,
    hasher TEXT,
    password_method TEXT,
    password_problem TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    lookup TEXT NOT NULL DEFAULT 'pending',
    created TEXT NOT NULL DEFAULT 'pending',
    password TEXT NOT NULL DEFAULT 'pending',
    flags TEXT NOT NULL DEFAULT 'pending',
    kinde_id TEXT,
    skip_reason TEXT,
    skip_detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    error_retryable INTEGER,
    updated_at TEXT,
    identities TEXT NOT NULL DEFAULT 'n/a',
    missing_identities TEXT,
    properties TEXT NOT NULL DEFAULT 'n/a',
    social TEXT NOT NULL DEFAULT 'n/a',
    mfa INTEGER NOT NULL DEFAULT 0,
    export_target TEXT,
    password_settled_ms INTEGER,
    created_pass INTEGER,
    PRIMARY KEY (run_id, clerk_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_seq ON users(run_id, seq);
CREATE INDEX IF NOT EXISTS users_state ON users(run_id, state);
CREATE INDEX IF NOT EXISTS users_email ON users(run_id, email_key);
CREATE INDEX IF NOT EXISTS users_username ON users(run_id, username_key);
CREATE INDEX IF NOT EXISTS users_phone ON users(run_id, phone_key);
-- provenance: which earlier run created a given Kinde user (Journal.earlier_steps), without a table scan
CREATE INDEX IF NOT EXISTS users_kinde ON users(kinde_id);
-- verify: is a Kinde user's Clerk-shaped provided_id known to this journal (any run)?
CREATE INDEX IF NOT EXISTS users_clerk ON users(clerk_id);
CREATE TABLE IF NOT EXISTS problems(
    run_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS problems_run ON problems(run_id, clerk_id);
CREATE TABLE IF NOT EXISTS updates(
    run_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    kinde_id TEXT NOT NULL,
    patch TEXT NOT NULL,
    identities TEXT NOT NULL,
    password INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    PRIMARY KEY (run_id, clerk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deletions(
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    kinde_ref TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    detail TEXT,
    PRIMARY KEY (run_id, kind, key)
) WITHOUT ROWID;
-- a Clerk user's deletions across runs (export and catch-up lookups by clerk id: one search, not a scan per user)
CREATE INDEX IF NOT EXISTS deletions_key ON deletions(kind, key);
CREATE TABLE IF NOT EXISTS organizations(
    run_id INTEGER NOT NULL,
    clerk_org_id TEXT NOT NULL,
    body TEXT NOT NULL,
    kinde_code TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    property_values TEXT,
    properties TEXT NOT NULL DEFAULT 'n/a',
    PRIMARY KEY (run_id, clerk_org_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roles(
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    permission_bodies TEXT,
    permissions TEXT NOT NULL DEFAULT 'n/a',
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memberships(
    run_id INTEGER NOT NULL,
    clerk_user_id TEXT NOT NULL,
    clerk_org_id TEXT NOT NULL,
    role_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    PRIMARY KEY (run_id, clerk_user_id, clerk_org_id)
) WITHOUT ROWID;
-- verify: Kinde as read back (kinde_users, kinde_members: only the latest verify's rows are kept),
-- which Kinde user answers for which Clerk user, and every difference found
CREATE TABLE IF NOT EXISTS verifications(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS kinde_users(
    verify_id INTEGER NOT NULL,
    kinde_id TEXT NOT NULL,
    provided_id TEXT,
    email_key TEXT,
    first_name TEXT,
    last_name TEXT,
    is_suspended INTEGER,
    identities TEXT,
    PRIMARY KEY (verify_id, kinde_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kinde_users_provided ON kinde_users(verify_id, provided_id);
CREATE INDEX IF NOT EXISTS kinde_users_email ON kinde_users(verify_id, email_key);
CREATE TABLE IF NOT EXISTS kinde_members(
    verify_id INTEGER NOT NULL,
    kinde_id TEXT NOT NULL,
    org_code TEXT NOT NULL,
    roles TEXT NOT NULL,
    PRIMARY KEY (verify_id, kinde_id, org_code)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verify_matches(
    verify_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    kinde_id TEXT NOT NULL,
    PRIMARY KEY (verify_id, clerk_id, kinde_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS verify_matches_kinde ON verify_matches(verify_id, kinde_id);
CREATE TABLE IF NOT EXISTS verify_findings(
    verify_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    clerk_id TEXT,
    kinde_id TEXT,
    field TEXT,
    expected TEXT,
    found TEXT
);
CREATE INDEX IF NOT EXISTS verify_findings_kind ON verify_findings(verify_id, kind);
-- verify --fresh: Clerk's users as re-read for this verify, mapped with the run's settings (plan NULL: skipped)
CREATE TABLE IF NOT EXISTS verify_plans(
    verify_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    plan TEXT,
    PRIMARY KEY (verify_id, clerk_id)
) WITHOUT ROWID;
-- undo provenance of Kinde definitions: what a run created, found, or attached. kind
-- 'permission' | 'property' | 'property_category' | 'role_permission'; scope: a property's or category's
-- context ('usr'|'org'), a role_permission's role key, '' otherwise. created = 1 is recorded just before
-- the create (or attach) is sent, after a read found it missing: a crash in between cannot lose it.
CREATE TABLE IF NOT EXISTS definitions(
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, kind, scope, key)
) WITHOUT ROWID;
-- property values a run wrote on organizations, with the value before its first write (undo restores it)
CREATE TABLE IF NOT EXISTS property_writes(
    run_id INTEGER NOT NULL,
    clerk_org_id TEXT NOT NULL,
    kinde_code TEXT NOT NULL,
    key TEXT NOT NULL,
    previous TEXT,
    written TEXT NOT NULL,
    PRIMARY KEY (run_id, clerk_org_id, key)
) WITHOUT ROWID;
-- a catch-up's writes to users already in Kinde, each recorded before its request with what Kinde held
-- before (the first previous of the run is kept: a resume reads back its own write); ``migrator undo`` restores
CREATE TABLE IF NOT EXISTS user_writes(
    run_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    kinde_id TEXT NOT NULL,
    previous TEXT,
    written TEXT,
    identity_id TEXT,
    PRIMARY KEY (run_id, clerk_id, kind, key)
) WITHOUT ROWID;
-- a run's passes: its start, then each resume or retry-failed of the same run id. counts_before: the run's
-- outcome counts when the pass began, so a summary tells what this pass did apart from earlier passes
CREATE TABLE IF NOT EXISTS passes(
    run_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    counts_before TEXT NOT NULL,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
"""

# Columns added after version 1: (table, column, declaration). Added on open when missing.
_ADDED_COLUMNS = (
    ("users", "identities", "TEXT NOT NULL DEFAULT 'n/a'"),
    ("users", "missing_identities", "TEXT"),
    ("memberships", "error", "TEXT"),
    ("runs", "fetch_cursor_at", "INTEGER"),
    ("users", "carried", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "properties", "TEXT NOT NULL DEFAULT 'n/a'"),
    ("users", "social", "TEXT NOT NULL DEFAULT 'n/a'"),
    ("users", "mfa", "INTEGER NOT NULL DEFAULT 0"),
    ("organizations", "property_values", "TEXT"),
    ("organizations", "properties", "TEXT NOT NULL DEFAULT 'n/a'"),
    ("roles", "permission_bodies", "TEXT"),
    ("roles", "permissions", "TEXT NOT NULL DEFAULT 'n/a'"),
    ("runs", "parent_run_id", "INTEGER"),
    ("runs", "run_options", "TEXT"),
    ("organizations", "created_here", "INTEGER NOT NULL DEFAULT 0"),
    ("roles", "created_here", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "export_target", "TEXT"),  # export runs: 'api' for users listed in api-users.csv
    # 1 from just before this run sends a role's / organization's create until its outcome is recorded
    ("roles", "create_intent", "INTEGER NOT NULL DEFAULT 0"),
    ("organizations", "create_intent", "INTEGER NOT NULL DEFAULT 0"),
    # catch-ups: the Unix ms after which a password change in Clerk is news to Kinde (NULL: derived from the run)
    ("users", "password_settled_ms", "INTEGER"),
    ("runs", "started_ms", "INTEGER"),  # the start to the ms (started_at is to the second; NULL in old journals)
    ("users", "created_pass", "INTEGER"),  # the pass (passes.number) whose create made this Kinde user
)

_LOOKUP_WHERE = {
    "email": "email_key IS NOT NULL",
    "username": "email_key IS NULL AND username_key IS NOT NULL",
    "phone": "email_key IS NULL AND username_key IS NULL AND phone_key IS NOT NULL",
}
_USER_FIELDS = frozenset(
    {
        "plan", "phone_key", "state", "lookup", "created", "password", "flags", "identities",
        "missing_identities", "properties", "social", "kinde_id", "skip_reason", "skip_detail", "attempts", "error_code",
        "error_message", "error_retryable", "password_method", "password_problem", "carried",
        "password_settled_ms",
    }
)  # fmt: skip
_RUN_FIELDS = frozenset({"ended_at", "status", "source_count", "fetch_done", "fetch_cursor", "fetch_cursor_at"})


class DuplicateExportRow(Exception):
    """The same user id twice in the export: the caller names the file (``InputError``)."""

    def __init__(self, user_id: str, row_number: int, first_row: int | None) -> None:
        super().__init__(user_id)
        self.user_id = user_id
        self.row_number = row_number
        self.first_row = first_row


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def now_ms() -> int:
    """The current instant as Unix ms, the precision of Clerk's timestamps."""
    return int(datetime.now(UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Run:
    id: int
    started_at: str
    ended_at: str | None
    mode: str
    status: str
    config_fingerprint: str
    config_summary: dict[str, Any]
    export_path: str | None
    export_fingerprint: str | None
    source_count: int | None
    fetch_done: bool
    fetch_cursor: str | None  # the last user staged, where a resumed fetch continues (None: from the start)
    fetch_cursor_at: int | None  # that user's created_at: a page "after" it holding older users ignored it
    parent_run_id: int | None = None  # a catch-up's or undo's base run
    run_options: dict[str, Any] | None = None  # since, selection, delete_removed (cutover runs)
    started_ms: int | None = None  # the start as Unix ms (None: a journal older than the column)

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    @property
    def writes_users(self) -> bool:
        """False for a dry run and for an export to import files (read scopes are enough)."""
        return self.mode not in ("dry-run", "export")


@dataclass(frozen=True)
class SharedIdentity:
    """One identity key held by several staged users, keeper first (essential holders, then oldest)."""

    key: str  # "email:a@b.c", "username:ann", "phone:+1..."
    holders: tuple[tuple[str, bool], ...]  # (clerk_id, essential to that user)


class Journal:
    """Typed access to the journal database. One instance per process; not thread-safe."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE
        self._depth = 0
        self._lock_fd: int | None = None
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._upgrade()
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the run journal {self.path}: {exc}") from None
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    def _upgrade(self) -> None:
        for table, column, declaration in _ADDED_COLUMNS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        self.release()
        self._db.close()

    # -- the one place sqlite3 errors become JournalError ------------------------------------------
    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _many(self, sql: str, rows: Iterable[Sequence[Any] | dict[str, Any]]) -> sqlite3.Cursor:
        try:
            return self._db.executemany(sql, rows)
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return rows[0][0] if rows else None

    def _error(self, exc: sqlite3.Error) -> JournalError:
        return JournalError(
            f"the run journal {self.path} failed: {exc} (a full disk or another program holding the file?);"
            " nothing after the last completed step was lost: fix the cause, then `migrator resume`",
            writing=True,
        )

    # -- one writer at a time ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the state directory for this process: two migrators on one journal could both
        decide to create the same user. The OS drops the lock when the process dies, however."""
        path = self.path.parent / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise JournalError(
                f"another migrator process (pid {holder}) is using {self.path.parent}: let it finish or stop it"
                " first; two processes must never work on one journal"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def in_use(self) -> bool:
        """True while some process holds the state directory (a 'running' run is really running)."""
        path = self.path.parent / LOCK_FILE
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- transactions ------------------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        """``with journal.transaction():`` one commit for many statements; nested blocks join the outer one."""
        return _Transaction(self)

    def sqlite_mode(self) -> str:
        """The journal mode in force (``wal``), for tests and diagnostics."""
        return str(self._scalar("PRAGMA journal_mode"))

    # -- runs --------------------------------------------------------------------------------------
    def start_run(
        self,
        *,
        mode: str,
        fingerprint: str,
        summary: dict[str, Any],
        export_path: str | None,
        export_fingerprint: str | None,
        parent_run_id: int | None = None,
        run_options: dict[str, Any] | None = None,
    ) -> Run:
        cursor = self._exec(
            "INSERT INTO runs(started_at, mode, status, config_fingerprint, config_summary, export_path,"
            " export_fingerprint, parent_run_id, run_options, started_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                now_iso(),
                mode,
                RunStatus.RUNNING,
                fingerprint,
                json.dumps(summary, sort_keys=True),
                export_path,
                export_fingerprint,
                parent_run_id,
                json.dumps(run_options, sort_keys=True) if run_options is not None else None,
                now_ms(),
            ),
        )
        return self.run(int(cursor.lastrowid or 0))

    def run(self, run_id: int | None = None) -> Run:
        """The run with this id, or the latest one."""
        if run_id is None:
            rows = self._rows("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
            if not rows:
                raise JournalError(f"no run recorded in {self.path}: start one with `migrator run`")
        else:
            rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
            if not rows:
                raise JournalError(f"no run {run_id} in {self.path}")
        return _run_from_row(rows[0])

    def _set_run(self, run_id: int, **fields: Any) -> None:
        unknown = set(fields) - _RUN_FIELDS
        if unknown:
            raise ValueError(f"not run fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._exec(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    def reopen_run(self, run_id: int) -> None:
        """A resumed or retried run is running again, with no end time."""
        self._set_run(run_id, status=RunStatus.RUNNING, ended_at=None)

    def end_run(self, run_id: int, status: RunStatus) -> None:
        self._set_run(run_id, status=status, ended_at=now_iso())

    def mark_run(self, run_id: int, status: RunStatus) -> None:
        """Stopped (failed, interrupted) without an end: `resume` continues it."""
        self._set_run(run_id, status=status)

    def record_source_count(self, run_id: int, count: int) -> None:
        self._set_run(run_id, source_count=count)

    def record_fetch_cursor(self, run_id: int, cursor: str, created_at: int | None) -> None:
        self._set_run(run_id, fetch_cursor=cursor, fetch_cursor_at=created_at)

    def record_fetch_done(self, run_id: int, done: bool = True) -> None:
        """``done=False`` with the cursor cleared: the next resume fetches everything again (a gap was found)."""
        if done:
            self._set_run(run_id, fetch_done=1)
        else:
            self._set_run(run_id, fetch_done=0, fetch_cursor=None, fetch_cursor_at=None)

    # -- export index ------------------------------------------------------------------------------
    def add_export_entries(self, run_id: int, entries: Sequence[tuple[str, int, int, str | None, bool]]) -> None:
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
                    first = self.export_entry(run_id, row[1])
                    raise DuplicateExportRow(row[1], row[3], first["row_number"] if first else None) from None
        finally:
            self._exec("RELEASE export_batch")

    def export_entry(self, run_id: int, user_id: str) -> sqlite3.Row | None:
        rows = self._rows("SELECT * FROM export_index WHERE run_id = ? AND user_id = ?", (run_id, user_id))
        return rows[0] if rows else None

    def export_count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM export_index WHERE run_id = ?", (run_id,))

    def export_only_users(self, run_id: int, limit: int = 1000) -> list[str]:
        """Ids in the CSV export that the API did not return (deleted since the export?)."""
        rows = self._rows(
            "SELECT e.user_id FROM export_index e LEFT JOIN users u ON u.run_id = e.run_id AND u.clerk_id = e.user_id"
            " WHERE e.run_id = ? AND u.clerk_id IS NULL ORDER BY e.row_number LIMIT ?",
            (run_id, limit),
        )
        return [r[0] for r in rows]

    # -- staging users -----------------------------------------------------------------------------
    def stage_users(self, run_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Insert fetched users; an id seen before (a page shifted) is ignored. Returns new rows."""
        before = self._db.total_changes
        self._many(
            "INSERT OR IGNORE INTO users(run_id, clerk_id, seq, plan, email_key, username_key, phone_key, hasher,"
            " password_method, password_problem, state, lookup, created, password, flags,"
            " skip_reason, skip_detail, updated_at, properties, social, mfa)"
            " VALUES (:run_id, :clerk_id, :seq, :plan, :email_key, :username_key, :phone_key, :hasher,"
            " :password_method, :password_problem, :state, :lookup, :created, :password, :flags,"
            " :skip_reason, :skip_detail, :updated_at, :properties, :social, :mfa)",
            [
                {"run_id": run_id, "updated_at": now_iso(), "properties": "n/a", "social": "n/a", "mfa": 0, **row}
                for row in rows
            ],
        )
        return self._db.total_changes - before

    def staged_count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM users WHERE run_id = ?", (run_id,))

    def is_staged(self, run_id: int, clerk_id: str) -> bool:
        return self._scalar("SELECT 1 FROM users WHERE run_id = ? AND clerk_id = ?", (run_id, clerk_id)) is not None

    def last_staged(self, run_id: int) -> tuple[str | None, int]:
        """(clerk id of the last staged user, next seq): where a resumed fetch continues."""
        rows = self._rows("SELECT clerk_id, seq FROM users WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,))
        return (rows[0][0], rows[0][1] + 1) if rows else (None, 0)

    # -- reading users -----------------------------------------------------------------------------
    def _iter_users(
        self, run_id: int, where: str, params: Sequence[Any] = (), batch: int = 500
    ) -> Iterator[sqlite3.Row]:
        """Users in fetch order, read in batches by seq so memory stays flat and updates are safe."""
        last = -1
        while True:
            rows = self._rows(
                f"SELECT * FROM users WHERE run_id = ? AND seq > ? AND ({where}) ORDER BY seq LIMIT ?",
                (run_id, last, *params, batch),
            )
            if not rows:
                return
            yield from rows
            last = rows[-1]["seq"]

    def pending_users(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "state = ?", (UserState.PENDING,))

    def users_to_look_up(self, run_id: int, field: str) -> Iterator[sqlite3.Row]:
        """Pending users not yet looked up (or to look up again), whose lookup key is ``field``:
        email when they have one, else username, else phone."""
        return self._iter_users(
            run_id,
            f"state = ? AND lookup IN (?, ?) AND {_LOOKUP_WHERE[field]}",
            (UserState.PENDING, Lookup.PENDING, Lookup.RECHECK),
            batch=1000,
        )

    def skipped_users(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "state = ?", (UserState.SKIPPED,))

    def failed_users(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "state = ?", (UserState.FAILED,))

    def users_with_password_problem(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "password_problem IS NOT NULL")

    def users_with_password_set(self, run_id: int) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "password = ?", (PasswordStep.SET,))

    def all_users(self, run_id: int, batch: int = 500) -> Iterator[sqlite3.Row]:
        return self._iter_users(run_id, "1", batch=batch)

    def id_map(self, run_id: int) -> Iterator[tuple[str, str, str | None]]:
        """(clerk id, Kinde id, email) of every user this run placed in Kinde or found there."""
        for row in self._iter_users(run_id, "kinde_id IS NOT NULL AND state != ?", (UserState.SKIPPED,)):
            yield row["clerk_id"], row["kinde_id"], row["email_key"]

    def user(self, run_id: int, clerk_id: str) -> sqlite3.Row | None:
        rows = self._rows("SELECT * FROM users WHERE run_id = ? AND clerk_id = ?", (run_id, clerk_id))
        return rows[0] if rows else None

    def pending_count(self, run_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM users WHERE run_id = ? AND state = ?", (run_id, UserState.PENDING))

    def to_look_up_count(self, run_id: int) -> int:
        return self._scalar(
            "SELECT COUNT(*) FROM users WHERE run_id = ? AND state = ? AND lookup IN (?, ?)",
            (run_id, UserState.PENDING, Lookup.PENDING, Lookup.RECHECK),
        )

    # -- writing users -----------------------------------------------------------------------------
    def update_user(self, run_id: int, clerk_id: str, **fields: Any) -> None:
        unknown = set(fields) - _USER_FIELDS
        if unknown:
            raise ValueError(f"not user fields: {sorted(unknown)}")
        fields["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        params: list[Any] = list(fields.values())
        if fields.get("created") == Created.CREATED:  # the pass whose create made it (run_passes.py)
            assignments += ", created_pass = COALESCE(created_pass, (SELECT MAX(number) FROM passes WHERE run_id = ?))"
            params.append(run_id)
        self._exec(f"UPDATE users SET {assignments} WHERE run_id = ? AND clerk_id = ?", (*params, run_id, clerk_id))

    def record_outcomes(self, run_id: int, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Apply many per-user step results in one commit (the load stage batches its commits)."""
        with self.transaction():
            for clerk_id, fields in updates:
                self.update_user(run_id, clerk_id, **fields)

    def record_absent(self, run_id: int, clerk_id: str) -> None:
        self.update_user(run_id, clerk_id, lookup=Lookup.ABSENT)

    def skip_user(self, run_id: int, clerk_id: str, reason: str, detail: str) -> None:
        self.update_user(
            run_id,
            clerk_id,
            state=UserState.SKIPPED,
            skip_reason=reason,
            skip_detail=detail,
            lookup=Lookup.NA,
            created=Created.NA,
            password=PasswordStep.NA,
            flags=FlagsStep.NA,
            properties=PropertiesStep.NA,
            social=SocialStep.NA,
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
    def earlier_steps(self, run_id: int, clerk_id: str, kinde_id: str) -> sqlite3.Row | None:
        """The password and flags steps of the latest other run of this journal that created this Kinde user."""
        rows = self._rows(
            "SELECT password, flags, identities, missing_identities, properties, social FROM users WHERE clerk_id = ? AND kinde_id = ?"
            " AND run_id != ? AND created IN (?, ?) ORDER BY run_id DESC LIMIT 1",
            (clerk_id, kinde_id, run_id, Created.CREATED, Created.EARLIER),
        )
        return rows[0] if rows else None

    def earlier_run_meant_to_create(self, run_id: int, clerk_id: str) -> bool:
        """Another (real) run looked this user up, found nothing and may have died mid-create."""
        return (
            self._scalar(
                "SELECT 1 FROM users u JOIN runs r ON r.id = u.run_id WHERE u.clerk_id = ? AND u.run_id != ?"
                " AND r.mode = 'run' AND u.created = ? AND u.lookup IN (?, ?) LIMIT 1",
                (clerk_id, run_id, Created.PENDING, Lookup.ABSENT, Lookup.RECHECK),
            )
            is not None
        )

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

    # -- counts for plans, summaries and status ----------------------------------------------------
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
        count = self._count_users
        return {
            "staged": self.staged_count(run_id),
            "to_create": count(run_id, "state = ? AND created = ?", (p, Created.PENDING)),
            "already_present": count(
                run_id, "created IN (?, ?) AND state = ?", (Created.EXISTED, Created.EARLIER, UserState.DONE)
            ),
            "to_finish": count(run_id, "state = ? AND created IN (?, ?)", (p, Created.CREATED, Created.EARLIER)),
            "failed": count(run_id, "state = ?", (UserState.FAILED,)),
            "password_imports": dict(
                self._rows(
                    "SELECT password_method, COUNT(*) FROM users WHERE run_id = ? AND state = ? AND password = ?"
                    " AND password_method IS NOT NULL GROUP BY password_method",
                    (run_id, p, s.PENDING),
                )
            ),
            "password_resets": count(
                run_id, "state = ? AND password = ? AND flags = ?", (p, s.RESET, FlagsStep.PENDING)
            ),
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
        count = self._count_users
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
                (PasswordStep.RESET, FlagsStep.DONE, CARRIED_FLAGS),
            ),
            "done_earlier": count(run_id, "carried != 0 AND state = ?", (UserState.DONE,)),
        }

    def _count_users(self, run_id: int, where: str, params: Sequence[Any] = ()) -> int:
        return self._scalar(f"SELECT COUNT(*) FROM users WHERE run_id = ? AND ({where})", (run_id, *params))

    # -- problems ----------------------------------------------------------------------------------
    def add_problems(self, run_id: int, problems: Iterable[tuple[str, str, str]]) -> None:
        self._many(
            "INSERT INTO problems(run_id, clerk_id, kind, message) VALUES (?, ?, ?, ?)",
            ((run_id, cid, kind, msg) for cid, kind, msg in problems),
        )

    def problems(self, run_id: int, limit: int | None = None) -> list[sqlite3.Row]:
        sql = "SELECT clerk_id, kind, message FROM problems WHERE run_id = ? ORDER BY rowid"
        if limit is None:
            return self._rows(sql, (run_id,))
        return self._rows(sql + " LIMIT ?", (run_id, limit))

    # -- organizations, roles, memberships ---------------------------------------------------------
    def stage_organization(self, run_id: int, clerk_org_id: str, body: dict[str, Any]) -> None:
        self._exec(
            "INSERT OR IGNORE INTO organizations(run_id, clerk_org_id, body) VALUES (?, ?, ?)",
            (run_id, clerk_org_id, json.dumps(body)),
        )

    def stage_role(self, run_id: int, key: str, body: dict[str, Any]) -> None:
        self._exec("INSERT OR IGNORE INTO roles(run_id, key, body) VALUES (?, ?, ?)", (run_id, key, json.dumps(body)))

    def stage_membership(self, run_id: int, clerk_user_id: str, clerk_org_id: str, role_key: str) -> None:
        self._exec(
            "INSERT OR IGNORE INTO memberships(run_id, clerk_user_id, clerk_org_id, role_key) VALUES (?, ?, ?, ?)",
            (run_id, clerk_user_id, clerk_org_id, role_key),
        )

    def organizations(self, run_id: int) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM organizations WHERE run_id = ? ORDER BY clerk_org_id", (run_id,))

    def roles(self, run_id: int) -> list[sqlite3.Row]:
        return self._rows("SELECT * FROM roles WHERE run_id = ? ORDER BY key", (run_id,))

    def record_organization(self, run_id: int, clerk_org_id: str, kinde_code: str, *, created: bool = False) -> None:
        """``created``: this run created it (an undo may delete it), rather than finding it there. Settles
        the create's intent, if one was open."""
        self._exec(
            "UPDATE organizations SET kinde_code = ?, state = ?, created_here = MAX(created_here, ?), create_intent = 0"
            " WHERE run_id = ? AND clerk_org_id = ?",
            (kinde_code, StepState.DONE, int(created), run_id, clerk_org_id),
        )

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

    def record_organization_intent(self, run_id: int, clerk_org_id: str) -> bool:
        """Like ``record_role_intent``, for the organization of ``clerk_org_id`` (its external_id in Kinde)."""
        return self._open_intent("organizations", "clerk_org_id", run_id, clerk_org_id)

    def _open_intent(self, table: str, key_column: str, run_id: int, key: str) -> bool:
        with self.transaction():
            earlier = self._scalar(
                f"SELECT create_intent FROM {table} WHERE run_id = ? AND {key_column} = ?", (run_id, key)
            )
            self._exec(f"UPDATE {table} SET create_intent = 1 WHERE run_id = ? AND {key_column} = ?", (run_id, key))
        return bool(earlier)

    def pending_memberships(self, run_id: int) -> list[sqlite3.Row]:
        """Memberships still to add whose user and organization both exist in Kinde."""
        return self._rows(
            "SELECT m.clerk_user_id, m.clerk_org_id, m.role_key, u.kinde_id, o.kinde_code FROM memberships m"
            " JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id AND u.kinde_id IS NOT NULL"
            " AND u.created IN (?, ?)"
            " JOIN organizations o ON o.run_id = m.run_id AND o.clerk_org_id = m.clerk_org_id"
            " AND o.kinde_code IS NOT NULL"
            " WHERE m.run_id = ? AND m.state = ? ORDER BY m.clerk_org_id, m.clerk_user_id",
            (Created.CREATED, Created.EARLIER, run_id, MembershipState.PENDING),
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
        """Memberships of users this run will not migrate (skipped, not ours, never fetched): 'n/a'."""
        return self._exec(
            "UPDATE memberships SET state = ? WHERE run_id = ? AND state = ? AND clerk_user_id NOT IN"
            " (SELECT clerk_id FROM users WHERE run_id = ? AND state != ? AND created != ?)",
            (MembershipState.NA, run_id, MembershipState.PENDING, run_id, UserState.SKIPPED, Created.EXISTED),
        ).rowcount

    def memberships_of(self, run_id: int, clerk_id: str) -> list[tuple[str, str]]:
        """(clerk org id, role key) of one staged user, by the memberships primary key (no scan)."""
        rows = self._rows(
            "SELECT clerk_org_id, role_key FROM memberships WHERE run_id = ? AND clerk_user_id = ? ORDER BY clerk_org_id",
            (run_id, clerk_id),
        )
        return [(row["clerk_org_id"], row["role_key"]) for row in rows]

    def membership_counts(self, run_id: int) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) FROM memberships WHERE run_id = ? GROUP BY state", (run_id,))
        return {r[0]: r[1] for r in rows}

    def failed_memberships(self, run_id: int) -> list[sqlite3.Row]:
        return self._rows(
            "SELECT clerk_user_id, clerk_org_id, role_key, error FROM memberships WHERE run_id = ? AND state = ?"
            " ORDER BY clerk_org_id, clerk_user_id",
            (run_id, MembershipState.FAILED),
        )

    # -- verify: Kinde read back, compared in SQL (flat memory at a million users) ------------------
    def start_verification(self, run_id: int) -> int:
        """A new verify of ``run_id``; the Kinde snapshots of earlier verifies are dropped (they are large)."""
        with self.transaction():
            for table in ("kinde_users", "kinde_members", "verify_matches", "verify_plans"):
                self._exec(f"DELETE FROM {table}")
            cursor = self._exec("INSERT INTO verifications(run_id, started_at) VALUES (?, ?)", (run_id, now_iso()))
        return int(cursor.lastrowid or 0)

    def end_verification(self, verify_id: int, counts: dict[str, Any]) -> None:
        self._exec(
            "UPDATE verifications SET ended_at = ?, counts = ? WHERE id = ?",
            (now_iso(), json.dumps(counts, sort_keys=True), verify_id),
        )

    def last_verification(self, run_id: int) -> dict[str, Any] | None:
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

    def store_kinde_users(self, verify_id: int, users: Sequence[tuple[str, Any, Any, Any, Any, Any]]) -> None:
        """(kinde id, provided_id, email, first name, last name, suspended) of one page of Kinde users."""
        with self.transaction():
            self._many(
                "INSERT OR REPLACE INTO kinde_users(verify_id, kinde_id, provided_id, email_key, first_name, last_name,"
                " is_suspended) VALUES (?, ?, ?, LOWER(?), ?, ?, ?)",
                [(verify_id, *user) for user in users],
            )

    def store_kinde_members(self, verify_id: int, org_code: str, members: Sequence[tuple[str, list[str]]]) -> None:
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
            (verify_id, verify_id, undo_run_id, DeletionState.DELETED, DeletionState.GONE),
        )

    def undone_user_count(self, undo_run_id: int) -> int:
        """Users an undo counted deleted or already gone (what its verify expects absent)."""
        return self._scalar(
            "SELECT COUNT(*) FROM deletions WHERE run_id = ? AND kind = 'user' AND state IN (?, ?)",
            (undo_run_id, DeletionState.DELETED, DeletionState.GONE),
        )

    def users_to_read_back(
        self, verify_id: int, run_id: int, after: tuple[str, str] = ("", ""), limit: int = 500, imported: bool = False
    ) -> list[sqlite3.Row]:
        """The next matched users of this run (by Clerk id) created by this journal (``imported``: every matched
        user, an export run's files created them), with their plan, state and the Kinde record as listed: what
        per-user reads and the drift comparison need."""
        return self._rows(
            "SELECT u.clerk_id, COALESCE(f.plan, u.plan) AS plan, u.state, u.created, u.flags, u.properties,"
            " u.social, k.kinde_id, k.first_name, k.last_name, k.is_suspended, k.identities FROM verify_matches m"
            " JOIN users u ON u.run_id = ? AND u.clerk_id = m.clerk_id"
            " LEFT JOIN verify_plans f ON f.verify_id = m.verify_id AND f.clerk_id = m.clerk_id"
            " JOIN kinde_users k ON k.verify_id = m.verify_id AND k.kinde_id = m.kinde_id"
            " WHERE m.verify_id = ? AND (? OR u.created IN (?, ?)) AND (m.clerk_id, m.kinde_id) > (?, ?)"
            " ORDER BY m.clerk_id, m.kinde_id LIMIT ?",
            (run_id, verify_id, imported, Created.CREATED, Created.EARLIER, *after, limit),
        )

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
    ) -> list[sqlite3.Row]:
        """Planned memberships of users this journal created (``imported``: of every matched user), beside what
        Kinde lists (roles NULL: absent)."""
        return self._rows(
            "SELECT m.clerk_user_id, m.clerk_org_id, m.role_key, m.state, o.kinde_code, vm.kinde_id, km.roles"
            " FROM memberships m JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id"
            " JOIN organizations o ON o.run_id = m.run_id AND o.clerk_org_id = m.clerk_org_id"
            # unary +: SQLite would otherwise carry the paging range onto vm.clerk_id and scan it per row
            " JOIN verify_matches vm ON vm.verify_id = ? AND vm.clerk_id = +m.clerk_user_id"
            " LEFT JOIN kinde_members km ON km.verify_id = vm.verify_id AND km.kinde_id = vm.kinde_id"
            " AND km.org_code = o.kinde_code"
            " WHERE m.run_id = ? AND (? OR u.created IN (?, ?)) AND (m.clerk_user_id, m.clerk_org_id) > (?, ?)"
            " ORDER BY m.clerk_user_id, m.clerk_org_id LIMIT ?",
            (verify_id, run_id, imported, Created.CREATED, Created.EARLIER, *after, limit),
        )

    def find_extra_memberships(self, verify_id: int, run_id: int) -> None:
        """Kinde memberships in the run's organizations that no plan of this run asked for: drift."""
        self._exec(
            "INSERT INTO verify_findings(verify_id, kind, clerk_id, kinde_id, field, expected, found)"
            " SELECT ?, 'drift', vm.clerk_id, km.kinde_id, 'membership', NULL, km.org_code FROM kinde_members km"
            " JOIN verify_matches vm ON vm.verify_id = km.verify_id AND vm.kinde_id = km.kinde_id"
            " JOIN organizations o ON o.run_id = ? AND o.kinde_code = km.org_code"
            " WHERE km.verify_id = ? AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.run_id = ?"
            " AND m.clerk_user_id = vm.clerk_id AND m.clerk_org_id = o.clerk_org_id)",
            (verify_id, run_id, verify_id, run_id),
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

    def mark_api_path(self, run_id: int, clerk_ids: Sequence[str]) -> None:
        """Export runs: these users are listed in api-users.csv (no import file carries them)."""
        self._many(
            "UPDATE users SET export_target = 'api' WHERE run_id = ? AND clerk_id = ?",
            [(run_id, clerk_id) for clerk_id in clerk_ids],
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

    def findings(self, verify_id: int, kind: str | None = None, limit: int = -1) -> Iterator[sqlite3.Row]:
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
            yield from rows
            last = rows[-1]["rowid"]
            if limit >= 0:
                limit -= len(rows)
                if limit <= 0:
                    return

    def kinde_user_count(self, verify_id: int) -> int:
        return self._scalar("SELECT COUNT(*) FROM kinde_users WHERE verify_id = ?", (verify_id,))

    def expected_user_count(self, run_id: int) -> int:
        return self._count_users(run_id, "state != ?", (UserState.SKIPPED,))

    # -- metadata, social identities, permissions, MFA ----------------------------------------------
    def users_for_mfa_report(self, run_id: int) -> Iterator[sqlite3.Row]:
        """Users enrolled in MFA in Clerk (a TOTP secret in the export, or the API's flags)."""
        return self._iter_users(run_id, "mfa = 1")

    def extras_counts(self, run_id: int) -> dict[str, Any]:
        """The plan's view of the extra steps: what remains to write, who must re-enrol MFA."""
        pending = UserState.PENDING
        return {
            "properties_to_write": self._count_users(
                run_id, "state = ? AND properties = ?", (pending, PropertiesStep.PENDING)
            ),
            "social_to_link": self._count_users(run_id, "state = ? AND social = ?", (pending, SocialStep.PENDING)),
            "mfa_reenrol": self._count_users(run_id, "mfa = 1"),
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
                "SELECT COUNT(*) FROM roles WHERE run_id = ? AND permissions = ?", (run_id, PermissionsStep.PENDING)
            ),
        }

    def written_extras(self, run_id: int, *, imported: bool = False) -> set[str]:
        """Which extra steps the run wrote ('properties', 'social', 'permissions'): what verify reads back.
        ``imported``: an export run, whose files carried the users' pending properties and social identities."""
        found = set()
        for step, done in (("properties", PropertiesStep.DONE), ("social", SocialStep.DONE)):
            states = (done, "pending") if imported else (done, done)
            if self._scalar(f"SELECT 1 FROM users WHERE run_id = ? AND {step} IN (?, ?) LIMIT 1", (run_id, *states)):
                found.add(step)
        if self._scalar(
            "SELECT 1 FROM roles WHERE run_id = ? AND permissions = ? LIMIT 1", (run_id, PermissionsStep.DONE)
        ):
            found.add("permissions")
        return found

    def sample_user_with_extras(self, run_id: int) -> sqlite3.Row | None:
        """A pending user whose plan carries properties or social identities (the dry run's example)."""
        rows = self._rows(
            "SELECT clerk_id, plan FROM users WHERE run_id = ? AND state = ? AND (properties = ? OR social = ?)"
            " ORDER BY seq LIMIT 1",
            (run_id, UserState.PENDING, PropertiesStep.PENDING, SocialStep.PENDING),
        )
        return rows[0] if rows else None

    def stage_role_permissions(self, run_id: int, key: str, permissions: list[dict[str, Any]]) -> None:
        """The Kinde permission bodies a staged role should carry ('pending' until attached)."""
        self._exec(
            "UPDATE roles SET permission_bodies = ?, permissions = ? WHERE run_id = ? AND key = ?",
            (json.dumps(permissions), PermissionsStep.PENDING if permissions else PermissionsStep.NA, run_id, key),
        )

    def record_role_permissions(self, run_id: int, key: str) -> None:
        self._exec("UPDATE roles SET permissions = ? WHERE run_id = ? AND key = ?", (PermissionsStep.DONE, run_id, key))

    def stage_organization_properties(self, run_id: int, clerk_org_id: str, values: dict[str, str]) -> None:
        self._exec(
            "UPDATE organizations SET property_values = ?, properties = ? WHERE run_id = ? AND clerk_org_id = ?",
            (json.dumps(values), PropertiesStep.PENDING if values else PropertiesStep.NA, run_id, clerk_org_id),
        )

    def record_organization_properties(self, run_id: int, clerk_org_id: str) -> None:
        self._exec(
            "UPDATE organizations SET properties = ? WHERE run_id = ? AND clerk_org_id = ?",
            (PropertiesStep.DONE, run_id, clerk_org_id),
        )

    # -- passes: a run's start, then each resume or retry-failed ------------------------------------
    def begin_pass(self, run_id: int, kind: str, counts_before: dict[str, Any]) -> int:
        """Record a pass over the run with the run's counts as they stand; returns its number. A run of a
        journal older than passes was started unrecorded: its first recorded resume is pass 2."""
        first = 0 if kind == "start" else 1
        number = self._scalar("SELECT COALESCE(MAX(number), ?) + 1 FROM passes WHERE run_id = ?", (first, run_id))
        self._exec(
            "INSERT INTO passes(run_id, number, kind, started_at, counts_before) VALUES (?, ?, ?, ?, ?)",
            (run_id, number, kind, now_iso(), json.dumps(counts_before, sort_keys=True)),
        )
        return int(number)

    def created_in_pass(self, run_id: int, number: int) -> int:
        """Users this pass created in Kinde and finished (a user an earlier, killed pass created is not one)."""
        return self._count_users(
            run_id, "created = ? AND state = ? AND created_pass = ?", (Created.CREATED, UserState.DONE, number)
        )

    def passes(self, run_id: int) -> list[dict[str, Any]]:
        """The run's recorded passes, first first: number, kind, started_at, counts_before."""
        rows = self._rows("SELECT * FROM passes WHERE run_id = ? ORDER BY number", (run_id,))
        return [{**dict(r), "counts_before": json.loads(r["counts_before"])} for r in rows]

    # -- cutover: run chains, catch-up updates, deletions (sync, undo) --------------------------------
    def runs(self) -> list[Run]:
        """Every run, oldest first (``status`` shows the chain)."""
        return [_run_from_row(r) for r in self._rows("SELECT * FROM runs ORDER BY id")]

    def latest_run(self, modes: Sequence[str]) -> Run | None:
        placeholders = ", ".join("?" for _ in modes)
        rows = self._rows(f"SELECT * FROM runs WHERE mode IN ({placeholders}) ORDER BY id DESC LIMIT 1", tuple(modes))
        return _run_from_row(rows[0]) if rows else None

    def child_run(self, parent_run_id: int, mode: str) -> Run | None:
        """The latest run of ``mode`` based on ``parent_run_id`` (an undo of it, say)."""
        rows = self._rows(
            "SELECT * FROM runs WHERE parent_run_id = ? AND mode = ? ORDER BY id DESC LIMIT 1", (parent_run_id, mode)
        )
        return _run_from_row(rows[0]) if rows else None

    def known_user(self, clerk_id: str) -> sqlite3.Row | None:
        """The latest finished row of a user this journal put in Kinde (or found ours there), unless an
        undo or a catch-up deleted it since: what Kinde holds for it now."""
        rows = self._rows(
            # runs first (a handful), then each run's row by primary key: no scan of every user
            "SELECT u.* FROM runs r CROSS JOIN users u ON u.run_id = r.id AND u.clerk_id = ? WHERE r.mode != 'dry-run'"
            " AND u.created IN (?, ?) AND u.kinde_id IS NOT NULL AND u.state = ? AND u.plan IS NOT NULL"
            " AND NOT EXISTS (SELECT 1 FROM deletions d WHERE d.kind = 'user' AND d.key = u.clerk_id AND d.state IN (?, ?))"
            # a catch-up's row counts only once its update reached Kinde (not when it was declined or cut off)
            " AND NOT EXISTS (SELECT 1 FROM updates up WHERE up.run_id = u.run_id AND up.clerk_id = u.clerk_id"
            " AND up.state != ?)"
            # a catch-up being undone (or undone) no longer says what Kinde holds: its undo restores the row before
            " AND NOT (r.mode = 'sync' AND EXISTS (SELECT 1 FROM runs un WHERE un.parent_run_id = r.id"
            " AND un.mode = 'undo' AND un.status != ?))"
            " ORDER BY u.run_id DESC LIMIT 1",
            (
                clerk_id, Created.CREATED, Created.EARLIER, UserState.DONE, DeletionState.DELETED, DeletionState.GONE,
                StepState.DONE, RunStatus.CANCELLED,
            ),
        )  # fmt: skip
        return rows[0] if rows else None

    def earlier_skip(self, run_id: int, clerk_id: str) -> sqlite3.Row | None:
        """The latest other real run's row for this user, when that run skipped it (reason, detail, run)."""
        rows = self._rows(
            "SELECT u.run_id, u.skip_reason, u.skip_detail, u.state FROM runs r CROSS JOIN users u"
            " ON u.run_id = r.id AND u.clerk_id = ? WHERE u.run_id != ? AND r.mode != 'dry-run'"
            " ORDER BY u.run_id DESC LIMIT 1",
            (clerk_id, run_id),
        )
        return rows[0] if rows and rows[0]["state"] == UserState.SKIPPED else None

    def start_sweep(self) -> int:
        """Gather once (one scan) the users this journal put in Kinde and no catch-up found gone yet, so
        that ``sweep_batch`` pages them by clerk id through an index: a catch-up sweeps them for deletions."""
        self._exec("DROP TABLE IF EXISTS temp.sweep")
        self._exec("CREATE TEMP TABLE sweep(clerk_id TEXT PRIMARY KEY, kinde_id TEXT NOT NULL) WITHOUT ROWID")
        return self._exec(
            "INSERT INTO temp.sweep SELECT u.clerk_id, MAX(u.kinde_id) FROM users u JOIN runs r ON r.id = u.run_id"
            " WHERE r.mode != 'dry-run' AND u.created IN (?, ?) AND u.kinde_id IS NOT NULL"
            " AND u.clerk_id NOT IN (SELECT key FROM deletions WHERE kind = 'user' AND state IN (?, ?, ?, ?))"
            " GROUP BY u.clerk_id",
            (
                Created.CREATED,
                Created.EARLIER,
                DeletionState.LISTED,
                DeletionState.DELETED,
                DeletionState.GONE,
                DeletionState.PENDING,
            ),
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
            " WHERE r.mode IN ('run', 'sync', 'export') AND NOT EXISTS (SELECT 1 FROM deletions d WHERE d.kind = 'user'"
            " AND d.key = u.clerk_id AND d.state IN (?, ?, ?, ?, ?))",
            (
                DeletionState.LISTED,
                DeletionState.DELETED,
                DeletionState.GONE,
                DeletionState.PENDING,
                DeletionState.NOT_IN_KINDE,
            ),
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

    def updates_to_apply(self, run_id: int) -> list[sqlite3.Row]:
        """Pending updates, and failed ones again (a resume retries them)."""
        return self._rows(
            "SELECT * FROM updates WHERE run_id = ? AND state != ? ORDER BY clerk_id", (run_id, StepState.DONE)
        )

    def record_update(self, run_id: int, clerk_id: str, *, error: str | None = None) -> None:
        """An update applied (or failed: the user's row fails with it, so the run does not exit 0)."""
        with self.transaction():
            self._exec(
                "UPDATE updates SET state = ?, error = ? WHERE run_id = ? AND clerk_id = ?",
                ("failed" if error else StepState.DONE, error, run_id, clerk_id),
            )
            if error:
                self.update_user(
                    run_id, clerk_id, state=UserState.FAILED, error_code="UPDATE_FAILED", error_message=error
                )
            else:
                self.update_user(run_id, clerk_id, state=UserState.DONE, error_code=None, error_message=None)

    def update_counts(self, run_id: int) -> dict[str, int]:
        return dict(self._rows("SELECT state, COUNT(*) FROM updates WHERE run_id = ? GROUP BY state", (run_id,)))

    def add_deletions(self, run_id: int, kind: str, items: Sequence[tuple[str, str]], state: DeletionState) -> None:
        """(key, kinde ref) pairs to delete or to list; an item already recorded keeps its state."""
        self._many(
            "INSERT OR IGNORE INTO deletions(run_id, kind, key, kinde_ref, state) VALUES (?, ?, ?, ?, ?)",
            [(run_id, kind, key, ref, state) for key, ref in items],
        )

    def deletions(self, run_id: int, kind: str, states: Sequence[DeletionState] | None = None) -> list[sqlite3.Row]:
        rows = self._rows("SELECT * FROM deletions WHERE run_id = ? AND kind = ? ORDER BY key", (run_id, kind))
        return [r for r in rows if states is None or r["state"] in states]

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

    def created_users(self, run_id: int) -> list[tuple[str, str]]:
        """(clerk id, kinde id) of the users this run created in Kinde (not found there, not adopted)."""
        rows = self._rows(
            "SELECT clerk_id, kinde_id FROM users WHERE run_id = ? AND created = ? AND kinde_id IS NOT NULL"
            " ORDER BY seq",
            (run_id, Created.CREATED),
        )
        return [(r[0], r[1]) for r in rows]

    def created_organizations(self, run_id: int) -> list[tuple[str, str]]:
        """(clerk org id, Kinde code) of the organizations this run created, and of those whose create it
        sent without recording the outcome (code '': the run stopped first; Kinde is asked by external_id)."""
        rows = self._rows(
            "SELECT clerk_org_id, COALESCE(kinde_code, '') FROM organizations WHERE run_id = ?"
            " AND ((created_here = 1 AND kinde_code IS NOT NULL) OR create_intent = 1) ORDER BY clerk_org_id",
            (run_id,),
        )
        return [(r[0], r[1]) for r in rows]

    def created_roles(self, run_id: int) -> list[str]:
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
                " AND r.mode != 'dry-run' AND m.state IN (?, ?) AND NOT EXISTS (SELECT 1 FROM runs u"
                " WHERE u.parent_run_id = m.run_id AND u.mode = 'undo') LIMIT 1",
                (run_id, key, MembershipState.DONE, MembershipState.EARLIER),
            )
            is not None
        )

    # -- undo of definitions: permissions, property definitions, attachments, organization values -----
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

    def property_writes_on_found_organizations(self, run_id: int) -> list[sqlite3.Row]:
        """Values this run wrote on organizations it did not create (an undo restores the previous value)."""
        return self._rows(
            "SELECT w.clerk_org_id, w.kinde_code, w.key, w.previous, w.written FROM property_writes w"
            " JOIN organizations o ON o.run_id = w.run_id AND o.clerk_org_id = w.clerk_org_id"
            " WHERE w.run_id = ? AND o.created_here = 0 ORDER BY w.clerk_org_id, w.key",
            (run_id,),
        )

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

    def user_writes(self, run_id: int) -> list[sqlite3.Row]:
        """Every write a catch-up recorded, by user then kind and key (an undo plans from them)."""
        return self._rows("SELECT * FROM user_writes WHERE run_id = ? ORDER BY clerk_id, kind, key", (run_id,))

    def drop_unselected_organizations(self, run_id: int) -> int:
        """A canary: organizations none of its users belongs to are not created."""
        return self._exec(
            "DELETE FROM organizations WHERE run_id = ? AND clerk_org_id NOT IN (SELECT m.clerk_org_id FROM"
            " memberships m JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id WHERE m.run_id = ?)",
            (run_id, run_id),
        ).rowcount

    # -- export runs: the users the dashboard import created (a catch-up or undo of an export) -------
    def record_run_option(self, run_id: int, key: str, value: Any) -> None:
        """One more entry in the run's ``run_options`` (an export run: where it wrote its import files)."""
        options = self.run(run_id).run_options or {}
        self._exec(
            "UPDATE runs SET run_options = ? WHERE id = ?",
            (json.dumps({**options, key: value}, sort_keys=True), run_id),
        )

    def imported_to_adopt(self, run_id: int) -> int:
        """Users of an export run written to an import file whose Kinde id is not known yet (less those a
        catch-up found deleted from Clerk before they reached Kinde)."""
        return self._count_users(
            run_id,
            "state != ? AND export_target IS NULL AND kinde_id IS NULL AND NOT EXISTS (SELECT 1 FROM deletions d"
            f" WHERE d.kind = 'user' AND d.key = users.clerk_id AND d.state = ?) AND NOT {_CREATED_ELSEWHERE}",
            (UserState.SKIPPED, DeletionState.NOT_IN_KINDE, Created.CREATED),
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
                f" AND NOT {_CREATED_ELSEWHERE}",
                [
                    (kinde_id, UserState.DONE, Lookup.FOUND, Created.CREATED, PasswordStep.PENDING, PasswordStep.SET,
                     now_iso(), run_id, clerk_id, UserState.SKIPPED, Created.CREATED)
                    for clerk_id, kinde_id in found
                ],
            ).rowcount  # fmt: skip

    def exported_not_in_kinde(self, run_id: int) -> Iterator[sqlite3.Row]:
        """(clerk_id, export_target) of the export run's users Kinde does not hold for this journal: not found
        by a read of Kinde (import files), not created since by another run (``run --only-file``), and not
        found deleted from Clerk by a catch-up (``DeletionState.NOT_IN_KINDE``)."""
        last = ""
        while rows := self._rows(
            "SELECT u.clerk_id, u.export_target FROM users u WHERE u.run_id = ? AND u.clerk_id > ? AND u.state != ?"
            " AND u.kinde_id IS NULL AND NOT EXISTS (SELECT 1 FROM users o JOIN runs r ON r.id = o.run_id"
            " WHERE o.clerk_id = u.clerk_id AND o.run_id != u.run_id AND r.mode != 'dry-run'"
            " AND o.created IN (?, ?) AND o.kinde_id IS NOT NULL) AND NOT EXISTS (SELECT 1 FROM deletions d"
            " WHERE d.kind = 'user' AND d.key = u.clerk_id AND d.state = ?) ORDER BY u.clerk_id LIMIT 1000",
            (run_id, last, UserState.SKIPPED, Created.CREATED, Created.EARLIER, DeletionState.NOT_IN_KINDE),
        ):
            yield from rows
            last = rows[-1]["clerk_id"]


# another real run of this journal created a Kinde user for the row's Clerk id (one parameter: Created.CREATED)
_CREATED_ELSEWHERE = (
    "EXISTS (SELECT 1 FROM users o JOIN runs r ON r.id = o.run_id WHERE o.clerk_id = users.clerk_id"
    " AND o.run_id != users.run_id AND r.mode != 'dry-run' AND o.created = ? AND o.kinde_id IS NOT NULL)"
)


def _run_from_row(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        mode=row["mode"],
        status=row["status"],
        config_fingerprint=row["config_fingerprint"],
        config_summary=json.loads(row["config_summary"]),
        export_path=row["export_path"],
        export_fingerprint=row["export_fingerprint"],
        source_count=row["source_count"],
        fetch_done=bool(row["fetch_done"]),
        fetch_cursor=row["fetch_cursor"],
        fetch_cursor_at=row["fetch_cursor_at"],
        parent_run_id=row["parent_run_id"],
        run_options=json.loads(row["run_options"]) if row["run_options"] else None,
        started_ms=row["started_ms"],
    )


class _Transaction:
    """One BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); inner blocks join the outermost one."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __enter__(self) -> None:
        if self.journal._depth == 0:
            self.journal._exec("BEGIN IMMEDIATE")
        self.journal._depth += 1

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.journal._depth -= 1
        if self.journal._depth == 0:
            self.journal._exec("ROLLBACK" if exc_type else "COMMIT")
