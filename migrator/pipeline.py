"""The migration, step by step. The only module that knows the order of the stages.

    preflight -> index export -> fetch (+ map, stage) -> conflicts -> lookup -> [confirm] -> load
    -> organizations -> summary

Every stage (``migrator.stages``) reads its input from the journal and writes its result there, so
a run that dies anywhere continues with ``resume``: done users cost no API call, users whose create
may have been in flight are looked up again (never re-created blindly), and the fetch continues
from its cursor. Progress is reported through ``emit`` (see ``migrator.events``); nothing here prints.

``run_migration`` is the library entry point: the CLI, the demo, the tests and the benchmarks all
go through it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from migrator.actions import Resume, Start
from migrator.clerk.client import ClerkClient
from migrator.config import Settings
from migrator.connect import connect
from migrator.cutover import Canary, Sync, start_cutover_run
from migrator.errors import ApiError, JournalError, MigratorError
from migrator.events import Emit, Notice
from migrator.journal import Journal, Run, RunMode, RunStatus
from migrator.kinde.client import KindeClient
from migrator.report_files import run_dir, write_run_reports
from migrator.reports import (
    Plan,
    Summary,
    build_plan,
    build_summary,
    plan_warnings,
    write_mfa_report,
    write_password_report,
)
from migrator.request_log import REQUESTS_LOG, RequestLog
from migrator.run_passes import RESUME, RETRY_FAILED, START, PassStart, begin_pass
from migrator.stages.context import RunContext, mapping_options
from migrator.stages.export_index import open_export
from migrator.stages.gather import gather
from migrator.stages.load import load
from migrator.stages.lookup import lookup
from migrator.stages.organizations import organizations
from migrator.stages.preflight import Checked, Intent, check_before_run
from migrator.stages.properties import ensure_definitions, plan_definitions
from migrator.stages.unchanged import check_unchanged, file_fingerprint
from migrator.stages.updates import apply_updates

Confirm = Callable[[Plan], bool]


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
    async with open_migration(settings, journal, on_event, clerk_transport, kinde_transport) as migration:
        if isinstance(action, Start):
            return await migration.start(dry_run=action.dry_run, confirm=confirm)
        if isinstance(action, Sync | Canary):
            return await start_cutover_run(migration, action, confirm)
        if action.failed_only:
            return await migration.retry_failed(action.run_id, allow_changed=action.allow_changed, confirm=confirm)
        return await migration.resume(action.run_id, allow_changed=action.allow_changed, confirm=confirm)


@asynccontextmanager
async def open_migration(
    settings: Settings,
    journal: Journal,
    on_event: Emit,
    clerk_transport: httpx.AsyncBaseTransport | None = None,
    kinde_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Migration]:
    """A ``Migration`` over both API clients (retries reported as notices), closed on exit."""

    def on_retry(service: str, error: ApiError, attempt: int) -> None:
        on_event(Notice(f"{service}: retry {attempt} after: {error}"))

    log = RequestLog()  # every request of the run, in its folder once drive() knows which run (request_log.py)
    transports = {"clerk_transport": clerk_transport, "kinde_transport": kinde_transport, "request_log": log}
    async with connect(settings, on_retry=on_retry, **transports) as (clerk, kinde):
        migration = Migration(settings, journal, clerk, kinde, on_event)
        migration.request_log = log
        yield migration


def _export_of(run: Run) -> Path | None:
    return Path(run.export_path) if run.export_path else None


def _resumed_intent(run: Run) -> Intent:
    """A resumed run does what it was started to do (a canary's verify came with its start, not its resume)."""
    delete_removed = bool((run.run_options or {}).get("delete_removed"))
    return Intent(writes_users=run.writes_users, delete_removed=delete_removed)


class Migration:
    """One migration run over a journal: the run's lifecycle around the order of the stages."""

    def __init__(self, settings: Settings, journal: Journal, clerk: ClerkClient, kinde: KindeClient, emit: Emit):
        self.settings, self.journal, self.clerk, self.kinde, self.emit = settings, journal, clerk, kinde, emit
        self.options = mapping_options(settings)
        self._started = time.monotonic()
        self.request_log: RequestLog | None = None
        self.this_pass: PassStart | None = None

    async def check(self, intent: Intent, export: Path | None) -> Checked:
        """The ordered check (stages/preflight.py) before a run is recorded or reopened."""
        return await check_before_run(self.settings, self.clerk, self.kinde, intent, export)

    async def start(self, *, dry_run: bool, confirm: Confirm) -> Summary:
        export = self.settings.clerk_export
        checked = await self.check(Intent(writes_users=not dry_run), export)
        run = self.journal.runs.start(
            mode=RunMode.DRY_RUN if dry_run else RunMode.RUN,
            fingerprint=self.settings.fingerprint(),
            summary=self.settings.mapping_summary(),
            export_path=str(export.resolve()) if export else None,
            export_fingerprint=file_fingerprint(export) if export else None,
        )
        self.emit(Notice(f"run {run.id} started ({run.mode}); journal {self.journal.path}"))
        return await self.drive(run, confirm, checked)

    async def resume(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self._reopen(run_id, allow_changed, "there is nothing to resume; start a run with `migrator run`")
        checked = await self.check(_resumed_intent(run), _export_of(run))

        def reopen() -> None:
            with self.journal.transaction():
                self.journal.users.mark_for_recheck(run.id)
                self.journal.organizations.reset_failed_memberships(run.id)
                self.journal.runs.reopen(run.id)
            self.emit(Notice(f"resuming run {run.id}"))

        return await self.drive(run, confirm, checked, reopen, RESUME)

    async def retry_failed(self, run_id: int | None, *, allow_changed: bool, confirm: Confirm) -> Summary:
        run = self._reopen(run_id, allow_changed, "nothing was attempted, so nothing failed")
        checked = await self.check(_resumed_intent(run), _export_of(run))

        def reopen() -> None:
            with self.journal.transaction():
                retried = self.journal.users.reset_failed(run.id)
                self.journal.organizations.reset_failed_memberships(run.id)
                self.journal.runs.reopen(run.id)
            self.emit(Notice(f"retrying {retried} failed user(s) of run {run.id}"))

        return await self.drive(run, confirm, checked, reopen, RETRY_FAILED)

    def _reopen(self, run_id: int | None, allow_changed: bool, why_not_dry: str) -> Run:
        run = self.journal.runs.get(run_id)
        if run.mode == RunMode.EXPORT:
            raise JournalError(f"run {run.id} is an export: `migrator export --resume --run {run.id}` continues it")
        if run.mode == RunMode.UNDO:
            raise JournalError(f"run {run.id} is an undo: `migrator undo {run.parent_run_id}` continues it")
        if run.dry_run:
            raise JournalError(f"run {run.id} was a dry run: {why_not_dry}")
        self.settings, changes = check_unchanged(self.settings, run, allow_changed=allow_changed)
        self.options = replace(self.options, export_time=self.settings.export_time)
        for change in changes:
            self.emit(Notice(f"continuing although {change}", level="warning"))
        return run

    async def drive(
        self,
        run: Run,
        confirm: Confirm,
        checked: Checked,
        reopen: Callable[[], None] | None = None,
        pass_kind: str = START,
    ) -> Summary:
        """Take a journaled run (new, resumed, or a cutover run) through the stages, once ``checked`` (the
        ordered check passed before the run was recorded or reopened). The pass begins with it
        (run_passes.py): the summary counts what this pass did."""
        ctx = RunContext(self.settings, self.journal, self.clerk, self.kinde, self.emit, run, self.options)
        if self.request_log is not None:
            self.request_log.attach(run_dir(self.settings.state_dir, run.id) / REQUESTS_LOG)
        self.journal.runs.record_source_count(run.id, checked.source_count)
        if reopen is not None:
            reopen()
        self.this_pass = begin_pass(self.journal, run.id, pass_kind)
        try:
            if run.export_path:
                ctx.export = open_export(Path(run.export_path))
            return await self._stages(ctx, confirm)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.journal.runs.mark(run.id, RunStatus.INTERRUPTED)
            raise
        except MigratorError as exc:
            if not run.dry_run:
                exc.hint = f"the journal is saved: `migrator resume {run.id}` continues where this stopped"
            self.journal.runs.mark(run.id, RunStatus.FAILED)
            raise
        finally:
            if ctx.export is not None:
                ctx.export.close()

    async def _stages(self, ctx: RunContext, confirm: Confirm) -> Summary:
        run = ctx.run
        await gather(ctx)
        await lookup(ctx)
        with self.journal.transaction():
            self.journal.organizations.mark_memberships_done_earlier(run.id)
            self.journal.organizations.settle_unmigrated_memberships(run.id)
        plan = build_plan(self.journal, run.id, with_export=ctx.export is not None)
        await plan_definitions(ctx, plan)
        for warning in plan_warnings(self.journal, plan, policy=self.settings.unimportable_passwords):
            self.emit(Notice(warning, level="warning"))
        write_password_report(self.journal, run.id, self.settings.state_dir, dry_run=run.dry_run)
        write_mfa_report(self.journal, run.id, self.settings.state_dir, dry_run=run.dry_run)
        if run.dry_run:
            return self._finish(ctx, plan, RunStatus.COMPLETED)
        if plan.writes_needed and not confirm(plan):
            declined = f"nothing was written: the operator declined (`migrator resume {run.id}` asks again)"
            self.emit(Notice(declined, "warning"))
            return self._finish(ctx, plan, RunStatus.CANCELLED)
        await ensure_definitions(ctx)
        await load(ctx)
        await apply_updates(ctx)  # catch-ups: users already in Kinde brought up to date; else a no-op
        if self.settings.migrate_organizations:
            await organizations(ctx)
        return self._finish(ctx, plan, RunStatus.COMPLETED)

    def _finish(self, ctx: RunContext, plan: Plan, status: RunStatus) -> Summary:
        cancelled = status == RunStatus.CANCELLED
        summary = build_summary(self.journal, ctx.run.id, ctx.run.mode, plan, cancelled=cancelled, start=self.this_pass)
        summary.unaccounted = list(ctx.notes)
        summary.requests = {client.service: client.stats.requests for client in (self.clerk, self.kinde)}
        summary.throttled = {client.service: client.stats.throttled for client in (self.clerk, self.kinde)}
        summary.seconds = round(time.monotonic() - self._started, 3)
        summary.reports = write_run_reports(self.journal, ctx.run.id, self.settings.state_dir, summary.to_json())
        unfinished = summary.failed_in_run or summary.pending or summary.unaccounted
        final = RunStatus.COMPLETED_WITH_FAILURES if status == RunStatus.COMPLETED and unfinished else status
        self.journal.runs.end(ctx.run.id, final)
        return summary
