"""Every state the journal records, as one enum each: run modes and statuses, a user's state and steps.

One rule in one place: a run mode is compared through :class:`RunMode`, never as a string; the steps that
are only ever pending, done or not applicable share :class:`Step`.
"""

from __future__ import annotations

from enum import StrEnum


class RunMode(StrEnum):
    """What kind of run a ``runs`` row is."""

    RUN = "run"
    DRY_RUN = "dry-run"  # writes nothing to Kinde, ever
    CANARY = "canary"  # a full run's path for a few chosen users
    SYNC = "sync"  # a catch-up after a base run
    UNDO = "undo"  # deletes what its base run created
    EXPORT = "export"  # Kinde's import files instead of API writes
    LAZY_FINISH = "lazy-finish"  # closes a run's lazy window: adopts whom the workflow created, the rest fall back

    @property
    def writes_users(self) -> bool:
        """False for a dry run and for an export to import files (read scopes are enough)."""
        return self not in (RunMode.DRY_RUN, RunMode.EXPORT)


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
    # the lazy cohort, not created by the run: Kinde's workflow creates the user at its first sign-in with the
    # old password; `migrator lazy finish` adopts it (or gives the fallback) and adds what the run deferred
    LAZY = "lazy"


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
    WORKFLOW = "workflow"  # by the lazy-migration workflow for a user of the cohort (provided_id = its Clerk id)
    NA = "n/a"


class PasswordStep(StrEnum):
    PENDING = "pending"
    SET = "set"
    RESET = "reset"  # no importable password: a reset is requested (flags step)
    NA = "n/a"


class Step(StrEnum):
    """A step that is to do, done, or not for this row. Users: ``flags`` (password-reset request and
    suspension), ``identities`` (identities a create did not carry, added one by one), ``properties``
    (mapped metadata; organizations' too), ``social`` (external accounts as social identities); roles:
    ``permissions`` (Clerk permissions attached to the Kinde role)."""

    PENDING = "pending"
    DONE = "done"
    NA = "n/a"


class StepState(StrEnum):
    """Organizations and roles: created (or found) in Kinde, or not yet. Also a catch-up's update (which
    may also have ``failed``, recorded as :data:`UPDATE_FAILED`)."""

    PENDING = "pending"
    DONE = "done"


UPDATE_FAILED = "failed"  # updates.state of an update that failed (a resume retries it)


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


# ``users.carried`` bits: steps an earlier run of this journal finished for the same Kinde user
CARRIED_PASSWORD = 1
CARRIED_FLAGS = 2

STEP_COLUMNS = ("lookup", "created", "password", "flags", "identities", "properties", "social")
UNMAPPED_PROVIDER = "social_unmapped"  # problems.kind of a user's external account with no Kinde connection
NOT_CARRIED_ACCOUNT = "social_not_carried"  # problems.kind of an external account no Kinde identity can carry
LOOKUP_FIELDS = ("email", "username", "phone")
