"""Cutover runs: catch-ups (``sync``) and canaries (``run --sample/--only``).

A production migration is not one run: the bulk run happens days before the switch, catch-ups
bring over what changed in Clerk since, a canary tries a few hundred users first (and an undo,
``undo.py``, takes a rehearsal back out of a real tenant). Each is a run of its own in the journal
(mode ``sync`` or ``canary``; a catch-up's ``parent_run_id`` names its base run), resumable like any
run: an ordinary migration with another fetch stage (``stages/gather.py`` picks it by mode).
"""

from __future__ import annotations

from typing import Any

from migrator.errors import InputError, JournalError, MigratorError, RunStopped
from migrator.events import Notice
from migrator.journal import DeletionState, Journal, Run, RunMode, RunStatus
from migrator.reports import Summary
from migrator.runs import modes
from migrator.runs.actions import Canary, Sync
from migrator.runs.kinds import KINDS
from migrator.runs.lazy_window import refuse_while_window_open
from migrator.runs.migration import Confirm, Migration
from migrator.runs.verify import verify_connected
from migrator.stages.catchup import since_ms
from migrator.stages.imported import absent_from_kinde, adopt_imported, gone_from_clerk, refuse_incomplete_import

FINISHED = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES)


async def start_cutover_run(migration: Migration, action: Sync | Canary, confirm: Confirm) -> Summary:
    """Open a catch-up or canary run and drive it through the ordinary stages."""
    journal = migration.journal
    base = sync_base(journal, action.since_run_id) if isinstance(action, Sync) else None
    selection = _selection(action) if isinstance(action, Canary) else None
    delete_removed = isinstance(action, Sync) and action.delete_removed
    kind = KINDS[RunMode.SYNC if isinstance(action, Sync) else RunMode.CANARY]
    if isinstance(action, Canary):  # a catch-up follows its base's window; a canary would write over it
        policy = migration.settings.unimportable_passwords
        refuse_while_window_open(journal, "a canary", policy, dry_run=False, emit=migration.emit)
    checked = await migration.check(kind.needs(delete_removed=delete_removed), migration.settings.clerk_export)
    if isinstance(action, Sync):
        assert base is not None
        gone = await _learn_imported_users(migration, base) if base.mode == RunMode.EXPORT else []
        since = since_ms(base.started_at)
        mode, options = RunMode.SYNC, {"since_ms": since, "delete_removed": action.delete_removed, "full": action.full}
    else:
        base, mode, options = None, RunMode.CANARY, {"selection": selection}
    run = migration.record_run(mode, parent_run_id=base.id if base else None, run_options=options)
    since = f" since run {base.id} began ({base.started_at})" if base else ""
    migration.emit(Notice(f"run {run.id} started ({mode}{since}); journal {journal.path}"))
    if isinstance(action, Sync) and gone:
        _record_gone_before_import(migration, run, base, gone)
    summary = await migration.drive(run, confirm, checked)
    if mode == RunMode.CANARY and not summary.cancelled:
        await _verify_canary(migration, run, summary)
    return summary


async def _verify_canary(migration: Migration, run: Run, summary: Summary) -> None:
    """Read the canary's users back from Kinde: its verdict is part of its exit code; verify.csv is its report."""
    try:
        result = await verify_connected(migration.context(run))
    except MigratorError as exc:
        raise RunStopped(exc, f"run {run.id} is written; verify it with `migrator verify {run.id}`") from exc
    summary.verification = {k: v for k, v in result.to_json().items() if k in ("verify_id", "verdict", "counts")}
    summary.reports["verify"] = result.reports["verify"]
    level = "info" if result.passed else "warning"
    migration.emit(Notice(f"canary run {run.id} verified against Kinde: {summary.verification['verdict']}", level))


async def _learn_imported_users(migration: Migration, base: Run) -> list[str]:
    """A catch-up after an export: the Kinde id of each imported user, and every exported user still in Clerk
    in Kinde first; returns those deleted from Clerk before they reached Kinde (accounted for, not refused).

    One absent is refused rather than created: its file may still be importing (a duplicate), or rejected
    (the operator decides); nor is it taken for deleted. ``not-in-kinde.csv`` lists who, for ``--only-file``."""
    ctx = migration.context(base)
    recorded = await adopt_imported(ctx, base.id)
    if recorded:
        migration.emit(Notice(f"{recorded} user(s) of export run {base.id} found in Kinde (created by its import)"))
    gone = await gone_from_clerk(ctx, base.id)
    absent = absent_from_kinde(ctx, base.id, gone)
    if absent.total:
        raise refuse_incomplete_import(base.id, absent)
    return gone


def _record_gone_before_import(migration: Migration, run: Run, base: Run, gone: list[str]) -> None:
    """Exported users deleted from Clerk before they reached Kinde: journaled (and counted in the plan) as
    accounted for, so no later catch-up asks about them again."""
    migration.journal.cutover.add_deletions(run.id, "user", [(clerk_id, "") for clerk_id in gone], DeletionState.NOT_IN_KINDE)
    migration.emit(
        Notice(
            f"{len(gone)} user(s) of export run {base.id} were deleted from Clerk before their import reached Kinde:"
            " nothing to delete, nothing to create"
        )
    )


def sync_base(journal: Journal, run_id: int | None) -> Run:
    """The run a catch-up follows: a finished run, catch-up, canary or export (that wrote files)."""
    base = journal.runs.get(run_id) if run_id is not None else journal.runs.latest(modes.DEFAULT_SINCE_MODES)
    if base is None:
        raise JournalError("no run to catch up on: start with `migrator run`")
    if base.mode not in modes.BASE_MODES:
        raise JournalError(
            f"run {base.id} is a {base.mode}: a catch-up follows a run, a catch-up, a canary or an export"
        )
    require_files(base)
    if base.status not in FINISHED:
        raise JournalError(
            f"run {base.id} is {base.status}: finish it first (`migrator resume {base.id}`); a catch-up since an"
            " unfinished run could miss users"
        )
    return base


def require_files(base: Run) -> None:
    """An export run counts as a base only once it wrote import files (``export --dry-run`` wrote none)."""
    if base.mode == RunMode.EXPORT and not (base.run_options or {}).get(modes.FILES_OPTION):
        raise JournalError(
            f"run {base.id} is an export that wrote no import files (a --dry-run, or not finished): nothing of it"
            f" can be in Kinde; `migrator export --out DIR --resume --run {base.id}` writes them"
        )


def _selection(action: Canary) -> dict[str, Any]:
    if action.only:
        return {"only": sorted(set(action.only))}
    if action.sample is None or action.sample < 1:
        raise InputError("--sample must be a positive number of users")
    return {"sample": action.sample, "seed": action.seed}
