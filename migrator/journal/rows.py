"""What the journal's repositories return: frozen dataclasses, one per kind of row, never ``sqlite3.Row``.

A row is built from the columns its query selects (:func:`typed`), so a query and its dataclass name the
same columns; a column added by a migration is a field here too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from migrator.journal.states import Created, Lookup, PasswordStep, RunMode, RunStatus, Step, UserState

T = TypeVar("T")


def typed(cls: type[T], row: sqlite3.Row) -> T:
    """``row`` as ``cls``: every selected column is a field of the same name."""
    convert = getattr(cls, "_convert", None)
    values = {name: row[name] for name in row.keys()}  # noqa: SIM118 (sqlite3.Row is not a mapping)
    return cls(**(convert(values) if convert else values))


def typed_all(cls: type[T], rows: Iterable[sqlite3.Row]) -> list[T]:
    return [typed(cls, row) for row in rows]


@dataclass(frozen=True)
class Run:
    id: int
    started_at: str
    ended_at: str | None
    mode: RunMode
    status: RunStatus
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

    @staticmethod
    def _convert(values: dict[str, Any]) -> dict[str, Any]:
        return {
            **values,
            "mode": RunMode(values["mode"]),
            "status": RunStatus(values["status"]),
            "config_summary": json.loads(values["config_summary"]),
            "fetch_done": bool(values["fetch_done"]),
            "run_options": json.loads(values["run_options"]) if values["run_options"] else None,
        }

    @property
    def dry_run(self) -> bool:
        return self.mode == RunMode.DRY_RUN

    @property
    def writes_users(self) -> bool:
        """False for a dry run and for an export to import files (read scopes are enough)."""
        return self.mode.writes_users


@dataclass(frozen=True)
class UserRow:
    """A user staged in a run, with the state of each of its steps."""

    run_id: int
    clerk_id: str
    seq: int
    plan: str | None  # the UserPlan as JSON (no password material); None: skipped before mapping
    email_key: str | None
    username_key: str | None
    phone_key: str | None
    hasher: str | None
    password_method: str | None
    password_problem: str | None
    state: UserState
    lookup: Lookup
    created: Created
    password: PasswordStep
    flags: Step
    kinde_id: str | None
    skip_reason: str | None
    skip_detail: str | None
    attempts: int
    error_code: str | None
    error_message: str | None
    error_retryable: int | None
    updated_at: str | None
    identities: Step
    missing_identities: str | None  # JSON: identities Kinde refused in a create
    carried: int  # CARRIED_* bits: steps an earlier run finished for the same Kinde user
    properties: Step
    social: Step
    mfa: int
    export_target: str | None  # export runs: 'api' for users listed in api-users.csv
    password_settled_ms: int | None
    created_pass: int | None
    # the lazy cohort (policy "lazy"): 1 in the run that left it to Kinde's workflow (the window open),
    # 2 in the `lazy finish` run that closes the window (adopted, or given the fallback); 0 otherwise
    lazy: int

    def lookup_key(self, field: str) -> str | None:
        """The key this user is looked up by in Kinde for ``field`` ('email', 'username', 'phone')."""
        return {"email": self.email_key, "username": self.username_key, "phone": self.phone_key}[field]

    @staticmethod
    def _convert(values: dict[str, Any]) -> dict[str, Any]:
        return {
            **values,
            "state": UserState(values["state"]),
            "lookup": Lookup(values["lookup"]),
            "created": Created(values["created"]),
            "password": PasswordStep(values["password"]),
            "flags": Step(values["flags"]),
            "identities": Step(values["identities"]),
            "properties": Step(values["properties"]),
            "social": Step(values["social"]),
        }


@dataclass(frozen=True)
class ExportEntry:
    """Where a user's row sits in the Clerk export (digests are re-read from there, never stored)."""

    run_id: int
    user_id: str
    offset: int
    row_number: int
    hasher: str | None
    has_digest: int


@dataclass(frozen=True)
class Problem:
    clerk_id: str
    kind: str
    message: str


@dataclass(frozen=True)
class Pass:
    """A pass over a run: its start, each resume or retry-failed, with the run's counts when it began."""

    run_id: int
    number: int
    kind: str
    started_at: str
    counts_before: dict[str, Any]

    @staticmethod
    def _convert(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "counts_before": json.loads(values["counts_before"])}


@dataclass(frozen=True)
class Organization:
    run_id: int
    clerk_org_id: str
    body: str  # the Kinde create body as JSON
    kinde_code: str | None
    state: str
    property_values: str | None  # JSON
    properties: Step
    created_here: int
    create_intent: int

    @staticmethod
    def _convert(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "properties": Step(values["properties"])}


@dataclass(frozen=True)
class Role:
    run_id: int
    key: str
    body: str  # the Kinde create body as JSON
    state: str
    permission_bodies: str | None  # JSON
    permissions: Step
    created_here: int
    create_intent: int

    @staticmethod
    def _convert(values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "permissions": Step(values["permissions"])}


@dataclass(frozen=True)
class PendingMembership:
    """A membership to add, with its user's Kinde id and its organization's code."""

    clerk_user_id: str
    clerk_org_id: str
    role_key: str
    kinde_id: str
    kinde_code: str


@dataclass(frozen=True)
class FailedMembership:
    clerk_user_id: str
    clerk_org_id: str
    role_key: str
    error: str | None


@dataclass(frozen=True)
class ReadBack:
    """A matched user of a verify: the plan (fresh, if re-read), its steps, and Kinde's record as listed."""

    clerk_id: str
    plan: str | None
    state: str
    created: str
    flags: str
    properties: str
    social: str
    kinde_id: str
    first_name: str | None
    last_name: str | None
    is_suspended: int | None
    identities: str | None  # JSON [(type, value, confirmed)...], once read


@dataclass(frozen=True)
class MembershipComparison:
    """A planned membership beside what Kinde lists (``roles`` None: absent)."""

    clerk_user_id: str
    clerk_org_id: str
    role_key: str
    state: str
    kinde_code: str | None
    kinde_id: str
    roles: str | None  # JSON list of role keys


@dataclass(frozen=True)
class Finding:
    rowid: int
    kind: str
    clerk_id: str | None
    kinde_id: str | None
    field: str | None
    expected: Any
    found: Any


@dataclass(frozen=True)
class Update:
    """A catch-up's changes to a user already in Kinde."""

    run_id: int
    clerk_id: str
    kinde_id: str
    patch: str  # JSON
    identities: str  # JSON
    password: int
    state: str  # StepState, or UPDATE_FAILED
    error: str | None


@dataclass(frozen=True)
class Deletion:
    run_id: int
    kind: str
    key: str
    kinde_ref: str
    state: str  # DeletionState
    detail: str | None


@dataclass(frozen=True)
class PropertyWrite:
    clerk_org_id: str
    kinde_code: str
    key: str
    previous: str | None
    written: str


@dataclass(frozen=True)
class UserWrite:
    run_id: int
    clerk_id: str
    kind: str  # UserWriteKind
    key: str
    kinde_id: str
    previous: str | None  # JSON
    written: str | None  # JSON
    identity_id: str | None


@dataclass(frozen=True)
class SharedIdentity:
    """One identity key held by several staged users, keeper first (essential holders, then oldest)."""

    key: str  # "email:a@b.c", "username:ann", "phone:+1..."
    holders: tuple[tuple[str, bool], ...]  # (clerk_id, essential to that user)
