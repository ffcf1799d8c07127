"""What a run is about to do (``Plan``), what it did (``Summary``), and the files it leaves behind.

Everything here is read from the journal: a plan or a summary can be rebuilt at any time, and the
password report lists exactly the users the journal says cannot use their Clerk password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrator.errors import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK
from migrator.journal import Journal, RunMode, RunStatus, UserRow
from migrator.mapping import STALE_DIGEST_REASON
from migrator.report_files import LAZY_COHORT, MFA_REENROL, PASSWORD_RESETS, run_dir, write_rows
from migrator.run_passes import START, PassStart, run_counts, this_pass
from migrator.stages.updates import pending_changes

PASSWORD_REPORT_COLUMNS = ("clerk_id", "email", "hasher", "reason", "action")
MFA_REPORT_COLUMNS = ("clerk_id", "email", "action")
LAZY_REPORT_COLUMNS = ("clerk_id", "email", "reason")


@dataclass
class Plan:
    """What a run is about to do (the dry run's output, and the question a real run asks)."""

    run_id: int
    source_users: int | None = None
    staged: int = 0
    to_create: int = 0
    already_present: int = 0
    to_finish: int = 0  # created earlier (this or a previous run) with steps left
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    password_imports: dict[str, int] = field(default_factory=dict)  # Kinde method -> users
    password_resets: int = 0
    without_password: int = 0
    password_missing: int = 0  # password enabled in Clerk, no digest in the export
    password_problems: dict[str, int] = field(default_factory=dict)  # why not importable -> users
    export_only: int = 0
    api_only: int = 0
    organizations: int = 0
    memberships: int = 0
    memberships_pending: int = 0
    properties_to_write: int = 0  # users whose mapped metadata is still to be written
    properties_missing: list[str] = field(default_factory=list)  # definitions Kinde lacks
    property_sample: dict[str, Any] | None = None  # the mapping applied to one user
    social_to_link: int = 0  # users with external accounts to link as social identities
    social_unmapped: dict[str, int] = field(default_factory=dict)  # Clerk provider without connection -> users
    # provider (or "unknown": a shape naming none) -> users with an account no Kinde identity can carry
    social_not_carried: dict[str, int] = field(default_factory=dict)
    roles_permissions_pending: int = 0
    mfa_reenrol: int = 0  # users enrolled in MFA in Clerk: they enrol again in Kinde (secrets cannot move)
    lazy: int = 0  # the lazy cohort left to Kinde's workflow: they move at their first sign-in (lazy.csv)
    # catch-ups (stages.updates.pending_changes): users already in Kinde brought up to date, or deleted
    users_to_update: int = 0
    identities_to_add: int = 0
    identities_to_remove: int = 0
    passwords_to_update: int = 0
    users_to_delete: int = 0
    users_gone_listed: int = 0  # gone from Clerk, listed only (no --delete-removed)
    users_gone_before_import: int = 0  # exported, deleted from Clerk before the import reached Kinde: nothing to do

    @property
    def writes_needed(self) -> bool:
        catch_up = self.users_to_update or self.users_to_delete
        return bool(
            self.to_create or self.to_finish or self.memberships_pending or self.roles_permissions_pending or catch_up
        )


@dataclass
class Summary:
    """What a pass over a run did (its start, or a resume or retry-failed of it): the counts are this pass's,
    ``earlier`` holds what the run's earlier passes did (None on its first pass). ``pending`` and
    ``memberships_failed`` are the run's state now. ``exit_code`` follows the CLI's documented codes."""

    run_id: int
    mode: RunMode
    plan: Plan
    created: int = 0
    already_present: int = 0
    done_earlier: int = 0  # users whose password / flags an earlier run of this journal already set
    finished_created_earlier: int = 0  # users an earlier pass of this run created, finished by this one
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    pending: int = 0
    passwords_set: dict[str, int] = field(default_factory=dict)
    password_resets: int = 0
    memberships_added: int = 0
    memberships_failed: int = 0
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    failure_messages: dict[str, int] = field(default_factory=dict)  # error code -> distinct messages
    skipped_users: list[dict[str, str | None]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)  # requests sent again after a retryable failure
    reconciled: dict[str, int] = field(default_factory=dict)  # creates settled by a lookup after an unclear answer
    seconds: float = 0.0
    cancelled: bool = False  # the operator declined to write
    unaccounted: list[str] = field(default_factory=list)  # Clerk users not accounted for (a fetch gap)
    verification: dict[str, Any] | None = None  # a canary's verify of its own users: verdict and counts
    pass_number: int = 1
    pass_kind: str = START  # 'start', 'resume' or 'retry-failed'
    earlier: dict[str, Any] | None = None  # what earlier passes of the run did (failed: still failed, not retried)
    # a catch-up's users gone from Clerk, by outcome (the run's, not only this pass's): "deleted" (a DELETE Kinde
    # confirmed), "already-gone" (Kinde proved it absent: nothing sent), "kept", "failed", "listed"
    deletions: dict[str, int] = field(default_factory=dict)
    # the lazy cohort by outcome (journal.users.lazy_counts): accounted for, never pending
    lazy: dict[str, int] = field(default_factory=dict)

    @property
    def failed_in_run(self) -> int:
        """Users of the run failed now: this pass's, and earlier passes' a resume did not retry."""
        return self.failed + (self.earlier or {}).get("failed", 0)

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return EXIT_INTERRUPTED
        unfinished = self.failed_in_run or self.memberships_failed or self.pending or self.unaccounted
        unverified = self.verification is not None and self.verification.get("verdict") != "passed"
        return EXIT_FAILURES if unfinished or unverified else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [
            {"code": c, "message": m, "users": n, "messages": self.failure_messages.get(c, 1)}
            for c, m, n in self.failures
        ]
        del data["failure_messages"]
        data["exit_code"] = self.exit_code
        data["failed_in_run"] = self.failed_in_run
        return data


def skipped_users(journal: Journal, run_id: int) -> list[dict[str, str | None]]:
    """Every skipped user of a run with its reason code and detail, in fetch order."""
    return [
        {"clerk_id": row.clerk_id, "reason": row.skip_reason, "detail": row.skip_detail}
        for row in journal.users.skipped(run_id)
    ]


def build_plan(journal: Journal, run_id: int, *, with_export: bool) -> Plan:
    """Count what remains to be done, after the lookup, before any write."""
    counts = journal.users.plan_counts(run_id)
    if not with_export:
        counts["export_only"] = counts["api_only"] = 0
    sample = journal.users.sample_with_extras(run_id)
    return Plan(
        run_id=run_id,
        source_users=journal.runs.get(run_id).source_count,
        skipped=journal.users.skip_counts(run_id),
        property_sample=_sample(sample) if sample is not None else None,
        lazy=journal.users.lazy_counts(run_id).get("awaiting_sign_in", 0),
        **counts,
        **journal.users.extras_counts(run_id),
        **pending_changes(journal, run_id),
    )


def _sample(row: UserRow) -> dict[str, Any]:
    plan = json.loads(row.plan)
    return {"clerk_id": row.clerk_id, "properties": plan.get("properties") or {}, "social": plan.get("social") or []}


def plan_warnings(journal: Journal, plan: Plan, *, policy: str) -> list[str]:
    """What the operator must read before saying yes: data the plan cannot carry across."""
    warnings = []
    if plan.export_only and journal.runs.get(plan.run_id).mode in (RunMode.RUN, RunMode.DRY_RUN):  # canaries, catch-ups: partial
        sample = ", ".join(journal.exports.only_in_export(plan.run_id, limit=5))
        warnings.append(
            f"{plan.export_only} user(s) are in the export but not in Clerk's API (e.g. {sample}): not migrated"
        )
    if plan.api_only:
        warnings.append(
            f"{plan.api_only} user(s) are in Clerk's API but not in the export: any password they have cannot be"
            " imported"
        )
    if plan.password_missing:
        warnings.append(
            f"{plan.password_missing} user(s) have a password in Clerk but no digest in the export: policy {policy}"
        )
    if stale := plan.password_problems.get(STALE_DIGEST_REASON):
        warnings.append(
            f"{stale} user(s) changed their password after the export was made: policy {policy}"
            " (a newer export would carry their new password)"
        )
    if plan.properties_missing:
        warnings.append(f"Kinde has no definition for the mapped properties {', '.join(plan.properties_missing)}")
    for provider, users in plan.social_unmapped.items():
        warnings.append(
            f"{users} user(s) sign in with {provider} in Clerk, which has no Kinde connection in social_connections:"
            " their social sign-in is not linked"
        )
    for provider, users in plan.social_not_carried.items():
        what = "an external account naming no provider" if provider == "unknown" else f"a {provider} account"
        warnings.append(
            f"{users} user(s) have {what} that no Kinde identity can carry (no email or provider user id):"
            " not linked; each is named in the warnings and in verify (not_carried)"
        )
    if plan.mfa_reenrol:
        warnings.append(
            f"{plan.mfa_reenrol} user(s) use MFA in Clerk: Kinde cannot import their TOTP secrets, they must enrol"
            " again (listed in the MFA re-enrolment report)"
        )
    return warnings


def build_summary(
    journal: Journal, run_id: int, mode: RunMode, plan: Plan, *, cancelled: bool, start: PassStart | None = None
) -> Summary:
    """What this pass over the run did, from the journal (request counts and timings are the caller's to add);
    without ``start``, everything the run did."""
    counts = run_counts(journal, run_id)
    earlier = None
    if start is not None:
        counts = this_pass(journal, run_id, counts, start)
        earlier = None if start.kind == START else start.before
    pending = 0 if mode == RunMode.DRY_RUN or cancelled else journal.users.outcome_counts(run_id)["pending"]
    return Summary(
        run_id=run_id,
        mode=mode,
        plan=plan,
        cancelled=cancelled,
        pending=pending,
        memberships_failed=journal.organizations.membership_counts(run_id).get("failed", 0),
        failures=journal.users.failure_groups(run_id),
        failure_messages=failure_variety(journal, run_id),
        skipped_users=skipped_users(journal, run_id),
        pass_number=start.number if start else 1,
        pass_kind=start.kind if start else START,
        earlier=earlier,
        deletions=journal.cutover.deletion_counts(run_id).get("user", {}) if mode == RunMode.SYNC else {},
        lazy=journal.users.lazy_counts(run_id),
        **counts,
    )


def failure_variety(journal: Journal, run_id: int) -> dict[str, int]:
    """How many different messages the failed users of each error code have."""
    return {code: messages for code, _, _, messages in journal.users.failure_messages(run_id, per_code=1)}


def password_report_path(state_dir: Path, run_id: int) -> Path:
    return run_dir(state_dir, run_id) / PASSWORD_RESETS


DRY_RUN_ACTIONS = {  # a dry run's reports say what a real run would do, never that it happened
    "password reset requested": "password reset would be requested",
    "created without a password": "would be created without a password",
    "not migrated (already in Kinde)": "would not be migrated (already in Kinde)",
    "re-enrol MFA in Kinde": "would need to re-enrol MFA in Kinde",
}


def _action(action: str, dry_run: bool) -> str:
    if not dry_run:
        return action
    if action.startswith("skipped ("):
        return "would be " + action
    return DRY_RUN_ACTIONS.get(action, f"would: {action}")


def write_password_report(journal: Journal, run_id: int, state_dir: Path, *, dry_run: bool = False) -> Path:
    """The users who cannot sign in with their Clerk password, for the team's user communication."""

    def rows() -> Iterator[list[str]]:
        for row in journal.users.with_password_problem(run_id):
            action = {"reset": "password reset requested", "n/a": "created without a password"}.get(
                row.password, row.password
            )
            if row.state == "skipped":
                action = f"skipped ({row.skip_reason})"
            action = _action(action, dry_run)
            yield [row.clerk_id, row.email_key or "", row.hasher or "", row.password_problem, action]

    return write_rows(password_report_path(state_dir, run_id), PASSWORD_REPORT_COLUMNS, rows())


def plan_email(row: UserRow) -> str:
    """The user's primary email as Clerk spells it (the plan's first email identity), else its lookup key."""
    identities = json.loads(row.plan)["identities"] if row.plan else []
    return next((i["value"] for i in identities if i["type"] == "email"), row.email_key or "")


def lazy_report_path(state_dir: Path, run_id: int) -> Path:
    return run_dir(state_dir, run_id) / LAZY_COHORT


def write_lazy_report(journal: Journal, run_id: int, state_dir: Path) -> Path | None:
    """lazy.csv: the run's lazy cohort, who move at their first sign-in with the old password (none: no file,
    and an earlier one of the run is removed)."""
    path = lazy_report_path(state_dir, run_id)
    if not journal.users.count(run_id, "lazy = 1"):
        path.unlink(missing_ok=True)
        return None

    def rows() -> Iterator[list[str]]:
        for row in journal.users.lazy_cohort(run_id):
            yield [row.clerk_id, plan_email(row), row.password_problem or ""]

    return write_rows(path, LAZY_REPORT_COLUMNS, rows())


def mfa_report_path(state_dir: Path, run_id: int) -> Path:
    return run_dir(state_dir, run_id) / MFA_REENROL


def write_mfa_report(journal: Journal, run_id: int, state_dir: Path, *, dry_run: bool = False) -> Path:
    """The users enrolled in MFA in Clerk, who must enrol again in Kinde. Names and emails only:
    no TOTP secret is ever read beyond noticing the export's cell is filled."""

    def rows() -> Iterator[list[str]]:
        for row in journal.users.for_mfa_report(run_id):
            if row.state == "skipped":
                action = f"skipped ({row.skip_reason})"
            elif row.created == "existed":
                action = "not migrated (already in Kinde)"
            else:
                action = "re-enrol MFA in Kinde"
            yield [row.clerk_id, row.email_key or "", _action(action, dry_run)]

    return write_rows(mfa_report_path(state_dir, run_id), MFA_REPORT_COLUMNS, rows())


def status_report(journal: Journal, run_id: int | None) -> dict[str, Any]:
    """What `migrator status` shows: the run, counts per step, skips and failures (journal only)."""
    run = journal.runs.get(run_id)
    status = run.status
    if status == RunStatus.RUNNING and not journal.in_use():
        status = "stopped"  # its process died: `migrator resume` continues it
    variety = failure_variety(journal, run.id)
    return {
        "run": {
            "id": run.id,
            "mode": run.mode,
            "status": status,
            "started_at": run.started_at,
            "ended_at": run.ended_at,
            "source_count": run.source_count,
            "fetch_done": run.fetch_done,
        },
        "users": journal.users.staged_count(run.id),
        "steps": journal.users.step_counts(run.id),
        "skipped": journal.users.skip_counts(run.id),
        "skipped_users": skipped_users(journal, run.id),
        "memberships": journal.organizations.membership_counts(run.id),
        "failures": [
            {"code": c, "message": m, "users": n, "messages": variety.get(c, 1)}
            for c, m, n in journal.users.failure_groups(run.id)
        ],
        "failed_memberships": [asdict(m) for m in journal.organizations.failed_memberships(run.id)],
        "problems": [asdict(p) for p in journal.users.problems(run.id, limit=50)],
        "verify": journal.verify.last(run.id),
        "passes": [{"number": p.number, "kind": p.kind, "started_at": p.started_at} for p in journal.runs.passes(run.id)],
    }
