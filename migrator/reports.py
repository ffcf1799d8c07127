"""What a run is about to do (``Plan``), what it did (``Summary``), and the files it leaves behind.

Everything here is read from the journal: a plan or a summary can be rebuilt at any time, and the
password report lists exactly the users the journal says cannot use their Clerk password.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrator.errors import EXIT_FAILURES, EXIT_INTERRUPTED, EXIT_OK
from migrator.journal import Journal, RunStatus
from migrator.mapping import STALE_DIGEST_REASON

PASSWORD_REPORT_COLUMNS = ("clerk_id", "email", "hasher", "reason", "action")


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

    @property
    def writes_needed(self) -> bool:
        return bool(self.to_create or self.to_finish or self.memberships_pending)


@dataclass
class Summary:
    """What a run did. ``exit_code`` follows the CLI's documented codes."""

    run_id: int
    mode: str
    plan: Plan
    created: int = 0
    already_present: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    pending: int = 0
    passwords_set: dict[str, int] = field(default_factory=dict)
    password_resets: int = 0
    memberships_added: int = 0
    memberships_failed: int = 0
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    skipped_users: list[dict[str, str | None]] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cancelled: bool = False  # the operator declined to write
    unaccounted: list[str] = field(default_factory=list)  # Clerk users not accounted for (a fetch gap)

    @property
    def exit_code(self) -> int:
        if self.cancelled:
            return EXIT_INTERRUPTED
        unfinished = self.failed or self.memberships_failed or self.pending or self.unaccounted
        return EXIT_FAILURES if unfinished else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [{"code": c, "message": m, "users": n} for c, m, n in self.failures]
        data["exit_code"] = self.exit_code
        return data


def skipped_users(journal: Journal, run_id: int) -> list[dict[str, str | None]]:
    """Every skipped user of a run with its reason code and detail, in fetch order."""
    return [
        {"clerk_id": row["clerk_id"], "reason": row["skip_reason"], "detail": row["skip_detail"]}
        for row in journal.skipped_users(run_id)
    ]


def build_plan(journal: Journal, run_id: int, *, with_export: bool) -> Plan:
    """Count what remains to be done, after the lookup, before any write."""
    counts = journal.plan_counts(run_id)
    if not with_export:
        counts["export_only"] = counts["api_only"] = 0
    return Plan(
        run_id=run_id, source_users=journal.run(run_id).source_count, skipped=journal.skip_counts(run_id), **counts
    )


def plan_warnings(journal: Journal, plan: Plan, *, policy: str) -> list[str]:
    """What the operator must read before saying yes: data the plan cannot carry across."""
    warnings = []
    if plan.export_only and journal.run(plan.run_id).mode in ("run", "dry-run"):  # canaries, catch-ups: partial
        sample = ", ".join(journal.export_only_users(plan.run_id, limit=5))
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
    return warnings


def build_summary(journal: Journal, run_id: int, mode: str, plan: Plan, *, cancelled: bool) -> Summary:
    """The outcome of a run, from the journal (request counts and timings are the caller's to add)."""
    counts = journal.outcome_counts(run_id)
    if mode == "dry-run" or cancelled:
        counts["pending"] = 0
    memberships = journal.membership_counts(run_id)
    return Summary(
        run_id=run_id,
        mode=mode,
        plan=plan,
        cancelled=cancelled,
        skipped=journal.skip_counts(run_id),
        memberships_added=memberships.get("done", 0),
        memberships_failed=memberships.get("failed", 0),
        failures=journal.failure_groups(run_id),
        skipped_users=skipped_users(journal, run_id),
        **counts,
    )


def reports_dir(state_dir: Path) -> Path:
    path = state_dir / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def password_report_path(state_dir: Path, run_id: int) -> Path:
    return reports_dir(state_dir) / f"run-{run_id}-password-resets.csv"


def write_password_report(journal: Journal, run_id: int, state_dir: Path) -> Path:
    """The users who cannot sign in with their Clerk password, for the team's user communication.

    Written to a temporary file (mode 0600: it holds emails) and renamed, so a reader never sees a
    half-written report.
    """
    path = password_report_path(state_dir, run_id)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        os.chmod(tmp, 0o600)
        writer = csv.writer(handle)
        writer.writerow(PASSWORD_REPORT_COLUMNS)
        for row in journal.users_with_password_problem(run_id):
            action = {"reset": "password reset requested", "n/a": "created without a password"}.get(
                row["password"], row["password"]
            )
            if row["state"] == "skipped":
                action = f"skipped ({row['skip_reason']})"
            writer.writerow(
                [row["clerk_id"], row["email_key"] or "", row["hasher"] or "", row["password_problem"], action]
            )
    tmp.replace(path)
    return path


def status_report(journal: Journal, run_id: int | None) -> dict[str, Any]:
    """What `migrator status` shows: the run, counts per step, skips and failures (journal only)."""
    run = journal.run(run_id)
    status = run.status
    if status == RunStatus.RUNNING and not journal.in_use():
        status = "stopped"  # its process died: `migrator resume` continues it
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
        "users": journal.staged_count(run.id),
        "steps": journal.step_counts(run.id),
        "skipped": journal.skip_counts(run.id),
        "skipped_users": skipped_users(journal, run.id),
        "memberships": journal.membership_counts(run.id),
        "failures": [{"code": c, "message": m, "users": n} for c, m, n in journal.failure_groups(run.id)],
        "failed_memberships": [dict(m) for m in journal.failed_memberships(run.id)],
        "problems": [dict(p) for p in journal.problems(run.id, limit=50)],
    }
