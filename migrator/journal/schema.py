"""The journal's schema as numbered, named migrations, each recorded in the database when applied.

As sqlite-utils' ``sqlite-migrate`` does it: a migration is a function registered in order; the
``migrations`` table records its name and when it was applied; opening a journal applies, in order,
each one not recorded yet, each in its own transaction (two processes opening one journal cannot both
apply it). A migration is never edited once released: a change of schema is a new one at the end.

Journals written before migrations were recorded (``meta.schema_version`` 2) hold some of the columns
and tables added since their first release: every migration creates only what is missing
(``CREATE ... IF NOT EXISTS``, :func:`_add_column`), so such a journal is brought up in the same order
and ends with the same schema as a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Migration:
    name: str  # "001_initial": its number orders it, its name says what it does
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = []


def migration(apply: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    """Register ``m<NNN>_<name>`` as migration NNN (the next number: they are declared in order)."""
    number, _, name = apply.__name__.removeprefix("m").partition("_")
    if int(number) != len(MIGRATIONS) + 1:
        raise ValueError(f"migration {apply.__name__} is out of order")
    MIGRATIONS.append(Migration(f"{number}_{name}", apply))
    return apply


def _run(db: sqlite3.Connection, *statements: str) -> None:
    for statement in statements:
        db.execute(statement)


def _add_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """Only a journal older than the migrations can have it already (it was then added on open)."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in present:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations this journal has not recorded, in order; returns their names."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = []
    for step in MIGRATIONS:
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM migrations WHERE name = ?", (step.name,)).fetchone() is None:
                step.apply(db)
                db.execute(
                    "INSERT INTO migrations(name, applied_at) VALUES (?, ?)",
                    (step.name, datetime.now(UTC).isoformat(timespec="seconds")),
                )
                applied.append(step.name)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
    return applied


def applied_migrations(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, applied_at) of every migration this journal records, in the order applied."""
    return [(r[0], r[1]) for r in db.execute("SELECT name, applied_at FROM migrations ORDER BY rowid")]


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """Runs, the export index, staged users and their problems, organizations, roles, memberships."""
    _run(
        db,
        "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS runs(
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
        )""",
        """CREATE TABLE IF NOT EXISTS export_index(
            run_id INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            offset INTEGER NOT NULL,
            row_number INTEGER NOT NULL,
            hasher TEXT,
            has_digest INTEGER NOT NULL,
            PRIMARY KEY (run_id, user_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS users(
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
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS users_seq ON users(run_id, seq)",
        "CREATE INDEX IF NOT EXISTS users_state ON users(run_id, state)",
        "CREATE INDEX IF NOT EXISTS users_email ON users(run_id, email_key)",
        "CREATE INDEX IF NOT EXISTS users_username ON users(run_id, username_key)",
        "CREATE INDEX IF NOT EXISTS users_phone ON users(run_id, phone_key)",
        """CREATE TABLE IF NOT EXISTS problems(
            run_id INTEGER NOT NULL,
            clerk_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS problems_run ON problems(run_id, clerk_id)",
        """CREATE TABLE IF NOT EXISTS organizations(
            run_id INTEGER NOT NULL,
            clerk_org_id TEXT NOT NULL,
            body TEXT NOT NULL,
            kinde_code TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            PRIMARY KEY (run_id, clerk_org_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS roles(
            run_id INTEGER NOT NULL,
            key TEXT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            PRIMARY KEY (run_id, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS memberships(
            run_id INTEGER NOT NULL,
            clerk_user_id TEXT NOT NULL,
            clerk_org_id TEXT NOT NULL,
            role_key TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            PRIMARY KEY (run_id, clerk_user_id, clerk_org_id)
        ) WITHOUT ROWID""",
    )


@migration
def m002_missing_identities(db: sqlite3.Connection) -> None:
    """Identities Kinde did not create inside a successful create, added again one by one."""
    _add_column(db, "users", "identities", "TEXT NOT NULL DEFAULT 'n/a'")
    _add_column(db, "users", "missing_identities", "TEXT")


@migration
def m003_membership_errors(db: sqlite3.Connection) -> None:
    _add_column(db, "memberships", "error", "TEXT")


@migration
def m004_fetch_cursor_time(db: sqlite3.Connection) -> None:
    """The last staged user's created_at: a page "after" it holding older users ignored the cursor."""
    _add_column(db, "runs", "fetch_cursor_at", "INTEGER")


@migration
def m005_carried_steps(db: sqlite3.Connection) -> None:
    """``users.carried``: steps an earlier run of this journal finished for the same Kinde user."""
    _add_column(db, "users", "carried", "INTEGER NOT NULL DEFAULT 0")


@migration
def m006_metadata_social_mfa(db: sqlite3.Connection) -> None:
    """Properties, social identities, MFA re-enrolment; organization properties; role permissions."""
    _add_column(db, "users", "properties", "TEXT NOT NULL DEFAULT 'n/a'")
    _add_column(db, "users", "social", "TEXT NOT NULL DEFAULT 'n/a'")
    _add_column(db, "users", "mfa", "INTEGER NOT NULL DEFAULT 0")
    _add_column(db, "organizations", "property_values", "TEXT")
    _add_column(db, "organizations", "properties", "TEXT NOT NULL DEFAULT 'n/a'")
    _add_column(db, "roles", "permission_bodies", "TEXT")
    _add_column(db, "roles", "permissions", "TEXT NOT NULL DEFAULT 'n/a'")


@migration
def m007_verify(db: sqlite3.Connection) -> None:
    """verify: Kinde as read back (only the latest verify's rows are kept), which Kinde user answers for
    which Clerk user, and every difference found; the indexes its provenance questions need."""
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS verifications(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL,
            started_at TEXT NOT NULL,
            ended_at TEXT,
            counts TEXT
        )""",
        """CREATE TABLE IF NOT EXISTS kinde_users(
            verify_id INTEGER NOT NULL,
            kinde_id TEXT NOT NULL,
            provided_id TEXT,
            email_key TEXT,
            first_name TEXT,
            last_name TEXT,
            is_suspended INTEGER,
            identities TEXT,
            PRIMARY KEY (verify_id, kinde_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS kinde_users_provided ON kinde_users(verify_id, provided_id)",
        "CREATE INDEX IF NOT EXISTS kinde_users_email ON kinde_users(verify_id, email_key)",
        """CREATE TABLE IF NOT EXISTS kinde_members(
            verify_id INTEGER NOT NULL,
            kinde_id TEXT NOT NULL,
            org_code TEXT NOT NULL,
            roles TEXT NOT NULL,
            PRIMARY KEY (verify_id, kinde_id, org_code)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS verify_matches(
            verify_id INTEGER NOT NULL,
            clerk_id TEXT NOT NULL,
            kinde_id TEXT NOT NULL,
            PRIMARY KEY (verify_id, clerk_id, kinde_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX IF NOT EXISTS verify_matches_kinde ON verify_matches(verify_id, kinde_id)",
        """CREATE TABLE IF NOT EXISTS verify_findings(
            verify_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            clerk_id TEXT,
            kinde_id TEXT,
            field TEXT,
            expected TEXT,
            found TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS verify_findings_kind ON verify_findings(verify_id, kind)",
        # provenance: which earlier run created a given Kinde user (earlier_steps), without a table scan
        "CREATE INDEX IF NOT EXISTS users_kinde ON users(kinde_id)",
        # verify: is a Kinde user's Clerk-shaped provided_id known to this journal (any run)?
        "CREATE INDEX IF NOT EXISTS users_clerk ON users(clerk_id)",
    )


@migration
def m008_cutover_runs(db: sqlite3.Connection) -> None:
    """Catch-ups and undos: a run's base run and options; a catch-up's updates; deletions (users gone
    from Clerk, what an undo removes); which organizations and roles a run created."""
    _add_column(db, "runs", "parent_run_id", "INTEGER")
    _add_column(db, "runs", "run_options", "TEXT")
    _add_column(db, "organizations", "created_here", "INTEGER NOT NULL DEFAULT 0")
    _add_column(db, "roles", "created_here", "INTEGER NOT NULL DEFAULT 0")
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS updates(
            run_id INTEGER NOT NULL,
            clerk_id TEXT NOT NULL,
            kinde_id TEXT NOT NULL,
            patch TEXT NOT NULL,
            identities TEXT NOT NULL,
            password INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            PRIMARY KEY (run_id, clerk_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS deletions(
            run_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            kinde_ref TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            detail TEXT,
            PRIMARY KEY (run_id, kind, key)
        ) WITHOUT ROWID""",
        # a Clerk user's deletions across runs (export and catch-up lookups by clerk id: one search, not a scan)
        "CREATE INDEX IF NOT EXISTS deletions_key ON deletions(kind, key)",
    )


@migration
def m009_verify_fresh(db: sqlite3.Connection) -> None:
    """verify --fresh: Clerk's users as re-read, mapped with the run's settings (plan NULL: skipped)."""
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS verify_plans(
            verify_id INTEGER NOT NULL,
            clerk_id TEXT NOT NULL,
            plan TEXT,
            PRIMARY KEY (verify_id, clerk_id)
        ) WITHOUT ROWID""",
    )


@migration
def m010_export_target(db: sqlite3.Connection) -> None:
    """Export runs: 'api' for users listed in api-users.csv (no import file carries them)."""
    _add_column(db, "users", "export_target", "TEXT")


@migration
def m011_definitions(db: sqlite3.Connection) -> None:
    """Undo provenance of Kinde definitions: what a run created, found or attached (kind DefinitionKind;
    scope: a property's or category's context, a role_permission's role key, '' otherwise; created = 1
    recorded just before the create is sent), and organization values with the value before them."""
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS definitions(
            run_id INTEGER NOT NULL,
            kind TEXT NOT NULL,
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            created INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (run_id, kind, scope, key)
        ) WITHOUT ROWID""",
        """CREATE TABLE IF NOT EXISTS property_writes(
            run_id INTEGER NOT NULL,
            clerk_org_id TEXT NOT NULL,
            kinde_code TEXT NOT NULL,
            key TEXT NOT NULL,
            previous TEXT,
            written TEXT NOT NULL,
            PRIMARY KEY (run_id, clerk_org_id, key)
        ) WITHOUT ROWID""",
    )


@migration
def m012_create_intents(db: sqlite3.Connection) -> None:
    """1 from just before a run sends a role's / organization's create until its outcome is recorded."""
    _add_column(db, "roles", "create_intent", "INTEGER NOT NULL DEFAULT 0")
    _add_column(db, "organizations", "create_intent", "INTEGER NOT NULL DEFAULT 0")


@migration
def m013_user_writes(db: sqlite3.Connection) -> None:
    """A catch-up's writes to users already in Kinde, each recorded before its request with what Kinde
    held before (the run's first ``previous`` is kept): its undo restores them."""
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS user_writes(
            run_id INTEGER NOT NULL,
            clerk_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            kinde_id TEXT NOT NULL,
            previous TEXT,
            written TEXT,
            identity_id TEXT,
            PRIMARY KEY (run_id, clerk_id, kind, key)
        ) WITHOUT ROWID""",
    )


@migration
def m014_password_settled(db: sqlite3.Connection) -> None:
    """Catch-ups: the Unix ms after which a password change in Clerk is news to Kinde (NULL: derived from
    the run); a run's start to the ms (``started_at`` is to the second)."""
    _add_column(db, "users", "password_settled_ms", "INTEGER")
    _add_column(db, "runs", "started_ms", "INTEGER")


@migration
def m015_passes(db: sqlite3.Connection) -> None:
    """A run's passes (its start, each resume or retry-failed) with the run's counts when each began,
    and which pass created each user."""
    _run(
        db,
        """CREATE TABLE IF NOT EXISTS passes(
            run_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            kind TEXT NOT NULL,
            started_at TEXT NOT NULL,
            counts_before TEXT NOT NULL,
            PRIMARY KEY (run_id, number)
        ) WITHOUT ROWID""",
    )
    _add_column(db, "users", "created_pass", "INTEGER")


@migration
def m016_lazy_cohort(db: sqlite3.Connection) -> None:
    """Lazy migration: the users of a run's lazy cohort (1: left to Kinde's workflow, state ``lazy``, or created
    without a password for the workflow's users-in-Kinde reading; 2: in the `lazy finish` run closing it)."""
    _add_column(db, "users", "lazy", "INTEGER NOT NULL DEFAULT 0")
