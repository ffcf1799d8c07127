"""Old journals upgraded by the numbered migrations: journals built with the DDL of earlier releases
(copied here as they were, comments left out) open, gain every migration in order, keep their rows, and
end with the schema of a new journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from migrator.journal import JOURNAL_FILE, Created, Journal, Lookup, RunMode, Step, UserState
from migrator.journal.schema import MIGRATIONS, migrate, migration

# The schema of the last release before migrations were recorded (``SCHEMA_VERSION`` 2).
V2_SCHEMA = """
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
CREATE INDEX IF NOT EXISTS users_kinde ON users(kinde_id);
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
CREATE TABLE IF NOT EXISTS verify_plans(
    verify_id INTEGER NOT NULL,
    clerk_id TEXT NOT NULL,
    plan TEXT,
    PRIMARY KEY (verify_id, clerk_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS definitions(
    run_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    created INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, kind, scope, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS property_writes(
    run_id INTEGER NOT NULL,
    clerk_org_id TEXT NOT NULL,
    kinde_code TEXT NOT NULL,
    key TEXT NOT NULL,
    previous TEXT,
    written TEXT NOT NULL,
    PRIMARY KEY (run_id, clerk_org_id, key)
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS passes(
    run_id INTEGER NOT NULL,
    number INTEGER NOT NULL,
    kind TEXT NOT NULL,
    started_at TEXT NOT NULL,
    counts_before TEXT NOT NULL,
    PRIMARY KEY (run_id, number)
) WITHOUT ROWID;
"""

# Columns that release added on open when missing, in its order.
ADDED_COLUMNS = (
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
    ("users", "export_target", "TEXT"),
    ("roles", "create_intent", "INTEGER NOT NULL DEFAULT 0"),
    ("organizations", "create_intent", "INTEGER NOT NULL DEFAULT 0"),
    ("users", "password_settled_ms", "INTEGER"),
    ("runs", "started_ms", "INTEGER"),
    ("users", "created_pass", "INTEGER"),
)

# The first release's tables: that schema without any of the added columns (nor the later tables).
V1_SCHEMA = """
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


def _old_journal(path: Path, ddl: str, added: tuple[tuple[str, str, str], ...] = ()) -> None:
    """A journal as an older migrator left it: its DDL, some added columns, one run with one user."""
    path.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path / JOURNAL_FILE)
    with db:
        db.executescript(ddl)
        for table, column, declaration in added:
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        db.execute("INSERT INTO meta(key, value) VALUES ('schema_version', '2')")
        db.execute(
            "INSERT INTO runs(started_at, mode, status, config_fingerprint, config_summary, fetch_done)"
            " VALUES ('2025-01-02T03:04:05+00:00', 'run', 'completed', 'f', '{}', 1)"
        )
        db.execute(
            "INSERT INTO users(run_id, clerk_id, seq, plan, email_key, state, lookup, created, password, flags,"
            " kinde_id) VALUES (1, 'user_1', 0, '{}', 'a@example.com', 'done', 'found', 'created', 'n/a', 'done',"
            " 'kp_1')"
        )
        db.execute(
            "INSERT INTO memberships(run_id, clerk_user_id, clerk_org_id, role_key) VALUES (1, 'user_1', 'org_1', 'm')"
        )
    db.close()


def _schema(path: Path) -> dict[str, set[tuple]]:
    """Every table's columns (name, type, not null, default, primary key), and every index by name."""
    db = sqlite3.connect(path / JOURNAL_FILE)
    tables = [
        r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    ]
    shape: dict[str, set[tuple]] = {t: {tuple(r[1:]) for r in db.execute(f"PRAGMA table_info({t})")} for t in tables}
    shape["indexes"] = {
        (r[0],) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    }
    db.close()
    return shape


@pytest.mark.parametrize(
    ("ddl", "added"),
    [(V2_SCHEMA, ADDED_COLUMNS), (V2_SCHEMA, ADDED_COLUMNS[:9]), (V2_SCHEMA, ()), (V1_SCHEMA, ())],
    ids=["v2-every-added-column", "v2-some-added-columns", "v2-none-added", "v1-no-added-column"],
)
def test_an_old_journal_is_upgraded_in_order_to_a_new_journals_schema(tmp_path: Path, ddl: str, added) -> None:
    _old_journal(tmp_path / "old", ddl, added)
    journal = Journal(tmp_path / "old")

    assert [name for name, _ in journal.migrations()] == [m.name for m in MIGRATIONS]
    run = journal.runs.get(1)
    assert (run.mode, run.fetch_done, run.parent_run_id, run.run_options) == (RunMode.RUN, True, None, None)
    user = journal.users.get(1, "user_1")
    assert user is not None
    assert (user.state, user.lookup, user.created, user.kinde_id) == (
        UserState.DONE,
        Lookup.FOUND,
        Created.CREATED,
        "kp_1",
    )
    assert (user.identities, user.properties, user.social, user.carried, user.mfa) == (Step.NA, Step.NA, Step.NA, 0, 0)
    assert journal.organizations.membership_counts(1) == {"pending": 1}
    journal.close()
    Journal(tmp_path / "new").close()
    assert _schema(tmp_path / "old") == _schema(tmp_path / "new")


def test_migrations_are_numbered_in_order_and_each_is_applied_once(tmp_path: Path) -> None:
    names = [m.name for m in MIGRATIONS]
    assert [int(name.split("_")[0]) for name in names] == list(range(1, len(names) + 1))
    journal = Journal(tmp_path)
    applied = journal.migrations()
    journal.close()
    db = sqlite3.connect(tmp_path / JOURNAL_FILE, isolation_level=None)
    assert migrate(db) == []  # nothing left to apply: the next open changes nothing
    db.close()
    journal = Journal(tmp_path)
    assert journal.migrations() == applied
    journal.close()


def test_a_migration_declared_out_of_order_is_refused() -> None:
    def m099_too_far(db: sqlite3.Connection) -> None:
        raise AssertionError("never applied")

    with pytest.raises(ValueError, match="out of order"):
        migration(m099_too_far)
    assert MIGRATIONS[-1].name != "099_too_far"
