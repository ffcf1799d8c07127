"""The run journal: one SQLite database that records every step of every user, durably.

Why SQLite: a migration of 500,000 users runs for hours; the process may be killed at any point.
WAL mode lets a commit be one fsync'd append, so we can commit small batches of completed steps
often; a crash loses only steps in flight, and those are recovered by looking users up in Kinde
(never by creating again). The journal is also the staging area between the stages, which is what
keeps memory flat: fetched users are written here, not held in lists.

It never holds a secret or a password digest: digests are re-read from the Clerk CSV export by byte
offset when a password is about to be set. File mode 0600: it does hold emails.

Schema (``SCHEMA_VERSION`` 1)::

    runs(id, started_at, ended_at, mode 'run'|'dry-run', status 'running'|'completed'|'failed'|
         'interrupted', config_fingerprint, config_summary JSON, export_path, export_fingerprint,
         source_count, fetch_done, fetch_cursor)
    export_index(run_id, user_id, offset, row_number, hasher, has_digest)      -- CSV row locations
    users(run_id, clerk_id, seq, plan JSON (no password material), email_key, username_key,
          phone_key, hasher, password_method, password_problem,
          state    'pending'|'done'|'skipped'|'failed',      -- overall
          lookup   'pending'|'recheck'|'found'|'absent'|'n/a', -- 'recheck': absent before, maybe
                                                       created since by this run (a crash, a timeout)
          created  'pending'|'created'|'earlier'|'existed'|'n/a', -- 'created' by this run;
                   'earlier': by an earlier run of this journal; 'existed': in Kinde, not ours
          password 'pending'|'set'|'reset'|'n/a',        -- 'n/a': nothing to do
          flags    'pending'|'done'|'n/a',                   -- reset request / suspension
          kinde_id, skip_reason, skip_detail, attempts,
          error_code, error_message, error_retryable, updated_at)
    problems(run_id, clerk_id, kind, message)                 -- per-user warnings for the report
    organizations(run_id, clerk_org_id, name, body JSON, kinde_code, state)
    roles(run_id, key, body JSON, state)
    memberships(run_id, clerk_user_id, clerk_org_id, role_key,
                state 'pending'|'done'|'earlier'|'failed'|'n/a')   -- the per-user membership step
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from migrator.errors import JournalError

SCHEMA_VERSION = 1
JOURNAL_FILE = "journal.sqlite3"
LOCK_FILE = "lock"

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
    fetch_cursor TEXT
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
    PRIMARY KEY (run_id, clerk_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_seq ON users(run_id, seq);
CREATE INDEX IF NOT EXISTS users_state ON users(run_id, state);
CREATE INDEX IF NOT EXISTS users_email ON users(run_id, email_key);
CREATE INDEX IF NOT EXISTS users_username ON users(run_id, username_key);
CREATE INDEX IF NOT EXISTS users_phone ON users(run_id, phone_key);
-- provenance: which earlier run created a given Kinde user (pipeline._adopt), without a table scan
CREATE INDEX IF NOT EXISTS users_kinde ON users(kinde_id);
CREATE TABLE IF NOT EXISTS problems(
    run_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS problems_run ON problems(run_id, clerk_id);
CREATE TABLE IF NOT EXISTS organizations(
    run_id INTEGER NOT NULL,
    clerk_org_id TEXT NOT NULL,
    body TEXT NOT NULL,
    kinde_code TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (run_id, clerk_org_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS roles(
    run_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS memberships(
    run_id INTEGER NOT NULL,
    clerk_user_id TEXT NOT NULL,
    clerk_org_id TEXT NOT NULL,
    role_key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (run_id, clerk_user_id, clerk_org_id)
) WITHOUT ROWID;
"""

STEP_COLUMNS = ("lookup", "created", "password", "flags")


class DuplicateExportRow(Exception):
    """The same user id twice in the export: the caller names the file (``InputError``)."""

    def __init__(self, user_id: str, row_number: int, first_row: int | None) -> None:
        super().__init__(user_id)
        self.user_id = user_id
        self.row_number = row_number
        self.first_row = first_row


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    fetch_cursor: str | None

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"


class Journal:
    """Thin, typed access to the journal database. One instance per process; not thread-safe."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / JOURNAL_FILE
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            os.chmod(self.path, 0o600)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.executescript(_SCHEMA)
            self.db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the run journal {self.path}: {exc}") from None
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                os.chmod(side, 0o600)

    def close(self) -> None:
        self.release()
        self.db.close()

    # -- one writer at a time ----------------------------------------------------------------------
    _lock_fd: int | None = None

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

    # -- transactions --------------------------------------------------------------------------
    def transaction(self) -> _Transaction:
        return _Transaction(self.db)

    # -- runs ------------------------------------------------------------------------------------
    def start_run(
        self,
        *,
        mode: str,
        fingerprint: str,
        summary: dict[str, Any],
        export_path: str | None,
        export_fingerprint: str | None,
    ) -> Run:
        cursor = self.db.execute(
            "INSERT INTO runs(started_at, mode, status, config_fingerprint, config_summary, export_path,"
            " export_fingerprint) VALUES (?, ?, 'running', ?, ?, ?, ?)",
            (
                now_iso(),
                mode,
                fingerprint,
                json.dumps(summary, sort_keys=True),
                export_path,
                export_fingerprint,
            ),
        )
        return self.run(int(cursor.lastrowid or 0))

    def run(self, run_id: int | None = None) -> Run:
        """The run with this id, or the latest one."""
        if run_id is None:
            row = self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                raise JournalError(f"no run recorded in {self.path}: start one with `migrator run`")
        else:
            row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise JournalError(f"no run {run_id} in {self.path}")
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
        )

    def set_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"ended_at", "status", "source_count", "fetch_done", "fetch_cursor"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not run fields: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))

    # -- export index ----------------------------------------------------------------------------
    def add_export_entries(self, run_id: int, entries: Sequence[tuple[str, int, int, str | None, bool]]) -> None:
        """Index export rows; a user id already indexed raises ``DuplicateExportRow`` (the export is corrupt)."""
        sql = "INSERT INTO export_index(run_id, user_id, offset, row_number, hasher, has_digest) VALUES (?, ?, ?, ?, ?, ?)"
        rows = [(run_id, uid, off, row, hasher, int(has)) for uid, off, row, hasher, has in entries]
        self.db.execute("SAVEPOINT export_batch")
        try:
            self.db.executemany(sql, rows)
        except sqlite3.IntegrityError:
            self.db.execute("ROLLBACK TO export_batch")
            for row in rows:  # find which one, to name both rows
                try:
                    self.db.execute(sql, row)
                except sqlite3.IntegrityError:
                    first = self.export_entry(run_id, row[1])
                    raise DuplicateExportRow(row[1], row[3], first["row_number"] if first else None) from None
        finally:
            self.db.execute("RELEASE export_batch")

    def export_entry(self, run_id: int, user_id: str) -> sqlite3.Row | None:
        return self.db.execute(
            "SELECT * FROM export_index WHERE run_id = ? AND user_id = ?", (run_id, user_id)
        ).fetchone()

    def export_count(self, run_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM export_index WHERE run_id = ?", (run_id,)).fetchone()[0]

    def export_only_users(self, run_id: int, limit: int = 1000) -> list[str]:
        """Ids in the CSV export that the API did not return (deleted since the export?)."""
        rows = self.db.execute(
            "SELECT e.user_id FROM export_index e LEFT JOIN users u ON u.run_id = e.run_id AND u.clerk_id = e.user_id"
            " WHERE e.run_id = ? AND u.clerk_id IS NULL ORDER BY e.row_number LIMIT ?",
            (run_id, limit),
        )
        return [r[0] for r in rows]

    def count_export_only(self, run_id: int) -> int:
        return self.db.execute(
            "SELECT COUNT(*) FROM export_index e LEFT JOIN users u ON u.run_id = e.run_id AND u.clerk_id = e.user_id"
            " WHERE e.run_id = ? AND u.clerk_id IS NULL",
            (run_id,),
        ).fetchone()[0]

    # -- users -----------------------------------------------------------------------------------
    def stage_users(self, run_id: int, rows: Sequence[dict[str, Any]]) -> int:
        """Insert fetched users; an id seen before (a page shifted) is ignored. Returns new rows."""
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO users(run_id, clerk_id, seq, plan, email_key, username_key, phone_key, hasher,"
            " password_method, password_problem, state, lookup, created, password, flags,"
            " skip_reason, skip_detail, updated_at)"
            " VALUES (:run_id, :clerk_id, :seq, :plan, :email_key, :username_key, :phone_key, :hasher,"
            " :password_method, :password_problem, :state, :lookup, :created, :password, :flags,"
            " :skip_reason, :skip_detail, :updated_at)",
            [{"run_id": run_id, "updated_at": now_iso(), **row} for row in rows],
        )
        return self.db.total_changes - before

    def staged_count(self, run_id: int) -> int:
        return self.db.execute("SELECT COUNT(*) FROM users WHERE run_id = ?", (run_id,)).fetchone()[0]

    def last_staged(self, run_id: int) -> tuple[str | None, int]:
        row = self.db.execute(
            "SELECT clerk_id, seq FROM users WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
        ).fetchone()
        return (row[0], row[1] + 1) if row else (None, 0)

    def update_user(self, run_id: int, clerk_id: str, **fields: Any) -> None:
        fields["updated_at"] = now_iso()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self.db.execute(
            f"UPDATE users SET {assignments} WHERE run_id = ? AND clerk_id = ?",
            (*fields.values(), run_id, clerk_id),
        )

    def update_users(self, run_id: int, updates: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Apply many per-user updates in one transaction (the load stage batches its commits)."""
        with self.transaction():
            for clerk_id, fields in updates:
                self.update_user(run_id, clerk_id, **fields)

    def iter_users(
        self, run_id: int, where: str = "1", params: Sequence[Any] = (), batch: int = 500
    ) -> Iterator[sqlite3.Row]:
        """Users in fetch order, read in batches by seq so memory stays flat and updates are safe."""
        last = -1
        while True:
            rows = self.db.execute(
                f"SELECT * FROM users WHERE run_id = ? AND seq > ? AND ({where}) ORDER BY seq LIMIT ?",
                (run_id, last, *params, batch),
            ).fetchall()
            if not rows:
                return
            yield from rows
            last = rows[-1]["seq"]

    def user(self, run_id: int, clerk_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM users WHERE run_id = ? AND clerk_id = ?", (run_id, clerk_id)).fetchone()

    def count(self, run_id: int, where: str = "1", params: Sequence[Any] = ()) -> int:
        return self.db.execute(
            f"SELECT COUNT(*) FROM users WHERE run_id = ? AND ({where})", (run_id, *params)
        ).fetchone()[0]

    def step_counts(self, run_id: int) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for column in ("state", *STEP_COLUMNS):
            rows = self.db.execute(
                f"SELECT {column}, COUNT(*) FROM users WHERE run_id = ? GROUP BY {column} ORDER BY {column}",
                (run_id,),
            )
            counts[column] = {r[0]: r[1] for r in rows}
        return counts

    def skip_counts(self, run_id: int) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT skip_reason, COUNT(*) FROM users WHERE run_id = ? AND state = 'skipped' GROUP BY skip_reason",
            (run_id,),
        )
        return {r[0]: r[1] for r in rows}

    def failure_groups(self, run_id: int) -> list[tuple[str, str, int]]:
        """Failed users grouped by error code, with one example message, commonest first.

        Not by message: messages name the user's own details (a Kinde id, a username), so grouping
        by them would list every failed user on a line of its own.
        """
        rows = self.db.execute(
            "SELECT COALESCE(error_code, ''), MIN(COALESCE(error_message, '')), COUNT(*) AS n FROM users"
            " WHERE run_id = ? AND state = 'failed' GROUP BY 1 ORDER BY n DESC, 1",
            (run_id,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    # -- problems ---------------------------------------------------------------------------------
    def add_problems(self, run_id: int, problems: Iterable[tuple[str, str, str]]) -> None:
        self.db.executemany(
            "INSERT INTO problems(run_id, clerk_id, kind, message) VALUES (?, ?, ?, ?)",
            ((run_id, cid, kind, msg) for cid, kind, msg in problems),
        )

    def problems(self, run_id: int, limit: int | None = None) -> list[sqlite3.Row]:
        sql = "SELECT clerk_id, kind, message FROM problems WHERE run_id = ? ORDER BY rowid"
        params: tuple[Any, ...] = (run_id,)
        if limit is not None:
            sql += " LIMIT ?"
            params = (run_id, limit)
        return self.db.execute(sql, params).fetchall()

    # -- organizations, roles, memberships -------------------------------------------------------
    def stage_organization(self, run_id: int, clerk_org_id: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO organizations(run_id, clerk_org_id, body) VALUES (?, ?, ?)",
            (run_id, clerk_org_id, json.dumps(body)),
        )

    def stage_role(self, run_id: int, key: str, body: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO roles(run_id, key, body) VALUES (?, ?, ?)", (run_id, key, json.dumps(body))
        )

    def stage_membership(self, run_id: int, clerk_user_id: str, clerk_org_id: str, role_key: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO memberships(run_id, clerk_user_id, clerk_org_id, role_key) VALUES (?, ?, ?, ?)",
            (run_id, clerk_user_id, clerk_org_id, role_key),
        )

    def organizations(self, run_id: int) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT * FROM organizations WHERE run_id = ? ORDER BY clerk_org_id", (run_id,)
        ).fetchall()

    def roles(self, run_id: int) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM roles WHERE run_id = ? ORDER BY key", (run_id,)).fetchall()

    def pending_memberships(self, run_id: int) -> list[sqlite3.Row]:
        """Memberships still to add whose user and organization both exist in Kinde."""
        return self.db.execute(
            "SELECT m.clerk_user_id, m.clerk_org_id, m.role_key, u.kinde_id, o.kinde_code FROM memberships m"
            " JOIN users u ON u.run_id = m.run_id AND u.clerk_id = m.clerk_user_id AND u.kinde_id IS NOT NULL"
            " AND u.created IN ('created', 'earlier')"
            " JOIN organizations o ON o.run_id = m.run_id AND o.clerk_org_id = m.clerk_org_id"
            " AND o.kinde_code IS NOT NULL"
            " WHERE m.run_id = ? AND m.state = 'pending' ORDER BY m.clerk_org_id, m.clerk_user_id",
            (run_id,),
        ).fetchall()

    def mark_memberships_done_earlier(self, run_id: int) -> int:
        """Memberships an earlier run of this journal already added for the same Kinde user."""
        return self.db.execute(
            "UPDATE memberships SET state = 'earlier' WHERE run_id = ? AND state = 'pending' AND EXISTS ("
            " SELECT 1 FROM memberships m2"
            " JOIN users u2 ON u2.run_id = m2.run_id AND u2.clerk_id = m2.clerk_user_id"
            " JOIN users u ON u.run_id = memberships.run_id AND u.clerk_id = memberships.clerk_user_id"
            " WHERE m2.run_id < memberships.run_id AND m2.clerk_user_id = memberships.clerk_user_id"
            " AND m2.clerk_org_id = memberships.clerk_org_id AND m2.role_key = memberships.role_key"
            " AND m2.state IN ('done', 'earlier') AND u2.kinde_id = u.kinde_id)",
            (run_id,),
        ).rowcount

    def settle_unmigrated_memberships(self, run_id: int) -> int:
        """Memberships of users this run will not migrate (skipped, not ours, never fetched): 'n/a'."""
        return self.db.execute(
            "UPDATE memberships SET state = 'n/a' WHERE run_id = ? AND state = 'pending' AND clerk_user_id NOT IN"
            " (SELECT clerk_id FROM users WHERE run_id = ? AND state != 'skipped' AND created != 'existed')",
            (run_id, run_id),
        ).rowcount

    def membership_counts(self, run_id: int) -> dict[str, int]:
        rows = self.db.execute("SELECT state, COUNT(*) FROM memberships WHERE run_id = ? GROUP BY state", (run_id,))
        return {r[0]: r[1] for r in rows}


class _Transaction:
    """``with journal.transaction():`` groups statements into one commit (or none on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
