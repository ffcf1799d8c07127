"""The run journal: one SQLite database that records every step of every user, durably.

Why SQLite: a migration of 500,000 users runs for hours; the process may be killed at any point.
WAL mode lets a commit be one fsync'd append, so we can commit small batches of completed steps
often; a crash loses only steps in flight, and those are recovered by looking users up in Kinde
(never by creating again). The journal is also the staging area between the stages, which is what
keeps memory flat: fetched users are written here, not held in lists.

This package is the only place that holds SQL. :class:`Journal` owns the connection, the process lock
and transactions, and turns every ``sqlite3`` error into a :class:`~migrator.errors.JournalError`, once,
so a full disk or a locked file gives a message and an exit code, never a traceback. Everything else is
a repository per concern, reached as an attribute: ``journal.runs``, ``journal.users``,
``journal.exports``, ``journal.organizations``, ``journal.verify``, ``journal.cutover``; each method is
named for what it does and returns typed rows (``rows.py``). The schema is a list of numbered, named
migrations (``schema.py``); the states the rows hold are enums (``states.py``).

It never holds a secret or a password digest: digests are re-read from the Clerk CSV export by byte
offset when a password is about to be set. File mode 0600: it does hold emails.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from migrator.errors import JournalError
from migrator.journal.cutover import Cutover
from migrator.journal.exports import DuplicateExportRow, Exports
from migrator.journal.organizations import Organizations
from migrator.journal.rows import (
    Deletion,
    ExportEntry,
    Finding,
    MembershipComparison,
    Organization,
    Pass,
    PendingMembership,
    Problem,
    ReadBack,
    Role,
    Run,
    SharedIdentity,
    Update,
    UserRow,
    UserWrite,
)
from migrator.journal.runs import Runs
from migrator.journal.schema import applied_migrations, migrate
from migrator.journal.states import (
    CARRIED_FLAGS,
    CARRIED_PASSWORD,
    LOOKUP_FIELDS,
    NOT_CARRIED_ACCOUNT,
    STEP_COLUMNS,
    UNMAPPED_PROVIDER,
    Created,
    DefinitionKind,
    DeletionState,
    Lookup,
    MembershipState,
    PasswordStep,
    RunMode,
    RunStatus,
    Step,
    StepState,
    UserState,
    UserWriteKind,
)
from migrator.journal.users import NOTHING_TO_DO, UserFields, Users
from migrator.journal.verify import Verifications

__all__ = [
    "CARRIED_FLAGS",
    "CARRIED_PASSWORD",
    "LOOKUP_FIELDS",
    "NOTHING_TO_DO",
    "NOT_CARRIED_ACCOUNT",
    "STEP_COLUMNS",
    "UNMAPPED_PROVIDER",
    "Created",
    "DefinitionKind",
    "Deletion",
    "DeletionState",
    "DuplicateExportRow",
    "ExportEntry",
    "Finding",
    "Journal",
    "Lookup",
    "MembershipComparison",
    "MembershipState",
    "Organization",
    "Pass",
    "PasswordStep",
    "PendingMembership",
    "Problem",
    "ReadBack",
    "Role",
    "Run",
    "RunMode",
    "RunStatus",
    "SharedIdentity",
    "Step",
    "StepState",
    "Update",
    "UserFields",
    "UserRow",
    "UserState",
    "UserWrite",
    "UserWriteKind",
]

JOURNAL_FILE = "journal.sqlite3"
LOCK_FILE = "lock"


class Journal:
    """The journal database: its connection, lock and transactions; its repositories as attributes.
    One instance per process; not thread-safe."""

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
            migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the run journal {self.path}: {exc}") from None
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)
        self.runs = Runs(self)
        self.users = Users(self)
        self.exports = Exports(self, self.users)
        self.organizations = Organizations(self)
        self.verify = Verifications(self)
        self.cutover = Cutover(self, self.users)

    def close(self) -> None:
        self.release()
        self._db.close()

    def migrations(self) -> list[tuple[str, str]]:
        """(name, applied_at) of the schema migrations this journal has recorded, in order."""
        try:
            return applied_migrations(self._db)
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    # -- the one place sqlite3 errors become JournalError (repositories call these) -----------------
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

    def _changes(self) -> int:
        return self._db.total_changes

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
