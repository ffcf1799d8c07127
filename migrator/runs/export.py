"""``migrator export``: the run's stages up to conflicts, then import files instead of API writes.

The export is a run of its own mode (``export``) in the journal: the same preflight (read scopes
only), export index, fetch, mapping and conflict rules as ``migrator run``, so it resumes
(``migrator export --resume``) and streams at a million users. Nothing is written to Kinde except
the roles, and only with ``--create-roles``.
"""

from __future__ import annotations

from pathlib import Path

from migrator.errors import JournalError
from migrator.events import Notice
from migrator.journal import Run, RunMode, RunStatus
from migrator.runs import modes
from migrator.runs.actions import ExportAction
from migrator.runs.kinds import KINDS, kind_of
from migrator.runs.lazy_window import refuse_while_window_open
from migrator.runs.lifecycle import carry
from migrator.runs.migration import Migration
from migrator.stages.context import RunContext
from migrator.stages.export_files import ExportOutcome, write_import_files
from migrator.stages.gather import gather
from migrator.stages.organizations import ensure_roles
from migrator.stages.preflight import Checked, Intent


async def export_run(migration: Migration, action: ExportAction) -> ExportOutcome:
    """Stage every Clerk user as a run would, then write the import files; the outcome is the manifest."""
    run, checked = await (_reopen(migration, action) if action.resume else _start(migration, action))

    async def stages(ctx: RunContext, _: object) -> ExportOutcome:
        return await _stages(ctx, action)

    return await carry(migration, run, stages, checked=checked)


def _intent(action: ExportAction) -> Intent:
    """An export writes no user; with --create-roles (not a dry run) it creates the roles through the API."""
    return KINDS[RunMode.EXPORT].needs(create_roles=action.create_roles and not action.request.dry_run)


async def _start(migration: Migration, action: ExportAction) -> tuple[Run, Checked]:
    # Kinde's import of these files would create the window's pending users: refused like a new run
    policy = migration.settings.unimportable_passwords
    refuse_while_window_open(
        migration.journal,
        "an export's files, once imported,",
        policy,
        dry_run=action.request.dry_run,
        emit=migration.emit,
    )
    checked = await migration.check(_intent(action), migration.settings.clerk_export)
    run = migration.record_run(RunMode.EXPORT)
    migration.emit(Notice(f"run {run.id} started (export); journal {migration.journal.path}"))
    return run, checked


async def _reopen(migration: Migration, action: ExportAction) -> tuple[Run, Checked]:
    run = migration.journal.runs.get(action.resume_run)
    if run.mode != RunMode.EXPORT:
        raise JournalError(f"run {run.id} is not an export (mode {run.mode}): `migrator resume {run.id}` continues it")
    migration.continue_unchanged(run, action.allow_changed)
    checked = await migration.check(_intent(action), Path(run.export_path) if run.export_path else None)
    migration.journal.runs.reopen(run.id)
    migration.emit(Notice(f"resuming export run {run.id}"))
    return run, checked


async def _stages(ctx: RunContext, action: ExportAction) -> ExportOutcome:
    journal, run = ctx.journal, ctx.run
    await gather(ctx, kind_of(run).fetch)
    if action.create_roles and not action.request.dry_run:
        await ensure_roles(ctx)
    outcome = write_import_files(ctx, action.request)
    if not action.request.dry_run:  # a catch-up or undo of this run needs files that could have been imported
        journal.runs.record_option(run.id, modes.FILES_OPTION, str(action.request.out))
    journal.runs.end(run.id, RunStatus.COMPLETED_WITH_FAILURES if ctx.notes else RunStatus.COMPLETED)
    return outcome
