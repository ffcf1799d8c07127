"""``migrator export``: the run's stages up to conflicts, then import files instead of API writes.

The export is a run of its own mode (``export``) in the journal: the same preflight (read scopes
only), export index, fetch, mapping and conflict rules as ``migrator run``, so it resumes
(``migrator export --resume``) and streams at a million users. Nothing is written to Kinde except
the roles, and only with ``--create-roles``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx

from migrator.config import Settings
from migrator.errors import JournalError, MigratorError
from migrator.events import Emit, Notice
from migrator.journal import Journal, Run, RunMode, RunStatus
from migrator.pipeline import Migration, open_migration
from migrator.report_files import run_dir
from migrator.request_log import REQUESTS_LOG
from migrator.stages.context import RunContext
from migrator.stages.export_files import ExportOutcome, FileRequest, write_import_files
from migrator.stages.export_index import open_export
from migrator.stages.gather import gather
from migrator.stages.organizations import ensure_roles
from migrator.stages.preflight import Checked, Intent
from migrator.stages.unchanged import check_unchanged, file_fingerprint

FILES_OPTION = "files"  # run_options of an export run: the folder its import files were written to


@dataclass(frozen=True)
class ExportAction:
    request: FileRequest
    resume_run: int | None = None  # continue this export run (None: start one)
    resume: bool = False
    create_roles: bool = False
    allow_changed: bool = False


async def run_export(
    settings: Settings,
    journal: Journal,
    action: ExportAction,
    *,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> ExportOutcome:
    """Stage every Clerk user as a run would, then write the import files; the outcome is the manifest."""

    async with open_migration(settings, journal, on_event, clerk_transport, kinde_transport) as migration:
        run, checked = await (_reopen(migration, action) if action.resume else _start(migration, action))
        _attach_request_log(migration, run)
        journal.runs.record_source_count(run.id, checked.source_count)
        ctx = RunContext(
            migration.settings, journal, migration.clerk, migration.kinde, on_event, run, migration.options
        )
        try:
            if run.export_path:
                ctx.export = open_export(Path(run.export_path))
            return await _stages(migration, ctx, action)
        except (asyncio.CancelledError, KeyboardInterrupt):
            journal.runs.mark(run.id, RunStatus.INTERRUPTED)
            raise
        except MigratorError as exc:
            exc.hint = f"the journal is saved: `migrator export --out DIR --resume --run {run.id}` continues where this stopped"
            journal.runs.mark(run.id, RunStatus.FAILED)
            raise
        finally:
            if ctx.export is not None:
                ctx.export.close()


def _intent(action: ExportAction) -> Intent:
    """An export writes no user; with --create-roles (not a dry run) it creates the roles through the API."""
    return Intent(writes_users=False, create_roles=action.create_roles and not action.request.dry_run)


async def _start(migration: Migration, action: ExportAction) -> tuple[Run, Checked]:
    settings = migration.settings
    export = settings.clerk_export
    checked = await migration.check(_intent(action), export)
    run = migration.journal.runs.start(
        mode=RunMode.EXPORT,
        fingerprint=settings.fingerprint(),
        summary=settings.mapping_summary(),
        export_path=str(export.resolve()) if export else None,
        export_fingerprint=file_fingerprint(export) if export else None,
    )
    migration.emit(Notice(f"run {run.id} started (export); journal {migration.journal.path}"))
    return run, checked


def _attach_request_log(migration: Migration, run: Run) -> None:
    """The export's requests go to its run folder, like a run's: unattached, the log would hold them in memory."""
    if migration.request_log is not None:
        migration.request_log.attach(run_dir(migration.settings.state_dir, run.id) / REQUESTS_LOG)


async def _reopen(migration: Migration, action: ExportAction) -> tuple[Run, Checked]:
    run = migration.journal.runs.get(action.resume_run)
    if run.mode != RunMode.EXPORT:
        raise JournalError(f"run {run.id} is not an export (mode {run.mode}): `migrator resume {run.id}` continues it")
    migration.settings, changes = check_unchanged(migration.settings, run, allow_changed=action.allow_changed)
    for change in changes:
        migration.emit(Notice(f"continuing although {change}", level="warning"))
    checked = await migration.check(_intent(action), Path(run.export_path) if run.export_path else None)
    migration.journal.runs.reopen(run.id)
    migration.emit(Notice(f"resuming export run {run.id}"))
    return run, checked


async def _stages(migration: Migration, ctx: RunContext, action: ExportAction) -> ExportOutcome:
    journal, run = ctx.journal, ctx.run
    await gather(ctx)
    if action.create_roles and not action.request.dry_run:
        await ensure_roles(ctx)
    outcome = write_import_files(ctx, action.request)
    if not action.request.dry_run:  # a catch-up or undo of this run needs files that could have been imported
        journal.runs.record_option(run.id, FILES_OPTION, str(action.request.out))
    journal.runs.end(run.id, RunStatus.COMPLETED_WITH_FAILURES if ctx.notes else RunStatus.COMPLETED)
    return outcome
