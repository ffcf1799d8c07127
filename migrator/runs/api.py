"""The library entry points: the CLI, the demo, the tests and the benchmarks all go through these.

Each opens one session (``session.py``) and hands the action to its run kind: ``run_migration``
(run, dry run, resume, retry-failed, catch-up, canary), ``run_export``, ``run_undo``, ``run_verification``.
"""

from __future__ import annotations

import httpx

from migrator.config import Settings
from migrator.events import Emit
from migrator.journal import Journal
from migrator.reports import Summary
from migrator.runs.actions import Canary, ExportAction, Resume, Start, Sync, Undo
from migrator.runs.cutover import start_cutover_run
from migrator.runs.export import export_run
from migrator.runs.migration import Confirm, Migration
from migrator.runs.session import open_session
from migrator.runs.undo import ConfirmUndo, UndoSummary, run_undo
from migrator.runs.verify import run_verification
from migrator.stages.export_files import ExportOutcome

__all__ = [
    "Canary",
    "Confirm",
    "ConfirmUndo",
    "ExportAction",
    "Resume",
    "Start",
    "Sync",
    "Undo",
    "UndoSummary",
    "run_export",
    "run_migration",
    "run_undo",
    "run_verification",
]


async def run_migration(
    settings: Settings,
    journal: Journal,
    action: Start | Resume | Sync | Canary,
    *,
    on_event: Emit,
    confirm: Confirm,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> Summary:
    """Connect to both APIs and carry out ``action``; the summary says what happened."""
    session = open_session(settings, journal, on_event, clerk_transport, kinde_transport, Migration)
    async with session as migration:
        assert isinstance(migration, Migration)
        if isinstance(action, Start):
            return await migration.start(dry_run=action.dry_run, confirm=confirm)
        if isinstance(action, Sync | Canary):
            return await start_cutover_run(migration, action, confirm)
        if action.failed_only:
            return await migration.retry_failed(action.run_id, allow_changed=action.allow_changed, confirm=confirm)
        return await migration.resume(action.run_id, allow_changed=action.allow_changed, confirm=confirm)


async def run_export(
    settings: Settings,
    journal: Journal,
    action: ExportAction,
    *,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> ExportOutcome:
    """Stage every Clerk user as a run would, then write Kinde's import files; the outcome is the manifest."""
    session = open_session(settings, journal, on_event, clerk_transport, kinde_transport, Migration)
    async with session as migration:
        assert isinstance(migration, Migration)
        return await export_run(migration, action)
